//! The per-path rules of a site: patterns, redirects, response headers, and the canonical
//! path they are matched against.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::http::path::normalize;

/// A rule's `path` or `from`: an exact path, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if !text.starts_with('/') {
            return Err(format!("path {text:?} must start with /"));
        }
        match text.strip_suffix('*') {
            Some(prefix) if prefix.contains('*') => {
                Err(format!("path {text:?}: only one trailing * is allowed"))
            }
            Some(prefix) => Ok(Pattern::Prefix(prefix.to_string())),
            None if text.contains('*') => Err(format!("path {text:?}: * only at the end")),
            None => Ok(Pattern::Exact(text.to_string())),
        }
    }

    /// The rest after the prefix (`$1`), or `Some("")` for an exact match.
    pub fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self {
            Pattern::Exact(exact) => (path == exact).then_some(""),
            Pattern::Prefix(prefix) => path.strip_prefix(prefix.as_str()),
        }
    }
}

/// The decoded, normalised form of a request path (`/a/../%62` is `/b`), which rules match
/// against, so that no spelling of a path slips past an access or auth rule. `None` when the
/// path is not a safe path below the root.
pub fn canonical(raw: &str) -> Option<Cow<'_, str>> {
    if plain(raw) {
        // Nothing to decode or fold: the common case costs no allocation.
        return Some(Cow::Borrowed(raw));
    }
    let safe = normalize(raw).ok()?;
    let mut out = String::with_capacity(raw.len());
    for segment in &safe.segments {
        out.push('/');
        out.push_str(&String::from_utf8_lossy(segment));
    }
    if safe.trailing_slash || out.is_empty() {
        out.push('/');
    }
    Some(Cow::Owned(out))
}

/// A path that `normalize` would give back unchanged: no escapes, backslashes, empty or dot
/// segments.
fn plain(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    // `dots` counts the dots since the last slash, or is None once the segment has more.
    let mut dots = Some(0u8);
    let mut previous_slash = true;
    for &b in &bytes[1..] {
        match b {
            b'%' | b'\\' | 0 => return false,
            b'/' => {
                if previous_slash || matches!(dots, Some(1 | 2)) {
                    return false;
                }
                dots = Some(0);
                previous_slash = true;
                continue;
            }
            b'.' => dots = dots.map(|d| d.saturating_add(1)),
            _ => dots = None,
        }
        previous_slash = false;
    }
    !matches!(dots, Some(1 | 2)) || previous_slash
}

/// Characters escaped when a decoded path goes back into a URL.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A decoded path made safe for a URL again.
pub fn encode_path(path: &str) -> Cow<'_, str> {
    utf8_percent_encode(path, PATH).into()
}

/// `[[site.redirect]]`, compiled.
#[derive(Debug, Clone)]
pub struct Redirect {
    pub from: Pattern,
    pub to: String,
    pub status: u16,
}

impl Redirect {
    /// The `Location` for a request path, if this rule applies: `$1` is the rest after a
    /// prefix, `$uri` the whole path, `$host` the request's host; the query string is kept
    /// unless `to` has its own.
    pub fn location(&self, path: &str, host: &str, query: Option<&str>) -> Option<String> {
        let rest = self.from.matches(path)?;
        let mut location = self
            .to
            .replace("$1", &encode_path(rest))
            .replace("$uri", &encode_path(path))
            .replace("$host", host);
        if let Some(query) = query {
            if !self.to.contains('?') {
                location.push('?');
                location.push_str(query);
            }
        }
        Some(location)
    }
}

/// `[[site.headers]]`, compiled: header names lower-cased for comparison.
#[derive(Debug, Clone)]
pub struct HeaderRule {
    pub path: Pattern,
    /// (name, value); an empty value removes the header.
    pub set: Vec<(String, String)>,
}

/// Whether a header name is an RFC 9110 token and a value has no control characters.
pub fn valid_header(name: &str, value: &str) -> bool {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty()
        && name.bytes().all(token)
        && value
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Applies every matching rule, in order, to a response head built so far (status line and
/// header lines, each ending in CRLF, without the blank line).
pub fn apply_headers(rules: &[HeaderRule], path: &str, head: &mut Vec<u8>) {
    for rule in rules {
        if rule.path.matches(path).is_none() {
            continue;
        }
        for (name, value) in &rule.set {
            remove_header(head, name);
            if !value.is_empty() {
                head.extend_from_slice(name.as_bytes());
                head.extend_from_slice(b": ");
                head.extend_from_slice(value.as_bytes());
                head.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// Removes every line of a header (the status line is never touched).
fn remove_header(head: &mut Vec<u8>, name: &str) {
    let mut at = match head.windows(2).position(|w| w == b"\r\n") {
        Some(end) => end + 2,
        None => return,
    };
    while at < head.len() {
        let end = head[at..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(head.len(), |e| at + e + 2);
        let line = &head[at..end];
        let named = line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':';
        if named {
            head.drain(at..end);
        } else {
            at = end;
        }
    }
}

/// Statuses whose responses get the `headers` rules (as nginx's `add_header`).
pub fn gets_headers(status: u16) -> bool {
    matches!(
        status,
        200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let prefix = Pattern::parse("/old/*").unwrap();
        assert_eq!(prefix.matches("/old/a/b"), Some("a/b"));
        assert_eq!(prefix.matches("/old/"), Some(""));
        assert_eq!(prefix.matches("/older"), None);
        let exact = Pattern::parse("/a").unwrap();
        assert_eq!(exact.matches("/a"), Some(""));
        assert_eq!(exact.matches("/a/"), None);
        assert!(Pattern::parse("old").is_err());
        assert!(Pattern::parse("/a*b").is_err());
        assert!(Pattern::parse("/a**").is_err());
    }

    #[test]
    fn canonical_paths_defeat_spellings() {
        assert_eq!(canonical("/private/x").as_deref(), Some("/private/x"));
        assert_eq!(canonical("/%70rivate/x").as_deref(), Some("/private/x"));
        assert_eq!(canonical("//private/./x").as_deref(), Some("/private/x"));
        assert_eq!(canonical("/a/../private/").as_deref(), Some("/private/"));
        assert_eq!(canonical("/").as_deref(), Some("/"));
        assert_eq!(canonical("/../x"), None);
        assert_eq!(canonical("*"), None);
        assert_eq!(canonical("/a/b/").as_deref(), Some("/a/b/"));
        assert_eq!(canonical("/a/.").as_deref(), Some("/a/"));
        assert_eq!(canonical("/a/b%2Fc"), None);
        assert!(matches!(
            canonical("/plain/path.html"),
            Some(Cow::Borrowed(_))
        ));
        assert!(matches!(canonical("/"), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn the_fast_path_agrees_with_normalize() {
        let parts = [
            "",
            ".",
            "..",
            "...",
            "a",
            ".a",
            "a.",
            "%41",
            "b\\c",
            ".well-known",
        ];
        for a in parts {
            for b in parts {
                for c in parts {
                    for raw in [
                        format!("/{a}/{b}/{c}"),
                        format!("/{a}/{b}{c}"),
                        format!("/{a}"),
                    ] {
                        if plain(&raw) {
                            let slow = normalize(&raw).ok().map(|safe| {
                                let mut out = String::new();
                                for segment in &safe.segments {
                                    out.push('/');
                                    out.push_str(&String::from_utf8_lossy(segment));
                                }
                                if safe.trailing_slash || out.is_empty() {
                                    out.push('/');
                                }
                                out
                            });
                            assert_eq!(slow.as_deref(), Some(raw.as_str()), "{raw}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn redirect_locations() {
        let rule = Redirect {
            from: Pattern::parse("/old/*").unwrap(),
            to: "/new/$1".to_string(),
            status: 301,
        };
        assert_eq!(
            rule.location("/old/a b.html", "h", None).as_deref(),
            Some("/new/a%20b.html")
        );
        assert_eq!(
            rule.location("/old/x", "h", Some("q=1")).as_deref(),
            Some("/new/x?q=1")
        );
        assert_eq!(rule.location("/other", "h", None), None);
        let absolute = Redirect {
            from: Pattern::parse("/*").unwrap(),
            to: "https://$host$uri".to_string(),
            status: 308,
        };
        assert_eq!(
            absolute.location("/p/q", "example.test", None).as_deref(),
            Some("https://example.test/p/q")
        );
    }

    #[test]
    fn headers_are_set_replaced_and_removed() {
        let rules = vec![
            HeaderRule {
                path: Pattern::parse("/assets/*").unwrap(),
                set: vec![
                    ("Cache-Control".into(), "max-age=60".into()),
                    ("Server".into(), String::new()),
                ],
            },
            HeaderRule {
                path: Pattern::parse("/other").unwrap(),
                set: vec![("X-No".into(), "no".into())],
            },
        ];
        let mut head =
            b"HTTP/1.1 200 OK\r\nServer: occwserv\r\ncache-control: no-cache\r\nETag: \"1\"\r\n"
                .to_vec();
        apply_headers(&rules, "/assets/a.css", &mut head);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "HTTP/1.1 200 OK\r\nETag: \"1\"\r\nCache-Control: max-age=60\r\n"
        );
        assert!(valid_header("X-A", "b c"));
        assert!(!valid_header("X A", "b"));
        assert!(!valid_header("X-A", "b\r\nEvil: 1"));
    }
}
