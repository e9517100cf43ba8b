//! Directory listings (`autoindex`): HTML for people, JSON (`?format=json`) for scripts.
//! Dot-files are hidden, sub-directories come first, names are sorted, and every name is
//! HTML-escaped in the text and percent-encoded in the link.

use std::time::SystemTime;

use percent_encoding::{percent_encode, NON_ALPHANUMERIC};
use serde::Serialize;

use crate::http::html::escape;

/// One listed entry.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// HTTP date of the last modification.
    pub modified: String,
}

impl Listed {
    pub fn new(name: &[u8], is_dir: bool, size: u64, modified: SystemTime) -> Option<Listed> {
        if name.first() == Some(&b'.') {
            return None;
        }
        Some(Listed {
            name: String::from_utf8_lossy(name).into_owned(),
            kind: if is_dir { "directory" } else { "file" },
            size: if is_dir { 0 } else { size },
            modified: httpdate::fmt_http_date(modified),
        })
    }

    fn is_dir(&self) -> bool {
        self.kind == "directory"
    }
}

/// Sorts: directories first, then by name.
pub fn sort(entries: &mut [Listed]) {
    entries.sort_by(|a, b| {
        b.is_dir()
            .cmp(&a.is_dir())
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// Whether the query string asks for JSON (`format=json`).
pub fn wants_json(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|pair| pair == "format=json"))
}

pub fn json(entries: &[Listed]) -> Vec<u8> {
    serde_json::to_vec_pretty(entries).unwrap_or_default()
}

/// The HTML page for the directory at `path` (decoded, ending in `/`).
pub fn html(path: &str, entries: &[Listed]) -> Vec<u8> {
    let title = escape(path);
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title>\n\
         <style>body{{font-family:sans-serif}}td,th{{padding:0 1em;text-align:left}}\
         td.size{{text-align:right}}</style></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if path != "/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in entries {
        let slash = if entry.is_dir() { "/" } else { "" };
        let size = if entry.is_dir() {
            "-".to_string()
        } else {
            entry.size.to_string()
        };
        out.push_str(&format!(
            "<tr><td><a href=\"./{href}{slash}\">{name}{slash}</a></td>\
             <td class=\"size\">{size}</td><td>{modified}</td></tr>\n",
            href = percent_encode(entry.name.as_bytes(), NON_ALPHANUMERIC),
            name = escape(&entry.name),
            modified = entry.modified,
        ));
    }
    out.push_str("</table><hr><p>occwserv</p></body></html>\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_is_sorted_escaped_and_hides_dot_files() {
        let t = SystemTime::UNIX_EPOCH;
        let mut entries: Vec<Listed> = [
            Listed::new(b"b.txt", false, 3, t),
            Listed::new(b"<script>.html", false, 5, t),
            Listed::new(b".hidden", false, 1, t),
            Listed::new(b"zdir", true, 4096, t),
        ]
        .into_iter()
        .flatten()
        .collect();
        sort(&mut entries);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["zdir", "<script>.html", "b.txt"]);
        let page = String::from_utf8(html("/d&/", &entries)).unwrap();
        assert!(page.contains("&lt;script&gt;.html</a>"));
        assert!(page.contains("href=\"./%3Cscript%3E%2Ehtml\""));
        assert!(!page.contains("<script>"));
        assert!(page.contains("Index of /d&amp;/"));
        assert!(!page.contains(".hidden"));
        let json: serde_json::Value = serde_json::from_slice(&json(&entries)).unwrap();
        assert_eq!(json[0]["type"], "directory");
        assert_eq!(json[1]["name"], "<script>.html");
        assert!(wants_json(Some("a=1&format=json")));
        assert!(!wants_json(Some("format=jsonx")));
    }
}
