//! The C ABI between the server and a plug-in: every type that crosses the boundary, the
//! declaration a plug-in carries, and the checks the server applies to it.
//!
//! The versioning follows Apache's module rule: the ABI major must be equal, and the plug-in's
//! minor must be at least the one the server needs. On top of that, the declaration carries a
//! fingerprint of the size, alignment and field offsets of every shared struct (nginx's module
//! signature idea), so a change that was not versioned is still caught; the panic strategy
//! (panics must unwind, so the entry points can catch them); and the compiler version.
//!
//! The declaration is plain bytes, placed both in its own ELF section (`SECTION`) and behind an
//! exported symbol (`DECLARATION_SYMBOL`). The server reads the section from the file before it
//! loads the library, so a refused plug-in's code, constructors included, never runs.

use std::ffi::c_void;
use std::fmt;
use std::mem::{align_of, offset_of, size_of};

/// First bytes of every declaration.
pub const MAGIC: [u8; 8] = *b"OCCWOGI\0";
/// Changes when a shared type or an entry point changes incompatibly.
pub const ABI_MAJOR: u32 = 1;
/// Grows when something is added that older servers may ignore.
/// 1: `Declaration::flags` (`FLAG_START_WHEN_ATTACHED`).
/// 2: `Handoff::scheme` (`http` or `https`), appended to the handoff.
/// 3: `FLAG_COMPRESSIBLE` (a flag only: the layout, and so the fingerprint, is unchanged).
pub const ABI_MINOR: u32 = 3;
/// The lowest plug-in minor this server needs.
pub const HOST_NEEDS_MINOR: u32 = 0;
/// The ELF section that holds the declaration.
pub const SECTION: &str = ".occwserv_plugin";
/// The exported symbol of the declaration (NUL-terminated for `dlsym`).
pub const DECLARATION_SYMBOL: &[u8] = b"OCCWSERV_PLUGIN_DECLARATION\0";
/// The exported symbol of the entry-point table (NUL-terminated for `dlsym`).
pub const ENTRIES_SYMBOL: &[u8] = b"OCCWSERV_PLUGIN_ENTRIES\0";
/// The compiler that built this crate (`rustc -V`).
pub const RUSTC_VERSION: &str = env!("OCCWSERV_PLUGIN_API_RUSTC");

/// Lengths of the text fields of a declaration, terminator included.
pub const RUSTC_FIELD_BYTES: usize = 96;
pub const NAME_FIELD_BYTES: usize = 64;
pub const VERSION_FIELD_BYTES: usize = 32;

/// What a plug-in declares about itself. Plain data only: no pointers, so the bytes in the
/// file are the bytes in memory.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    pub magic: [u8; 8],
    pub abi_major: u32,
    pub abi_minor: u32,
    pub layout_fingerprint: u64,
    /// 1 when the plug-in was built with `panic = "unwind"`.
    pub panic_unwind: u32,
    /// `FLAG_*` bits; 0 in plug-ins built before ABI minor 1, which read the same.
    pub flags: u32,
    /// `rustc -V` of the compiler, NUL-padded.
    pub rustc: [u8; RUSTC_FIELD_BYTES],
    /// The path segment after `/ogi/`, NUL-padded.
    pub name: [u8; NAME_FIELD_BYTES],
    /// The plug-in's own version, NUL-padded.
    pub version: [u8; VERSION_FIELD_BYTES],
}

/// `Declaration::flags`: the plug-in is persistent and starts as soon as it is attached
/// (its world, its bots, its own listeners), not with its first request. The server makes
/// its instance on the instance's own thread right away and does not ask `persist`.
pub const FLAG_START_WHEN_ATTACHED: u32 = 1;

/// `Declaration::flags` (ABI minor 3): the plug-in's answers may be compressed by the server.
/// Its response is then written into a socketpair the server relays, and a compressible
/// answer (status 200, a configured type, no `Content-Encoding` of its own) goes to the
/// client in the coding it takes best. A plug-in without the flag is never compressed.
pub const FLAG_COMPRESSIBLE: u32 = 2;

/// Status of an entry-point call.
pub const CALL_OK: u32 = 0;
/// The plug-in panicked; the panic was caught inside the plug-in.
pub const CALL_PANICKED: u32 = 1;

/// `Next` values returned through `Entries::handle`.
pub const NEXT_CONTINUE: u32 = 0;
pub const NEXT_TERMINATE: u32 = 1;

/// The entry points of a plug-in, exported as `ENTRIES_SYMBOL`. Every one catches panics.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Entries {
    /// Called once after loading, before anything else: the server's call table and the
    /// context pointer to pass back with every call. Both outlive the library.
    pub init: unsafe extern "C" fn(api: *const HostApi, context: *const c_void) -> u32,
    /// Makes a fresh instance and stores its pointer in `*instance`.
    pub new_instance: unsafe extern "C" fn(instance: *mut *mut c_void) -> u32,
    /// Stores 1 in `*persist` when later requests should go to this instance.
    pub persist: unsafe extern "C" fn(instance: *mut c_void, persist: *mut u32) -> u32,
    /// Hands one connection to the instance; stores `NEXT_CONTINUE` or `NEXT_TERMINATE`.
    pub handle:
        unsafe extern "C" fn(instance: *mut c_void, conn: *const Handoff, next: *mut u32) -> u32,
    /// Drops an instance.
    pub drop_instance: unsafe extern "C" fn(instance: *mut c_void) -> u32,
}

/// The server's side of the table: functions a plug-in calls. Each may be called from any
/// thread at any time while the library is loaded (which is until the process ends).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HostApi {
    /// One line for the error log; `conn_id` 0 when not about a connection.
    pub log: unsafe extern "C" fn(context: *const c_void, conn_id: u64, line: Bytes),
    /// Calls `write(sink, text)` once with the plug-in's config table as TOML, or not at all.
    pub config_toml: unsafe extern "C" fn(
        context: *const c_void,
        sink: *mut c_void,
        write: unsafe extern "C" fn(*mut c_void, Bytes),
    ),
    /// Returns a lent connection to the server; called exactly once per `Handoff::lent`.
    pub give_back: unsafe extern "C" fn(lent: *mut c_void, outcome: *const Outcome),
}

/// Borrowed bytes, valid for the duration of the call that passes them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Bytes {
    pub ptr: *const u8,
    pub len: usize,
}

impl Bytes {
    pub fn of(bytes: &[u8]) -> Bytes {
        Bytes {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// "Absent" (distinct from empty).
    pub fn none() -> Bytes {
        Bytes {
            ptr: std::ptr::null(),
            len: 0,
        }
    }
}

/// One request header field.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HeaderRef {
    pub name: Bytes,
    pub value: Bytes,
}

/// The client's address.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PeerAddr {
    /// 4 or 6.
    pub family: u32,
    pub port: u16,
    pub reserved: u16,
    /// IPv4 in the first four bytes, or IPv6.
    pub ip: [u8; 16],
}

/// How the request body is framed (`Handoff::body_kind`).
pub const BODY_NONE: u32 = 0;
pub const BODY_LENGTH: u32 = 1;
pub const BODY_CHUNKED: u32 = 2;

/// The gate on a lent connection's socket (`Handoff::gate`), shared by the plug-in and the
/// server's timeout watch: the first writer moves it away from `GATE_OPEN`.
pub const GATE_OPEN: u32 = 0;
/// The plug-in has begun its answer.
pub const GATE_ANSWERING: u32 = 1;
/// The plug-in switched the connection to websocket; no request timeout applies any more.
pub const GATE_UPGRADED: u32 = 2;
/// The server timed the request out and answered (or closed) it; the plug-in may not write.
pub const GATE_TAKEN: u32 = 3;

/// A connection lent to a plug-in for one `handle` call. Everything is borrowed for the call;
/// the plug-in copies what it keeps. The socket `fd` stays open until `lent` is given back, and
/// the plug-in never closes it.
#[repr(C)]
pub struct Handoff {
    /// Opaque; pass to `HostApi::give_back` exactly once.
    pub lent: *mut c_void,
    /// A `u32` used atomically (`GATE_*`), valid until `lent` is given back.
    pub gate: *const u32,
    pub conn_id: u64,
    pub fd: i32,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u32,
    /// The client asked for the connection to persist.
    pub client_keep_alive: u32,
    /// The server allows the connection to persist after this exchange.
    pub keep_alive_allowed: u32,
    pub expect_continue: u32,
    pub body_kind: u32,
    pub body_length: u64,
    pub method: Bytes,
    /// The request target exactly as sent.
    pub target: Bytes,
    /// The path, percent-decoded.
    pub path: Bytes,
    /// The decoded path after `/ogi/NAME`: empty or starting with `/`.
    pub subpath: Bytes,
    /// The raw query string, absent (`ptr` null) when there was no `?`.
    pub query: Bytes,
    /// The query string percent-decoded (`+` as space), absent with `query`.
    pub query_decoded: Bytes,
    pub headers: *const HeaderRef,
    pub header_count: usize,
    pub peer: PeerAddr,
    /// Bytes already read from the socket past the request head (body, pipelined requests).
    pub unread: Bytes,
    pub send_timeout_ms: u64,
    pub body_timeout_ms: u64,
    /// The `Server` header value.
    pub server: Bytes,
    /// `http` or `https`: how the client reached the server (ABI minor 2). Over HTTPS `fd` is
    /// the plug-in's end of a socketpair the server relays through the TLS session.
    pub scheme: Bytes,
}

/// `Outcome::kind`.
pub const OUTCOME_RESPONDED: u32 = 0;
/// The connection became a websocket, which has now ended.
pub const OUTCOME_UPGRADED: u32 = 1;
/// Given back without a complete response.
pub const OUTCOME_ABANDONED: u32 = 2;

/// What happened on a lent connection, passed with `give_back`.
#[repr(C)]
pub struct Outcome {
    pub kind: u32,
    pub status: u32,
    /// The response was complete and the connection may carry another request.
    pub keep_alive: u32,
    /// Anything at all was written to the socket.
    pub wrote_anything: u32,
    pub body_bytes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes read past the end of the request (a pipelined next request).
    pub leftover: Bytes,
}

/// 64-bit FNV-1a over a list of numbers.
const fn fnv1a(parts: &[usize]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let bytes = (parts[i] as u64).to_le_bytes();
        let mut j = 0;
        while j < 8 {
            hash ^= bytes[j] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    hash
}

macro_rules! layout {
    ($ty:ty; $($field:ident),*) => {
        [size_of::<$ty>(), align_of::<$ty>(), $(offset_of!($ty, $field)),*]
    };
}

/// The size, alignment and field offsets of every shared struct, folded into one number.
pub const LAYOUT_FINGERPRINT: u64 = fingerprint(false);

/// The fingerprint of plug-ins built for ABI minor 0 and 1, whose handoff ends before
/// `scheme`. A field appended to the handoff (which only the server builds, and a plug-in
/// only reads) leaves every earlier offset where it was, so such plug-ins still read it
/// correctly; `Declaration::check` accepts them.
pub const LAYOUT_FINGERPRINT_MINOR_1: u64 = fingerprint(true);

const fn fingerprint(before_scheme: bool) -> u64 {
    let declaration = layout!(Declaration; magic, abi_major, abi_minor, layout_fingerprint, panic_unwind, flags, rustc, name, version);
    let entries = layout!(Entries; init, new_instance, persist, handle, drop_instance);
    let host_api = layout!(HostApi; log, config_toml, give_back);
    let bytes = layout!(Bytes; ptr, len);
    let header = layout!(HeaderRef; name, value);
    let peer = layout!(PeerAddr; family, port, reserved, ip);
    let mut handoff = layout!(Handoff; lent, gate, conn_id, fd, minor_version, client_keep_alive, keep_alive_allowed,
        expect_continue, body_kind, body_length, method, target, path, subpath, query, query_decoded, headers,
        header_count, peer, unread, send_timeout_ms, body_timeout_ms, server, scheme);
    let c = if before_scheme {
        // The handoff as it was: `server` was its last field, so it ended where `scheme`
        // begins (both are pointer-aligned).
        handoff[0] = offset_of!(Handoff, scheme);
        let mut old = [0usize; 25];
        let mut i = 0;
        while i < old.len() {
            old[i] = handoff[i];
            i += 1;
        }
        fnv1a(&old)
    } else {
        fnv1a(&handoff)
    };
    let outcome = layout!(Outcome; kind, status, keep_alive, wrote_anything, body_bytes, bytes_read, bytes_written, leftover);
    let d = fnv1a(&declaration);
    let e = fnv1a(&entries);
    let h = fnv1a(&host_api);
    let b = fnv1a(&bytes);
    let r = fnv1a(&header);
    let p = fnv1a(&peer);
    let o = fnv1a(&outcome);
    fnv1a(&[
        d as usize, e as usize, h as usize, b as usize, r as usize, p as usize, c as usize,
        o as usize,
    ])
}

/// `text` NUL-padded into a field; too long a text is cut when `truncate`, else refused.
const fn fill<const N: usize>(text: &str, truncate: bool) -> [u8; N] {
    let bytes = text.as_bytes();
    if bytes.len() > N - 1 && !truncate {
        panic!("plug-in name or version too long");
    }
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() && i < N - 1 {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

const fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= NAME_FIELD_BYTES {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

impl Declaration {
    /// The declaration of a plug-in built against this crate. Evaluated at compile time by
    /// `declare_plugin!`; a bad name stops the build.
    pub const fn new(name: &str, version: &str, panic_unwind: bool) -> Declaration {
        if !valid_name(name) {
            panic!("a plug-in name is 1 to 63 characters of a-z, 0-9, '-', '_' and '.'");
        }
        Declaration {
            magic: MAGIC,
            abi_major: ABI_MAJOR,
            abi_minor: ABI_MINOR,
            layout_fingerprint: LAYOUT_FINGERPRINT,
            panic_unwind: if panic_unwind { 1 } else { 0 },
            flags: 0,
            rustc: fill::<RUSTC_FIELD_BYTES>(RUSTC_VERSION, true),
            name: fill::<NAME_FIELD_BYTES>(name, false),
            version: fill::<VERSION_FIELD_BYTES>(version, false),
        }
    }

    /// The same declaration, for a persistent plug-in that starts when attached.
    pub const fn started_when_attached(mut self) -> Declaration {
        self.flags |= FLAG_START_WHEN_ATTACHED;
        self
    }

    /// The same declaration, for a plug-in whose answers the server may compress.
    pub const fn compressible(mut self) -> Declaration {
        self.flags |= FLAG_COMPRESSIBLE;
        self
    }

    /// True when the plug-in lets the server compress its answers.
    pub fn allows_compression(&self) -> bool {
        self.flags & FLAG_COMPRESSIBLE != 0
    }

    /// True when the plug-in asks to start as soon as it is attached.
    pub fn starts_when_attached(&self) -> bool {
        self.flags & FLAG_START_WHEN_ATTACHED != 0
    }

    /// Reads a declaration from the start of `bytes` (an ELF section's contents).
    pub fn from_bytes(bytes: &[u8]) -> Option<Declaration> {
        if bytes.len() < size_of::<Declaration>() {
            return None;
        }
        let u32_at = |at: usize| {
            u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut u64_bytes = [0u8; 8];
        u64_bytes.copy_from_slice(&bytes[offset_of!(Declaration, layout_fingerprint)..][..8]);
        let mut d = Declaration {
            magic: [0; 8],
            abi_major: u32_at(offset_of!(Declaration, abi_major)),
            abi_minor: u32_at(offset_of!(Declaration, abi_minor)),
            layout_fingerprint: u64::from_ne_bytes(u64_bytes),
            panic_unwind: u32_at(offset_of!(Declaration, panic_unwind)),
            flags: u32_at(offset_of!(Declaration, flags)),
            rustc: [0; RUSTC_FIELD_BYTES],
            name: [0; NAME_FIELD_BYTES],
            version: [0; VERSION_FIELD_BYTES],
        };
        d.magic
            .copy_from_slice(&bytes[offset_of!(Declaration, magic)..][..8]);
        d.rustc
            .copy_from_slice(&bytes[offset_of!(Declaration, rustc)..][..RUSTC_FIELD_BYTES]);
        d.name
            .copy_from_slice(&bytes[offset_of!(Declaration, name)..][..NAME_FIELD_BYTES]);
        d.version
            .copy_from_slice(&bytes[offset_of!(Declaration, version)..][..VERSION_FIELD_BYTES]);
        Some(d)
    }

    /// The declaration's bytes, as they sit in the ELF section.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; size_of::<Declaration>()];
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        put(offset_of!(Declaration, magic), &self.magic);
        put(
            offset_of!(Declaration, abi_major),
            &self.abi_major.to_ne_bytes(),
        );
        put(
            offset_of!(Declaration, abi_minor),
            &self.abi_minor.to_ne_bytes(),
        );
        put(
            offset_of!(Declaration, layout_fingerprint),
            &self.layout_fingerprint.to_ne_bytes(),
        );
        put(
            offset_of!(Declaration, panic_unwind),
            &self.panic_unwind.to_ne_bytes(),
        );
        put(offset_of!(Declaration, flags), &self.flags.to_ne_bytes());
        put(offset_of!(Declaration, rustc), &self.rustc);
        put(offset_of!(Declaration, name), &self.name);
        put(offset_of!(Declaration, version), &self.version);
        out
    }

    pub fn name(&self) -> String {
        text(&self.name)
    }

    pub fn version(&self) -> String {
        text(&self.version)
    }

    pub fn rustc(&self) -> String {
        text(&self.rustc)
    }

    /// Whether this server may call into the plug-in; the error names the field that does
    /// not match.
    pub fn check(&self) -> Result<(), Mismatch> {
        if self.magic != MAGIC {
            return Err(Mismatch::Magic);
        }
        if self.abi_major != ABI_MAJOR {
            return Err(Mismatch::AbiMajor {
                found: self.abi_major,
                expected: ABI_MAJOR,
            });
        }
        // Always passes while the server needs minor 0; kept for when it needs more.
        #[allow(clippy::absurd_extreme_comparisons)]
        if self.abi_minor < HOST_NEEDS_MINOR {
            return Err(Mismatch::AbiMinor {
                found: self.abi_minor,
                needed: HOST_NEEDS_MINOR,
            });
        }
        let earlier = self.abi_minor < 2 && self.layout_fingerprint == LAYOUT_FINGERPRINT_MINOR_1;
        if self.layout_fingerprint != LAYOUT_FINGERPRINT && !earlier {
            return Err(Mismatch::Layout {
                found: self.layout_fingerprint,
                expected: LAYOUT_FINGERPRINT,
            });
        }
        if self.panic_unwind != 1 {
            return Err(Mismatch::PanicAbort);
        }
        if self.rustc != fill::<RUSTC_FIELD_BYTES>(RUSTC_VERSION, true) {
            return Err(Mismatch::Rustc {
                found: self.rustc(),
                expected: RUSTC_VERSION.to_string(),
            });
        }
        let name = self.name();
        if !valid_name(&name) {
            return Err(Mismatch::Name(name));
        }
        Ok(())
    }
}

impl fmt::Debug for Declaration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Declaration")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("abi_major", &self.abi_major)
            .field("abi_minor", &self.abi_minor)
            .field(
                "layout_fingerprint",
                &format_args!("{:016x}", self.layout_fingerprint),
            )
            .field("panic_unwind", &self.panic_unwind)
            .field("rustc", &self.rustc())
            .finish()
    }
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Why a declaration is refused. `Display` names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Not a declaration at all.
    Magic,
    AbiMajor {
        found: u32,
        expected: u32,
    },
    AbiMinor {
        found: u32,
        needed: u32,
    },
    Layout {
        found: u64,
        expected: u64,
    },
    /// Built with `panic = "abort"`: a panic would take the server down.
    PanicAbort,
    Rustc {
        found: String,
        expected: String,
    },
    Name(String),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Magic => write!(f, "magic: not an occwserv plug-in declaration"),
            Mismatch::AbiMajor { found, expected } => {
                write!(f, "abi_major: plug-in has {found}, server needs {expected}")
            }
            Mismatch::AbiMinor { found, needed } => {
                write!(
                    f,
                    "abi_minor: plug-in has {found}, server needs at least {needed}"
                )
            }
            Mismatch::Layout { found, expected } => {
                write!(
                    f,
                    "layout_fingerprint: plug-in has {found:016x}, server has {expected:016x}"
                )
            }
            Mismatch::PanicAbort => {
                write!(f, "panic_unwind: plug-in was built with panic = \"abort\"")
            }
            Mismatch::Rustc { found, expected } => write!(
                f,
                "rustc: plug-in built by {found:?}, server by {expected:?}"
            ),
            Mismatch::Name(name) => write!(
                f,
                "name: {name:?} is not 1 to 63 characters of a-z, 0-9, '-', '_', '.'"
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_declaration_passes_and_round_trips() {
        let d = Declaration::new("hello", "0.1.0", true);
        assert_eq!(d.check(), Ok(()));
        assert_eq!(d.name(), "hello");
        assert_eq!(d.version(), "0.1.0");
        let back = Declaration::from_bytes(&d.to_bytes()).unwrap();
        assert!(back == d);
    }

    #[test]
    fn each_field_is_named_when_it_differs() {
        let good = Declaration::new("x", "1", true);
        let mut d = good;
        d.abi_major = ABI_MAJOR + 1;
        assert!(d.check().unwrap_err().to_string().starts_with("abi_major"));
        let mut d = good;
        d.layout_fingerprint ^= 1;
        assert!(d
            .check()
            .unwrap_err()
            .to_string()
            .starts_with("layout_fingerprint"));
        let mut d = good;
        d.panic_unwind = 0;
        assert_eq!(d.check(), Err(Mismatch::PanicAbort));
        let mut d = good;
        d.rustc[0] = b'X';
        assert!(d.check().unwrap_err().to_string().starts_with("rustc"));
        let mut d = good;
        d.magic[0] = 0;
        assert_eq!(d.check(), Err(Mismatch::Magic));
        assert!(Declaration::from_bytes(&[0u8; 10]).is_none());
    }

    #[test]
    fn a_minor_1_plugin_with_the_handoff_before_scheme_is_accepted() {
        let mut d = Declaration::new("x", "1", true);
        d.abi_minor = 1;
        d.layout_fingerprint = LAYOUT_FINGERPRINT_MINOR_1;
        assert_eq!(d.check(), Ok(()));
        // But not a minor 2 plug-in claiming the old layout, nor an old one with another.
        d.abi_minor = 2;
        assert!(d.check().is_err());
        d.abi_minor = 1;
        d.layout_fingerprint ^= 1;
        assert!(d.check().is_err());
        assert_ne!(LAYOUT_FINGERPRINT, LAYOUT_FINGERPRINT_MINOR_1);
    }

    #[test]
    fn the_compressible_flag_keeps_the_layout_and_round_trips() {
        let d = Declaration::new("x", "1", true).compressible();
        assert!(d.allows_compression() && !d.starts_when_attached());
        assert_eq!(d.layout_fingerprint, LAYOUT_FINGERPRINT);
        assert_eq!(d.check(), Ok(()));
        let back = Declaration::from_bytes(&d.to_bytes()).unwrap();
        assert!(back.allows_compression());
        // A plug-in of minor 2 (no such flag then) still loads and is not compressed.
        let mut old = Declaration::new("x", "1", true);
        old.abi_minor = 2;
        assert_eq!(old.check(), Ok(()));
        assert!(!old.allows_compression());
        let both = Declaration::new("x", "1", true)
            .started_when_attached()
            .compressible();
        assert!(both.allows_compression() && both.starts_when_attached());
    }

    #[test]
    fn a_newer_minor_is_accepted() {
        let mut d = Declaration::new("x", "1", true);
        d.abi_minor = ABI_MINOR + 5;
        assert_eq!(d.check(), Ok(()));
    }
}
