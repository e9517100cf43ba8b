//! `/metrics`: the snapshot in the Prometheus text exposition format (version 0.0.4).
//! Every name starts `occwserv_`; stage latencies are histograms with fixed `le` buckets.

use std::fmt::Write;

use super::snapshot::Snapshot;

/// Writes one metric family's `# HELP` and `# TYPE` lines.
fn family(p: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(
        p,
        "# HELP occwserv_{name} {help}\n# TYPE occwserv_{name} {kind}\n"
    );
}

/// Writes a family with a single unlabelled sample.
fn single(p: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(p, name, kind, help);
    let _ = writeln!(p, "occwserv_{name} {value}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Seconds from microseconds, written exactly.
fn seconds(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

pub fn render(s: &Snapshot) -> String {
    let mut p = String::with_capacity(16 * 1024);
    single(
        &mut p,
        "uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        s.uptime_seconds,
    );
    single(
        &mut p,
        "stats_enabled",
        "gauge",
        "1 when per-request statistics are collected (config `stats`).",
        u8::from(s.stats_enabled),
    );

    let c = &s.connections;
    single(
        &mut p,
        "connections_accepted_total",
        "counter",
        "Connections accepted, including refused ones.",
        c.accepts,
    );
    single(
        &mut p,
        "connections_handled_total",
        "counter",
        "Connections accepted and served.",
        c.handled,
    );
    single(
        &mut p,
        "connections_refused_total",
        "counter",
        "Connections refused at max_connections (503).",
        c.refused,
    );
    single(
        &mut p,
        "connections_active",
        "gauge",
        "Open connections.",
        c.active,
    );
    family(
        &mut p,
        "connections",
        "gauge",
        "Open connections by state: reading, writing, waiting (parked in idle.pool).",
    );
    for (state, n) in [
        ("reading", c.reading),
        ("writing", c.writing),
        ("waiting", c.waiting),
    ] {
        let _ = writeln!(p, "occwserv_connections{{state=\"{state}\"}} {n}");
    }
    single(
        &mut p,
        "connections_sending",
        "gauge",
        "Writing connections held by send.pool until a slow reader takes the rest.",
        c.sending,
    );

    family(
        &mut p,
        "requests_total",
        "counter",
        "Requests answered, by status class.",
    );
    for (class, n) in &s.requests.status.0 {
        let _ = writeln!(p, "occwserv_requests_total{{class=\"{class}\"}} {n}");
    }
    family(
        &mut p,
        "handler_requests_total",
        "counter",
        "Requests answered, by the process that answered.",
    );
    for (handler, h) in &s.requests.handlers.0 {
        let _ = writeln!(
            p,
            "occwserv_handler_requests_total{{handler=\"{handler}\"}} {}",
            h.requests
        );
    }
    single(
        &mut p,
        "received_bytes_total",
        "counter",
        "Bytes read from clients.",
        s.bytes.received,
    );
    single(
        &mut p,
        "sent_bytes_total",
        "counter",
        "Bytes written to clients.",
        s.bytes.sent,
    );
    single(
        &mut p,
        "sent_body_bytes_total",
        "counter",
        "Response body bytes written to clients.",
        s.bytes.body_sent,
    );

    family(
        &mut p,
        "farm_workers",
        "gauge",
        "Workers of each farm by state (busy includes blocked).",
    );
    for (farm, f) in &s.farms.0 {
        for (state, n) in [("idle", f.idle), ("busy", f.busy), ("blocked", f.blocked)] {
            let _ = writeln!(
                p,
                "occwserv_farm_workers{{farm=\"{farm}\",state=\"{state}\"}} {n}"
            );
        }
    }
    family(
        &mut p,
        "farm_workers_max",
        "gauge",
        "Most workers each farm may grow to.",
    );
    for (farm, f) in &s.farms.0 {
        let _ = writeln!(p, "occwserv_farm_workers_max{{farm=\"{farm}\"}} {}", f.max);
    }
    family(
        &mut p,
        "farm_jobs_total",
        "counter",
        "Jobs taken by each farm's workers.",
    );
    for (farm, f) in &s.farms.0 {
        let _ = writeln!(p, "occwserv_farm_jobs_total{{farm=\"{farm}\"}} {}", f.jobs);
    }
    family(
        &mut p,
        "farm_forks_total",
        "counter",
        "Workers each farm has started.",
    );
    for (farm, f) in &s.farms.0 {
        let _ = writeln!(
            p,
            "occwserv_farm_forks_total{{farm=\"{farm}\"}} {}",
            f.forks
        );
    }
    family(
        &mut p,
        "queue_messages",
        "gauge",
        "Messages waiting in each process's inbox.",
    );
    for (process, n) in &s.queues.0 {
        let _ = writeln!(p, "occwserv_queue_messages{{process=\"{process}\"}} {n}");
    }

    family(
        &mut p,
        "stage_latency_seconds",
        "histogram",
        "Time spent in each stage of a request.",
    );
    for (stage, l) in &s.latency.0 {
        let mut cumulative = 0;
        for (bound, n) in s.latency_bounds_us.iter().zip(&l.buckets) {
            cumulative += n;
            let _ = writeln!(
                p,
                "occwserv_stage_latency_seconds_bucket{{stage=\"{stage}\",le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
        let _ = writeln!(
            p,
            "occwserv_stage_latency_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {}",
            l.count
        );
        let _ = writeln!(
            p,
            "occwserv_stage_latency_seconds_sum{{stage=\"{stage}\"}} {}",
            seconds(l.sum_us)
        );
        let _ = writeln!(
            p,
            "occwserv_stage_latency_seconds_count{{stage=\"{stage}\"}} {}",
            l.count
        );
    }

    let cache = &s.cache;
    single(
        &mut p,
        "cache_enabled",
        "gauge",
        "1 when the page cache is on.",
        u8::from(cache.table.enabled),
    );
    single(
        &mut p,
        "cache_budget_bytes",
        "gauge",
        "Memory budget of the page cache.",
        cache.table.budget_bytes,
    );
    single(
        &mut p,
        "cache_used_bytes",
        "gauge",
        "Bytes of cached pages held.",
        cache.table.used_bytes,
    );
    family(
        &mut p,
        "cache_entries",
        "gauge",
        "Files in the cache table, by state (cached, or competing to be).",
    );
    let _ = writeln!(
        p,
        "occwserv_cache_entries{{state=\"cached\"}} {}",
        cache.table.cached_entries
    );
    let _ = writeln!(
        p,
        "occwserv_cache_entries{{state=\"competing\"}} {}",
        cache.table.competing_entries
    );
    single(
        &mut p,
        "cache_hits_total",
        "counter",
        "Requests answered from cached bytes.",
        cache.hits,
    );
    single(
        &mut p,
        "cache_misses_total",
        "counter",
        "Requests for the document root answered from disk.",
        cache.misses,
    );
    single(
        &mut p,
        "cache_admissions_total",
        "counter",
        "Files taken into the cache.",
        cache.table.admissions,
    );
    single(
        &mut p,
        "cache_evictions_total",
        "counter",
        "Files evicted from the cache.",
        cache.table.evictions,
    );
    single(
        &mut p,
        "cache_stale_drops_total",
        "counter",
        "Cached files dropped because they changed on disk.",
        cache.table.stale_drops,
    );
    single(
        &mut p,
        "compression_variants_cached",
        "gauge",
        "Coded variants (br, zstd, gzip) held in the cache.",
        cache.table.variants_cached,
    );
    single(
        &mut p,
        "compression_variant_bytes",
        "gauge",
        "Bytes of coded variants held in the cache.",
        cache.table.variant_bytes,
    );
    single(
        &mut p,
        "compression_plugin_answers_total",
        "counter",
        "Plug-in answers compressed on the fly.",
        s.plugins_coded,
    );
    single(
        &mut p,
        "compression_saved_bytes_total",
        "counter",
        "File bytes not sent thanks to cached or precompressed coded variants.",
        cache.table.bytes_saved,
    );

    if !s.plugins.is_empty() {
        family(
            &mut p,
            "plugin_requests_total",
            "counter",
            "Requests routed to each gateway plug-in.",
        );
        for row in &s.plugins {
            let _ = writeln!(
                p,
                "occwserv_plugin_requests_total{{plugin=\"{}\"}} {}",
                label(&row.name),
                row.requests
            );
        }
        family(
            &mut p,
            "plugin_faults_total",
            "counter",
            "Plug-in instances that panicked.",
        );
        for row in &s.plugins {
            let _ = writeln!(
                p,
                "occwserv_plugin_faults_total{{plugin=\"{}\"}} {}",
                label(&row.name),
                row.faults
            );
        }
        family(
            &mut p,
            "plugin_timeouts_total",
            "counter",
            "Plug-in requests the server timed out.",
        );
        for row in &s.plugins {
            let _ = writeln!(
                p,
                "occwserv_plugin_timeouts_total{{plugin=\"{}\"}} {}",
                label(&row.name),
                row.timeouts
            );
        }
    }
    if !s.sites.is_empty() {
        family(
            &mut p,
            "site_requests_total",
            "counter",
            "Requests answered for each site (by its first name), by status class.",
        );
        for site in &s.sites {
            for (class, n) in &site.status.0 {
                let _ = writeln!(
                    p,
                    "occwserv_site_requests_total{{site=\"{}\",class=\"{class}\"}} {n}",
                    label(&site.name)
                );
            }
        }
        family(
            &mut p,
            "site_body_bytes_total",
            "counter",
            "Response body bytes sent for each site.",
        );
        for site in &s.sites {
            let _ = writeln!(
                p,
                "occwserv_site_body_bytes_total{{site=\"{}\"}} {}",
                label(&site.name),
                site.body_bytes
            );
        }
    }
    tls(&mut p, s);
    p
}

/// The HTTPS listener's handshakes, when there is one.
fn tls(p: &mut String, s: &Snapshot) {
    let t = &s.tls;
    if !t.enabled {
        return;
    }
    single(
        p,
        "tls_handshakes_total",
        "counter",
        "TLS handshakes completed.",
        t.handshakes,
    );
    single(
        p,
        "tls_resumed_total",
        "counter",
        "TLS handshakes completed by resuming a session (ticket or session ID).",
        t.resumed,
    );
    single(
        p,
        "tls_relays",
        "gauge",
        "Connections lent to plug-ins that tls.pump relays now (HTTPS, or compressed answers).",
        t.relays,
    );
    family(
        p,
        "tls_failed_total",
        "counter",
        "TLS handshakes that failed, by reason.",
    );
    for (reason, n) in &t.failures.0 {
        let _ = writeln!(p, "occwserv_tls_failed_total{{reason=\"{reason}\"}} {n}");
    }
    family(
        p,
        "tls_version_handshakes_total",
        "counter",
        "TLS handshakes completed, by protocol version.",
    );
    for (version, n) in &t.versions.0 {
        let _ = writeln!(
            p,
            "occwserv_tls_version_handshakes_total{{version=\"{version}\"}} {n}"
        );
    }
    family(
        p,
        "tls_cipher_handshakes_total",
        "counter",
        "TLS handshakes completed, by cipher suite.",
    );
    for (cipher, n) in &t.ciphers.0 {
        let _ = writeln!(
            p,
            "occwserv_tls_cipher_handshakes_total{{cipher=\"{cipher}\"}} {n}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_seconds() {
        assert_eq!(seconds(50), "0.000050");
        assert_eq!(seconds(60_000_000), "60.000000");
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
