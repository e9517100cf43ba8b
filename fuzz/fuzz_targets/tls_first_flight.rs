//! A client's first flight over a real loopback socket into the HTTPS read path we own:
//! `Conn::read_now` with a `rustls::ServerConnection` in the `Conn` (read the socket into the
//! session, answer handshake messages, hand over plaintext). The input is what the client
//! sends before it stops writing: a ClientHello, garbage, or one cut short.
//!
//! Properties, beyond "never panics":
//! - the read path ends: the session refuses the bytes (`InvalidData`, after queuing an alert)
//!   or the client's end is seen (`Closed`), within a bounded number of reads;
//! - no plaintext ever comes out (no client can finish a handshake without the server's
//!   answers, so every byte must have been handshake or refused);
//! - what the server wrote back is nothing, or TLS records: handshake (22) or alert (21).
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use occwserv::conn::{Conn, ReadOutcome};
use occwserv::support::config::TlsConfig;
use occwserv::support::tls::Tls;

struct Setup {
    listener: TcpListener,
    server: Arc<rustls::ServerConfig>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("occwserv-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), include_str!("tls/cert.pem")).unwrap();
        std::fs::write(dir.join("key.pem"), include_str!("tls/key.pem")).unwrap();
        let cfg = TlsConfig {
            cert: Some(dir.join("cert.pem")),
            key: Some(dir.join("key.pem")),
            ..TlsConfig::default()
        };
        let tls = Tls::load(&cfg).unwrap();
        Setup {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            server: tls.server.clone(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let mut client = TcpStream::connect(setup.listener.local_addr().unwrap()).unwrap();
    let (stream, peer) = setup.listener.accept().unwrap();
    stream.set_nonblocking(true).unwrap();
    let local = stream.local_addr().unwrap();
    let mut conn = Conn::new(1, stream, peer, local);
    conn.tls = Some(Box::new(
        rustls::ServerConnection::new(setup.server.clone()).unwrap(),
    ));
    // The inputs are small (max_len), so they fit the socket buffers at once.
    client.write_all(data).unwrap();
    client.shutdown(Shutdown::Write).unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut plaintext = Vec::new();
    let mut reads = 0;
    let ended = loop {
        reads += 1;
        assert!(reads < 10_000, "the read path never ended");
        match conn.read_now(&mut plaintext, 16 * 1024) {
            Ok(ReadOutcome::Data(n)) => panic!("{n} bytes of plaintext from a client's first flight"),
            Ok(ReadOutcome::Closed) => break "closed",
            Ok(ReadOutcome::WouldBlock) => {
                // Everything was written before the first read, so only the kernel's
                // delivery can lag: wait for the socket, boundedly.
                assert!(
                    conn.wait_readable(deadline).unwrap(),
                    "neither refused nor closed within 5 s"
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => break "refused",
            Err(e) => panic!("unexpected error: {e}"),
        }
    };
    assert!(plaintext.is_empty());
    // What the server sent back: records of type handshake or alert only (the first record's
    // type is enough: a refused session ends with its alert).
    conn.close_tls();
    drop(conn);
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = client.read_to_end(&mut answer);
    if let Some(&kind) = answer.first() {
        assert!(
            kind == 21 || kind == 22,
            "{ended}: the server answered a record of type {kind}"
        );
    }
});
