//! `once`: handles one connection, then terminates. It persists, so requests for its path
//! are served one at a time, in order; each instance answers exactly one of them and ends,
//! and the next request is given to a fresh instance.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use plugin_api::{declare_plugin, Connection, Host, Next, Plugin};

/// Instances made since this copy of the library was loaded.
static INSTANCES: AtomicU64 = AtomicU64::new(0);

struct Once {
    number: u64,
}

impl Plugin for Once {
    fn new(_host: &Host) -> Self {
        Once {
            number: INSTANCES.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }

    fn persist(&self) -> bool {
        true
    }

    fn handle(&mut self, conn: Connection) -> Next {
        let body = format!(
            "<!DOCTYPE html>\n<html><head><title>once</title></head><body>\n\
             <p>Instance <b id=\"instance\">{}</b> served this one request and has now terminated.</p>\n\
             </body></html>\n",
            self.number
        );
        let headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
        ];
        let _ = conn.respond(200, &headers, body.as_bytes());
        Next::Terminate
    }
}

declare_plugin!(Once, name: "once", version: "0.1.0");
