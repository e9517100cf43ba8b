//! Pipelined streams: requests (heads and bodies) back to back on one connection, read the
//! way the front end reads them: parse a head from the buffered bytes, keep what follows it,
//! decode the body from those, and go on with the rest.
//!
//! Properties, beyond "never panics":
//! - every request read consumes at least one byte, so a stream always ends;
//! - the stream reads the same (same requests, same bodies, same final outcome) whether it
//!   arrives whole or in pieces of any size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use occwserv::http::body::BodyReader;
use occwserv::http::request::{parse_head, HeadLimits};
use occwserv::http::Body;

const MAX_BODY_BYTES: u64 = 1 << 16;

#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The input ran out in the middle of a request (or between requests).
    NeedMore,
    /// A request was refused with this status; the connection would close.
    Refused(u16),
}

/// What a connection carried: (method, target, body) per request, then how it ended.
type Transcript = (Vec<(String, String, Vec<u8>)>, Ending);

fn read_stream(input: &[u8], piece: usize) -> Transcript {
    let limits = HeadLimits::default();
    let mut requests = Vec::new();
    let mut fed = 0;
    let mut buffer: Vec<u8> = Vec::new();
    let mut feed = |buffer: &mut Vec<u8>| -> bool {
        if fed == input.len() {
            return false;
        }
        let end = (fed + piece).min(input.len());
        buffer.extend_from_slice(&input[fed..end]);
        fed = end;
        true
    };
    loop {
        let req = loop {
            match parse_head(&buffer, &limits) {
                Ok(Some(req)) => break req,
                Ok(None) => {
                    if !feed(&mut buffer) {
                        return (requests, Ending::NeedMore);
                    }
                }
                Err(e) => return (requests, Ending::Refused(e.status())),
            }
        };
        assert!(req.head_len > 0);
        buffer.drain(..req.head_len);
        if let Body::Length(n) = req.body {
            if n > MAX_BODY_BYTES {
                return (requests, Ending::Refused(413));
            }
        }
        let mut reader = BodyReader::new(req.body, MAX_BODY_BYTES);
        let mut body = Vec::new();
        loop {
            match reader.read_buffered(&mut buffer, &mut body) {
                Ok(Some(0)) => break,
                Ok(Some(_)) => {}
                Ok(None) => {
                    if !feed(&mut buffer) {
                        return (requests, Ending::NeedMore);
                    }
                }
                Err(e) => return (requests, Ending::Refused(e.status())),
            }
        }
        requests.push((req.method.as_str().to_string(), req.target.clone(), body));
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let whole = read_stream(data, data.len().max(1));
    let pieces = read_stream(data, usize::from(control % 32) + 1);
    assert_eq!(whole, pieces);
});
