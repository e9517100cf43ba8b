//! The front end's site checks, called once per request before it is routed: choose the site
//! by Host (400 for an invalid Host), guard the status pages with `[stats] allow`, turn off
//! `/cgi-bin/` and `/ogi/` for a site that does not want them, and apply the site's access,
//! auth and redirect rules. No channels here: a refusal is written and returned for the
//! recycler.

use crate::conn::Conn;
use crate::farm::front_end::{route, Route};
use crate::farm::reply;
use crate::http::Request;
use crate::protocol::{Handler, StatsFormat, ToRecycler};
use crate::site::{cidr, Gate};
use crate::support::config::Config;

/// The request with its site attached and its route, or the answer already sent.
// Both sides move a `Conn` by value, as every hand-on does: boxing would allocate per request.
#[allow(clippy::result_large_err)]
pub fn admit(
    conn: Conn,
    mut req: Request,
    cfg: &Config,
) -> Result<(Conn, Request, Route), ToRecycler> {
    let site = match cfg.site_table.pick(req.host.as_deref()) {
        Ok(site) => site,
        Err(_) => return Err(reply::error(conn, Some(&req), 400, cfg, Handler::FrontEnd)),
    };
    let route = match stats_route(&req.path, &cfg.stats.path_prefix) {
        Some(format) => Route::Stats(format),
        None => match route(&req.path) {
            Route::Stats(_) => Route::Static,
            Route::Cgi if !site.cgi => Route::Static,
            Route::Plugin(_) if !site.plugins => Route::Static,
            other => other,
        },
    };
    let gate = match route {
        Route::Stats(_) if !cidr::contains(&cfg.stats.allow_nets, conn.peer.ip()) => {
            Gate::Forbidden
        }
        Route::Stats(_) => Gate::Pass,
        _ => site.gate(&req, conn.peer.ip()),
    };
    req.site = Some(cfg.site_table.reference(site));
    match gate {
        Gate::Pass => Ok((conn, req, route)),
        Gate::Forbidden => Err(reply::error(conn, Some(&req), 403, cfg, Handler::FrontEnd)),
        Gate::BadPath => Err(reply::error(conn, Some(&req), 400, cfg, Handler::FrontEnd)),
        Gate::Unauthorized(challenge) => Err(reply::error_with(
            conn,
            Some(&req),
            401,
            cfg,
            Handler::FrontEnd,
            &[("WWW-Authenticate", &challenge)],
        )),
        Gate::Redirect(status, location) => Err(reply::error_with(
            conn,
            Some(&req),
            status,
            cfg,
            Handler::FrontEnd,
            &[("Location", &location)],
        )),
    }
}

/// The status page a path names under `[stats] path_prefix`.
pub fn stats_route(path: &str, prefix: &str) -> Option<StatsFormat> {
    match path.strip_prefix(prefix)? {
        "stats.html" | "stats" => Some(StatsFormat::Html),
        "stats.json" => Some(StatsFormat::Json),
        "metrics" => Some(StatsFormat::Prometheus),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_pages_move_with_the_prefix() {
        assert_eq!(stats_route("/stats.html", "/"), Some(StatsFormat::Html));
        assert_eq!(stats_route("/metrics", "/"), Some(StatsFormat::Prometheus));
        assert_eq!(stats_route("/stats.html", "/_status/"), None);
        assert_eq!(
            stats_route("/_status/stats.json", "/_status/"),
            Some(StatsFormat::Json)
        );
        assert_eq!(stats_route("/index.html", "/"), None);
    }
}
