//! What a client controls in the site rules: the Host value (`site::host::name`), the request
//! path rules are matched against (`site::rules::canonical`), and `Authorization: Basic`
//! (`site::htpasswd::basic_credentials`).
//!
//! Properties, beyond "never panics": an accepted Host names a part of what was sent, without
//! its port, and never holds a space or `/`; the canonical path is what `normalize` gives
//! (the copy-free fast path agrees with it) and starts with `/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use occwserv::http::path::normalize;
use occwserv::site::{host, htpasswd, rules};

fn slow_canonical(raw: &str) -> Option<String> {
    let safe = normalize(raw).ok()?;
    let mut out = String::new();
    for segment in &safe.segments {
        out.push('/');
        out.push_str(&String::from_utf8_lossy(segment));
    }
    if safe.trailing_slash || out.is_empty() {
        out.push('/');
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = htpasswd::basic_credentials(data);
        return;
    };
    if let Ok(name) = host::name(text) {
        assert!(text.starts_with(name.trim_end_matches('.')), "{text:?} -> {name:?}");
        assert!(!name.contains([' ', '/', '@']), "{text:?} -> {name:?}");
        assert!(name.starts_with('[') || !name.contains(':'), "{text:?} -> {name:?}");
    }
    let fast = rules::canonical(text);
    assert_eq!(fast.as_deref(), slow_canonical(text).as_deref(), "{text:?}");
    if let Some(path) = fast {
        assert!(path.starts_with('/'));
    }
    let _ = htpasswd::basic_credentials(data);
});
