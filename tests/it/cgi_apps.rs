//! Real CGI applications from Debian behind cgi.farm: cgit and gitweb serving a git
//! repository made here, and a PHP page run by php-cgi. They are deployed the way
//! `docs/CGI.md` tells a user to.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{read_response, Server, ServerOpts};

const COMMIT_MESSAGE: &str = "Add the occwserv greeting";

/// A temporary directory holding a bare git repository with two commits, and a cgi-bin.
struct Site {
    dir: tempfile::TempDir,
    /// The newest commit's id.
    head: String,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        let git = |args: &[&str], cwd: &Path| {
            let out = Command::new("git")
                .args([
                    "-c",
                    "user.name=Test Author",
                    "-c",
                    "user.email=author@example.test",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .current_dir(cwd)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        std::fs::create_dir_all(&work).unwrap();
        git(&["init", "-q"], &work);
        std::fs::write(work.join("README"), "first\n").unwrap();
        git(&["add", "README"], &work);
        git(&["commit", "-q", "-m", "Initial import"], &work);
        std::fs::write(work.join("greeting.txt"), "hello from occwserv\n").unwrap();
        git(&["add", "greeting.txt"], &work);
        git(&["commit", "-q", "-m", COMMIT_MESSAGE], &work);
        let head = git(&["rev-parse", "HEAD"], &work).trim().to_string();
        std::fs::create_dir_all(dir.path().join("projects")).unwrap();
        git(
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                "projects/demo.git",
            ],
            dir.path(),
        );
        std::fs::create_dir_all(dir.path().join("cgi-bin")).unwrap();
        Site { dir, head }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes an executable file under cgi-bin.
    fn program(&self, name: &str, text: &str) {
        let path = self.path("cgi-bin").join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn server(&self) -> Server {
        Server::start(ServerOpts {
            cgi_bin: Some(self.path("cgi-bin")),
            ..ServerOpts::default()
        })
    }
}

/// The Debian packages `cgit`, `gitweb` and `php-cgi` are installed by `.ci/run`.
fn require(program: &str) {
    assert!(
        Path::new(program).exists(),
        "{program} is missing: apt-get install cgit gitweb php-cgi"
    );
}

#[test]
fn cgi_app_cgit_renders_summary_and_commit_pages() {
    require("/usr/lib/cgit/cgit.cgi");
    let site = Site::new();
    let config = format!(
        "virtual-root=/cgi-bin/cgit/\ncache-size=0\nrepo.url=demo\nrepo.path={}\nrepo.desc=a repository made by the test\n",
        site.path("projects/demo.git").display()
    );
    std::fs::write(site.path("cgitrc"), config).unwrap();
    site.program(
        "cgit",
        &format!(
            "#!/bin/sh\nCGIT_CONFIG={} exec /usr/lib/cgit/cgit.cgi\n",
            site.path("cgitrc").display()
        ),
    );
    let server = site.server();

    let index = server.get("/cgi-bin/cgit/");
    assert_eq!(index.status, 200, "{}", index.text());
    assert!(index.text().contains("a repository made by the test"));

    let summary = server.get("/cgi-bin/cgit/demo/");
    assert_eq!(summary.status, 200);
    assert!(summary
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let text = summary.text();
    assert!(
        text.contains("<title>demo - a repository made by the test</title>"),
        "{text}"
    );
    assert!(
        text.contains(COMMIT_MESSAGE),
        "the summary lists the last commit"
    );

    // The commit page on a keep-alive connection, with the full message and the diff.
    let mut s = server.connect();
    let request = format!(
        "GET /cgi-bin/cgit/demo/commit/?id={} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        site.head
    );
    s.write_all(request.as_bytes()).unwrap();
    let commit = read_response(&mut s, false);
    assert_eq!(commit.status, 200);
    let text = commit.text();
    assert!(
        text.contains(&format!("<div class='commit-subject'>{COMMIT_MESSAGE}")),
        "{text}"
    );
    assert!(text.contains(&site.head) && text.contains("greeting.txt"));
    assert!(text.contains("Test Author"));

    // A plain file from the tree, through cgit's own Content-Length or chunked streaming.
    s.write_all(b"GET /cgi-bin/cgit/demo/plain/greeting.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let plain = read_response(&mut s, false);
    assert_eq!(
        (plain.status, plain.text().as_str()),
        (200, "hello from occwserv\n")
    );
}

#[test]
fn cgi_app_gitweb_renders_summary_and_commit_pages() {
    require("/usr/share/gitweb/gitweb.cgi");
    let site = Site::new();
    let config = format!(
        "$projectroot = \"{}\";\n$GIT = \"/usr/bin/git\";\n$site_name = \"occwserv gitweb test\";\n",
        site.path("projects").display()
    );
    std::fs::write(site.path("gitweb.conf"), config).unwrap();
    site.program(
        "gitweb.cgi",
        &format!(
            "#!/bin/sh\nGITWEB_CONFIG={} exec /usr/share/gitweb/gitweb.cgi\n",
            site.path("gitweb.conf").display()
        ),
    );
    let server = site.server();

    let projects = server.get("/cgi-bin/gitweb.cgi");
    assert_eq!(projects.status, 200, "{}", projects.text());
    assert!(projects.text().contains("demo.git"));

    let summary = server.get("/cgi-bin/gitweb.cgi?p=demo.git;a=summary");
    assert_eq!(summary.status, 200);
    let text = summary.text();
    assert!(
        text.contains("occwserv gitweb test") && text.contains(COMMIT_MESSAGE),
        "{text}"
    );

    let commit = server.get(&format!(
        "/cgi-bin/gitweb.cgi?p=demo.git;a=commit;h={}",
        site.head
    ));
    assert_eq!(commit.status, 200);
    let text = commit.text();
    assert!(
        text.contains(COMMIT_MESSAGE) && text.contains(&site.head) && text.contains("greeting.txt"),
        "{text}"
    );

    // gitweb answers an unknown project with its own 404 through the Status header.
    assert_eq!(
        server
            .get("/cgi-bin/gitweb.cgi?p=nothing.git;a=summary")
            .status,
        404
    );
}

#[test]
fn cgi_app_php_cgi_runs_get_and_post() {
    require("/usr/bin/php-cgi");
    let site = Site::new();
    site.program(
        "form.php",
        "#!/usr/bin/php-cgi\n<?php\nheader('X-Php: yes');\n\
         echo 'name=', htmlspecialchars($_GET['name'] ?? 'nobody'), ' method=', $_SERVER['REQUEST_METHOD'], \"\\n\";\n\
         if ($_SERVER['REQUEST_METHOD'] === 'POST') { echo 'field=', $_POST['field'] ?? '', \"\\n\"; }\n\
         if (isset($_GET['go'])) { header('Location: http://example.org/gone'); }\n",
    );
    let server = site.server();

    let resp = server.get("/cgi-bin/form.php?name=%3Cb%3Eworld");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-php"), Some("yes"));
    assert_eq!(resp.text(), "name=&lt;b&gt;world method=GET\n");

    let body = "field=posted+value&other=1";
    let resp = server.request(&format!(
        "POST /cgi-bin/form.php?name=p HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(resp.text(), "name=p method=POST\nfield=posted value\n");

    // A query string without `=` is never passed as arguments (CVE-2012-1823).
    let resp = server.get("/cgi-bin/form.php?-s");
    assert_eq!(resp.status, 200);
    assert!(!resp.text().contains("<?php"), "the source is never shown");

    let resp = server.get("/cgi-bin/form.php?go=1");
    assert_eq!(
        (resp.status, resp.header("location")),
        (302, Some("http://example.org/gone"))
    );
}
