//! Path normalisation (`http::path::normalize`): the result never escapes the root.
//!
//! Properties, beyond "never panics": every accepted path is a list of plain segments (none
//! empty, `.`, `..`, or holding `/`, `\` or NUL); joined to a root it stays below the root,
//! lexically and component by component; and normalising it again changes nothing.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use occwserv::http::path::normalize;

/// The accepted path written back as a request path, every unsafe byte percent-encoded.
fn encode(segments: &[Vec<u8>], trailing_slash: bool) -> String {
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        for &b in segment {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(safe) = normalize(raw) else { return };
    for segment in &safe.segments {
        assert!(!segment.is_empty());
        assert!(segment != b"." && segment != b"..", "segment {segment:?}");
        assert!(
            !segment.iter().any(|b| matches!(b, b'/' | b'\\' | 0)),
            "segment {segment:?}"
        );
    }
    let relative = safe.relative();
    if !safe.segments.is_empty() {
        assert!(
            relative
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "{relative:?}"
        );
        assert_eq!(relative.components().count(), safe.segments.len());
    }
    let root = Path::new("/srv/www");
    let joined = root.join(&relative);
    assert!(joined.starts_with(root), "{joined:?} leaves the root");
    let mut depth: isize = 0;
    for component in joined.strip_prefix(root).unwrap_or(&joined).components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => panic!("{joined:?} restarts at a root"),
        }
        assert!(depth >= 0, "{joined:?} climbs above the root");
    }
    let again = normalize(&encode(&safe.segments, safe.trailing_slash));
    assert_eq!(again, Ok(safe), "normalising twice differs for {raw:?}");
});
