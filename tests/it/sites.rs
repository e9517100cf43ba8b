//! Virtual hosts and site rules (issue 13), over real sockets: curl with `--resolve` where a
//! user would use a browser, raw requests where the exact bytes matter, and clients bound to
//! 127.0.0.2 to stand for a remote address.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{Response, Server, ServerOpts};

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// Three site roots under `base`: `a` (example.test), `b` (*.wild.test, default), `spa`.
fn make_sites(base: &Path) {
    write(&base.join("a/index.html"), "site a\n");
    write(&base.join("a/assets/app.css"), "body{}\n");
    write(&base.join("a/new/page.html"), "new page\n");
    write(&base.join("a/private/index.html"), "secret\n");
    write(&base.join("a/admin/index.html"), "admin\n");
    write(
        &base.join("a/errors/error404.html"),
        "site a has no such page\n",
    );
    write(&base.join("b/index.html"), "site b\n");
    write(&base.join("spa/index.html"), "<div id=app></div>\n");
    write(&base.join("spa/main.js"), "start()\n");
    write(&base.join("files/<script>.html"), "x\n");
    write(&base.join("files/b & c.txt"), "12345\n");
    write(&base.join("files/.hidden"), "h\n");
    write(&base.join("files/sub/inner.txt"), "i\n");
    write(&base.join("files/cgi-bin/run.sh"), "just a file\n");
    write(&base.join("files/ogi/hello"), "not a plug-in\n");
    write(&base.join("a/cgi-bin/run.sh"), "never served\n");
    write(&base.join("outside/secret.txt"), "outside\n");
    std::os::unix::fs::symlink(base.join("outside"), base.join("files/escape")).unwrap();
}

fn htpasswd(path: &Path, user: &str, password: &str) {
    let status = Command::new("htpasswd")
        .args(["-B", "-c", "-b"])
        .arg(path)
        .args([user, password])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("htpasswd (apache2-utils) is installed");
    assert!(status.success());
}

fn sites_config(base: &Path) -> String {
    let b = base.display();
    format!(
        r#"
[cache]
revalidate_ms = 100

[[site]]
names = ["example.test", "www.example.test"]
root = "{b}/a"
error_pages = "{b}/a/errors"

[[site.redirect]]
from = "/old/*"
to = "/new/$1"
status = 301

[[site.redirect]]
from = "/moved"
to = "https://example.test$uri"
status = 308

[[site.headers]]
path = "/assets/*"
set = {{ "Cache-Control" = "public, max-age=31536000, immutable", "Server" = "" }}

[[site.headers]]
path = "/*"
set = {{ "X-Site" = "a" }}

[[site.auth]]
path = "/private/*"
htpasswd = "{b}/htpasswd"
realm = "Private"

[[site.access]]
path = "/admin/*"
allow = ["127.0.0.1"]

[[site]]
names = ["*.wild.test", "b.test"]
root = "{b}/b"
default = true

[[site]]
names = ["spa.test"]
root = "{b}/spa"
try_files = ["$uri", "$uri/", "/index.html"]

[[site]]
names = ["files.test"]
root = "{b}/files"
autoindex = true
cgi = false
plugins = false
"#
    )
}

/// The server, and the directory holding its sites (removed when dropped).
fn start_sites() -> (Server, tempfile::TempDir) {
    let base = tempfile::tempdir().unwrap();
    make_sites(base.path());
    htpasswd(&base.path().join("htpasswd"), "alice", "s3cret");
    let server = Server::start(ServerOpts {
        extra_config: sites_config(base.path()),
        ..ServerOpts::default()
    });
    (server, base)
}

/// `curl -si` with `--resolve` for every test host, returning the parsed response.
fn curl(server: &Server, url_host: &str, path: &str, extra: &[&str]) -> Response {
    let port = server.addr().port();
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20"])
        .arg("--resolve")
        .arg(format!("{url_host}:{port}:127.0.0.1"))
        .args(extra)
        .arg(format!("http://{url_host}:{port}{path}"))
        .output()
        .unwrap();
    Response::parse(&out.stdout)
}

/// A raw request with the given Host, on a fresh connection.
fn with_host(server: &Server, host: &str, path: &str) -> Response {
    server.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ))
}

/// A raw request from a client bound to `from` (another loopback address).
fn from_address(server: &Server, from: &str, raw: &str) -> Response {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&server.addr().into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    Response::parse(&out)
}

#[test]
fn hosts_choose_sites_exact_wildcard_and_default() {
    let (server, _sites) = start_sites();
    assert_eq!(curl(&server, "example.test", "/", &[]).text(), "site a\n");
    assert_eq!(
        curl(&server, "www.example.test", "/", &[]).text(),
        "site a\n"
    );
    assert_eq!(curl(&server, "x.wild.test", "/", &[]).text(), "site b\n");
    assert_eq!(curl(&server, "a.b.wild.test", "/", &[]).text(), "site b\n");
    assert_eq!(
        curl(&server, "spa.test", "/", &[]).text(),
        "<div id=app></div>\n"
    );
    // No site claims it: the default site (b), not the first one.
    assert_eq!(curl(&server, "unknown.test", "/", &[]).text(), "site b\n");
    assert_eq!(with_host(&server, "localhost", "/").text(), "site b\n");
    // Case, a trailing dot and the port do not matter.
    assert_eq!(
        with_host(&server, "EXAMPLE.Test.:80", "/").text(),
        "site a\n"
    );
    // HTTP/1.0 without Host: the default site.
    let old = server.request("GET / HTTP/1.0\r\n\r\n");
    assert_eq!((old.status, old.text().as_str()), (200, "site b\n"));
    // A site's own error pages.
    let missing = curl(&server, "example.test", "/nope.html", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.text(), "site a has no such page\n");
    // The same path on two sites is two cache entries: ask often enough to cache both.
    for _ in 0..4 {
        assert_eq!(with_host(&server, "example.test", "/").text(), "site a\n");
        assert_eq!(with_host(&server, "b.test", "/").text(), "site b\n");
    }
}

#[test]
fn invalid_host_values_are_400() {
    let (server, _sites) = start_sites();
    for host in [
        "example.test:80x",
        "example.test:123456",
        "[::1",
        "[::1]x",
        "[zz]",
        "a/b",
        "a@b",
        "exa mple.test",
    ] {
        let resp = with_host(&server, host, "/");
        assert_eq!(resp.status, 400, "Host: {host}");
    }
    assert_eq!(with_host(&server, "[::1]:8080", "/").status, 200);
}

#[test]
fn redirects_keep_the_rest_and_make_absolute_urls() {
    let (server, _sites) = start_sites();
    let resp = curl(&server, "example.test", "/old/page.html?x=1", &[]);
    assert_eq!(resp.status, 301);
    assert_eq!(resp.header("location"), Some("/new/page.html?x=1"));
    assert_eq!(resp.header("x-site"), Some("a"));
    // curl follows it to the new page.
    let port = server.addr().port();
    let followed = Command::new("curl")
        .args(["-s", "-L", "--max-time", "20", "--resolve"])
        .arg(format!("example.test:{port}:127.0.0.1"))
        .arg(format!("http://example.test:{port}/old/page.html"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "new page\n");
    let absolute = curl(&server, "example.test", "/moved", &[]);
    assert_eq!(absolute.status, 308);
    assert_eq!(
        absolute.header("location"),
        Some("https://example.test/moved")
    );
    // Another site has no such rule.
    assert_eq!(curl(&server, "b.test", "/old/page.html", &[]).status, 404);
}

#[test]
fn headers_are_set_and_removed_cached_or_not() {
    let (server, _sites) = start_sites();
    for _ in 0..6 {
        let resp = curl(&server, "example.test", "/assets/app.css", &[]);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "body{}\n");
        assert_eq!(
            resp.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(resp.header("server"), None);
        assert_eq!(resp.header("x-site"), Some("a"));
    }
    let etag = curl(&server, "example.test", "/assets/app.css", &[])
        .header("etag")
        .unwrap()
        .to_string();
    let not_modified = curl(
        &server,
        "example.test",
        "/assets/app.css",
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.header("cache-control").is_some());
    let page = curl(&server, "example.test", "/", &[]);
    assert_eq!(page.header("cache-control"), None);
    assert!(page.header("server").is_some());
    // Not on an error (as nginx's add_header), not on another site.
    assert_eq!(
        curl(&server, "example.test", "/nope", &[]).header("x-site"),
        None
    );
    assert_eq!(curl(&server, "b.test", "/", &[]).header("x-site"), None);
}

#[test]
fn try_files_serves_a_single_page_app_deep_link() {
    let (server, _sites) = start_sites();
    let deep = curl(&server, "spa.test", "/users/42/settings", &[]);
    assert_eq!(deep.status, 200);
    assert_eq!(deep.text(), "<div id=app></div>\n");
    assert!(deep
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let asset = curl(&server, "spa.test", "/main.js", &[]);
    assert_eq!(asset.text(), "start()\n");
    // Candidates are paths below the root like any other.
    assert_eq!(
        with_host(&server, "spa.test", "/%2e%2e/a/index.html").status,
        400
    );
    assert_eq!(
        with_host(&server, "spa.test", "/../b/index.html").status,
        400
    );
}

#[test]
fn autoindex_lists_escaped_names_and_stays_below_the_root() {
    let (server, _sites) = start_sites();
    let page = curl(&server, "files.test", "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("&lt;script&gt;.html</a>"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("href=\"./%3Cscript%3E%2Ehtml\""), "{html}");
    assert!(html.contains("b &amp; c.txt</a>"), "{html}");
    assert!(!html.contains(".hidden"), "{html}");
    // The symlink to a directory outside the root is not listed.
    assert!(!html.contains("escape"), "{html}");
    // Sub-directories first.
    let sub = html.find("sub/</a>").unwrap();
    let script = html.find("&lt;script&gt;").unwrap();
    assert!(sub < script);
    // The escaped link leads to the file.
    assert_eq!(
        curl(&server, "files.test", "/%3Cscript%3E%2Ehtml", &[]).text(),
        "x\n"
    );
    let json = curl(&server, "files.test", "/?format=json", &[]);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let list: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cgi-bin", "ogi", "sub", "<script>.html", "b & c.txt"]
    );
    assert_eq!(list[4]["size"], 6);
    assert_eq!(list[0]["type"], "directory");
    let inner = curl(&server, "files.test", "/sub/", &[]).text();
    assert!(inner.contains("inner.txt</a>") && inner.contains("href=\"../\""));
    // Never outside the root.
    assert_eq!(with_host(&server, "files.test", "/../").status, 400);
    assert_eq!(with_host(&server, "files.test", "/escape/").status, 404);
    // A site without autoindex still refuses to list.
    assert_eq!(curl(&server, "example.test", "/assets/", &[]).status, 403);
}

#[test]
fn basic_auth_with_an_htpasswd_bcrypt_file() {
    let (server, _sites) = start_sites();
    let none = curl(&server, "example.test", "/private/", &[]);
    assert_eq!(none.status, 401);
    assert_eq!(
        none.header("www-authenticate"),
        Some("Basic realm=\"Private\", charset=\"UTF-8\"")
    );
    let right = curl(
        &server,
        "example.test",
        "/private/",
        &["-u", "alice:s3cret"],
    );
    assert_eq!((right.status, right.text().as_str()), (200, "secret\n"));
    let wrong = curl(&server, "example.test", "/private/", &["-u", "alice:guess"]);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("www-authenticate").is_some());
    let stranger = curl(&server, "example.test", "/private/", &["-u", "bob:s3cret"]);
    assert_eq!(stranger.status, 401);
    // Other spellings of the path are the same path.
    for path in ["/%70rivate/", "//private/index.html", "/assets/../private/"] {
        assert_eq!(
            with_host(&server, "example.test", path).status,
            401,
            "{path}"
        );
    }
    // Malformed Authorization values are a plain 401, never a crash.
    for value in ["Basic !!!", "Basic", "Bearer x", "Basic YWxpY2U="] {
        let resp = server.request(&format!(
            "GET /private/ HTTP/1.1\r\nHost: example.test\r\nAuthorization: {value}\r\n\
             Connection: close\r\n\r\n"
        ));
        assert_eq!(resp.status, 401, "{value}");
    }
    assert_eq!(curl(&server, "example.test", "/", &[]).status, 200);
}

#[test]
fn access_rules_refuse_other_addresses() {
    let (server, _sites) = start_sites();
    let raw = "GET /admin/ HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n";
    let local = from_address(&server, "127.0.0.1", raw);
    assert_eq!((local.status, local.text().as_str()), (200, "admin\n"));
    let other = from_address(&server, "127.0.0.2", raw);
    assert_eq!(other.status, 403);
    let page = from_address(
        &server,
        "127.0.0.2",
        "GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(page.status, 200);
    // curl bound to the other address sees the same.
    let port = server.addr().port();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            "127.0.0.2",
        ])
        .arg("--resolve")
        .arg(format!("example.test:{port}:127.0.0.1"))
        .arg(format!("http://example.test:{port}/admin/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
}

#[test]
fn status_pages_only_for_allowed_addresses_and_under_their_prefix() {
    let root = tempfile::tempdir().unwrap();
    write(&root.path().join("stats.html"), "my own stats page\n");
    let server = Server::start(ServerOpts {
        root: Some(root.path().to_path_buf()),
        extra_config: "[stats]\nallow = [\"127.0.0.1/32\"]\n".into(),
        ..ServerOpts::default()
    });
    for path in ["/stats.html", "/stats.json", "/metrics"] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert_eq!(
            from_address(&server, "127.0.0.1", &raw).status,
            200,
            "{path}"
        );
        assert_eq!(
            from_address(&server, "127.0.0.2", &raw).status,
            403,
            "{path}"
        );
    }
    drop(server);
    let moved = Server::start(ServerOpts {
        root: Some(root.path().to_path_buf()),
        extra_config: "[stats]\npath_prefix = \"/_status/\"\nallow = [\"127.0.0.1\"]\n".into(),
        ..ServerOpts::default()
    });
    assert_eq!(moved.get("/stats.html").text(), "my own stats page\n");
    assert_eq!(moved.get("/_status/stats.json").status, 200);
    assert_eq!(moved.get("/metrics").status, 404);
    let refused = from_address(
        &moved,
        "127.0.0.2",
        "GET /_status/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(refused.status, 403);
}

#[test]
fn the_old_stats_key_still_works_with_a_deprecation_line() {
    let server = Server::start(ServerOpts {
        extra_config: "stats = false\n".into(),
        ..ServerOpts::default()
    });
    assert!(server.wait_for_log("deprecated; use `[stats] enabled`"));
    assert_eq!(server.get("/stats.json").status, 200);
}

/// Starts the binary on a config that must be refused; returns (exit code, stderr).
fn refused_at_start(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(crate::support::binary())
        .arg("--config")
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_site_configs_are_refused_at_start_and_on_sighup() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().display();
    let cases = [
        (
            format!("[[site]]\nnames = [\"a.test\"]\nroot = \"{root}\"\n[[site]]\nnames = [\"a.test\"]\nroot = \"{root}\"\n"),
            "already site[0]",
        ),
        (
            format!("[[site]]\nnames = [\"a.test\"]\nroot = \"{root}\"\nrot = 1\n"),
            "rot",
        ),
        (
            format!("[[site]]\nroot = \"{root}\"\n[[site.access]]\npath = \"/a/*\"\ndeny = [\"10.0.0.0/99\"]\n"),
            "10.0.0.0/99",
        ),
        (
            format!("[[site]]\nroot = \"{root}\"\n[[site.auth]]\npath = \"/a/*\"\nhtpasswd = \"{root}/missing\"\n"),
            "missing",
        ),
        ("[stats]\nallow = [\"everyone\"]\n".to_string(), "everyone"),
    ];
    for (config, needle) in &cases {
        let (code, stderr) = refused_at_start(config);
        assert_eq!(code, Some(2), "{config}\n{stderr}");
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
    }
    // On SIGHUP the same file is refused and the running sites are kept.
    let (server, _sites) = start_sites();
    let config = std::fs::read_to_string(&server.config_path).unwrap();
    std::fs::write(
        &server.config_path,
        format!("{config}\n[[site]]\nnames = [\"example.test\"]\nroot = \"{root}\"\n"),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(server.wait_for_log("config reload refused"));
    assert!(server
        .error_log()
        .contains("\"example.test\" is already site[0]'s"));
    assert_eq!(with_host(&server, "example.test", "/").text(), "site a\n");
}

#[test]
fn sighup_swaps_a_site_root_under_load_without_a_failed_request() {
    let (server, _sites) = start_sites();
    let base = tempfile::tempdir().unwrap();
    write(&base.path().join("index.html"), "site a, new root\n");
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen_new = 0u64;
                let mut failures = Vec::new();
                let mut requests = 0u64;
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    s.write_all(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
                        .unwrap();
                    let resp = crate::support::read_response(&mut s, false);
                    requests += 1;
                    match (resp.status, resp.text().as_str()) {
                        (200, "site a\n") => {}
                        (200, "site a, new root\n") => seen_new += 1,
                        other => failures.push(format!("{other:?}")),
                    }
                }
                (requests, seen_new, failures)
            })
        })
        .collect();
    let config = std::fs::read_to_string(&server.config_path).unwrap();
    let old_root = format!("{}/a\"", _sites.path().display());
    std::fs::write(
        &server.config_path,
        config.replacen(&old_root, &format!("{}\"", base.path().display()), 1),
    )
    .unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(server.wait_for_log("config reloaded"));
    // Wait (bounded) until a fresh request sees the new root, then let the clients run on.
    let deadline = Instant::now() + Duration::from_secs(20);
    while with_host(&server, "example.test", "/").text() != "site a, new root\n" {
        assert!(Instant::now() < deadline, "the new root never showed");
    }
    for _ in 0..50 {
        assert_eq!(
            with_host(&server, "example.test", "/").text(),
            "site a, new root\n"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for client in clients {
        let (requests, _seen_new, failures) = client.join().unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        total += requests;
    }
    assert!(total > 0);
}

#[test]
fn text_types_carry_a_charset_and_types_can_be_added() {
    let root = tempfile::tempdir().unwrap();
    write(&root.path().join("app.js"), "go()\n");
    write(&root.path().join("data.json"), "{}\n");
    write(&root.path().join("module.wasm"), "\0asm");
    write(&root.path().join("notes.TXT2"), "n\n");
    write(&root.path().join("logo.png"), "png");
    let server = Server::start(ServerOpts {
        root: Some(root.path().to_path_buf()),
        extra_config: "[types]\nwasm = \"application/wasm\"\ntxt2 = \"text/plain\"\n".into(),
        ..ServerOpts::default()
    });
    let js = server.get("/app.js");
    assert!(js
        .header("content-type")
        .unwrap()
        .ends_with("javascript; charset=utf-8"));
    assert_eq!(
        server.get("/data.json").header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        server.get("/module.wasm").header("content-type"),
        Some("application/wasm")
    );
    assert_eq!(
        server.get("/notes.TXT2").header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        server.get("/logo.png").header("content-type"),
        Some("image/png")
    );
}

/// Waits (bounded) until `check` holds for `/stats.json`; returns the last one read.
fn wait_for_stats(
    server: &Server,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = server.stats();
        if check(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_cache_log_and_stats_know_the_site() {
    let (server, _sites) = start_sites();
    for _ in 0..4 {
        assert_eq!(with_host(&server, "example.test", "/").text(), "site a\n");
        assert_eq!(with_host(&server, "b.test", "/").text(), "site b\n");
    }
    // Both sites' `/` are cached, under different keys, and each still answers its own.
    let cached = |s: &serde_json::Value| {
        let rows = s["cache"]["rows"].as_array().cloned().unwrap_or_default();
        let has = |p: &str| {
            rows.iter()
                .any(|r| r["path"] == p && r["state"] == "cached")
        };
        has("/") && has("*.wild.test/")
    };
    let stats = wait_for_stats(&server, cached);
    assert!(cached(&stats), "{}", stats["cache"]);
    assert_eq!(with_host(&server, "example.test", "/").text(), "site a\n");
    assert_eq!(with_host(&server, "b.test", "/").text(), "site b\n");
    let counted = |s: &serde_json::Value| {
        let rows = s["sites"].as_array().cloned().unwrap_or_default();
        let row = |name: &str| rows.iter().find(|r| r["name"] == name).cloned();
        row("example.test").is_some_and(|r| r["requests"].as_u64() >= Some(5))
            && row("*.wild.test").is_some_and(|r| r["status"]["2xx"].as_u64() >= Some(5))
    };
    // The stats process flushes the recycler's records before it answers: exact at once.
    let stats = server.stats();
    assert!(counted(&stats), "{}", stats["sites"]);
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("occwserv_site_requests_total{site=\"example.test\",class=\"2xx\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("occwserv_site_body_bytes_total{site=\"*.wild.test\"}"));
    let page = server.get("/stats.html").text();
    assert!(page.contains("<h2>Sites</h2>") && page.contains("<td>example.test</td>"));
    // The access log names the site first, as Apache's vhost_combined.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.access_log().contains("*.wild.test 127.0.0.1 - - [") {
        assert!(Instant::now() < deadline, "{}", server.access_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server
        .access_log()
        .lines()
        .any(|l| l.starts_with("example.test 127.0.0.1 - - [")
            && l.contains("\"GET / HTTP/1.1\" 200 7")));
}

#[test]
fn access_log_as_json_lines() {
    let server = Server::start(ServerOpts {
        extra_config: "access_log_format = \"json\"\n".into(),
        ..ServerOpts::default()
    });
    assert_eq!(
        server
            .request("GET /plain.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t \"q\"\r\nConnection: close\r\n\r\n")
            .status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.access_log().contains("plain.txt") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.access_log();
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(line["request"], "GET /plain.txt HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["site"], "default");
    assert_eq!(line["user_agent"], "t \"q\"");
    assert_eq!(line["remote_addr"], "127.0.0.1");
}

#[test]
fn a_site_can_turn_cgi_and_plugins_off_for_itself() {
    let (server, _sites) = start_sites();
    let file = curl(&server, "files.test", "/cgi-bin/run.sh", &[]);
    assert_eq!((file.status, file.text().as_str()), (200, "just a file\n"));
    let ogi = curl(&server, "files.test", "/ogi/hello", &[]);
    assert_eq!((ogi.status, ogi.text().as_str()), (200, "not a plug-in\n"));
    // Elsewhere /cgi-bin/ is still the CGI directory, never the site's file.
    let cgi = curl(&server, "example.test", "/cgi-bin/run.sh", &[]);
    assert_ne!(cgi.text(), "never served\n");
    assert_eq!(cgi.status, 404);
}
