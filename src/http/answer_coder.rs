//! A plug-in's HTTP/1.x answer, coded on its way to the client (the relay in
//! `net/tls_pump.rs` feeds it what the plug-in writes). The head is read and, when the answer
//! is compressible, rewritten: `Content-Length` goes, `Content-Encoding` and `Vary:
//! Accept-Encoding` come, and the body is sent chunked (HTTP/1.1) or until close (HTTP/1.0).
//! The body is taken as the plug-in framed it (`Content-Length`, chunked, or until it ends),
//! so the coder knows where the answer ends. Every piece fed is compressed and flushed at
//! once, so a slowly writing plug-in is never held back. Anything else passes untouched.
//! Pure code: bytes in, bytes out.

use crate::http::response::push_chunk;

use crate::cache::compress::Encoder;
use crate::http::encoding::{type_matches, variant_etag, Coding};

/// Longest head looked at; a longer one is passed through as it is.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// Longest chunk-size or trailer line accepted from the plug-in.
const MAX_LINE_BYTES: usize = 4096;

/// What the coder needs to know of the request and of `[compression]`.
#[derive(Debug, Clone)]
pub struct AnswerCoding {
    /// The coding the client takes best; `None`: identity (only `Vary` may be added).
    pub coding: Option<Coding>,
    pub level: i32,
    pub min_bytes: u64,
    pub types: Vec<String>,
    /// The request's HTTP minor version (0: no chunked transfer coding).
    pub minor_version: u8,
    /// A HEAD request: never coded (the plug-in sends no body).
    pub head_request: bool,
}

/// Codes one plug-in answer (after any interim `1xx` answers).
pub struct AnswerCoder {
    settings: AnswerCoding,
    state: State,
    /// The final answer went out coded.
    coded: bool,
    /// The connection may carry another request after this answer, as far as the coder
    /// knows (a close-delimited coded body, or a broken one, may not).
    keeps_alive: bool,
}

enum State {
    /// Collecting the head.
    Head(Vec<u8>),
    /// Coding the body, framed by the plug-in as `framing`.
    Coding { encoder: Encoder, framing: Framing },
    /// Passing everything through as it is.
    Raw,
    /// The coded answer has ended; anything more from the plug-in is dropped.
    Done,
}

enum Framing {
    Length(u64),
    Chunked(Dechunker),
    Close,
}

impl AnswerCoder {
    pub fn new(settings: AnswerCoding) -> AnswerCoder {
        AnswerCoder {
            settings,
            state: State::Head(Vec::new()),
            coded: false,
            keeps_alive: true,
        }
    }

    /// The final answer was (or is being) sent coded.
    pub fn coded(&self) -> bool {
        self.coded
    }

    /// Whether the connection may be kept after the answer, as far as the coding goes.
    pub fn keeps_alive(&self) -> bool {
        self.keeps_alive
    }

    /// Takes what the plug-in wrote; appends what goes to the client to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match &mut self.state {
                State::Raw => {
                    out.extend_from_slice(input);
                    return;
                }
                State::Done => return,
                State::Head(buf) => {
                    let searched = buf.len().saturating_sub(3);
                    buf.extend_from_slice(input);
                    let Some(end) = find(&buf[searched..], b"\r\n\r\n").map(|at| searched + at + 4)
                    else {
                        if buf.len() > MAX_HEAD_BYTES {
                            out.append(buf);
                            self.state = State::Raw;
                        }
                        return;
                    };
                    let mut buf = std::mem::take(buf);
                    let rest = buf.split_off(end);
                    self.head(&buf, out);
                    // What followed the head is fed again, to the new state.
                    self.feed(&rest, out);
                    return;
                }
                State::Coding { encoder, framing } => {
                    let mut data = Vec::new();
                    let (body, ended, rest): (&[u8], bool, &[u8]) = match framing {
                        Framing::Length(left) => {
                            let take = (*left).min(input.len() as u64) as usize;
                            *left -= take as u64;
                            (&input[..take], *left == 0, &input[take..])
                        }
                        Framing::Close => (input, false, &[]),
                        Framing::Chunked(dechunker) => match dechunker.feed(input, &mut data) {
                            Ok(ended) => (&[], ended, &[]),
                            Err(()) => {
                                // The plug-in's framing is broken: so is the answer.
                                self.keeps_alive = false;
                                self.state = State::Done;
                                return;
                            }
                        },
                    };
                    let body = if data.is_empty() { body } else { &data[..] };
                    let mut packed = Vec::new();
                    if encoder.push(body, true, &mut packed).is_err() {
                        self.keeps_alive = false;
                        self.state = State::Done;
                        return;
                    }
                    push_chunk(out, &packed, self.settings.minor_version >= 1);
                    if ended {
                        self.end_coded(out);
                    }
                    input = rest;
                }
            }
        }
    }

    /// The plug-in's side has ended: a body delimited by the end is finished now; any
    /// other unfinished answer is cut short (and the connection is not kept).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match &self.state {
            State::Coding {
                framing: Framing::Close,
                ..
            } => self.end_coded(out),
            State::Coding { .. } => {
                self.keeps_alive = false;
                self.state = State::Done;
            }
            State::Head(buf) => {
                if !buf.is_empty() {
                    out.extend_from_slice(buf);
                    self.keeps_alive = false;
                }
                self.state = State::Raw;
            }
            State::Raw | State::Done => {}
        }
    }

    /// Finishes the coded stream and ends the chunked body.
    fn end_coded(&mut self, out: &mut Vec<u8>) {
        let state = std::mem::replace(&mut self.state, State::Done);
        if let State::Coding { encoder, .. } = state {
            let mut packed = Vec::new();
            if encoder.finish(&mut packed).is_err() {
                self.keeps_alive = false;
                return;
            }
            let chunked = self.settings.minor_version >= 1;
            push_chunk(out, &packed, chunked);
            if chunked {
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
    }

    /// Reads one complete head and writes what the client gets of it; sets the next state.
    fn head(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        let (status, headers) = match parsed.parse(raw) {
            Ok(httparse::Status::Complete(_)) => (parsed.code.unwrap_or(0), parsed.headers),
            _ => {
                out.extend_from_slice(raw);
                self.state = State::Raw;
                return;
            }
        };
        if (100..200).contains(&status) && status != 101 {
            // An interim answer (100 Continue): the final one follows.
            out.extend_from_slice(raw);
            self.state = State::Head(Vec::new());
            return;
        }
        let field = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        let mime = field("content-type").unwrap_or_default();
        let may_vary = status != 101
            && !mime.is_empty()
            && type_matches(&self.settings.types, &mime)
            && field("content-encoding").is_none();
        let length = field("content-length").and_then(|v| v.parse::<u64>().ok());
        let transfer = field("transfer-encoding");
        let chunked_in = transfer
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        let coding = self.settings.coding.filter(|_| {
            may_vary
                && status == 200
                && !self.settings.head_request
                && (transfer.is_none() || chunked_in)
                && length.is_none_or(|n| n >= self.settings.min_bytes.max(1))
        });
        let has_vary = field("vary").is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v == "*" || v.contains("accept-encoding")
        });
        let encoder = coding.and_then(|c| Encoder::new(c, self.settings.level).ok());
        let (Some(coding), Some(encoder)) = (coding, encoder) else {
            if may_vary && !has_vary {
                rebuild(raw, headers, out, |_| true, &[("Vary", "Accept-Encoding")]);
            } else {
                out.extend_from_slice(raw);
            }
            self.state = State::Raw;
            return;
        };
        let chunked_out = self.settings.minor_version >= 1;
        let dropped = |name: &str| {
            let name = name.to_ascii_lowercase();
            matches!(name.as_str(), "content-length" | "transfer-encoding")
                || (name == "connection" && !chunked_out)
                || (name == "vary" && !has_vary)
                || name == "etag"
        };
        let mut added: Vec<(&str, String)> = vec![("Content-Encoding", coding.token().to_string())];
        let vary = match field("vary") {
            Some(v) if !has_vary => format!("{v}, Accept-Encoding"),
            _ => "Accept-Encoding".to_string(),
        };
        if !has_vary {
            added.push(("Vary", vary));
        }
        if let Some(tag) = field("etag") {
            // The plug-in's tag names its own bytes; the coded ones get a tag of their own.
            let (weak, bare) = match tag.strip_prefix("W/") {
                Some(bare) => ("W/", bare),
                None => ("", tag.as_str()),
            };
            added.push(("ETag", format!("{weak}{}", variant_etag(bare, coding))));
        }
        if chunked_out {
            added.push(("Transfer-Encoding", "chunked".to_string()));
        } else {
            added.push(("Connection", "close".to_string()));
            self.keeps_alive = false;
        }
        let added: Vec<(&str, &str)> = added.iter().map(|(n, v)| (*n, v.as_str())).collect();
        rebuild(raw, headers, out, |name| !dropped(name), &added);
        self.coded = true;
        let framing = match (chunked_in, length) {
            (true, _) => Framing::Chunked(Dechunker::default()),
            (false, Some(n)) => Framing::Length(n),
            (false, None) => {
                // The plug-in's body ends when it closes; so does the connection.
                self.keeps_alive = false;
                Framing::Close
            }
        };
        self.state = State::Coding { encoder, framing };
        if let State::Coding {
            framing: Framing::Length(0),
            ..
        } = self.state
        {
            self.end_coded(out);
        }
    }
}

/// Writes a head again: its status line, the fields `keep` keeps, then `added`.
fn rebuild(
    raw: &[u8],
    headers: &[httparse::Header<'_>],
    out: &mut Vec<u8>,
    keep: impl Fn(&str) -> bool,
    added: &[(&str, &str)],
) {
    let line_end = find(raw, b"\r\n").map_or(raw.len(), |at| at + 2);
    out.extend_from_slice(&raw[..line_end]);
    for h in headers.iter().filter(|h| keep(h.name)) {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in added {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Takes a chunked body apart (RFC 9112 section 7.1), extensions and trailers dropped.
#[derive(Default)]
struct Dechunker {
    /// Framing bytes not yet understood (a size or trailer line in pieces).
    pending: Vec<u8>,
    phase: Phase,
}

#[derive(Default, Clone, Copy)]
enum Phase {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    End,
}

impl Dechunker {
    /// Appends the body bytes in `input` to `data`; true once the last chunk and the
    /// trailers have passed.
    fn feed(&mut self, input: &[u8], data: &mut Vec<u8>) -> Result<bool, ()> {
        self.pending.extend_from_slice(input);
        let mut at = 0;
        let result = loop {
            let left = &self.pending[at..];
            match self.phase {
                Phase::End => break Ok(true),
                Phase::Data(n) => {
                    if left.is_empty() {
                        break Ok(false);
                    }
                    let take = n.min(left.len() as u64) as usize;
                    data.extend_from_slice(&left[..take]);
                    at += take;
                    self.phase = if n == take as u64 {
                        Phase::DataEnd
                    } else {
                        Phase::Data(n - take as u64)
                    };
                }
                Phase::DataEnd => {
                    if left.len() < 2 {
                        break Ok(false);
                    }
                    if &left[..2] != b"\r\n" {
                        break Err(());
                    }
                    at += 2;
                    self.phase = Phase::Size;
                }
                Phase::Size | Phase::Trailers => {
                    let Some(end) = find(left, b"\r\n") else {
                        if left.len() > MAX_LINE_BYTES {
                            break Err(());
                        }
                        break Ok(false);
                    };
                    let line = &left[..end];
                    at += end + 2;
                    if let Phase::Trailers = self.phase {
                        if line.is_empty() {
                            self.phase = Phase::End;
                        }
                        continue;
                    }
                    let digits = line.split(|b| *b == b';').next().unwrap_or(b"");
                    let text = std::str::from_utf8(digits).map_err(|_| ())?;
                    let size = u64::from_str_radix(text.trim(), 16).map_err(|_| ())?;
                    self.phase = if size == 0 {
                        Phase::Trailers
                    } else {
                        Phase::Data(size)
                    };
                }
            }
        };
        self.pending.drain(..at.min(self.pending.len()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn settings(coding: Option<Coding>, minor_version: u8) -> AnswerCoding {
        AnswerCoding {
            coding,
            level: 5,
            min_bytes: 16,
            types: vec!["text/*".to_string()],
            minor_version,
            head_request: false,
        }
    }

    fn run(coder: &mut AnswerCoder, input: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in input.chunks(piece) {
            coder.feed(part, &mut out);
        }
        coder.finish(&mut out);
        out
    }

    fn split(answer: &[u8]) -> (String, Vec<u8>) {
        let end = find(answer, b"\r\n\r\n").unwrap() + 4;
        (
            String::from_utf8(answer[..end].to_vec()).unwrap(),
            answer[end..].to_vec(),
        )
    }

    fn unchunk(body: &[u8]) -> Vec<u8> {
        let mut d = Dechunker::default();
        let mut data = Vec::new();
        assert_eq!(d.feed(body, &mut data), Ok(true));
        data
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    const BODY: &[u8] = b"<html>hello hello hello hello hello hello hello</html>\n";

    fn answer(extra: &str, body: &[u8]) -> Vec<u8> {
        let mut a = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        a.extend_from_slice(body);
        a
    }

    #[test]
    fn a_length_framed_answer_goes_out_chunked_and_coded_in_any_pieces() {
        for piece in [1, 7, 4096] {
            let mut coder = AnswerCoder::new(settings(Some(Coding::Gzip), 1));
            let out = run(&mut coder, &answer("ETag: \"1-2\"\r\n", BODY), piece);
            let (head, body) = split(&out);
            assert!(head.contains("Content-Encoding: gzip\r\n"), "{head}");
            assert!(head.contains("Vary: Accept-Encoding\r\n"), "{head}");
            assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
            assert!(head.contains("ETag: \"1-2-gzip\"\r\n"), "{head}");
            assert!(!head.contains("Content-Length"), "{head}");
            assert_eq!(gunzip(&unchunk(&body)), BODY);
            assert!(coder.coded() && coder.keeps_alive());
        }
    }

    #[test]
    fn the_plugins_own_vary_is_kept_with_accept_encoding_added() {
        let mut coder = AnswerCoder::new(settings(Some(Coding::Br), 1));
        let out = run(&mut coder, &answer("Vary: Cookie\r\n", BODY), 4096);
        let (head, _) = split(&out);
        assert!(head.contains("Vary: Cookie, Accept-Encoding\r\n"), "{head}");
        assert_eq!(head.matches("Vary").count(), 1, "{head}");
    }

    #[test]
    fn each_piece_is_flushed_so_a_slow_writer_is_not_held_back() {
        let mut coder = AnswerCoder::new(settings(Some(Coding::Gzip), 1));
        let mut out = Vec::new();
        coder.feed(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
            &mut out,
        );
        coder.feed(b"6\r\nfirst \r\n", &mut out);
        // Before the plug-in writes more, what it wrote is already decodable.
        let (_, body) = split(&out);
        let mut d = Dechunker::default();
        let mut coded = Vec::new();
        assert_eq!(d.feed(&body, &mut coded), Ok(false));
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        decoder.write_all(&coded).unwrap();
        decoder.flush().unwrap();
        assert_eq!(decoder.get_ref().as_slice(), b"first ");
        coder.feed(b"6\r\nsecond\r\n0\r\n\r\n", &mut out);
        let (_, body) = split(&out);
        assert_eq!(gunzip(&unchunk(&body)), b"first second");
    }

    #[test]
    fn a_chunked_answer_is_decoded_and_coded_again() {
        let mut input =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        input.extend_from_slice(b"5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n");
        let mut coder = AnswerCoder::new(settings(Some(Coding::Gzip), 1));
        let out = run(&mut coder, &input, 3);
        let (_, body) = split(&out);
        assert_eq!(gunzip(&unchunk(&body)), b"hello world");
        assert!(coder.keeps_alive());
    }

    #[test]
    fn http_1_0_gets_a_close_delimited_body() {
        let mut coder = AnswerCoder::new(settings(Some(Coding::Gzip), 0));
        let out = run(
            &mut coder,
            &answer("Connection: keep-alive\r\n", BODY),
            4096,
        );
        let (head, body) = split(&out);
        assert!(head.contains("Connection: close\r\n") && !head.contains("keep-alive"));
        assert_eq!(gunzip(&body), BODY);
        assert!(!coder.keeps_alive());
    }

    #[test]
    fn what_is_not_compressible_passes_untouched_with_vary_when_it_could_differ() {
        // Identity negotiated: the bytes are the same, with Vary added.
        let mut coder = AnswerCoder::new(settings(None, 1));
        let input = answer("", BODY);
        let out = run(&mut coder, &input, 5);
        let (head, body) = split(&out);
        assert!(head.ends_with("Vary: Accept-Encoding\r\n\r\n"));
        assert_eq!(body, BODY);
        // Small, already coded, another type, another status: no coding.
        for input in [
            answer("", b"tiny"),
            answer("Content-Encoding: gzip\r\n", BODY),
            answer("", BODY).replacen_status(),
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello".to_vec(),
        ] {
            let mut coder = AnswerCoder::new(settings(Some(Coding::Br), 1));
            let out = run(&mut coder, &input, 3);
            assert!(!coder.coded());
            let (head, body) = split(&out);
            let (in_head, in_body) = split(&input);
            assert!(!head.contains("Content-Encoding: br"), "{head}");
            assert_eq!(body, in_body);
            assert!(head.len() == in_head.len() || head.contains("Vary"));
        }
    }

    #[test]
    fn an_interim_answer_passes_and_the_final_one_is_coded() {
        let mut input = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        input.extend_from_slice(&answer("", BODY));
        let mut coder = AnswerCoder::new(settings(Some(Coding::Gzip), 1));
        let out = run(&mut coder, &input, 4096);
        assert!(out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
        let (_, rest) = split(&out[25..]);
        assert_eq!(gunzip(&unchunk(&rest)), BODY);
    }

    trait Status {
        fn replacen_status(self) -> Vec<u8>;
    }

    impl Status for Vec<u8> {
        fn replacen_status(self) -> Vec<u8> {
            let text = String::from_utf8(self).unwrap();
            text.replacen("200 OK", "404 Not Found", 1).into_bytes()
        }
    }
}
