//! `hello`: a non-persistent plug-in. Every request gets a fresh instance, so the page it
//! answers always shows an instance that has served exactly one request, while the count of
//! instances made by this loaded copy of the library keeps growing.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use plugin_api::{declare_plugin, Connection, Host, Next, Plugin};

/// The longest name a POST may send.
const MAX_NAME_BYTES: usize = 4096;

/// Instances made since this copy of the library was loaded.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

struct Hello {
    /// Which instance this is, counted from 1.
    number: u64,
    /// Requests this instance has served.
    served: u64,
}

impl Plugin for Hello {
    fn new(_host: &Host) -> Self {
        Hello {
            number: INSTANCES.fetch_add(1, Ordering::Relaxed) + 1,
            served: 0,
        }
    }

    fn persist(&self) -> bool {
        false
    }

    fn handle(&mut self, mut conn: Connection) -> Next {
        self.served += 1;
        // The name to greet: the query string, or the body of a POST.
        let mut who = conn.request().query_decoded.clone().unwrap_or_default();
        if conn.request().method == "POST" {
            match conn.read_body(MAX_NAME_BYTES) {
                Ok(body) => who = String::from_utf8_lossy(&body).into_owned(),
                Err(e) => {
                    let status = match e.kind() {
                        std::io::ErrorKind::FileTooLarge => 413,
                        std::io::ErrorKind::InvalidData => 400,
                        // The client went away: dropping the connection gives it back.
                        _ => return Next::Continue,
                    };
                    let _ = conn.respond(
                        status,
                        &[("Content-Type", "text/plain")],
                        format!("{e}\n").as_bytes(),
                    );
                    return Next::Continue;
                }
            }
        }
        let who = if who.trim().is_empty() {
            "world"
        } else {
            who.trim()
        };
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>hello</title></head><body>\n\
             <h1>Hello, {}!</h1>\n\
             <p>instance <b id=\"instance\">{}</b> has served <b id=\"served\">{}</b> request(s).</p>\n\
             <p>over <b id=\"scheme\">{}</b></p>\n\
             </body></html>\n",
            escape(who),
            self.number,
            self.served,
            conn.request().scheme
        );
        let _ = conn.respond(
            200,
            &[("Content-Type", "text/html; charset=utf-8")],
            body.as_bytes(),
        );
        Next::Continue
    }
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

declare_plugin!(Hello, name: "hello", version: "0.1.0", compress: allowed);
