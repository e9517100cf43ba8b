//! The picture of the process network on `/stats.html`: one box per process or farm and one
//! arrow per channel, drawn with the snapshot's numbers. Every number carries a `data-k`
//! path into `/stats.json`, so the page's script can refresh it in place.

use std::fmt::Write;

use super::format::{bytes, escape, rate};
use super::snapshot::Snapshot;

/// Width and height of the drawing, in SVG units.
const WIDTH: u32 = 1120;
const HEIGHT: u32 = 505;
/// Side of a worker slot, and the pitch between slots.
const SLOT: u32 = 8;
const SLOT_PITCH: u32 = 9;

/// A number the script keeps fresh: `<tspan data-k=path data-f=format>text</tspan>`.
fn live(key: &str, format: &str, text: &str) -> String {
    format!(
        "<tspan data-k=\"{key}\" data-f=\"{format}\">{}</tspan>",
        escape(text)
    )
}

fn live_int(key: &str, value: impl std::fmt::Display) -> String {
    live(key, "int", &value.to_string())
}

fn live_rate(key: &str, value: f64) -> String {
    live(key, "rate", &rate(value))
}

struct Picture<'a> {
    out: String,
    s: &'a Snapshot,
}

impl Picture<'_> {
    fn frame(&mut self, x: u32, y: u32, w: u32, h: u32, class: &str, tooltip: &str) {
        let _ = write!(
            self.out,
            "<g class=\"box {class}\"><title>{}</title><rect class=\"frame\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"8\"/>",
            escape(tooltip)
        );
    }

    fn end_frame(&mut self) {
        self.out.push_str("</g>\n");
    }

    /// A line of text; `content` is already escaped (it may hold live tspans).
    fn text(&mut self, x: u32, y: u32, class: &str, content: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x}\" y=\"{y}\" class=\"{class}\">{content}</text>"
        );
    }

    /// A box with a title and up to three lines below it.
    fn process(
        &mut self,
        (x, y, w, h): (u32, u32, u32, u32),
        name: &str,
        tooltip: &str,
        lines: &[String],
    ) {
        self.frame(x, y, w, h, "process", tooltip);
        self.text(x + 10, y + 19, "title", &escape(name));
        for (i, line) in lines.iter().enumerate() {
            self.text(x + 10, y + 37 + 16 * i as u32, "line", line);
        }
        self.end_frame();
    }

    /// A farm: title with its worker count, idle/busy/max, a scoreboard of worker slots,
    /// and the jobs it takes per second.
    fn farm(&mut self, (x, y, w, h): (u32, u32, u32, u32), name: &'static str, tooltip: &str) {
        let Some(f) = self.s.farms.get(name) else {
            self.process((x, y, w, h), name, tooltip, &["not running".to_string()]);
            return;
        };
        let k = |field: &str| format!("farms.{name}.{field}");
        self.frame(x, y, w, h, "farm", tooltip);
        let title = format!(
            "{} <tspan class=\"sub\">×{}</tspan>",
            escape(name),
            live_int(&k("total"), f.total)
        );
        self.text(x + 10, y + 19, "title", &title);
        let line = format!(
            "idle {} · busy {} · max {}",
            live_int(&k("idle"), f.idle),
            live_int(&k("busy"), f.busy),
            live_int(&k("max"), f.max)
        );
        self.text(x + 10, y + 36, "line", &line);
        let per_row = ((w - 20) / SLOT_PITCH).max(1) as usize;
        let _ = write!(self.out, "<g class=\"board\" data-board=\"{name}\">");
        for (i, state) in f.scoreboard.chars().enumerate() {
            let sx = x + 10 + (i % per_row) as u32 * SLOT_PITCH;
            let sy = y + 44 + (i / per_row) as u32 * SLOT_PITCH;
            let _ = write!(
                self.out,
                "<rect class=\"slot {}\" x=\"{sx}\" y=\"{sy}\" width=\"{SLOT}\" height=\"{SLOT}\"/>",
                slot_class(state)
            );
        }
        self.out.push_str("</g>");
        let jobs = format!(
            "{} jobs/s",
            live_rate(&k("jobs_per_second"), f.jobs_per_second)
        );
        self.text(x + 10, y + h - 10, "line rate", &jobs);
        self.end_frame();
    }

    /// A channel: a path with an arrowhead.
    fn arrow(&mut self, d: &str, class: &str) {
        let _ = write!(
            self.out,
            "<path class=\"arrow {class}\" d=\"{d}\" marker-end=\"url(#head)\"/>"
        );
    }

    /// Part of a channel shared with others, without a head.
    fn line(&mut self, d: &str) {
        let _ = write!(self.out, "<path class=\"arrow\" d=\"{d}\"/>");
    }

    /// The number of messages waiting in `process`'s inbox, as a pill centred at (x, y).
    fn queue(&mut self, x: u32, y: u32, process: &str) {
        let n = self.s.queues.get(process).copied().unwrap_or(0);
        let busy = if n > 0 { " busy" } else { "" };
        let _ = write!(
            self.out,
            "<g class=\"queue{busy}\" data-q=\"queues.{process}\"><title>messages waiting for {}</title>\
             <rect x=\"{}\" y=\"{}\" width=\"44\" height=\"16\" rx=\"8\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">q {}</text></g>",
            escape(process),
            x - 22,
            y - 8,
            y + 4,
            live_int(&format!("queues.{process}"), n)
        );
    }

    /// A label beside an arrow; `content` is already escaped.
    fn label(&mut self, x: u32, y: u32, anchor: &str, content: &str) {
        let _ = write!(
            self.out,
            "<text x=\"{x}\" y=\"{y}\" class=\"label\" text-anchor=\"{anchor}\">{content}</text>"
        );
    }
}

fn slot_class(state: char) -> &'static str {
    match state {
        'R' => "run",
        'W' => "wait",
        '_' => "idle",
        _ => "free",
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut p = Picture {
        out: String::with_capacity(24 * 1024),
        s,
    };
    let _ = writeln!(
        p.out,
        "<svg class=\"network\" id=\"network\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-labelledby=\"network-title\"><title id=\"network-title\">The process network, live</title>\
         <defs><marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>"
    );
    let c = &s.connections;
    let r = &s.requests;

    // Arrows first, so boxes and pills sit on top of them.
    p.arrow("M110,85 H148", "");
    // Inside each replica: acceptor → idle.pool → front-end → static → recycler, and
    // keep-alive back to idle.pool; calls on one core, not thread hops.
    p.arrow("M245,85 H263", "");
    p.arrow("M360,85 H378", "");
    p.arrow("M475,85 H493", "");
    p.arrow("M590,85 H608", "");
    p.arrow("M655,115 V125 H312 V117", "keep-alive");
    // Off the core: blocking work leaves on channels and comes home through the recycler.
    p.line("M700,110 H730 V425");
    p.arrow("M730,146 H768", "");
    p.arrow("M730,247 H768", "");
    p.arrow("M730,335 H768", "");
    p.arrow("M730,425 H768", "");
    p.arrow("M700,50 H998", "");
    p.arrow("M1055,88 V158", "");
    for y in [192, 293, 380, 440] {
        p.line(&format!("M940,{y} H970"));
    }
    p.line("M970,192 V440");
    p.arrow("M970,215 H998", "");
    p.arrow("M1055,270 V300 H420 V272", "keep-alive");
    p.arrow("M700,70 H740 V40 H768", "");
    p.arrow("M220,372 V423", "from-all");

    p.queue(749, 146, "cgi");
    p.queue(749, 247, "plugin");
    p.queue(749, 335, "static");
    p.queue(749, 425, "stats");
    p.queue(970, 140, "recycler");
    p.queue(850, 50, "send.pool");
    p.queue(750, 40, "cache.control");
    p.queue(220, 398, "log");
    p.label(220, 364, "middle", "from every process");
    p.label(640, 292, "middle", "home to its replica (Resume)");

    p.process(
        (10, 55, 100, 60),
        "clients",
        "Client connections open now",
        &[format!("{} open", live_int("connections.active", c.active))],
    );
    p.process(
        (10, 140, 125, 76),
        "h2.session",
        "One per HTTP/2 connection, on its replica: owns the socket, turns each stream into a record that travels the stages, frames the answers",
        &[
            format!("{} open", live_int("h2.sessions", s.h2.sessions)),
            format!("{} streams", live_int("h2.streams_open", s.h2.streams_open)),
            format!(
                "{} str/s",
                live_rate("h2.streams_per_second", s.h2.streams_per_second)
            ),
        ],
    );
    // The replicas: one frame holding the stages, and a row per replica.
    let _ = write!(
        p.out,
        "<g class=\"box replica\"><title>One copy of the request network per core (its thread pinned there with pin_cores); a connection lives its whole life on one replica</title>\
         <rect class=\"frame\" x=\"140\" y=\"20\" width=\"560\" height=\"240\" rx=\"8\"/></g>"
    );
    p.text(
        150,
        38,
        "title",
        &format!(
            "replica <tspan class=\"sub\">×{} (one per core)</tspan>",
            s.replicas.len()
        ),
    );
    let stage = |p: &mut Picture, x: u32, name: &str, tooltip: &str, line: String| {
        p.process((x, 55, 95, 60), name, tooltip, &[line]);
    };
    p.text(
        150,
        145,
        "line",
        &format!(
            "new connections gather on the busiest replica, within spread_slack of busy ones · refused at the limit {}",
            live_int("connections.refused", c.refused)
        ),
    );
    stage(
        &mut p,
        150,
        "acceptor",
        "Takes this core's share of new connections (EPOLLEXCLUSIVE); enforces max_connections",
        format!(
            "{} conn/s",
            live_rate("connections.per_second", c.per_second)
        ),
    );
    stage(
        &mut p,
        265,
        "idle.pool",
        "Connections waiting for their next request, in this replica's epoll set",
        format!("parked {}", live_int("connections.waiting", c.waiting)),
    );
    stage(
        &mut p,
        380,
        "front-end",
        "Reads a request head and chooses its route",
        format!("{} req/s", live_rate("requests.per_second", r.per_second)),
    );
    let cache = &s.cache;
    stage(
        &mut p,
        495,
        "static",
        "Answers files by sendfile, and cached pages from the published cache table",
        if cache.table.enabled {
            format!(
                "{} hits/s",
                live_rate("cache.hits_per_second", cache.hits_per_second)
            )
        } else {
            "cache off".to_string()
        },
    );
    stage(
        &mut p,
        610,
        "recycler",
        "Books the exchange (batched) and keeps the connection or closes it",
        "books, keeps".to_string(),
    );
    for (i, replica) in s.replicas.iter().take(6).enumerate() {
        let k = |field: &str| format!("replicas.{i}.{field}");
        let y = 168 + 18 * i as u32;
        let row = format!(
            "replica#{} · accepted {} · requests {} · busy {} · parked {}",
            replica.index,
            live_int(&k("accepted"), replica.accepted),
            live_int(&k("requests"), replica.requests),
            live_int(&k("busy"), replica.busy),
            live_int(&k("parked"), replica.parked)
        );
        p.text(150, y, "line", &row);
    }
    if s.replicas.len() > 6 {
        p.text(
            150,
            168 + 18 * 6,
            "line",
            &format!("… and {} more", s.replicas.len() - 6),
        );
    }

    let cache_lines = if cache.table.enabled {
        vec![
            format!(
                "cached {} · {}",
                live_int("cache.cached_entries", cache.table.cached_entries),
                live("cache.used_bytes", "bytes", &bytes(cache.table.used_bytes)),
            ),
            format!(
                "of {}",
                live(
                    "cache.budget_bytes",
                    "bytes",
                    &bytes(cache.table.budget_bytes)
                )
            ),
        ]
    } else {
        vec!["off".to_string()]
    };
    p.process(
        (770, 10, 170, 82),
        "cache.control",
        "Scores the hits the replicas count, and publishes the table of cached pages they read",
        &cache_lines,
    );
    p.farm((770, 100, 170, 92), "cgi", "Runs CGI/1.1 programs");
    p.farm(
        (770, 206, 170, 82),
        "plugin",
        "Calls gateway plug-ins under /ogi/",
    );
    p.farm(
        (770, 300, 170, 80),
        "static",
        "Serves files named by a CGI program's local redirect",
    );
    p.process(
        (770, 395, 170, 60),
        "stats",
        "Counts exchanges and renders these pages",
        &[format!(
            "{} req/s counted",
            live_rate("requests.per_second", r.per_second)
        )],
    );
    p.process(
        (1000, 160, 110, 110),
        "recycler",
        "be.proc for work done off the core: books it, and sends a keep-alive connection home to its replica",
        &[
            "be.proc".to_string(),
            format!(
                "{} /s",
                live(
                    "bytes.sent_per_second",
                    "bytes",
                    &bytes(s.bytes.sent_per_second as u64)
                )
            ),
        ],
    );
    p.process(
        (1000, 24, 110, 64),
        "send.pool",
        "Finishes answers for clients that read slower than they are written, in one epoll set",
        &[format!(
            "holding {}",
            live_int("connections.sending", c.sending)
        )],
    );
    p.process(
        (160, 425, 120, 70),
        "log",
        "The only writer of the access and error logs",
        &["access, errors".to_string()],
    );

    let _ = writeln!(
        p.out,
        "<g class=\"legend\" transform=\"translate(12,300)\">\
         <text x=\"0\" y=\"0\" class=\"line\">worker slots</text>\
         <rect class=\"slot run\" x=\"0\" y=\"10\" width=\"9\" height=\"9\"/><text x=\"14\" y=\"19\">running</text>\
         <rect class=\"slot wait\" x=\"0\" y=\"26\" width=\"9\" height=\"9\"/><text x=\"14\" y=\"35\">waiting on a socket</text>\
         <rect class=\"slot idle\" x=\"0\" y=\"42\" width=\"9\" height=\"9\"/><text x=\"14\" y=\"51\">idle</text>\
         <rect class=\"slot free\" x=\"0\" y=\"58\" width=\"9\" height=\"9\"/><text x=\"14\" y=\"67\">room to grow</text>\
         <g class=\"queue\"><rect x=\"0\" y=\"78\" width=\"30\" height=\"14\" rx=\"7\"/><text x=\"15\" y=\"89\" text-anchor=\"middle\">q</text></g>\
         <text x=\"36\" y=\"89\">messages queued</text></g>"
    );
    p.out.push_str("</svg>\n");
    p.out
}
