//! Loading plug-in libraries and calling into them: the only `unsafe` code of the server.
//!
//! A file is inspected before it is loaded: its `.occwserv_plugin` ELF section is read with
//! the `object` crate and checked against the ABI, so a refused library is never mapped and
//! none of its code (constructors included) ever runs. An accepted file is copied, and the copy
//! is loaded, so the original can be replaced while the loaded generation drains. Libraries
//! are never unloaded: Rust code may leave threads and thread-local destructors behind.

use std::ffi::c_void;
use std::fmt;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use libloading::os::unix::{Library as DlLibrary, RTLD_LOCAL, RTLD_NOW};
use object::{Object, ObjectSection};
use plugin_api::abi::{
    Bytes, Declaration, Entries, Handoff, HeaderRef, HostApi, Outcome, PeerAddr, BODY_CHUNKED,
    BODY_LENGTH, BODY_NONE, CALL_OK, DECLARATION_SYMBOL, ENTRIES_SYMBOL, NEXT_TERMINATE,
    OUTCOME_RESPONDED, OUTCOME_UPGRADED, SECTION,
};
use plugin_api::Next;

use super::watch::{Taken, Watch};
use crate::conn::Conn;
use crate::http::{Body, Request};

/// Why a file cannot be a plug-in, found before loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// Not an ELF shared object this server can read.
    NotElf(String),
    /// Built for another machine.
    Architecture(String),
    /// No declaration section: an ordinary library, not a plug-in.
    NoDeclaration,
    /// The section is shorter than a declaration.
    Truncated,
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::NotElf(why) => write!(f, "not an ELF library: {why}"),
            InspectError::Architecture(arch) => write!(f, "architecture: built for {arch}"),
            InspectError::NoDeclaration => write!(f, "no {SECTION} section"),
            InspectError::Truncated => write!(f, "the {SECTION} section is too short"),
        }
    }
}

fn host_architecture() -> object::Architecture {
    if cfg!(target_arch = "x86_64") {
        object::Architecture::X86_64
    } else if cfg!(target_arch = "aarch64") {
        object::Architecture::Aarch64
    } else {
        object::Architecture::Unknown
    }
}

/// Reads the declaration from a library file's bytes without loading it.
pub fn inspect(bytes: &[u8]) -> Result<Declaration, InspectError> {
    let file = object::File::parse(bytes).map_err(|e| InspectError::NotElf(e.to_string()))?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(InspectError::NotElf(format!("{:?} format", file.format())));
    }
    if file.architecture() != host_architecture() {
        return Err(InspectError::Architecture(format!(
            "{:?}",
            file.architecture()
        )));
    }
    let section = file
        .section_by_name(SECTION)
        .ok_or(InspectError::NoDeclaration)?;
    let data = section.data().map_err(|_| InspectError::Truncated)?;
    Declaration::from_bytes(data).ok_or(InspectError::Truncated)
}

/// Why an accepted file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Writing the private copy failed.
    Copy(std::io::Error),
    /// `dlopen` or `dlsym` failed.
    Open(String),
    /// The exported declaration differs from the section that was checked.
    SymbolDiffers,
    /// The plug-in panicked in its `init` entry point.
    InitPanicked,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Copy(e) => write!(f, "copying the library: {e}"),
            LoadError::Open(why) => write!(f, "loading the library: {why}"),
            LoadError::SymbolDiffers => write!(
                f,
                "the exported declaration differs from the {SECTION} section"
            ),
            LoadError::InitPanicked => write!(f, "panicked while initialising"),
        }
    }
}

/// A plug-in entry point panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    New,
    Persist,
    Handle,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::New => "panicked in new()",
            Fault::Persist => "panicked in persist()",
            Fault::Handle => "panicked in handle()",
        })
    }
}

/// Where a plug-in's log lines go (already tagged), and where its config comes from.
pub type LogSink = Arc<dyn Fn(String) + Send + Sync>;
pub type ConfigSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What the server's functions know of the plug-in calling them. One per loaded generation,
/// never freed (the library may call with it until the process ends).
struct HostContext {
    tag: String,
    log: LogSink,
    config: ConfigSource,
}

static HOST_API: HostApi = HostApi {
    log: host_log,
    config_toml: host_config,
    give_back: host_give_back,
};

/// One loaded generation of a plug-in library.
pub struct Library {
    pub declaration: Declaration,
    pub generation: u64,
    /// The file in the plug-in directory.
    pub file: PathBuf,
    /// The private copy that was loaded.
    pub copy: PathBuf,
    entries: Entries,
    context: &'static HostContext,
}

impl Library {
    /// Writes `bytes` (already inspected and checked) to `copy`, loads the copy, checks that
    /// the exported declaration matches, and calls the plug-in's `init`.
    pub fn load(
        bytes: &[u8],
        declaration: Declaration,
        file: &Path,
        copy: &Path,
        generation: u64,
        log: LogSink,
        config: ConfigSource,
    ) -> Result<Library, LoadError> {
        std::fs::write(copy, bytes).map_err(LoadError::Copy)?;
        // SAFETY: loading runs the library's constructors. The file's declaration was read from
        // disk and checked first, so it is an occwserv plug-in built with this ABI and compiler.
        let opened = unsafe { DlLibrary::open(Some(copy), RTLD_NOW | RTLD_LOCAL) };
        // The mapping outlives the name: unlinking now leaves nothing behind in the temporary
        // directory, even if the server is killed.
        let _ = std::fs::remove_file(copy);
        // Never unloaded, whatever happens next.
        let library = ManuallyDrop::new(opened.map_err(|e| LoadError::Open(e.to_string()))?);
        // SAFETY: the symbol is the address of a `Declaration` static, which `declare_plugin!`
        // defines with this crate's type.
        let exported: Declaration = unsafe {
            let symbol = library
                .get::<*const Declaration>(DECLARATION_SYMBOL)
                .map_err(|e| LoadError::Open(e.to_string()))?;
            ptr::read(*symbol)
        };
        if exported != declaration {
            return Err(LoadError::SymbolDiffers);
        }
        // SAFETY: the symbol is the address of an `Entries` static of the checked layout.
        let entries: Entries = unsafe {
            let symbol = library
                .get::<*const Entries>(ENTRIES_SYMBOL)
                .map_err(|e| LoadError::Open(e.to_string()))?;
            ptr::read(*symbol)
        };
        let tag = format!("plugin {}#{}", declaration.name(), generation);
        let context: &'static HostContext = Box::leak(Box::new(HostContext { tag, log, config }));
        // SAFETY: `init` is the plug-in's entry point; the table and context outlive it.
        let status = unsafe { (entries.init)(&HOST_API, (context as *const HostContext).cast()) };
        if status != CALL_OK {
            return Err(LoadError::InitPanicked);
        }
        Ok(Library {
            declaration,
            generation,
            file: file.to_path_buf(),
            copy: copy.to_path_buf(),
            entries,
            context,
        })
    }

    pub fn name(&self) -> String {
        self.declaration.name()
    }

    /// Logs a line tagged with the plug-in's name and generation.
    pub fn log(&self, line: &str) {
        (self.context.log)(format!("{}: {line}", self.context.tag));
    }

    /// A fresh instance (the plug-in's `new`).
    pub fn new_instance(self: &Arc<Library>) -> Result<Instance, Fault> {
        let mut made: *mut c_void = ptr::null_mut();
        // SAFETY: the entry point writes an instance pointer into `made` and catches panics.
        let status = unsafe { (self.entries.new_instance)(&mut made) };
        if status != CALL_OK || made.is_null() {
            return Err(Fault::New);
        }
        Ok(Instance {
            instance: made,
            library: self.clone(),
        })
    }
}

/// One plug-in instance; dropping it calls the plug-in's destructor.
pub struct Instance {
    instance: *mut c_void,
    library: Arc<Library>,
}

// SAFETY: the `Plugin` trait requires `Send`, and an `Instance` is used by one thread at a time
// (its methods take `&self`/`&mut self` and it is not `Sync`).
unsafe impl Send for Instance {}

/// What the host passes with a connection besides the request itself.
pub struct CallInfo<'a> {
    /// The percent-decoded path.
    pub path: &'a str,
    /// The decoded path after `/ogi/NAME`.
    pub subpath: &'a str,
    pub query_decoded: Option<&'a str>,
    pub keep_alive_allowed: bool,
    pub send_timeout: Duration,
    pub body_timeout: Duration,
}

fn peer_addr(peer: SocketAddr) -> PeerAddr {
    match peer {
        SocketAddr::V4(v4) => {
            let mut ip = [0u8; 16];
            ip[..4].copy_from_slice(&v4.ip().octets());
            PeerAddr {
                family: 4,
                port: v4.port(),
                reserved: 0,
                ip,
            }
        }
        SocketAddr::V6(v6) => PeerAddr {
            family: 6,
            port: v6.port(),
            reserved: 0,
            ip: v6.ip().octets(),
        },
    }
}

fn optional(text: Option<&str>) -> Bytes {
    text.map_or_else(Bytes::none, |t| Bytes::of(t.as_bytes()))
}

impl Instance {
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// The plug-in's `persist` answer.
    pub fn persist(&self) -> Result<bool, Fault> {
        let mut answer: u32 = 0;
        // SAFETY: a live instance of this library; the entry point catches panics.
        let status = unsafe { (self.library.entries.persist)(self.instance, &mut answer) };
        if status != CALL_OK {
            return Err(Fault::Persist);
        }
        Ok(answer != 0)
    }

    /// Lends the connection in `lent` to the instance. The plug-in gives it back through
    /// `Home::returned`, during this call or later from any thread (also when it panics).
    pub fn handle(&mut self, lent: Box<Lent>, call: &CallInfo) -> Result<Next, Fault> {
        let lent = Box::into_raw(lent);
        // The handoff borrows the request inside the lent record. The plug-in copies what it
        // needs before it can give the record back, as the ABI requires.
        // SAFETY: `lent` was just made from a box; nothing else touches it until given back.
        let (handoff, _unread, _headers) = unsafe {
            let record = &mut *lent;
            let unread = std::mem::take(&mut record.conn.unread);
            let req = &record.req;
            let headers: Vec<HeaderRef> = req
                .headers
                .iter()
                .map(|h| HeaderRef {
                    name: Bytes::of(h.name.as_bytes()),
                    value: Bytes::of(&h.value),
                })
                .collect();
            let (body_kind, body_length) = match req.body {
                Body::None => (BODY_NONE, 0),
                Body::Length(n) => (BODY_LENGTH, n),
                Body::Chunked => (BODY_CHUNKED, 0),
            };
            let handoff = Handoff {
                lent: lent.cast(),
                gate: record.watch.gate_ptr(),
                conn_id: record.conn.id,
                fd: record.conn.plugin_fd(),
                minor_version: u32::from(req.minor_version),
                client_keep_alive: u32::from(req.keep_alive),
                keep_alive_allowed: u32::from(call.keep_alive_allowed),
                expect_continue: u32::from(req.expect_continue),
                body_kind,
                body_length,
                method: Bytes::of(req.method.as_str().as_bytes()),
                target: Bytes::of(req.target.as_bytes()),
                path: Bytes::of(call.path.as_bytes()),
                subpath: Bytes::of(call.subpath.as_bytes()),
                query: optional(req.query.as_deref()),
                query_decoded: optional(call.query_decoded),
                headers: headers.as_ptr(),
                header_count: headers.len(),
                peer: peer_addr(record.conn.peer),
                unread: Bytes::of(&unread),
                send_timeout_ms: call.send_timeout.as_millis() as u64,
                body_timeout_ms: call.body_timeout.as_millis() as u64,
                server: Bytes::of(crate::http::response::SERVER.as_bytes()),
                scheme: Bytes::of(if record.conn.is_https() {
                    b"https"
                } else {
                    b"http"
                }),
            };
            (handoff, unread, headers)
        };
        let mut next: u32 = 0;
        // SAFETY: a live instance of this library, a handoff valid for the call; the entry
        // point catches panics (the connection is given back as it unwinds).
        let status = unsafe { (self.library.entries.handle)(self.instance, &handoff, &mut next) };
        if status != CALL_OK {
            return Err(Fault::Handle);
        }
        Ok(if next == NEXT_TERMINATE {
            Next::Terminate
        } else {
            Next::Continue
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the instance came from this library's `new_instance` and is dropped once.
        let status = unsafe { (self.library.entries.drop_instance)(self.instance) };
        if status != CALL_OK {
            self.library.log("panicked while an instance was dropped");
        }
    }
}

/// A connection lent to a plug-in, owned by the plug-in until it is given back.
pub struct Lent {
    pub conn: Conn,
    pub req: Request,
    pub watch: Arc<Watch>,
    /// Who takes the connection back.
    pub home: Arc<dyn Home>,
}

/// Takes lent connections back: answers or recycles them.
pub trait Home: Send + Sync {
    fn returned(&self, lent: Lent, returned: Returned);
}

/// How the plug-in finished with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnKind {
    /// A complete response was written.
    Responded,
    /// The connection was a websocket, now finished.
    Upgraded,
    /// Given back without a complete response (dropped, failed, or panicked).
    Abandoned,
}

/// What the plug-in reported when it gave a connection back.
#[derive(Debug, Clone)]
pub struct Returned {
    pub kind: ReturnKind,
    pub status: u16,
    pub keep_alive: bool,
    pub wrote_anything: bool,
    pub body_bytes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes read past the request (a pipelined next request).
    pub leftover: Vec<u8>,
    /// Set when the keeper timed the request out first.
    pub taken: Option<Taken>,
}

/// # Safety
/// `bytes` must point to `len` readable bytes for the call (or be null).
unsafe fn borrowed<'a>(bytes: Bytes) -> &'a [u8] {
    if bytes.ptr.is_null() || bytes.len == 0 {
        &[]
    } else {
        // SAFETY: the caller promises `len` readable bytes.
        unsafe { std::slice::from_raw_parts(bytes.ptr, bytes.len) }
    }
}

unsafe extern "C" fn host_log(context: *const c_void, conn_id: u64, line: Bytes) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `context` is the leaked `HostContext` passed to `init`; `line` is valid for the call.
        let (context, line) = unsafe { (&*context.cast::<HostContext>(), borrowed(line)) };
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end();
        let text = if conn_id == 0 {
            format!("{}: {line}", context.tag)
        } else {
            format!("{} conn {conn_id}: {line}", context.tag)
        };
        (context.log)(text);
    }));
}

unsafe extern "C" fn host_config(
    context: *const c_void,
    sink: *mut c_void,
    write: unsafe extern "C" fn(*mut c_void, Bytes),
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `context` is the leaked `HostContext` passed to `init`.
        let context = unsafe { &*context.cast::<HostContext>() };
        if let Some(text) = (context.config)() {
            // SAFETY: the plug-in's sink function and pointer, called once with bytes valid
            // for the call.
            unsafe { write(sink, Bytes::of(text.as_bytes())) };
        }
    }));
}

unsafe extern "C" fn host_give_back(lent: *mut c_void, outcome: *const Outcome) {
    if lent.is_null() || outcome.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `lent` is the pointer from `Instance::handle`'s box, given back exactly once;
        // `outcome` and its leftover bytes are valid for the call.
        let (record, outcome) = unsafe { (Box::from_raw(lent.cast::<Lent>()), &*outcome) };
        // SAFETY: as above.
        let leftover = unsafe { borrowed(outcome.leftover) }.to_vec();
        let taken = record.watch.mark_returned();
        let kind = match outcome.kind {
            OUTCOME_RESPONDED => ReturnKind::Responded,
            OUTCOME_UPGRADED => ReturnKind::Upgraded,
            _ => ReturnKind::Abandoned,
        };
        let returned = Returned {
            kind,
            status: outcome.status.min(999) as u16,
            keep_alive: outcome.keep_alive != 0 && taken.is_none(),
            wrote_anything: outcome.wrote_anything != 0,
            body_bytes: outcome.body_bytes,
            bytes_read: outcome.bytes_read,
            bytes_written: outcome.bytes_written,
            leftover,
            taken,
        };
        let home = record.home.clone();
        home.returned(*record, returned);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_tells_libraries_without_a_declaration_from_non_libraries() {
        let this_program = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(inspect(&this_program), Err(InspectError::NoDeclaration));
        assert!(matches!(
            inspect(b"not a library at all"),
            Err(InspectError::NotElf(_))
        ));
        assert!(inspect(&this_program[..64]).is_err());
    }

    #[test]
    fn peers_cross_in_the_abi_layout() {
        let v4 = peer_addr("127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (v4.family, v4.port, &v4.ip[..4]),
            (4, 8080, &[127, 0, 0, 1][..])
        );
        let v6 = peer_addr("[::1]:79".parse().unwrap());
        assert_eq!((v6.family, v6.port, v6.ip[15]), (6, 79, 1));
    }
}
