//! The CGI response-head parser (`http::cgi::parse_response`) on any program output.
//!
//! Properties, beyond "never panics":
//! - a complete head lies within the output, and every shorter prefix asks for more (a
//!   program's output arrives in pieces and is parsed again as it grows);
//! - nothing a program prints can split the response: header names are tokens and values
//!   hold no CR, LF or NUL, the status is a final one, a local redirect is a plain path;
//! - the `nph-` status reader never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use occwserv::http::cgi::{nph_status, parse_response, Response, MAX_RESPONSE_HEAD_BYTES};

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let _ = nph_status(data);
    let Ok(Some((response, head_len))) = parse_response(data) else {
        return;
    };
    assert!(head_len > 0 && head_len <= data.len() && head_len <= MAX_RESPONSE_HEAD_BYTES);
    let step = (head_len / 64).max(1);
    for cut in (0..head_len)
        .step_by(step)
        .chain(head_len.saturating_sub(3)..head_len)
    {
        let got = parse_response(&data[..cut]);
        assert!(
            matches!(got, Ok(None)),
            "prefix of {cut} of {head_len} bytes: {got:?}"
        );
    }
    match response {
        Response::LocalRedirect(location) => {
            assert!(
                location.starts_with('/') && !location.starts_with("//"),
                "{location:?}"
            );
            assert!(
                !location.bytes().any(|b| b <= b' ' || b == 0x7f),
                "{location:?}"
            );
        }
        Response::Document(head) => {
            assert!((200..=599).contains(&head.status), "status {}", head.status);
            if let Some(reason) = &head.reason {
                assert!(
                    !reason.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                    "reason {reason:?}"
                );
            }
            for (name, value) in &head.headers {
                assert!(is_token(name), "header name {name:?}");
                assert!(
                    !value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)),
                    "{name}: {value:?}"
                );
            }
        }
    }
});
