//! `counter`: a persistent plug-in, the paper's hit counter. Its first instance says it
//! persists, so it owns `/ogi/counter` and every request reaches the same instance, which
//! keeps the count in an ordinary field.
#![forbid(unsafe_code)]

use plugin_api::{declare_plugin, Connection, Host, Next, Plugin};

struct Counter {
    hits: u64,
}

impl Plugin for Counter {
    fn new(host: &Host) -> Self {
        host.log("counter started at 0");
        Counter { hits: 0 }
    }

    fn persist(&self) -> bool {
        true
    }

    fn handle(&mut self, conn: Connection) -> Next {
        self.hits += 1;
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>counter</title></head><body>\n\
             <p>This page has been hit <b id=\"hits\">{}</b> time(s) since the counter was loaded.</p>\n\
             </body></html>\n",
            self.hits
        );
        let headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
        ];
        let _ = conn.respond(200, &headers, body.as_bytes());
        Next::Continue
    }
}

declare_plugin!(Counter, name: "counter", version: "0.1.0");
