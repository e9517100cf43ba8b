//! The C entry points `declare_plugin!` exports. Each one runs the plug-in's code inside
//! `catch_unwind`, so no panic ever crosses into the server.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::{Bytes, Entries, HostApi, CALL_OK, CALL_PANICKED, NEXT_CONTINUE, NEXT_TERMINATE};
use crate::host::{log_line, set_link, Host};
use crate::{Connection, Next, Plugin};

/// The entry-point table for plug-in type `P`.
pub const fn entries<P: Plugin>() -> Entries {
    Entries {
        init: init_entry,
        new_instance: new_entry::<P>,
        persist: persist_entry::<P>,
        handle: handle_entry::<P>,
        drop_instance: drop_entry::<P>,
    }
}

/// Runs `work`, turning a panic into `CALL_PANICKED`.
fn guard(work: impl FnOnce()) -> u32 {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(()) => CALL_OK,
        Err(payload) => {
            discard(payload);
            CALL_PANICKED
        }
    }
}

/// Drops a panic payload; a payload whose destructor panics too is leaked instead.
fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "non-text panic payload"
    }
}

/// Borrowed bytes as a slice.
///
/// # Safety
/// `bytes` must point to `len` readable bytes (or be null with any length, read as empty)
/// that stay valid for `'a`.
#[allow(unsafe_code)]
pub(crate) unsafe fn bytes<'a>(bytes: Bytes) -> &'a [u8] {
    if bytes.ptr.is_null() || bytes.len == 0 {
        &[]
    } else {
        // SAFETY: the caller promises `len` valid bytes at `ptr`.
        unsafe { std::slice::from_raw_parts(bytes.ptr, bytes.len) }
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn init_entry(api: *const HostApi, context: *const c_void) -> u32 {
    guard(|| {
        if api.is_null() {
            return;
        }
        // SAFETY: the server passes a pointer to its call table, valid for the library's life.
        set_link(unsafe { *api }, context);
        std::panic::set_hook(Box::new(|info| {
            let thread = std::thread::current();
            let in_thread = thread
                .name()
                .map(|n| format!(" in thread '{n}'"))
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            log_line(
                0,
                &format!("panicked{in_thread}{at}: {}", panic_text(info.payload())),
            );
        }));
    })
}

#[allow(unsafe_code)]
unsafe extern "C" fn new_entry<P: Plugin>(instance: *mut *mut c_void) -> u32 {
    guard(|| {
        let made = Box::new(P::new(&Host::linked()));
        // SAFETY: the server passes a valid place for the instance pointer.
        unsafe { *instance = Box::into_raw(made).cast() };
    })
}

#[allow(unsafe_code)]
unsafe extern "C" fn persist_entry<P: Plugin>(instance: *mut c_void, persist: *mut u32) -> u32 {
    guard(|| {
        // SAFETY: `instance` came from `new_entry::<P>` and is used by one thread at a time.
        let plugin = unsafe { &*instance.cast::<P>() };
        let answer = plugin.persist();
        // SAFETY: the server passes a valid place for the answer.
        unsafe { *persist = u32::from(answer) };
    })
}

#[allow(unsafe_code)]
unsafe extern "C" fn handle_entry<P: Plugin>(
    instance: *mut c_void,
    conn: *const crate::abi::Handoff,
    next: *mut u32,
) -> u32 {
    guard(|| {
        // SAFETY: the server passes a handoff valid for this call; the connection copies what it
        // keeps and owns the lent socket from here on.
        let conn = unsafe { Connection::from_handoff(&*conn) };
        // SAFETY: `instance` came from `new_entry::<P>` and is used by one thread at a time.
        let plugin = unsafe { &mut *instance.cast::<P>() };
        let answer = match plugin.handle(conn) {
            Next::Continue => NEXT_CONTINUE,
            Next::Terminate => NEXT_TERMINATE,
        };
        // SAFETY: the server passes a valid place for the answer.
        unsafe { *next = answer };
    })
}

#[allow(unsafe_code)]
unsafe extern "C" fn drop_entry<P: Plugin>(instance: *mut c_void) -> u32 {
    guard(|| {
        // SAFETY: `instance` came from `new_entry::<P>`, and the server drops it exactly once.
        drop(unsafe { Box::from_raw(instance.cast::<P>()) });
    })
}
