//! `/stats.html`: the process picture and the tables, rendered with the snapshot's numbers.
//! A small script (`page.js`) fetches `/stats.json` every second and updates every element
//! marked `data-k` in place; without scripts the page reloads itself every two seconds.

use std::fmt::Write;

use super::format::{bytes, escape, micros, rate};
use super::snapshot::{Cache, Snapshot};
use super::tally::{BUCKET_BOUNDS_MICROS, HISTORY_SECONDS};
use crate::plugin_host::PluginRow;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// `<span data-k=key data-f=format>text</span>`: a number the script keeps fresh.
fn live(key: &str, format: &str, text: &str) -> String {
    format!(
        "<span data-k=\"{key}\" data-f=\"{format}\">{}</span>",
        escape(text)
    )
}

fn int(key: &str, value: impl std::fmt::Display) -> String {
    live(key, "int", &value.to_string())
}

/// Uptime as days, hours, minutes and seconds; `page.js` has the same.
fn duration(seconds: f64) -> String {
    let s = seconds as u64;
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // An empty icon, so browsers do not ask for /favicon.ico on every load.
    h.push_str("<link rel=\"icon\" href=\"data:,\">\n");
    h.push_str("<title>occwserv status</title>\n<noscript><meta http-equiv=\"refresh\" content=\"2\"></noscript>\n");
    let _ = writeln!(h, "<style>\n{STYLE}</style>\n</head><body>");
    let _ = writeln!(
        h,
        "<header><h1>occwserv status</h1><p class=\"summary\">version {} · up {} · {} req/s · {} open connections \
         <span id=\"live\" class=\"live\" title=\"refreshed from /stats.json every second\">live</span></p>{}</header>",
        escape(s.version),
        live("uptime_seconds", "duration", &duration(s.uptime_seconds)),
        live("requests.per_second", "rate", &rate(s.requests.per_second)),
        int("connections.active", s.connections.active),
        history(&s.requests.per_second_history),
    );
    if !s.stats_enabled {
        h.push_str(
            "<p class=\"notice\">Per-request statistics are off (<code>[stats] enabled = false</code> in the config): \
             request counts, rates and latencies stay at zero. Connections, workers and queues are live.</p>\n",
        );
    }
    h.push_str("<section class=\"picture\"><h2>Process network</h2>\n");
    h.push_str(&super::svg::render(s));
    h.push_str("</section>\n<div class=\"grid\">\n");
    connections(&mut h, s);
    http2(&mut h, s);
    tls(&mut h, s);
    requests(&mut h, s);
    queues(&mut h, s);
    workers(&mut h, s);
    latency(&mut h, s);
    sites(&mut h, s);
    cache(&mut h, &s.cache);
    compression(&mut h, &s.cache.table, s.plugins_coded);
    plugins(&mut h, &s.plugins);
    acme(&mut h, &s.acme);
    h.push_str("</div>\n<footer>The same numbers: <a href=\"/stats.json\">/stats.json</a> · \
                <a href=\"/metrics\">/metrics</a> (Prometheus text). This page refreshes itself every second.</footer>\n");
    let _ = writeln!(h, "<script>\n{SCRIPT}</script>\n</body></html>");
    h
}

/// Width and height of the request-rate chart.
const HISTORY_WIDTH: f64 = 240.0;
const HISTORY_HEIGHT: f64 = 36.0;

/// The request rate over the last two minutes as a line, newest at the right; `page.js`
/// redraws it the same way.
fn history(per_second: &[f64]) -> String {
    let peak = per_second.iter().copied().fold(0.0, f64::max);
    let step = HISTORY_WIDTH / (HISTORY_SECONDS - 1) as f64;
    let offset = HISTORY_SECONDS.saturating_sub(per_second.len());
    let mut points = String::with_capacity(per_second.len() * 12);
    for (i, value) in per_second.iter().enumerate() {
        let x = (offset + i) as f64 * step;
        let y = HISTORY_HEIGHT
            - 2.0
            - (HISTORY_HEIGHT - 4.0) * if peak > 0.0 { value / peak } else { 0.0 };
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        "<div class=\"history\" title=\"requests per second, last two minutes\">\
         <svg id=\"history\" viewBox=\"0 0 {HISTORY_WIDTH} {HISTORY_HEIGHT}\" width=\"{HISTORY_WIDTH}\" height=\"{HISTORY_HEIGHT}\">\
         <polyline points=\"{}\"/></svg><span>req/s, last 2 min<br>peak <b id=\"history-peak\">{}</b></span></div>",
        points.trim_end(),
        rate(peak),
    )
}

/// HTTP/2 sessions and streams, and requests by protocol.
fn http2(h: &mut String, s: &Snapshot) {
    let x = &s.h2;
    let _ = writeln!(
        h,
        "<section><h2>HTTP/2</h2>\n<table><tr><th>sessions open</th><td>{}</td></tr><tr><th>sessions since start</th><td>{}</td></tr>\
         <tr><th>streams open</th><td>{}</td></tr><tr><th>streams since start</th><td>{}</td></tr><tr><th>streams</th><td>{} /s</td></tr>\
         <tr><th>requests over HTTP/1.x</th><td>{}</td></tr><tr><th>requests over HTTP/2</th><td>{}</td></tr></table></section>",
        int("h2.sessions", x.sessions as u64),
        int("h2.sessions_total", x.sessions_total),
        int("h2.streams_open", x.streams_open as u64),
        int("h2.streams_total", x.streams_total),
        live("h2.streams_per_second", "rate", &rate(x.streams_per_second)),
        int("h2.requests_http1", x.requests_http1),
        int("h2.requests_h2", x.requests_h2),
    );
}

/// nginx's `stub_status`, word for word, with live numbers.
fn connections(h: &mut String, s: &Snapshot) {
    let c = &s.connections;
    let _ = writeln!(
        h,
        "<section><h2>Connections</h2>\n<pre class=\"stub\">Active connections: {}\nserver accepts handled requests\n {} {} {}\n\
         Reading: {} Writing: {} Waiting: {}</pre>\n\
         <table><tr><th>refused at the limit</th><td>{}</td></tr><tr><th>writing via send.pool</th><td>{}</td></tr><tr><th>new connections</th><td>{} /s</td></tr>\
         <tr><th>bytes received</th><td>{}</td></tr><tr><th>bytes sent</th><td>{}</td></tr>\
         <tr><th>body bytes sent</th><td>{}</td></tr><tr><th>sending</th><td>{} /s</td></tr></table></section>",
        int("connections.active", c.active),
        int("connections.accepts", c.accepts),
        int("connections.handled", c.handled),
        int("requests.total", s.requests.total),
        int("connections.reading", c.reading),
        int("connections.writing", c.writing),
        int("connections.waiting", c.waiting),
        int("connections.refused", c.refused),
        int("connections.sending", c.sending),
        live("connections.per_second", "rate", &rate(c.per_second)),
        live("bytes.received", "bytes", &bytes(s.bytes.received)),
        live("bytes.sent", "bytes", &bytes(s.bytes.sent)),
        live("bytes.body_sent", "bytes", &bytes(s.bytes.body_sent)),
        live("bytes.sent_per_second", "bytes", &bytes(s.bytes.sent_per_second as u64)),
    );
}

fn requests(h: &mut String, s: &Snapshot) {
    let r = &s.requests;
    h.push_str("<section><h2>Requests</h2>\n<table><tr><th>status</th><th>requests</th></tr>\n");
    for (class, n) in &r.status.0 {
        let _ = writeln!(
            h,
            "<tr><td>{class}</td><td>{}</td></tr>",
            int(&format!("requests.status.{class}"), n)
        );
    }
    let _ = writeln!(
        h,
        "<tr class=\"total\"><td>all</td><td>{}</td></tr></table>",
        int("requests.total", r.total)
    );
    h.push_str(
        "<table><tr><th>answered by</th><th>requests</th><th>/s</th>\
         <th title=\"request began → response written\">p50</th><th>p99</th></tr>\n",
    );
    for (handler, count) in &r.handlers.0 {
        let key = |field: &str| format!("requests.handlers.{handler}.{field}");
        let _ = writeln!(
            h,
            "<tr><td>{handler}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            int(&key("requests"), count.requests),
            live(&key("per_second"), "rate", &rate(count.per_second)),
            live(&key("p50_us"), "us", &micros(count.p50_us)),
            live(&key("p99_us"), "us", &micros(count.p99_us)),
        );
    }
    h.push_str("</table></section>\n");
}

/// Apache's per-worker states, per farm: the counts and a scoreboard line.
fn workers(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<section class=\"wide\"><h2>Workers</h2>\n<table><tr><th>farm</th><th>idle</th><th>busy</th><th>blocked</th>\
         <th>total</th><th>max</th><th>jobs</th><th>jobs/s</th><th>forks</th></tr>\n",
    );
    for (name, f) in &s.farms.0 {
        let k = |field: &str| format!("farms.{name}.{field}");
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\
             <tr class=\"board\"><td colspan=\"9\"><code>{}</code></td></tr>",
            int(&k("idle"), f.idle),
            int(&k("busy"), f.busy),
            int(&k("blocked"), f.blocked),
            int(&k("total"), f.total),
            int(&k("max"), f.max),
            int(&k("jobs"), f.jobs),
            live(&k("jobs_per_second"), "rate", &rate(f.jobs_per_second)),
            int(&k("forks"), f.forks),
            live(&k("scoreboard"), "text", &f.scoreboard),
        );
    }
    h.push_str(
        "</table><p class=\"note\">Scoreboard: <code>R</code> running, <code>W</code> waiting on a slow socket, \
         <code>_</code> idle, <code>.</code> room to grow.</p></section>\n",
    );
}

fn latency(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<section class=\"wide\"><h2>Latency by stage</h2>\n<table class=\"latency\"><tr><th>stage</th><th>requests</th>\
         <th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>histogram (50 µs … 60 s, then longer)</th></tr>\n",
    );
    for (stage, l) in &s.latency.0 {
        let k = |field: &str| format!("latency.{stage}.{field}");
        let _ = write!(
            h,
            "<tr><td title=\"{}\">{stage}<div class=\"what\">{}</div></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
            escape(l.what),
            escape(l.what),
            int(&k("count"), l.count),
            live(&k("mean_us"), "us", &micros(l.mean_us)),
            live(&k("p50_us"), "us", &micros(l.p50_us)),
            live(&k("p90_us"), "us", &micros(l.p90_us)),
            live(&k("p99_us"), "us", &micros(l.p99_us)),
            live(&k("max_us"), "us", &micros(l.max_us)),
        );
        bars(h, stage, &l.buckets);
        h.push_str("</td></tr>\n");
    }
    h.push_str("</table></section>\n");
}

/// A small bar chart of a stage's buckets; `page.js` redraws it the same way.
fn bars(h: &mut String, stage: &str, buckets: &[u64]) {
    const BAR: usize = 8;
    const TALL: f64 = 24.0;
    let most = buckets.iter().copied().max().unwrap_or(0).max(1) as f64;
    let _ = write!(
        h,
        "<svg class=\"bars\" data-bars=\"latency.{stage}.buckets\" viewBox=\"0 0 {} {TALL}\" width=\"{}\" height=\"{TALL}\">",
        buckets.len() * BAR,
        buckets.len() * BAR
    );
    for (i, n) in buckets.iter().enumerate() {
        // Square-root scale, so a few slow requests still show beside many fast ones.
        let height = if *n == 0 {
            0.0
        } else {
            (TALL * (*n as f64 / most).sqrt()).max(1.0)
        };
        let bound = match BUCKET_BOUNDS_MICROS.get(i) {
            Some(us) => format!("≤ {}", micros(*us)),
            None => "longer".to_string(),
        };
        let _ = write!(
            h,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"{}\" height=\"{height:.1}\"><title>{bound}: {n}</title></rect>",
            i * BAR,
            TALL - height,
            BAR - 1
        );
    }
    h.push_str("</svg>");
}

fn queues(h: &mut String, s: &Snapshot) {
    h.push_str(
        "<section><h2>Queues</h2>\n<table><tr><th>inbox of</th><th>messages waiting</th></tr>\n",
    );
    for (process, n) in &s.queues.0 {
        let _ = writeln!(
            h,
            "<tr><td>{process}</td><td>{}</td></tr>",
            int(&format!("queues.{process}"), n)
        );
    }
    h.push_str("</table></section>\n");
}

/// The HTTPS listener: handshakes and their rate, resumption, failures by reason, and the
/// versions and cipher suites handshakes settled on. Left out without a TLS listener.
fn tls(h: &mut String, s: &Snapshot) {
    let t = &s.tls;
    if !t.enabled {
        return;
    }
    let _ = writeln!(
        h,
        "<section id=\"tls\"><h2>HTTPS (TLS)</h2>\n<table>\
         <tr><th>handshakes</th><td>{}</td></tr><tr><th>handshakes /s</th><td>{}</td></tr>\
         <tr><th>resumed (ticket or session ID)</th><td>{} ({})</td></tr>\
         <tr><th>failed</th><td>{}</td></tr><tr><th>relayed to plug-ins now</th><td>{}</td></tr></table>",
        int("tls.handshakes", t.handshakes),
        live("tls.handshakes_per_second", "rate", &rate(t.handshakes_per_second)),
        int("tls.resumed", t.resumed),
        live("tls.resumption_ratio", "percent", &percent(t.resumption_ratio)),
        int("tls.failed", t.failed),
        int("tls.relays", t.relays),
    );
    h.push_str("<table><tr><th>failed handshakes by reason</th><th>count</th></tr>\n");
    for (reason, n) in &t.failures.0 {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            reason.replace('_', " "),
            int(&format!("tls.failures.{reason}"), n)
        );
    }
    h.push_str("</table>\n<table><tr><th>version</th><th>handshakes</th></tr>\n");
    for (version, n) in &t.versions.0 {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            version.replace("tls1_", "TLS 1."),
            int(&format!("tls.versions.{version}"), n)
        );
    }
    h.push_str("</table>\n<table><tr><th>cipher suite</th><th>handshakes</th></tr>\n");
    for (suite, n) in &t.ciphers.0 {
        let _ = writeln!(
            h,
            "<tr><td>{suite}</td><td>{}</td></tr>",
            int(&format!("tls.ciphers.{suite}"), n)
        );
    }
    h.push_str("</table></section>\n");
}

/// Requests per site: answered, body bytes, status classes.
fn sites(h: &mut String, s: &Snapshot) {
    h.push_str("<section class=\"wide\"><h2>Sites</h2>\n");
    if s.sites.is_empty() {
        h.push_str(
            "<p class=\"empty\">No request has been answered for a site yet.</p></section>\n",
        );
        return;
    }
    h.push_str(
        "<table id=\"sites\"><tr><th>site</th><th>requests</th><th>body bytes</th>\
         <th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr>\n",
    );
    for (i, site) in s.sites.iter().enumerate() {
        let key = |field: &str| format!("sites.{i}.{field}");
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            escape(&site.name),
            int(&key("requests"), site.requests),
            int(&key("body_bytes"), site.body_bytes),
        );
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            let n = site.status.get(class).copied().unwrap_or(0);
            let _ = write!(h, "<td>{}</td>", int(&key(&format!("status.{class}")), n));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table></section>\n");
}

/// The page cache: its totals and its table of files (`page.js` rebuilds the rows).
fn cache(h: &mut String, c: &Cache) {
    h.push_str("<section class=\"wide\"><h2>Page cache</h2>\n");
    if !c.table.enabled {
        h.push_str("<p class=\"empty\">The page cache is off (<code>[cache] enabled = false</code>).</p></section>\n");
        return;
    }
    let _ = writeln!(
        h,
        "<p>{} cached and {} competing files; {} of {} used. {} hits ({} /s), {} answered from disk, hit ratio {}. \
         {} admissions, {} evictions, {} dropped as stale.</p>",
        int("cache.cached_entries", c.table.cached_entries),
        int("cache.competing_entries", c.table.competing_entries),
        live("cache.used_bytes", "bytes", &bytes(c.table.used_bytes)),
        live("cache.budget_bytes", "bytes", &bytes(c.table.budget_bytes)),
        int("cache.hits", c.hits),
        live("cache.hits_per_second", "rate", &rate(c.hits_per_second)),
        int("cache.misses", c.misses),
        live("cache.hit_ratio", "percent", &percent(c.hit_ratio)),
        int("cache.admissions", c.table.admissions),
        int("cache.evictions", c.table.evictions),
        int("cache.stale_drops", c.table.stale_drops),
    );
    let hidden = |empty: bool| if empty { " hidden" } else { "" };
    let _ = writeln!(
        h,
        "<p class=\"empty\" id=\"cache-empty\"{}>No file has been asked for often enough to be scored yet.</p>",
        hidden(!c.table.rows.is_empty())
    );
    let _ = writeln!(
        h,
        "<table id=\"cache\"{}><thead><tr><th>path</th><th>bytes</th><th>score (decaying hits)</th><th>state</th></tr></thead><tbody>",
        hidden(c.table.rows.is_empty())
    );
    for row in &c.table.rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.path),
            row.bytes,
            row.score,
            row.state
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// Content codings: what the cache holds coded, what it saved, and what cache.compress did
/// per coding (times as a histogram) and per type (`COMPRESSION.md`).
fn compression(h: &mut String, c: &crate::cache::CacheSnapshot, plugins_coded: u64) {
    use crate::cache::compressor::TIME_BUCKETS_MICROS;
    h.push_str("<section class=\"wide\"><h2>Compression</h2>\n");
    let _ = writeln!(
        h,
        "<p>{} coded variants cached ({}); {} not sent thanks to them.</p>",
        int("cache.variants_cached", c.variants_cached),
        live("cache.variant_bytes", "bytes", &bytes(c.variant_bytes)),
        live("cache.bytes_saved", "bytes", &bytes(c.bytes_saved)),
    );
    let _ = writeln!(
        h,
        "<p>{} plug-in answers compressed on the fly.</p>",
        int("plugins_coded", plugins_coded),
    );
    h.push_str("<table><thead><tr><th>coding</th><th>compressed</th><th>from siblings</th><th>not smaller</th><th>ratio</th>");
    for (i, limit) in TIME_BUCKETS_MICROS.iter().enumerate() {
        let _ = match (i, *limit) {
            (_, u64::MAX) => write!(h, "<th>slower</th>"),
            (_, l) if l >= 1000 => write!(h, "<th>&lt; {} ms</th>", l / 1000),
            (_, l) => write!(h, "<th>&lt; {l} µs</th>"),
        };
    }
    h.push_str("</tr></thead><tbody>\n");
    let ratio = |out_bytes: u64, in_bytes: u64| {
        if in_bytes == 0 {
            "-".to_string()
        } else {
            percent(out_bytes as f64 / in_bytes as f64)
        }
    };
    for row in &c.compression.codings {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            row.coding,
            row.compressed,
            row.from_siblings,
            row.not_smaller,
            ratio(row.out_bytes, row.in_bytes)
        );
        for n in row.time_histogram {
            let _ = write!(h, "<td>{n}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n<table><thead><tr><th>type</th><th>bytes in</th><th>bytes out</th><th>ratio</th></tr></thead><tbody>\n");
    for row in &c.compression.types {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.mime),
            row.in_bytes,
            row.out_bytes,
            ratio(row.out_bytes, row.in_bytes)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// A ratio as a percentage; `page.js` has the same.
fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// The plug-in table; `page.js` rebuilds its body from `/stats.json`.
fn plugins(h: &mut String, rows: &[PluginRow]) {
    h.push_str("<section class=\"wide\"><h2>Plug-ins</h2>\n");
    let hidden = |empty: bool| if empty { " hidden" } else { "" };
    let _ = writeln!(
        h,
        "<p class=\"empty\" id=\"plugins-empty\"{}>No plug-ins are loaded: the plug-in directory holds none.</p>",
        hidden(!rows.is_empty())
    );
    let _ = writeln!(
        h,
        "<table id=\"plugins\"{}><thead><tr><th>name</th><th>version</th><th>state</th><th>persist</th><th>requests</th>\
         <th>faults</th><th>timeouts</th><th>generation</th><th>file</th><th>note</th></tr></thead><tbody>",
        hidden(rows.is_empty())
    );
    for p in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.name),
            escape(&p.version),
            escape(&p.state),
            if p.persist { "yes" } else { "no" },
            p.requests,
            p.faults,
            p.timeouts,
            p.generation,
            escape(&p.file),
            escape(&p.note)
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// `[tls.acme]`: each name's certificate, next order and last error.
fn acme(h: &mut String, rows: &[crate::support::acme::NameStatus]) {
    if rows.is_empty() {
        return;
    }
    h.push_str(
        "<section class=\"wide\"><h2>ACME certificates</h2>\n<table id=\"acme\"><tr><th>name</th>\
         <th>state</th><th>serial</th><th>expires</th><th>next order</th><th>failures</th>\
         <th>last error</th></tr>\n",
    );
    for row in rows {
        let text = |v: &Option<String>| escape(v.as_deref().unwrap_or("-"));
        let last_error = match (&row.last_error, &row.last_error_at) {
            (Some(e), Some(at)) => format!("{} ({})", escape(e), escape(at)),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.name),
            row.state,
            text(&row.serial),
            text(&row.expires),
            text(&row.next_order),
            row.failures,
            last_error,
        );
    }
    h.push_str("</table></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime() {
        assert_eq!(duration(5.9), "5s");
        assert_eq!(duration(75.0), "1m 15s");
        assert_eq!(duration(3_700.0), "1h 1m");
        assert_eq!(duration(90_000.0), "1d 1h");
    }
}
