//! Request-body decoding (`http::body`): chunked and length-delimited framing.
//!
//! Properties, beyond "never panics":
//! - the decoder gives the same body, the same end and the same error however the input is
//!   split into pieces (a body arrives in arbitrary TCP segments);
//! - a decoded body stays within the size limit and within the input;
//! - a decoded chunked body, re-encoded canonically, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use occwserv::http::body::{decode, BodyReader, Decoded};
use occwserv::http::{Body, HttpError};

/// Feeds `input` to a reader `piece` bytes at a time, as a socket would deliver it.
fn in_pieces(
    body: Body,
    max: u64,
    input: &[u8],
    piece: usize,
) -> Result<Option<Decoded>, HttpError> {
    let mut reader = BodyReader::new(body, max);
    let (mut buffer, mut out, mut fed) = (Vec::new(), Vec::new(), 0);
    loop {
        match reader.read_buffered(&mut buffer, &mut out)? {
            Some(0) => {
                return Ok(Some(Decoded {
                    body: out,
                    consumed: fed - buffer.len(),
                }))
            }
            Some(_) => {}
            None if fed == input.len() => return Ok(None),
            None => {
                let end = (fed + piece).min(input.len());
                buffer.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

fn encode(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    let piece = usize::from(control % 16) + 1;
    let max = if control & 0x80 == 0 {
        1 << 20
    } else {
        u64::from(control & 0x3f)
    };
    let body = if control & 0x40 == 0 {
        Body::Chunked
    } else {
        Body::Length(u64::from(control & 0x3f) + 1)
    };
    let whole = decode(body, max, data);
    let pieces = in_pieces(body, max, data, piece);
    assert_eq!(
        whole, pieces,
        "whole input and pieces of {piece} bytes disagree"
    );
    if let Ok(Some(decoded)) = &whole {
        assert!(decoded.consumed <= data.len());
        if let Body::Chunked = body {
            assert!(decoded.body.len() as u64 <= max);
            let again = decode(Body::Chunked, max, &encode(&decoded.body, piece))
                .ok()
                .flatten();
            assert_eq!(again.map(|d| d.body), Some(decoded.body.clone()));
        }
    }
});
