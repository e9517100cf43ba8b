//! The request-head reader (`http::request::parse_head`) on any bytes.
//!
//! Properties, beyond "never panics":
//! - a complete head lies within the input, and parses the same without what follows it
//!   (pipelined bytes cannot change a request);
//! - every shorter prefix of a complete head asks for more, so a head trickled byte by byte
//!   is read exactly as one that arrives whole (the front end re-parses as bytes arrive);
//! - an incomplete head never holds more than the header limit (bounded memory);
//! - the framing it reports is one RFC 9112 allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use occwserv::http::request::{parse_head, HeadLimits};
use occwserv::http::{Body, Method, Request};

/// The parsed fields (a `Request` also carries the instant it was parsed).
fn fields(r: &Request) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {} {:?} {} {:?} {} {:?} {}",
        r.method,
        r.target,
        r.path,
        r.query,
        r.minor_version,
        r.headers,
        r.keep_alive,
        r.body,
        r.expect_continue,
        r.host,
        r.head_len
    )
}

/// Limits chosen by the first byte: the defaults, or small ones so the limit paths are reached.
fn limits(selector: u8, data: &[u8]) -> HeadLimits {
    if selector & 1 == 0 || data.len() < 3 {
        return HeadLimits::default();
    }
    HeadLimits {
        max_request_line_bytes: 8 + usize::from(data[0]) * 4,
        max_header_bytes: 16 + usize::from(data[1]) * 8,
        max_headers: 1 + usize::from(data[2] % 32),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let limits = limits(selector, data);
    match parse_head(data, &limits) {
        Ok(None) => {
            assert!(
                data.len() <= limits.max_header_bytes,
                "an incomplete head of {} bytes is kept",
                data.len()
            );
        }
        Err(e) => {
            assert!(
                matches!(e.status(), 400 | 408 | 413 | 414 | 417 | 431 | 501 | 505),
                "status {}",
                e.status()
            );
        }
        Ok(Some(req)) => {
            assert!(req.head_len > 0 && req.head_len <= data.len());
            let alone = parse_head(&data[..req.head_len], &limits);
            match alone {
                Ok(Some(alone)) => assert_eq!(fields(&alone), fields(&req)),
                other => panic!("the head alone parses differently: {other:?}"),
            }
            // A sample of prefixes (all of them for short heads).
            let step = (req.head_len / 64).max(1);
            for cut in (0..req.head_len)
                .step_by(step)
                .chain(req.head_len.saturating_sub(4)..req.head_len)
            {
                let got = parse_head(&data[..cut], &limits);
                assert!(
                    matches!(got, Ok(None)),
                    "prefix of {cut} of {} bytes: {got:?}",
                    req.head_len
                );
            }
            match req.body {
                Body::Chunked => assert_eq!(req.minor_version, 1),
                Body::Length(n) => assert!(n > 0),
                Body::None => {}
            }
            if req.minor_version == 1 {
                assert!(req.host.is_some(), "HTTP/1.1 without a host");
            }
            let path_ok =
                req.path.starts_with('/') || req.path == "*" || req.method == Method::Connect;
            assert!(path_ok, "path {:?}", req.path);
            assert!(
                !req.path.contains('?'),
                "path {:?} keeps its query",
                req.path
            );
        }
    }
});
