//! Content codings: `Accept-Encoding` negotiation (RFC 9110 section 12.5.3), the codings this
//! server makes, and the entity tag of a coded variant. Pure code: no I/O.

use std::fmt;

/// A content coding the server can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The token in `Content-Encoding` and in the configuration.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The suffix of a precompressed sibling file (`app.js.br`).
    pub fn file_suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }

    /// A small index, for arrays with one slot per coding.
    pub fn index(self) -> usize {
        match self {
            Coding::Br => 0,
            Coding::Zstd => 1,
            Coding::Gzip => 2,
        }
    }

    pub fn from_token(token: &str) -> Option<Coding> {
        let token = token.trim();
        if token.eq_ignore_ascii_case("br") {
            Some(Coding::Br)
        } else if token.eq_ignore_ascii_case("zstd") {
            Some(Coding::Zstd)
        } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            Some(Coding::Gzip)
        } else {
            None
        }
    }
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// The outcome of negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Send the representation as it is.
    Identity,
    /// Send it in this coding.
    Coded(Coding),
    /// The client refused identity and accepts nothing that is available (406).
    NotAcceptable,
}

/// A parsed `Accept-Encoding` field. Qualities are kept in thousandths (`q=0.5` is 500).
#[derive(Debug, Clone, Default)]
pub struct AcceptEncoding {
    /// Whether the field was present at all.
    present: bool,
    /// Explicit qualities for the codings this server knows, by `Coding::index`.
    codings: [Option<u16>; 3],
    identity: Option<u16>,
    star: Option<u16>,
}

impl AcceptEncoding {
    /// Parses the field value; `None` is a request without the field.
    pub fn parse(value: Option<&str>) -> AcceptEncoding {
        let Some(value) = value else {
            return AcceptEncoding::default();
        };
        let mut accept = AcceptEncoding {
            present: true,
            ..AcceptEncoding::default()
        };
        for member in value.split(',') {
            let mut parts = member.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let mut q = 1000;
            for param in parts {
                let Some((name, v)) = param.split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    q = parse_qvalue(v.trim()).unwrap_or(1000);
                }
            }
            // When a coding is listed twice, the highest quality stands.
            let slot = if token == "*" {
                &mut accept.star
            } else if token.eq_ignore_ascii_case("identity") {
                &mut accept.identity
            } else if let Some(coding) = Coding::from_token(token) {
                &mut accept.codings[coding.index()]
            } else {
                continue;
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        accept
    }

    /// The quality the client gives a coding; 0 means refused.
    pub fn quality(&self, coding: Coding) -> u16 {
        if !self.present {
            return 0; // No field: the server sends identity (the usual reading).
        }
        self.codings[coding.index()].or(self.star).unwrap_or(0)
    }

    /// Whether identity (no coding) is acceptable, and at what quality. Identity that is
    /// neither listed nor covered by `*` is acceptable below every listed coding.
    fn identity_quality(&self) -> Option<u16> {
        match self.identity.or(self.star) {
            Some(0) => None,
            Some(q) => Some(q),
            None => Some(0),
        }
    }

    /// Whether the client would take some coding at all (worth a `Vary` and a look for
    /// variants).
    pub fn wants_coding(&self, offered: &[Coding]) -> bool {
        offered.iter().any(|&c| self.quality(c) > 0)
    }

    /// Chooses among `offered` (in the server's order of preference) the acceptable coding of
    /// highest quality that `available` has, ties going to the server's order; identity wins
    /// when the client rates it higher. `available` is asked lazily, best first.
    pub fn choose(&self, offered: &[Coding], mut available: impl FnMut(Coding) -> bool) -> Choice {
        // No allocation: there are only so many codings.
        let mut ranked = [(0u16, 0usize, Coding::Br); 8];
        let mut n = 0;
        for (i, &c) in offered.iter().enumerate().take(ranked.len()) {
            let q = self.quality(c);
            if q > 0 {
                ranked[n] = (q, i, c);
                n += 1;
            }
        }
        let ranked = &mut ranked[..n];
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let identity = self.identity_quality();
        for &(q, _, coding) in ranked.iter() {
            if identity.is_some_and(|iq| iq > q) {
                return Choice::Identity;
            }
            if available(coding) {
                return Choice::Coded(coding);
            }
        }
        match identity {
            Some(_) => Choice::Identity,
            None => Choice::NotAcceptable,
        }
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The strong entity tag of a coded variant: the identity tag with the coding inside the
/// quotes (`"5f3a-1c00"` becomes `"5f3a-1c00-br"`), so each variant has its own.
pub fn variant_etag(identity_etag: &str, coding: Coding) -> String {
    let bare = identity_etag.strip_suffix('"').unwrap_or(identity_etag);
    format!("{bare}-{}\"", coding.token())
}

/// Whether a media type matches one of the configured patterns (`text/*`, `image/svg+xml`);
/// parameters (`; charset=utf-8`) are ignored.
pub fn type_matches(patterns: &[String], mime: &str) -> bool {
    let mime = mime.split(';').next().unwrap_or("").trim();
    patterns.iter().any(|p| {
        let p = p.trim();
        match p.strip_suffix("/*") {
            Some(major) => mime
                .split_once('/')
                .is_some_and(|(m, _)| m.eq_ignore_ascii_case(major)),
            None => p == "*/*" || p.eq_ignore_ascii_case(mime),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    fn choose(header: Option<&str>) -> Choice {
        AcceptEncoding::parse(header).choose(&ORDER, |_| true)
    }

    #[test]
    fn no_field_or_empty_field_is_identity() {
        assert_eq!(choose(None), Choice::Identity);
        assert_eq!(choose(Some("")), Choice::Identity);
        assert_eq!(choose(Some("compress, deflate")), Choice::Identity);
    }

    #[test]
    fn server_order_breaks_ties_and_quality_wins() {
        assert_eq!(choose(Some("gzip, br")), Choice::Coded(Coding::Br));
        assert_eq!(
            choose(Some("gzip, deflate, br, zstd")),
            Choice::Coded(Coding::Br)
        );
        assert_eq!(
            choose(Some("br;q=0.5, gzip;q=0.8")),
            Choice::Coded(Coding::Gzip)
        );
        assert_eq!(choose(Some("x-gzip")), Choice::Coded(Coding::Gzip));
        assert_eq!(choose(Some("GZIP;Q=1.0")), Choice::Coded(Coding::Gzip));
    }

    #[test]
    fn q_zero_refuses() {
        assert_eq!(choose(Some("br;q=0, gzip")), Choice::Coded(Coding::Gzip));
        assert_eq!(choose(Some("*;q=0, identity")), Choice::Identity);
        assert_eq!(choose(Some("br;q=0")), Choice::Identity);
        assert_eq!(choose(Some("identity;q=0")), Choice::NotAcceptable);
        assert_eq!(choose(Some("*;q=0")), Choice::NotAcceptable);
        assert_eq!(
            choose(Some("gzip, identity;q=0")),
            Choice::Coded(Coding::Gzip)
        );
    }

    #[test]
    fn star_and_identity() {
        assert_eq!(choose(Some("*")), Choice::Coded(Coding::Br));
        assert_eq!(choose(Some("*, br;q=0")), Choice::Coded(Coding::Zstd));
        assert_eq!(choose(Some("gzip;q=0.5, identity")), Choice::Identity);
        assert_eq!(
            choose(Some("gzip, identity;q=0.5")),
            Choice::Coded(Coding::Gzip)
        );
        assert_eq!(choose(Some("identity")), Choice::Identity);
    }

    #[test]
    fn availability_is_asked_best_first_and_falls_back() {
        let accept = AcceptEncoding::parse(Some("br, gzip;q=0.9"));
        let mut asked = Vec::new();
        let choice = accept.choose(&ORDER, |c| {
            asked.push(c);
            c == Coding::Gzip
        });
        assert_eq!(choice, Choice::Coded(Coding::Gzip));
        assert_eq!(asked, [Coding::Br, Coding::Gzip]);
        assert_eq!(accept.choose(&ORDER, |_| false), Choice::Identity);
        let strict = AcceptEncoding::parse(Some("br, identity;q=0"));
        assert_eq!(strict.choose(&ORDER, |_| false), Choice::NotAcceptable);
        // Only the configured codings are offered.
        assert_eq!(
            accept.choose(&[Coding::Gzip], |_| true),
            Choice::Coded(Coding::Gzip)
        );
    }

    #[test]
    fn bad_qvalues_count_as_one() {
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.001"), Some(1));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
        assert_eq!(choose(Some("br;q=2, gzip")), Choice::Coded(Coding::Br));
    }

    #[test]
    fn variant_tags_and_types() {
        assert_eq!(variant_etag("\"5f-1c\"", Coding::Br), "\"5f-1c-br\"");
        let types = vec!["text/*".to_string(), "image/svg+xml".to_string()];
        assert!(type_matches(&types, "text/html; charset=utf-8"));
        assert!(type_matches(&types, "image/svg+xml"));
        assert!(!type_matches(&types, "image/png"));
        assert!(!type_matches(&types, "textual/x"));
    }
}
