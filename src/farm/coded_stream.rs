//! A file too large for the cache, sent compressed on the fly by the static worker that
//! opened it: read in pieces, each piece compressed into a bounded buffer and sent as a
//! chunk (HTTP/1.1) or until the connection closes (HTTP/1.0). Unlike the rest of static,
//! this writes at the client's pace (each write bounded by `send_timeout_secs`): a coded
//! stream has no file offset for send.pool to resume from.

use std::fs::File;
use std::io::Read;
use std::time::Instant;

use crate::cache::compress::Encoder;
use crate::cache::Representation;
use crate::conn::Conn;
use crate::farm::reply;
use crate::http::encoding::Coding;
use crate::http::response::{push_chunk, push_header};
use crate::http::{Body, Request};
use crate::protocol::{CloseReason, Exchange, Handler, ToRecycler};
use crate::support::config::Config;

/// File bytes read and compressed at a time.
const PIECE_BYTES: usize = 64 * 1024;

/// The representation a coded stream carries: a weak tag (the bytes depend on the level and
/// the library, not only on the file), no length.
pub fn representation(identity: &Representation, coding: Coding) -> Representation {
    let mut rep = identity.coded(coding, 0);
    rep.etag = format!("W/{}", rep.etag);
    rep
}

/// Sends `file` coded. `rep` comes from `representation`; conditionals were checked by the
/// caller (a 304 never gets here).
pub fn send(
    mut conn: Conn,
    req: &Request,
    cfg: &Config,
    rep: &Representation,
    mut file: File,
    coding: Coding,
) -> ToRecycler {
    let chunked = req.minor_version >= 1;
    let keep_alive = req.keep_alive && req.body == Body::None && chunked;
    let mut head = Vec::with_capacity(512);
    reply::head(200, req, keep_alive, &mut head);
    push_header(&mut head, "Content-Type", rep.mime.as_bytes());
    push_header(&mut head, "Last-Modified", rep.last_modified.as_bytes());
    push_header(&mut head, "ETag", rep.etag.as_bytes());
    push_header(&mut head, "Content-Encoding", coding.token().as_bytes());
    push_header(&mut head, "Vary", b"Accept-Encoding");
    if chunked {
        push_header(&mut head, "Transfer-Encoding", b"chunked");
    }
    crate::site::of(req, cfg).apply_headers(req, 200, &mut head);
    head.extend_from_slice(b"\r\n");
    let timeout = cfg.send_timeout();
    if conn
        .write_all_until(&head, Instant::now() + timeout)
        .is_err()
    {
        return ToRecycler::Close(conn, CloseReason::WriteFailed, None);
    }
    if req.is_head() {
        return reply::finished(conn, req, 200, 0, Handler::Static, keep_alive);
    }
    let level = cfg.compression.level_of(coding);
    let mut sent = 0u64;
    let result = (|| -> std::io::Result<()> {
        let mut encoder = Some(Encoder::new(coding, level)?);
        let mut piece = vec![0u8; PIECE_BYTES];
        let mut packed = Vec::with_capacity(PIECE_BYTES);
        let mut framed = Vec::with_capacity(PIECE_BYTES + 16);
        loop {
            let n = file.read(&mut piece)?;
            packed.clear();
            match encoder.as_mut() {
                Some(e) if n > 0 => e.push(&piece[..n], false, &mut packed)?,
                _ => {
                    if let Some(e) = encoder.take() {
                        e.finish(&mut packed)?;
                    }
                }
            }
            framed.clear();
            push_chunk(&mut framed, &packed, chunked);
            if n == 0 && chunked {
                framed.extend_from_slice(b"0\r\n\r\n");
            }
            if !framed.is_empty() {
                conn.write_all_until(&framed, Instant::now() + timeout)?;
            }
            sent += packed.len() as u64;
            if n == 0 {
                return Ok(());
            }
        }
    })();
    match result {
        Ok(()) => reply::finished(conn, req, 200, sent, Handler::Static, keep_alive),
        Err(_) => {
            let exchange =
                Exchange::for_request(req, 200, sent, Handler::Static, conn.request_started);
            ToRecycler::Close(conn, CloseReason::WriteFailed, Some(exchange))
        }
    }
}
