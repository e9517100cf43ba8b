//! Starting the real server binary on 127.0.0.1:0 and talking to it over sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start a server; every field has a sensible default.
#[derive(Default, Clone)]
pub struct ServerOpts {
    /// Document root (default: a fresh copy of `tests/fixtures/docroot`).
    pub root: Option<PathBuf>,
    pub cgi_bin: Option<PathBuf>,
    pub plugins: Option<PathBuf>,
    /// TOML appended to the generated config file.
    pub extra_config: String,
    /// Start under `prlimit --nofile=N:N` (prlimit execs the server, so the PID is the server's).
    pub max_open_files: Option<u64>,
    /// The plain listener's address (default: 127.0.0.1:0, any free port).
    pub listen: Option<SocketAddr>,
}

/// A running server process; stopped and reaped on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// Every listening address, in the order printed (the HTTPS listener last).
    pub addrs: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config_path: PathBuf,
}

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_occwserv"))
}

/// Copies a directory tree (files, directories and symlinks as symlinks).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(link, &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Server {
    pub fn start(opts: ServerOpts) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let root = match &opts.root {
            Some(root) => root.clone(),
            None => {
                let root = dir.path().join("docroot");
                copy_tree(&repo().join("tests/fixtures/docroot"), &root);
                root
            }
        };
        let config_path = dir.path().join("occwserv.toml");
        let config = format!(
            "access_log = {:?}\nerror_log = {:?}\n{}\n",
            dir.path().join("access.log").to_string_lossy(),
            dir.path().join("error.log").to_string_lossy(),
            opts.extra_config
        );
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = match opts.max_open_files {
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}")).arg(binary());
                cmd
            }
            None => Command::new(binary()),
        };
        cmd.arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(
                opts.listen
                    .map_or("127.0.0.1:0".to_string(), |a| a.to_string()),
            )
            .arg("--root")
            .arg(&root);
        if let Some(cgi) = &opts.cgi_bin {
            cmd.arg("--cgi-bin").arg(cgi);
        }
        let plugins = opts
            .plugins
            .clone()
            .unwrap_or_else(|| dir.path().join("no-plugins"));
        cmd.arg("--plugins").arg(plugins);
        cmd.current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap();
        let addrs = read_listen_line(&mut child);
        Server {
            child,
            addr: addrs[0],
            addrs,
            dir,
            root,
            config_path,
        }
    }

    pub fn with_root(root: &Path) -> Server {
        Server::start(ServerOpts {
            root: Some(root.to_path_buf()),
            ..ServerOpts::default()
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// `GET path` on a fresh connection with `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ))
    }

    /// Sends a raw request on a fresh connection and parses the (single) response.
    pub fn request(&self, raw: &str) -> Response {
        Response::parse(&self.raw(raw.as_bytes()))
    }

    /// Sends bytes on a fresh connection and reads until the server closes it.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(bytes).unwrap();
        read_to_close(&mut s)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits (bounded) until the error log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.error_log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    /// Waits for the process to exit (bounded) and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `/stats.json`, parsed.
    pub fn stats(&self) -> serde_json::Value {
        let resp = self.get("/stats.json");
        assert_eq!(resp.status, 200);
        serde_json::from_slice(&resp.body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_listen_line(child: &mut Child) -> Vec<SocketAddr> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the server never blocks on a full pipe.
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not report its address");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    addr.split(", ").map(|a| a.parse().unwrap()).collect()
}

/// Requests read by all the replicas so far, from `/stats.json` (the page's own included).
pub fn replica_requests(stats: &serde_json::Value) -> u64 {
    stats["replicas"]
        .as_array()
        .expect("replicas in /stats.json")
        .iter()
        .map(|r| r["requests"].as_u64().expect("a replica's requests"))
        .sum()
}

/// Reads until EOF (or a 20 s read timeout, which fails the test).
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            // A stopped and resumed test process sees its read interrupted: read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Length of the head in the raw bytes.
    pub head_len: usize,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses one response that runs to the end of `raw` (or to its framing).
    pub fn parse(raw: &[u8]) -> Response {
        Self::parse_one(raw, false)
            .unwrap_or_else(|| panic!("incomplete response: {:?}", String::from_utf8_lossy(raw)))
    }

    /// Parses the first response in `raw`; `head_request` means no body follows.
    /// Returns the response (with `head_len + body` consumed, see `consumed`).
    pub fn parse_one(raw: &[u8], head_request: bool) -> Option<Response> {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = std::str::from_utf8(&raw[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?.to_string();
        let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        let mut resp = Response {
            status,
            status_line,
            headers,
            body: Vec::new(),
            head_len: end,
        };
        let rest = &raw[end..];
        if head_request || status == 304 || status == 204 || (100..200).contains(&status) {
            return Some(resp);
        }
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().ok()?;
            if rest.len() < len {
                return None;
            }
            resp.body = rest[..len].to_vec();
        } else if resp
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            resp.body = dechunk(rest)?.0;
        } else {
            resp.body = rest.to_vec();
        }
        Some(resp)
    }

    /// Bytes of `raw` this response occupied (head + framed body), for pipelined streams.
    pub fn consumed(&self, raw: &[u8]) -> usize {
        if self.header("transfer-encoding").is_some() {
            return self.head_len + dechunk(&raw[self.head_len..]).map(|(_, n)| n).unwrap_or(0);
        }
        self.head_len
            + self
                .header("content-length")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0)
    }
}

/// Decodes a chunked body; returns the body and the bytes consumed.
pub fn dechunk(mut raw: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = raw.len();
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            let end = raw.windows(2).position(|w| w == b"\r\n")?;
            // Skip trailers up to the empty line.
            let mut rest = raw;
            let mut skip = end;
            while skip != 0 {
                rest = &rest[skip + 2..];
                skip = rest.windows(2).position(|w| w == b"\r\n")?;
            }
            rest = &rest[2..];
            return Some((body, total - rest.len()));
        }
        if raw.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Reads exactly one response from a keep-alive stream, leaving the connection open.
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(resp) = Response::parse_one(&raw, head_request) {
            let complete = head_request
                || resp.header("content-length").is_some()
                || resp.header("transfer-encoding").is_some()
                || resp.status == 304
                || resp.status == 204;
            if complete {
                return resp;
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    }
}
