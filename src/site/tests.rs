use super::*;

fn config(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text)
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn hosts_pick_exact_wildcard_and_default_sites() {
    let d = dir();
    let root = d.path().display();
    let cfg = config(&format!(
        r#"
        [[site]]
        names = ["example.test", "*.example.test"]
        root = "{root}"
        [[site]]
        names = ["other.test", "*.deep.example.test"]
        root = "{root}"
        default = true
        "#
    ))
    .unwrap();
    let sites = &cfg.site_table;
    let pick = |host: &str| sites.pick(Some(host)).map(|s| s.id);
    assert_eq!(pick("example.test"), Ok(0));
    assert_eq!(pick("EXAMPLE.test.:8080"), Ok(0));
    assert_eq!(pick("www.example.test"), Ok(0));
    assert_eq!(pick("a.deep.example.test"), Ok(1));
    assert_eq!(pick("other.test"), Ok(1));
    assert_eq!(pick("unknown.test"), Ok(1));
    assert_eq!(pick(""), Ok(1));
    assert_eq!(sites.pick(None).map(|s| s.id), Ok(1));
    assert_eq!(pick("[::1"), Err(HostError::BadLiteral));
    assert_eq!(sites.list[1].cache_key("/a"), "other.test/a");
    assert_eq!(sites.list[0].cache_key("/a"), "/a");
    assert_eq!(sites.for_cache_key("other.test/a").map(|s| s.id), Some(1));
    assert_eq!(sites.for_cache_key("/a").map(|s| s.id), Some(0));
}

#[test]
fn bad_site_configs_are_refused_by_name() {
    let d = dir();
    let root = d.path().display();
    let refused = |extra: &str| {
        config(&format!(
            "[[site]]\nnames = [\"a.test\"]\nroot = \"{root}\"\n{extra}"
        ))
        .unwrap_err()
        .0
    };
    let twice = refused(&format!(
        "[[site]]\nnames = [\"A.test\"]\nroot = \"{root}\""
    ));
    assert!(twice.contains("already site[0]"), "{twice}");
    let unknown = refused("colour = \"red\"");
    assert!(unknown.contains("colour"), "{unknown}");
    let cidr = refused("[[site.access]]\npath = \"/a/*\"\nallow = [\"10.0.0.0/40\"]");
    assert!(cidr.contains("10.0.0.0/40"), "{cidr}");
    let missing = refused("[[site.auth]]\npath = \"/p/*\"\nhtpasswd = \"/nonexistent/.htpasswd\"");
    assert!(missing.contains("/nonexistent/.htpasswd"), "{missing}");
    let status = refused("[[site.redirect]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 200");
    assert!(status.contains("status 200"), "{status}");
    let header = refused("[[site.headers]]\npath = \"/\"\nset = { \"Bad Name\" = \"x\" }");
    assert!(header.contains("Bad Name"), "{header}");
    let no_root = config("[[site]]\nnames = [\"a.test\"]\nroot = \"/nonexistent/root\"")
        .unwrap_err()
        .0;
    assert!(no_root.contains("/nonexistent/root"), "{no_root}");
    let stats = config("[stats]\nallow = [\"nope\"]").unwrap_err().0;
    assert!(stats.contains("nope"), "{stats}");
}

#[test]
fn old_stats_key_still_reads() {
    let cfg = config("stats = false").unwrap();
    assert!(!cfg.stats.enabled && cfg.stats.old_key);
    let cfg = config("[stats]\nenabled = false\nallow = []").unwrap();
    assert!(!cfg.stats.enabled && !cfg.stats.old_key && cfg.stats.allow_nets.is_empty());
    let cfg = config("").unwrap();
    assert!(cidr::contains(
        &cfg.stats.allow_nets,
        "127.0.0.1".parse().unwrap()
    ));
    assert!(!cidr::contains(
        &cfg.stats.allow_nets,
        "192.0.2.1".parse().unwrap()
    ));
}

fn request(raw: &str) -> Request {
    crate::http::request::parse_head(raw.as_bytes(), &crate::http::request::HeadLimits::default())
        .unwrap()
        .unwrap()
}

#[test]
fn gate_checks_access_then_auth_then_redirects() {
    let d = dir();
    let root = d.path().display();
    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(d.path().join("pw"), format!("u:{hash}\n")).unwrap();
    let cfg = config(&format!(
        r#"
        [[site]]
        names = ["a.test"]
        root = "{root}"
        [[site.access]]
        path = "/p/*"
        allow = ["127.0.0.1"]
        deny = ["127.0.0.1/32"]
        [[site.access]]
        path = "/q/*"
        allow = ["127.0.0.0/8"]
        deny = ["127.0.0.9"]
        [[site.auth]]
        path = "/q/*"
        htpasswd = "{root}/pw"
        realm = "Q"
        [[site.redirect]]
        from = "/q/*"
        to = "/r/$1"
        "#
    ))
    .unwrap();
    let site = &cfg.site_table.list[0];
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let get = |path: &str, extra: &str| {
        request(&format!(
            "GET {path} HTTP/1.1\r\nHost: a.test\r\n{extra}\r\n"
        ))
    };
    // Deny wins over allow.
    assert_eq!(site.gate(&get("/p/x", ""), local), Gate::Forbidden);
    assert_eq!(
        site.gate(&get("/q/x", ""), "127.0.0.9".parse().unwrap()),
        Gate::Forbidden
    );
    assert_eq!(
        site.gate(&get("/q/x", ""), "10.0.0.1".parse().unwrap()),
        Gate::Forbidden
    );
    assert_eq!(
        site.gate(&get("/q/x", ""), local),
        Gate::Unauthorized("Basic realm=\"Q\", charset=\"UTF-8\"".to_string())
    );
    let auth = "Authorization: Basic dTpwdw==\r\n";
    assert_eq!(
        site.gate(&get("/q/x?y=1", auth), local),
        Gate::Redirect(301, "/r/x?y=1".to_string())
    );
    assert_eq!(site.gate(&get("/elsewhere", ""), local), Gate::Pass);
    assert_eq!(site.gate(&get("/%2e%2e/q/x", ""), local), Gate::BadPath);
}

#[test]
fn a_request_from_before_a_reload_finds_its_site_again_by_host() {
    let d = dir();
    let root = d.path().display();
    let text = format!(
        "[[site]]\nnames = [\"a.test\"]\nroot = \"{root}\"\n[[site]]\nnames = [\"b.test\"]\nroot = \"{root}\"\n"
    );
    let before = config(&text).unwrap();
    let after = config(&text.replace("a.test", "c.test")).unwrap();
    let mut req = request("GET / HTTP/1.1\r\nHost: b.test\r\n\r\n");
    let picked = before.site_table.pick(req.host.as_deref()).unwrap();
    req.site = Some(before.site_table.reference(picked));
    assert_eq!(req.site.map(|s| s.label), Some("b.test"));
    assert_eq!(of(&req, &before).label, "b.test");
    // The old reference does not fit the new table: the Host picks again.
    assert!(after.site_table.get(req.site.unwrap()).is_none());
    assert_eq!(of(&req, &after).label, "b.test");
}
