//! Pure HTTP code: parsing, framing, paths, ranges, response heads. No threads, no channels.

pub mod answer_coder;
pub mod body;
pub mod cgi;
pub mod encoding;
pub mod html;
pub mod path;
pub mod proxy_header;
pub mod range;
pub mod request;
pub mod response;

pub use request::{Body, Header, Method, Request};

/// Why a request cannot be served normally; `status()` picks the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed syntax or framing; the reason goes to the error log.
    BadRequest(&'static str),
    /// Request line longer than the limit.
    UriTooLong,
    /// Header block too large or too many fields.
    HeadersTooLarge,
    /// The head or body did not arrive in time.
    Timeout,
    /// Body larger than `max_body_bytes`.
    PayloadTooLarge,
    /// A method or transfer coding this server does not implement.
    NotImplemented(&'static str),
    /// An HTTP major version other than 1.
    VersionNotSupported,
    /// An `Expect` other than `100-continue` (RFC 9110 section 10.1.1).
    ExpectationFailed,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeadersTooLarge => 431,
            HttpError::Timeout => 408,
            HttpError::PayloadTooLarge => 413,
            HttpError::NotImplemented(_) => 501,
            HttpError::VersionNotSupported => 505,
            HttpError::ExpectationFailed => 417,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::BadRequest(why) => why,
            HttpError::UriTooLong => "request line too long",
            HttpError::HeadersTooLarge => "header block too large",
            HttpError::Timeout => "request timed out",
            HttpError::PayloadTooLarge => "body too large",
            HttpError::NotImplemented(why) => why,
            HttpError::VersionNotSupported => "HTTP version not supported",
            HttpError::ExpectationFailed => "unsupported Expect",
        }
    }
}

/// The reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
