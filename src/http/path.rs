//! Turning a request path into a path below the document root, or refusing it.
//!
//! The result never leaves the root: segments are percent-decoded one at a time, a decoded
//! `/`, `\` or NUL is refused, `.` is dropped and `..` pops a segment (popping past the root is
//! refused). The opened file is also resolved with `RESOLVE_BENEATH`, so a symlink that points
//! outside the root cannot be followed either.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use percent_encoding::percent_decode;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path would climb above the root.
    Escapes,
    /// A forbidden byte (NUL, backslash, an encoded slash) or bad escape.
    Invalid,
}

/// A request path made safe: segments relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    /// Decoded segments, none empty, `.` or `..`.
    pub segments: Vec<Vec<u8>>,
    /// The request path ended in `/`.
    pub trailing_slash: bool,
}

impl SafePath {
    /// The path relative to the root (`.` for the root itself).
    pub fn relative(&self) -> PathBuf {
        if self.segments.is_empty() {
            return PathBuf::from(".");
        }
        let mut path = PathBuf::new();
        for segment in &self.segments {
            path.push(OsStr::from_bytes(segment));
        }
        path
    }

    /// Whether any segment starts with a dot (hidden files such as `.htaccess`, `.git`).
    pub fn has_dot_segment(&self) -> bool {
        self.segments.iter().any(|s| s.first() == Some(&b'.'))
    }
}

/// Normalises the raw (percent-encoded) path of a request.
pub fn normalize(raw: &str) -> Result<SafePath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::Invalid);
    }
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut trailing_slash = false;
    for piece in raw[1..].split('/') {
        trailing_slash = piece.is_empty();
        if piece.is_empty() {
            continue;
        }
        if !valid_escapes(piece) {
            return Err(PathError::Invalid);
        }
        let decoded: Vec<u8> = percent_decode(piece.as_bytes()).collect();
        if decoded.iter().any(|b| *b == 0 || *b == b'/' || *b == b'\\') {
            return Err(PathError::Invalid);
        }
        match decoded.as_slice() {
            b"." => trailing_slash = true,
            b".." => {
                if segments.pop().is_none() {
                    return Err(PathError::Escapes);
                }
                trailing_slash = true;
            }
            _ => {
                segments.push(decoded);
            }
        }
    }
    if raw == "/" {
        trailing_slash = true;
    }
    Ok(SafePath {
        segments,
        trailing_slash,
    })
}

fn valid_escapes(piece: &str) -> bool {
    let bytes = piece.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if i + 2 >= bytes.len()
                || !(bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit())
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(raw: &str) -> Result<String, PathError> {
        normalize(raw).map(|p| p.relative().to_string_lossy().into_owned())
    }

    #[test]
    fn ordinary_paths() {
        assert_eq!(rel("/").unwrap(), ".");
        assert_eq!(rel("/a/b.html").unwrap(), "a/b.html");
        assert_eq!(rel("/a//b/./c").unwrap(), "a/b/c");
        assert_eq!(rel("/a/../b").unwrap(), "b");
        assert_eq!(rel("/with%20space.txt").unwrap(), "with space.txt");
        assert!(normalize("/dir/").unwrap().trailing_slash);
        assert!(!normalize("/dir").unwrap().trailing_slash);
    }

    #[test]
    fn escapes_are_refused() {
        assert_eq!(rel("/.."), Err(PathError::Escapes));
        assert_eq!(rel("/a/../../etc/passwd"), Err(PathError::Escapes));
        assert_eq!(rel("/%2e%2e/secret"), Err(PathError::Escapes));
        assert_eq!(rel("/%2E%2E/secret"), Err(PathError::Escapes));
        assert_eq!(rel("/a%2f..%2f..%2fsecret"), Err(PathError::Invalid));
        assert_eq!(rel("/a%00b"), Err(PathError::Invalid));
        assert_eq!(rel("/..%5c..%5csecret"), Err(PathError::Invalid));
        assert_eq!(rel("/bad%zz"), Err(PathError::Invalid));
        assert_eq!(rel("/bad%2"), Err(PathError::Invalid));
        assert_eq!(rel("relative"), Err(PathError::Invalid));
    }

    #[test]
    fn result_never_climbs() {
        // Every combination of a few hostile segments stays below the root.
        let parts = ["..", "%2e%2e", ".", "a", "%2e", "b%2f", "..%2f", "", "%00"];
        for a in parts {
            for b in parts {
                for c in parts {
                    if let Ok(p) = normalize(&format!("/{a}/{b}/{c}")) {
                        assert!(p
                            .segments
                            .iter()
                            .all(|s| s != b".." && s != b"." && !s.contains(&b'/')));
                    }
                }
            }
        }
    }
}
