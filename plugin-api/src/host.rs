//! The plug-in's handle on the server: logging and configuration.

use std::ffi::c_void;
use std::sync::{Arc, OnceLock};

use crate::abi::{Bytes, HostApi};

/// The server's call table and context, set once by the `init` entry point. Each loaded copy of
/// a plug-in library has its own.
pub(crate) struct Link {
    api: HostApi,
    context: *const c_void,
}

// SAFETY: the server guarantees that its call table and context stay valid for the life of the
// library and may be used from any thread.
#[allow(unsafe_code)]
unsafe impl Send for Link {}
// SAFETY: as above; the context is only ever passed back to the server's own functions.
#[allow(unsafe_code)]
unsafe impl Sync for Link {}

static LINK: OnceLock<Link> = OnceLock::new();

/// Stores the server's table; later calls are ignored (the server calls `init` once).
pub(crate) fn set_link(api: HostApi, context: *const c_void) {
    let _ = LINK.set(Link { api, context });
}

/// Writes one log line through the server, or to standard error when not loaded by a server.
pub(crate) fn log_line(conn_id: u64, line: &str) {
    match LINK.get() {
        // SAFETY: `log` is the server's function; the bytes are valid for the call.
        #[allow(unsafe_code)]
        Some(link) => unsafe { (link.api.log)(link.context, conn_id, Bytes::of(line.as_bytes())) },
        None => eprintln!("plug-in: {line}"),
    }
}

/// Returns a lent connection to the server.
pub(crate) fn give_back(lent: *mut c_void, outcome: &crate::abi::Outcome) {
    if let Some(link) = LINK.get() {
        // SAFETY: `lent` came from the server's handoff and is given back exactly once (the
        // caller clears it); `outcome` and its leftover bytes are valid for the call.
        #[allow(unsafe_code)]
        unsafe {
            (link.api.give_back)(lent, outcome)
        }
    }
}

/// What a plug-in instance knows of the server. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Host {
    standalone: Option<Arc<Standalone>>,
}

struct Standalone {
    config: Option<String>,
}

impl Host {
    pub(crate) fn linked() -> Host {
        Host { standalone: None }
    }

    /// A host for unit tests of a plug-in crate, outside the server: `log` writes to standard
    /// error and `config_toml` returns `config`.
    pub fn standalone(config: Option<String>) -> Host {
        Host {
            standalone: Some(Arc::new(Standalone { config })),
        }
    }

    /// Writes a line to the server's error log, tagged with the plug-in's name and generation.
    pub fn log(&self, line: &str) {
        log_line(0, line);
    }

    /// The plug-in's configuration table as TOML text (for `game`, the server's `[game]`
    /// table), read from the live configuration, so it follows reloads.
    pub fn config_toml(&self) -> Option<String> {
        if let Some(standalone) = &self.standalone {
            return standalone.config.clone();
        }
        let link = LINK.get()?;
        let mut text: Option<String> = None;
        // SAFETY: `config_toml` is the server's function; it calls `write_sink` with `sink`
        // (our local `text`, alive for the call) and bytes valid for that inner call.
        #[allow(unsafe_code)]
        unsafe {
            (link.api.config_toml)(
                link.context,
                (&mut text as *mut Option<String>).cast(),
                write_sink,
            )
        };
        text
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn write_sink(sink: *mut c_void, text: Bytes) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: `sink` is the `Option<String>` passed by `config_toml` above, and the server
        // passes bytes valid for this call.
        let (sink, bytes) = unsafe {
            (
                &mut *sink.cast::<Option<String>>(),
                crate::entry::bytes(text),
            )
        };
        *sink = Some(String::from_utf8_lossy(bytes).into_owned());
    });
}
