use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::http::request::{parse_head, HeadLimits};

/// A fresh directory laid out like a cgi-bin, removed on drop.
struct TempBin(PathBuf);

impl TempBin {
    fn new() -> TempBin {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("occwserv-cgi-unit-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::create_dir_all(dir.join(".hidden")).unwrap();
        for (name, mode) in [
            ("app.cgi", 0o755),
            ("sub/deep.cgi", 0o755),
            ("nph-raw", 0o755),
            ("plain.txt", 0o644),
            (".secret", 0o755),
            (".hidden/x.cgi", 0o755),
        ] {
            let path = dir.join(name);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        TempBin(dir)
    }
}

impl Drop for TempBin {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn locate_splits_script_and_path_info() {
    let bin = TempBin::new();
    let s = locate(&bin.0, "/cgi-bin/app.cgi").unwrap();
    assert_eq!(s.program, bin.0.join("app.cgi"));
    assert_eq!(s.script_name, b"/cgi-bin/app.cgi");
    assert_eq!(s.path_info, None);
    assert!(!s.nph);

    let s = locate(&bin.0, "/cgi-bin/app.cgi/extra/path").unwrap();
    assert_eq!(s.path_info.as_deref(), Some(&b"/extra/path"[..]));

    let s = locate(&bin.0, "/cgi-bin/app.cgi/").unwrap();
    assert_eq!(s.path_info.as_deref(), Some(&b"/"[..]));

    let s = locate(&bin.0, "/cgi-bin/sub/deep.cgi/a%20b/c/").unwrap();
    assert_eq!(s.program, bin.0.join("sub/deep.cgi"));
    assert_eq!(s.script_name, b"/cgi-bin/sub/deep.cgi");
    assert_eq!(s.path_info.as_deref(), Some(&b"/a b/c/"[..]));

    let s = locate(&bin.0, "/cgi-bin//app%2Ecgi").unwrap();
    assert_eq!(s.script_name, b"/cgi-bin/app.cgi");
    assert!(locate(&bin.0, "/cgi-bin/nph-raw").unwrap().nph);
}

#[test]
fn locate_refuses_what_is_not_a_runnable_program() {
    let bin = TempBin::new();
    assert_eq!(
        locate(&bin.0, "/cgi-bin/missing.cgi"),
        Err(ScriptError::NotFound)
    );
    assert_eq!(
        locate(&bin.0, "/cgi-bin/missing/app.cgi"),
        Err(ScriptError::NotFound)
    );
    assert_eq!(
        locate(&bin.0, "/cgi-bin/plain.txt"),
        Err(ScriptError::Forbidden)
    );
    assert_eq!(locate(&bin.0, "/cgi-bin/"), Err(ScriptError::Forbidden));
    assert_eq!(locate(&bin.0, "/cgi-bin/sub"), Err(ScriptError::Forbidden));
    assert_eq!(
        locate(&bin.0, "/cgi-bin/.secret"),
        Err(ScriptError::NotFound)
    );
    assert_eq!(
        locate(&bin.0, "/cgi-bin/.hidden/x.cgi"),
        Err(ScriptError::NotFound)
    );
    assert_eq!(
        locate(&bin.0, "/cgi-bin/%2esecret"),
        Err(ScriptError::NotFound)
    );
    assert_eq!(locate(&bin.0, "/other/app.cgi"), Err(ScriptError::NotFound));
    assert_eq!(
        locate(&bin.0, "/cgi-bin/../cgi-bin/app.cgi").map(|s| s.program),
        Ok(bin.0.join("app.cgi"))
    );
    assert_eq!(
        locate(&bin.0, "/cgi-bin/..%2f..%2fetc%2fpasswd"),
        Err(ScriptError::BadPath)
    );
    assert_eq!(
        locate(&bin.0, "/cgi-bin/%2e%2e/%2e%2e/bin/sh"),
        Err(ScriptError::BadPath)
    );
    assert_eq!(
        locate(&bin.0, "/cgi-bin/app.cgi%00"),
        Err(ScriptError::BadPath)
    );
    // `..` that stays inside the directory tree but leaves cgi-bin is not a program.
    assert_eq!(
        locate(&bin.0, "/cgi-bin/../app.cgi"),
        Err(ScriptError::NotFound)
    );
}

fn request(raw: &str) -> Request {
    parse_head(raw.as_bytes(), &HeadLimits::default())
        .unwrap()
        .unwrap()
}

fn env_map(req: &Request, script: &Script, content_length: Option<u64>) -> HashMap<String, String> {
    let input = EnvInput {
        req,
        script,
        script_filename: Path::new("/srv/cgi-bin/app.cgi"),
        document_root: Path::new("/srv/www/"),
        peer: "192.0.2.7:40000".parse().unwrap(),
        local: "127.0.0.1:8080".parse().unwrap(),
        content_length,
        path: Some(OsStr::new("/usr/bin:/bin")),
        tls: None,
    };
    let env = environment(&input);
    let map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(map.len(), env.len(), "no variable appears twice");
    map
}

fn script(path_info: Option<&str>) -> Script {
    Script {
        program: PathBuf::from("/srv/cgi-bin/app.cgi"),
        script_name: b"/cgi-bin/app.cgi".to_vec(),
        path_info: path_info.map(|p| p.as_bytes().to_vec()),
        nph: false,
    }
}

#[test]
fn environment_has_every_meta_variable() {
    let req = request(
        "POST /cgi-bin/app.cgi/extra/path?a=1&b=%20 HTTP/1.1\r\nHost: example.org:8080\r\n\
         Content-Type: text/plain\r\nContent-Length: 5\r\nX-Custom: one\r\nx-custom: two\r\n\
         Proxy: http://evil\r\nX_Spoof: no\r\nCookie: c=1\r\n\r\n",
    );
    let env = env_map(&req, &script(Some("/extra/path")), Some(5));
    let expect = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_NAME", "example.org"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "8080"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_METHOD", "POST"),
        ("REQUEST_URI", "/cgi-bin/app.cgi/extra/path?a=1&b=%20"),
        ("QUERY_STRING", "a=1&b=%20"),
        ("SCRIPT_NAME", "/cgi-bin/app.cgi"),
        ("SCRIPT_FILENAME", "/srv/cgi-bin/app.cgi"),
        ("PATH_INFO", "/extra/path"),
        ("PATH_TRANSLATED", "/srv/www/extra/path"),
        ("DOCUMENT_ROOT", "/srv/www/"),
        ("REMOTE_ADDR", "192.0.2.7"),
        ("REMOTE_PORT", "40000"),
        ("CONTENT_LENGTH", "5"),
        ("CONTENT_TYPE", "text/plain"),
        ("HTTP_HOST", "example.org:8080"),
        ("HTTP_X_CUSTOM", "one, two"),
        ("HTTP_COOKIE", "c=1"),
        ("PATH", "/usr/bin:/bin"),
    ];
    for (name, value) in expect {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert!(env["SERVER_SOFTWARE"].starts_with("occwserv/"));
    for absent in [
        "HTTP_PROXY",
        "HTTP_X_SPOOF",
        "HTTP_CONTENT_LENGTH",
        "HTTP_CONTENT_TYPE",
        "AUTH_TYPE",
        "HOME",
    ] {
        assert!(!env.contains_key(absent), "{absent} must not be set");
    }
}

#[test]
fn environment_without_body_or_path_info() {
    let req = request("GET /cgi-bin/app.cgi HTTP/1.0\r\nContent-Type: text/plain\r\n\r\n");
    let env = env_map(&req, &script(None), None);
    assert_eq!(env["QUERY_STRING"], "");
    assert_eq!(env["SERVER_NAME"], "127.0.0.1");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.0");
    for absent in [
        "PATH_INFO",
        "PATH_TRANSLATED",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
    ] {
        assert!(!env.contains_key(absent), "{absent} must not be set");
    }
}

#[test]
fn server_name_strips_the_port() {
    let local: SocketAddr = "10.0.0.1:80".parse().unwrap();
    assert_eq!(server_name(Some("a.example"), local), "a.example");
    assert_eq!(server_name(Some("a.example:81"), local), "a.example");
    assert_eq!(server_name(Some("[::1]:81"), local), "[::1]");
    assert_eq!(server_name(Some(""), local), "10.0.0.1");
    assert_eq!(server_name(None, local), "10.0.0.1");
}

fn document(raw: &[u8]) -> (Head, usize) {
    match parse_response(raw) {
        Ok(Some((Response::Document(head), n))) => (head, n),
        other => panic!("not a document: {other:?}"),
    }
}

#[test]
fn response_head_with_content_type() {
    let raw = b"Content-Type: text/html\nX-A: 1\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nbody";
    let (head, n) = document(raw);
    assert_eq!(&raw[n..], b"body");
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length, None);
    let names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Content-Type", "X-A", "Set-Cookie", "Set-Cookie"]);
}

#[test]
fn response_head_with_crlf_status_and_length() {
    let raw = b"Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\nServer: x\r\n\r\ntea!";
    let (head, n) = document(raw);
    assert_eq!(&raw[n..], b"tea!");
    assert_eq!(head.status, 418);
    assert_eq!(head.reason.as_deref(), Some("I'm a teapot"));
    assert_eq!(head.content_length, Some(4));
    assert_eq!(
        head.headers,
        vec![("Content-Type".to_string(), b"text/plain".to_vec())]
    );
    let (head, _) = document(b"Status: 404\n\n");
    assert_eq!((head.status, head.reason), (404, None));
}

#[test]
fn location_kinds() {
    let (head, _) = document(b"Location: http://example.org/x\n\n");
    assert_eq!(head.status, 302);
    assert_eq!(
        head.headers,
        vec![("Location".to_string(), b"http://example.org/x".to_vec())]
    );
    let (head, _) = document(b"Status: 301 Moved\nLocation: https://example.org/\n\n");
    assert_eq!((head.status, head.reason.as_deref()), (301, Some("Moved")));
    assert_eq!(
        parse_response(b"Location: /index.html?x=1\n\n").unwrap(),
        Some((Response::LocalRedirect("/index.html?x=1".to_string()), 27))
    );
    let (head, _) = document(b"Status: 303 See Other\nLocation: /next\n\n");
    assert_eq!(head.status, 303);
    let (head, _) = document(b"Location: //other.example/\n\n");
    assert_eq!(head.status, 302);
}

#[test]
fn incomplete_heads_ask_for_more() {
    assert_eq!(parse_response(b""), Ok(None));
    assert_eq!(parse_response(b"Content-Type: text/plain\n"), Ok(None));
    assert_eq!(parse_response(b"Content-Type: text/pl"), Ok(None));
}

#[test]
fn malformed_heads_are_refused() {
    let refused: [&[u8]; 10] = [
        b"\n\nbody",
        b"<html>hello</html>\n\n",
        b"X-Only: 1\n\n",
        b"Status: abc\n\n",
        b"Status: 99\n\n",
        b"Status: 100 Continue\n\n",
        b"Status: 2000\n\n",
        b"Content-Type: text/plain\nContent-Length: x\n\n",
        b"Content-Type: text/plain\nContent-Length: 1\nContent-Length: 2\n\n",
        b"Location: has space\n\n",
    ];
    for raw in refused {
        assert!(
            matches!(parse_response(raw), Err(HeadError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    let huge = format!(
        "Content-Type: text/plain\nX: {}",
        "a".repeat(MAX_RESPONSE_HEAD_BYTES + 1)
    );
    assert_eq!(parse_response(huge.as_bytes()), Err(HeadError::TooLarge));
}

#[test]
fn nph_status_line() {
    assert_eq!(nph_status(b"HTTP/1.1 207 Multi\r\nX: y\r\n\r\n"), Some(207));
    assert_eq!(nph_status(b"HTTP/1.0 200\r\n\r\n"), Some(200));
    assert_eq!(nph_status(b"HTTP/1.0 20x OK\r\n"), None);
    assert_eq!(nph_status(b"garbage\n"), None);
}
