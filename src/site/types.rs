//! Content types by file extension: `mime_guess`, then the config's `[types]` overrides, with
//! `; charset=utf-8` added to text, JavaScript and JSON (our files are served as UTF-8).
//!
//! The overrides are published by the config process when a config is put in force and read
//! per response; they are few, and their strings are interned (`site::intern`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

type Table = HashMap<String, &'static str>;

fn overrides() -> &'static ArcSwap<Table> {
    static OVERRIDES: OnceLock<ArcSwap<Table>> = OnceLock::new();
    OVERRIDES.get_or_init(|| ArcSwap::from_pointee(HashMap::new()))
}

/// Checks `[types]`: extensions without dots, values that look like `type/subtype`.
pub fn check(types: &BTreeMap<String, String>) -> Result<(), String> {
    for (ext, mime) in types {
        let ext_ok = !ext.is_empty() && !ext.contains(['.', '/']) && ext.is_ascii();
        let mime_ok = mime
            .split_once('/')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
            && super::rules::valid_header("Content-Type", mime);
        if !ext_ok || !mime_ok {
            return Err(format!(
                "types: {ext:?} = {mime:?} is not extension = \"type/subtype\""
            ));
        }
    }
    Ok(())
}

/// Puts a config's `[types]` in force.
pub fn publish(types: &BTreeMap<String, String>) {
    let table: Table = types
        .iter()
        .map(|(ext, mime)| (ext.to_ascii_lowercase(), with_charset_owned(mime)))
        .collect();
    overrides().store(Arc::new(table));
}

/// The Content-Type for a file name.
pub fn content_type(name: &str) -> &'static str {
    let table = overrides().load();
    if !table.is_empty() {
        if let Some((_, ext)) = name.rsplit_once('.') {
            if let Some(mime) = table.get(&ext.to_ascii_lowercase()) {
                return mime;
            }
        }
    }
    let guessed = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    with_charset(guessed)
}

fn wants_charset(mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or(mime).trim();
    (essence.starts_with("text/")
        || essence == "application/javascript"
        || essence == "application/json"
        || essence.ends_with("+json"))
        && !mime.contains("charset")
}

/// Adds the charset parameter where it belongs; common types without allocating.
pub fn with_charset(mime: &'static str) -> &'static str {
    match mime {
        "text/html" => "text/html; charset=utf-8",
        "text/plain" => "text/plain; charset=utf-8",
        "text/css" => "text/css; charset=utf-8",
        "text/javascript" => "text/javascript; charset=utf-8",
        "application/javascript" => "application/javascript; charset=utf-8",
        "application/json" => "application/json; charset=utf-8",
        "text/markdown" => "text/markdown; charset=utf-8",
        "text/csv" => "text/csv; charset=utf-8",
        "text/xml" => "text/xml; charset=utf-8",
        other if wants_charset(other) => super::intern(format!("{other}; charset=utf-8")),
        other => other,
    }
}

fn with_charset_owned(mime: &str) -> &'static str {
    if wants_charset(mime) {
        super::intern(format!("{mime}; charset=utf-8"))
    } else {
        super::intern(mime.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets_on_text_javascript_and_json() {
        assert_eq!(content_type("a.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("a.js"),
            with_charset(mime_guess::from_path("a.js").first_raw().unwrap())
        );
        assert!(content_type("a.js").ends_with("; charset=utf-8"));
        assert_eq!(content_type("a.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(with_charset("text/x-rust"), "text/x-rust; charset=utf-8");
        assert_eq!(
            with_charset_owned("text/plain; charset=latin1"),
            "text/plain; charset=latin1"
        );
    }

    #[test]
    fn overrides_are_checked() {
        let mut types = BTreeMap::new();
        types.insert("wasm".to_string(), "application/wasm".to_string());
        assert!(check(&types).is_ok());
        types.insert(".x".to_string(), "a/b".to_string());
        assert!(check(&types).is_err());
        let mut bad = BTreeMap::new();
        bad.insert("x".to_string(), "nonsense".to_string());
        assert!(check(&bad).is_err());
    }
}
