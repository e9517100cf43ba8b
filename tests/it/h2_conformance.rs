//! HTTP/2 conformance, written from the MUST statements of RFC 9113 (HTTP/2) and RFC 7541
//! (HPACK) in the spirit of h2spec: each case sends frames by hand (`h2_client`) on a new
//! connection and checks what the server must do. docs/HTTP2.md lists the cases by section.

use crate::h2_client::*;
use crate::support::{Server, ServerOpts};

/// What a case must lead to.
#[derive(Debug, Clone, Copy)]
enum Must {
    /// A connection error: GOAWAY with this code.
    ConnectionError(u32),
    /// A stream error on stream 1: RST_STREAM with this code (a GOAWAY with it is also
    /// allowed: §5.4.1 lets an endpoint treat a stream error as a connection error).
    StreamError(u32),
}

type Case = (&'static str, &'static str, fn(&mut H2), Must);

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn get1(h2: &mut H2) {
    h2.get(1, "/plain.txt");
}

/// Opens stream 1 without ending it (a POST whose body is to come).
fn open1(h2: &mut H2) {
    h2.headers(
        1,
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", "/plain.txt"),
        ],
        false,
    );
}

fn with_field(h2: &mut H2, extra: (&str, &str)) {
    let mut fields = get_fields("/plain.txt");
    fields.push(extra);
    h2.headers(1, &fields, true);
}

const CASES: &[Case] = &[
    (
        "4.2",
        "a DATA frame larger than SETTINGS_MAX_FRAME_SIZE",
        |h2| {
            open1(h2);
            h2.send(DATA, 0, 1, &[0; 16_385]);
        },
        Must::ConnectionError(FRAME_SIZE_ERROR),
    ),
    (
        "4.3",
        "a header block that cannot be decoded",
        |h2| {
            h2.send(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            )
        },
        Must::ConnectionError(COMPRESSION_ERROR),
    ),
    (
        "4.3",
        "a frame of another type inside a header block",
        |h2| {
            let block = h2.block(&get_fields("/plain.txt"));
            h2.send(HEADERS, END_STREAM, 1, &block);
            h2.send(PRIORITY, 0, 1, &u32s(&[0, 0])[..5]);
        },
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "4.3",
        "CONTINUATION on another stream inside a header block",
        |h2| {
            let block = h2.block(&get_fields("/plain.txt"));
            h2.send(HEADERS, END_STREAM, 1, &block);
            h2.send(CONTINUATION, END_HEADERS, 3, &[]);
        },
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "5.1",
        "DATA on an idle stream",
        |h2| h2.send(DATA, 0, 1, b"x"),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "5.1",
        "RST_STREAM on an idle stream",
        |h2| h2.send(RST_STREAM, 0, 1, &u32s(&[8])),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "5.1",
        "WINDOW_UPDATE on an idle stream",
        |h2| h2.send(WINDOW_UPDATE, 0, 1, &u32s(&[100])),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "5.1",
        "DATA on a half-closed (remote) stream",
        |h2| {
            h2.headers(1, &get_fields("/cgi-bin/trickle.sh"), true);
            h2.send(DATA, 0, 1, b"late");
        },
        Must::StreamError(STREAM_CLOSED),
    ),
    (
        "5.1",
        "HEADERS on a closed stream",
        |h2| {
            get1(h2);
            h2.response(1);
            h2.get(1, "/plain.txt");
        },
        Must::ConnectionError(STREAM_CLOSED),
    ),
    (
        "5.1.1",
        "an even stream identifier from a client",
        |h2| h2.get(2, "/plain.txt"),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "5.1.1",
        "a stream identifier lower than one already used",
        |h2| {
            h2.get(5, "/plain.txt");
            h2.response(5);
            h2.get(3, "/plain.txt");
        },
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.1",
        "DATA on stream 0",
        |h2| h2.send(DATA, 0, 0, b"x"),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.1",
        "DATA whose padding is not shorter than its payload",
        |h2| {
            open1(h2);
            h2.send(DATA, PADDED, 1, &[5, 0, 0, 0, 0]);
        },
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.2",
        "HEADERS on stream 0",
        |h2| {
            let block = h2.block(&get_fields("/plain.txt"));
            h2.send(HEADERS, END_HEADERS | END_STREAM, 0, &block);
        },
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.2",
        "HEADERS whose padding is not shorter than its payload",
        |h2| h2.send(HEADERS, END_HEADERS | PADDED, 1, &[4, 0x82, 0x86, 0x84]),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "5.3.1",
        "HEADERS that depend on their own stream",
        |h2| {
            let mut payload = u32s(&[1]);
            payload.push(16);
            let block = h2.block(&get_fields("/plain.txt"));
            payload.extend_from_slice(&block);
            h2.send(
                HEADERS,
                END_HEADERS | END_STREAM | PRIORITY_FLAG,
                1,
                &payload,
            );
        },
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "6.3",
        "PRIORITY on stream 0",
        |h2| h2.send(PRIORITY, 0, 0, &[0, 0, 0, 1, 16]),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.3",
        "PRIORITY of a length other than 5",
        |h2| h2.send(PRIORITY, 0, 1, &[0, 0, 0, 3]),
        Must::StreamError(FRAME_SIZE_ERROR),
    ),
    (
        "6.4",
        "RST_STREAM on stream 0",
        |h2| h2.send(RST_STREAM, 0, 0, &u32s(&[8])),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.4",
        "RST_STREAM of a length other than 4",
        |h2| {
            open1(h2);
            h2.send(RST_STREAM, 0, 1, &[0, 0, 8]);
        },
        Must::ConnectionError(FRAME_SIZE_ERROR),
    ),
    (
        "6.5",
        "SETTINGS ACK with a payload",
        |h2| h2.send(SETTINGS, ACK, 0, &[0, 0, 0, 0, 0, 0]),
        Must::ConnectionError(FRAME_SIZE_ERROR),
    ),
    (
        "6.5",
        "SETTINGS on a stream",
        |h2| h2.send(SETTINGS, 0, 1, &[]),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.5",
        "SETTINGS of a length not a multiple of 6",
        |h2| h2.send(SETTINGS, 0, 0, &[0, 3, 0, 0, 0]),
        Must::ConnectionError(FRAME_SIZE_ERROR),
    ),
    (
        "6.5.2",
        "SETTINGS_ENABLE_PUSH other than 0 or 1",
        |h2| h2.send(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.5.2",
        "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
        |h2| h2.send(SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
        Must::ConnectionError(FLOW_CONTROL_ERROR),
    ),
    (
        "6.5.2",
        "SETTINGS_MAX_FRAME_SIZE below 16384",
        |h2| h2.send(SETTINGS, 0, 0, &[0, 5, 0, 0, 0x3f, 0xff]),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.5.2",
        "SETTINGS_MAX_FRAME_SIZE above 2^24-1",
        |h2| h2.send(SETTINGS, 0, 0, &[0, 5, 1, 0, 0, 0]),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.6",
        "PUSH_PROMISE from a client",
        |h2| h2.send(PUSH_PROMISE, END_HEADERS, 1, &u32s(&[2])),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.7",
        "PING of a length other than 8",
        |h2| h2.send(PING, 0, 0, &[0; 6]),
        Must::ConnectionError(FRAME_SIZE_ERROR),
    ),
    (
        "6.7",
        "PING on a stream",
        |h2| h2.send(PING, 0, 1, &[0; 8]),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.8",
        "GOAWAY on a stream",
        |h2| h2.send(GOAWAY, 0, 1, &u32s(&[0, 0])),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.9",
        "WINDOW_UPDATE of 0 on the connection",
        |h2| h2.send(WINDOW_UPDATE, 0, 0, &u32s(&[0])),
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "6.9",
        "WINDOW_UPDATE of 0 on a stream",
        |h2| {
            open1(h2);
            h2.send(WINDOW_UPDATE, 0, 1, &u32s(&[0]));
        },
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "6.9",
        "WINDOW_UPDATE of a length other than 4",
        |h2| h2.send(WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
        Must::ConnectionError(FRAME_SIZE_ERROR),
    ),
    (
        "6.9.1",
        "a connection window above 2^31-1",
        |h2| h2.send(WINDOW_UPDATE, 0, 0, &u32s(&[0x7fff_ffff])),
        Must::ConnectionError(FLOW_CONTROL_ERROR),
    ),
    (
        "6.9.1",
        "a stream window above 2^31-1",
        |h2| {
            open1(h2);
            h2.send(WINDOW_UPDATE, 0, 1, &u32s(&[0x7fff_ffff]));
        },
        Must::StreamError(FLOW_CONTROL_ERROR),
    ),
    (
        "6.9.2",
        "an initial window change that overflows a stream's window",
        |h2| {
            open1(h2);
            h2.send(WINDOW_UPDATE, 0, 1, &u32s(&[0x7fff_0000]));
            h2.send(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]);
        },
        Must::ConnectionError(FLOW_CONTROL_ERROR),
    ),
    (
        "6.10",
        "CONTINUATION without a HEADERS before it",
        |h2| {
            let block = h2.block(&get_fields("/plain.txt"));
            h2.send(CONTINUATION, END_HEADERS, 1, &block);
        },
        Must::ConnectionError(PROTOCOL_ERROR),
    ),
    (
        "8.1.1",
        "a body longer than its content-length",
        |h2| {
            let mut fields = get_fields("/plain.txt");
            fields[0] = (":method", "POST");
            fields.push(("content-length", "2"));
            h2.headers(1, &fields, false);
            h2.send(DATA, END_STREAM, 1, b"four");
        },
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.2.1",
        "an upper-case field name",
        |h2| with_field(h2, ("X-Upper", "1")),
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.2.1",
        "a field value with a line feed",
        |h2| with_field(h2, ("x-a", "1\nx-b: 2")),
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.2.2",
        "a connection-specific field",
        |h2| with_field(h2, ("connection", "keep-alive")),
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.2.2",
        "TE other than trailers",
        |h2| with_field(h2, ("te", "gzip")),
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.3",
        "a pseudo-field after a regular field",
        |h2| {
            h2.headers(
                1,
                &[
                    (":method", "GET"),
                    (":scheme", "http"),
                    ("accept", "*/*"),
                    (":path", "/"),
                ],
                true,
            );
        },
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.3",
        "an unknown pseudo-field",
        |h2| with_field(h2, (":colour", "red")),
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.3",
        "a response pseudo-field in a request",
        |h2| {
            h2.headers(
                1,
                &[
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                    (":status", "200"),
                ],
                true,
            );
        },
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.3.1",
        "a request without :path",
        |h2| h2.headers(1, &[(":method", "GET"), (":scheme", "http")], true),
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.3.1",
        "a request without :method",
        |h2| h2.headers(1, &[(":scheme", "http"), (":path", "/")], true),
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.3.1",
        "an empty :path",
        |h2| {
            h2.headers(
                1,
                &[(":method", "GET"), (":scheme", "http"), (":path", "")],
                true,
            )
        },
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "8.3.1",
        "a :method twice",
        |h2| {
            h2.headers(
                1,
                &[
                    (":method", "GET"),
                    (":method", "GET"),
                    (":scheme", "http"),
                    (":path", "/"),
                ],
                true,
            );
        },
        Must::StreamError(PROTOCOL_ERROR),
    ),
    (
        "RFC 7541 2.3.3",
        "an index past the dynamic table",
        |h2| {
            h2.send(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[0x82, 0x86, 0x84, 0xbf],
            )
        },
        Must::ConnectionError(COMPRESSION_ERROR),
    ),
    (
        "RFC 7541 6.1",
        "the index 0",
        |h2| h2.send(HEADERS, END_HEADERS | END_STREAM, 1, &[0x80]),
        Must::ConnectionError(COMPRESSION_ERROR),
    ),
    (
        "RFC 7541 4.2",
        "a dynamic table size update above SETTINGS_HEADER_TABLE_SIZE",
        |h2| {
            // 0x3f e2 1f: a size update to 31 + 98 + 31 * 128 = 4097, one past 4096.
            h2.send(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[0x3f, 0xe2, 0x1f, 0x82, 0x86, 0x84],
            );
        },
        Must::ConnectionError(COMPRESSION_ERROR),
    ),
    (
        "RFC 7541 5.2",
        "a Huffman string padded with more than 7 bits",
        |h2| {
            // :authority as a Huffman literal whose last byte is all padding (EOS prefix).
            h2.send(
                HEADERS,
                END_HEADERS | END_STREAM,
                1,
                &[0x82, 0x86, 0x84, 0x41, 0x82, 0xf1, 0xff],
            );
        },
        Must::ConnectionError(COMPRESSION_ERROR),
    ),
];

#[test]
fn rfc9113_and_rfc7541_must_statements() {
    let server = Server::start(ServerOpts {
        cgi_bin: Some(crate::support::repo().join("tests/fixtures/cgi-bin")),
        ..ServerOpts::default()
    });
    let mut failed = Vec::new();
    for (section, what, send, must) in CASES {
        let mut h2 = H2::open(server.addr(), &[]);
        send(&mut h2);
        let got = h2.outcome(1);
        let ok = match (must, &got) {
            (Must::ConnectionError(code), Outcome::GoAway(c)) => c == code,
            (Must::StreamError(code), Outcome::Reset(1, c)) => c == code,
            (Must::StreamError(code), Outcome::GoAway(c)) => c == code,
            _ => false,
        };
        if !ok {
            failed.push(format!("§{section} {what}: expected {must:?}, got {got:?}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        CASES.len(),
        failed.join("\n")
    );
    // The server is still serving.
    assert_eq!(server.get("/plain.txt").status, 200);
}

#[test]
fn an_invalid_connection_preface_is_a_connection_error() {
    // §3.4: the preface's first line says HTTP/2, the rest is wrong.
    let server = Server::start(ServerOpts::default());
    let mut socket = std::net::TcpStream::connect(server.addr()).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut socket, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut socket, &mut got);
    // The server's SETTINGS (and window), then GOAWAY PROTOCOL_ERROR.
    let mut at = 0;
    let mut code = None;
    while at + 9 <= got.len() {
        let len = (usize::from(got[at]) << 16)
            | (usize::from(got[at + 1]) << 8)
            | usize::from(got[at + 2]);
        if got[at + 3] == GOAWAY {
            code = Some(u32::from_be_bytes(
                got[at + 13..at + 17].try_into().unwrap(),
            ));
        }
        at += 9 + len;
    }
    let code = code.unwrap_or_else(|| panic!("no GOAWAY in {got:?}"));
    assert_eq!(code, PROTOCOL_ERROR);
}

#[test]
fn settings_ping_and_unknown_frames_are_answered() {
    let server = Server::start(ServerOpts::default());
    let mut h2 = H2::open(server.addr(), &[]);
    // §6.5.3: the server acknowledges our SETTINGS; §6.5.2 its own announce the limits.
    let settings = h2.first_settings.clone().unwrap();
    let pairs: Vec<(u16, u32)> = settings
        .payload
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(pairs.contains(&(3, 128)), "{pairs:?}");
    assert!(pairs.contains(&(6, 65_536)), "{pairs:?}");
    // §5.5: an unknown frame type is ignored; §6.7: PING is answered with the same payload.
    h2.send(0x42, 0xff, 0, b"ignored");
    h2.send(PING, 0, 0, b"abcdefgh");
    let mut acked_settings = false;
    loop {
        let frame = h2.read().expect("PING ACK");
        if frame.kind == SETTINGS && frame.flags & ACK != 0 {
            acked_settings = true;
        }
        if frame.kind == PING {
            assert_eq!(frame.flags & ACK, ACK);
            assert_eq!(frame.payload, b"abcdefgh");
            break;
        }
    }
    assert!(acked_settings, "SETTINGS ACK before the PING ACK");
    // §5.3.2, RFC 9113 deprecates priorities: PRIORITY frames, even for idle streams, are
    // accepted and ignored.
    h2.send(PRIORITY, 0, 3, &[0, 0, 0, 0, 200]);
    h2.send(PRIORITY, 0, 9, &[0, 0, 0, 3, 1]);
    h2.get(11, "/plain.txt");
    let (head, body) = h2.response(11);
    assert_eq!(field(&head, ":status"), Some("200"));
    assert_eq!(body, b"plain text fixture\n");
}

#[test]
fn hpack_huffman_and_dynamic_table_requests_from_rfc7541_appendix_c() {
    let server = Server::start(ServerOpts::default());
    let mut h2 = H2::open(server.addr(), &[]);
    // C.4.1: :method GET, :scheme http, :path /, :authority www.example.com (Huffman).
    let mut first = vec![0x82, 0x86, 0x84, 0x41, 0x8c];
    first.extend_from_slice(&[
        0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
    ]);
    h2.send(HEADERS, END_HEADERS | END_STREAM, 1, &first);
    let (head, body) = h2.response(1);
    assert_eq!(field(&head, ":status"), Some("200"));
    assert!(
        String::from_utf8_lossy(&body).contains("<html"),
        "the index page"
    );
    // C.4.2: the same, the authority now from the dynamic table (index 62), plus
    // cache-control: no-cache (Huffman).
    h2.send(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &[
            0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf,
        ],
    );
    let (head, _) = h2.response(3);
    assert_eq!(field(&head, ":status"), Some("200"));
}

#[test]
fn response_bodies_keep_within_the_peers_windows() {
    let server = Server::start(ServerOpts::default());
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(server.root.join("big.bin"), &big).unwrap();
    // §6.9.2: a stream window of 100 bytes; the connection's stays 65,535.
    let mut h2 = H2::open(server.addr(), &[(4, 100)]);
    h2.get(1, "/big.bin");
    let mut received = 0usize;
    let mut window = 100i64;
    let mut conn_window = 65_535i64;
    let mut head_seen = false;
    loop {
        let frame = h2.read().expect("the response");
        match frame.kind {
            HEADERS => head_seen = true,
            DATA => {
                let n = frame.payload.len() as i64;
                window -= n;
                conn_window -= n;
                assert!(window >= 0, "DATA past the stream window");
                assert!(conn_window >= 0, "DATA past the connection window");
                assert_eq!(frame.payload, big[received..received + n as usize]);
                received += n as usize;
                if frame.flags & END_STREAM != 0 {
                    break;
                }
                if window == 0 {
                    // Give the window back in steps of 50,000, the connection's too.
                    h2.send(WINDOW_UPDATE, 0, 1, &u32s(&[50_000]));
                    h2.send(WINDOW_UPDATE, 0, 0, &u32s(&[50_000]));
                    window += 50_000;
                    conn_window += 50_000;
                }
            }
            RST_STREAM | GOAWAY => panic!("error {}", frame.code()),
            _ => {}
        }
    }
    assert!(head_seen);
    assert_eq!(received, big.len());
}
