//! `crash`: faults on demand, to prove containment. The query picks the fault:
//! `?panic` (an explicit panic), `?index` (an index out of bounds), `?overflow` (checked
//! arithmetic that overflows) and `?divide` (an integer division by zero). The server catches
//! each at the plug-in boundary, answers 500, and keeps serving. Anything else gets a page
//! listing them.
#![forbid(unsafe_code)]

use std::hint::black_box;

use plugin_api::{declare_plugin, Connection, Host, Next, Plugin};

struct Crash;

impl Plugin for Crash {
    fn new(_host: &Host) -> Self {
        Crash
    }

    fn persist(&self) -> bool {
        false
    }

    fn handle(&mut self, conn: Connection) -> Next {
        match conn.request().query.as_deref().unwrap_or("") {
            "panic" => panic!("the crash plug-in was asked to panic"),
            "index" => {
                let table = [1u32, 2, 3];
                let at = black_box(table.len() + 4);
                let value = table[at];
                answer(conn, &format!("read {value}"));
            }
            "overflow" => {
                let big = black_box(u32::MAX);
                let sum = big.strict_add(black_box(1));
                answer(conn, &format!("sum {sum}"));
            }
            "divide" => {
                let zero = black_box(0u32);
                let quotient = black_box(1u32) / zero;
                answer(conn, &format!("quotient {quotient}"));
            }
            _ => {
                let page = "<!DOCTYPE html>\n<html><head><title>crash</title></head><body>\n\
                    <p>Fault on demand: <a href=\"?panic\">panic</a>, <a href=\"?index\">index out of bounds</a>, \
                    <a href=\"?overflow\">overflow</a>, <a href=\"?divide\">divide by zero</a>.</p>\n\
                    </body></html>\n";
                let _ = conn.respond(
                    200,
                    &[("Content-Type", "text/html; charset=utf-8")],
                    page.as_bytes(),
                );
            }
        }
        Next::Continue
    }
}

fn answer(conn: Connection, text: &str) {
    let _ = conn.respond(
        200,
        &[("Content-Type", "text/plain; charset=utf-8")],
        text.as_bytes(),
    );
}

declare_plugin!(Crash, name: "crash", version: "0.1.0");
