//! The plug-in declaration check: `plugin_host::inspect` (the ELF reader that finds the
//! `.occwserv_plugin` section without loading the library) and `Declaration::check`.
//!
//! The first byte picks the input: a whole file for `inspect`, or the section's bytes for
//! `Declaration::from_bytes`. Properties, beyond "never panics": a declaration read from
//! bytes writes back to the same bytes, and one that passes the check names itself validly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use occwserv::plugin_host::loader::inspect;
use plugin_api::abi::Declaration;

fn checked(declaration: &Declaration) {
    if declaration.check().is_ok() {
        let name = declaration.name();
        assert!(!name.is_empty() && name.len() < 64, "{name:?}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)),
            "{name:?}"
        );
    }
    let _ = (
        declaration.version(),
        declaration.rustc(),
        format!("{declaration:?}"),
    );
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        if let Ok(declaration) = inspect(data) {
            checked(&declaration);
        }
    } else if let Some(declaration) = Declaration::from_bytes(data) {
        let bytes = declaration.to_bytes();
        assert_eq!(&bytes[..], &data[..bytes.len()]);
        checked(&declaration);
    }
});
