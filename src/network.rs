//! The top-level PAR: every channel and every process of the server, and nothing else.
//!
//! ```text
//!                 ┌────────── replica ×cores (one thread each; pin_cores pins it to its core) ──────────┐
//!  listener ─────▶│ acceptor ─▶ idle.pool ─▶ front-end ─▶ cache table ─▶ static ─▶ recycler ─┐ │
//!  (shared,       │                ▲             │          (read)                           │ │
//!   EPOLLEXCLUSIVE)│                └─────────────┼────────── keep-alive ─────────────────────┘ │
//!                 └───────▲──────────────────────┼───────────────────────────────────────────┘
//!                         │ ToReplica::Resume    ├─▶ cgi ×N ─────┐  (cgi ─▶ static ×N: local redirects)
//!                         │                      ├─▶ plugin ×N ──┤  (HTTPS: relayed by tls.pump while lent)
//!                         │                      ├─▶ stats ──────┤
//!                         │                      └─▶ send.pool ──┤  (slow readers)
//!                         └────────────── recycler ◀─────────────┘
//!  replicas, recycler ─▶ stats, log (batched)    replicas, static ─▶ cache.control (hits, batched)
//!  cache.control ─▶ cache table (published)      config (SIGHUP) ─▶ live config read by every process
//!  plugin.keeper (scans the plug-in directory, times out plug-in requests) ─▶ plug-in table
//!  acme ([tls.acme]; its own tokio runtime) ─▶ board: challenges (read by the replicas),
//!        certificates (read by handshakes), status (read by stats)    SIGHUP ─▶ acme (retry)
//! ```
//!
//! The one cycle is replica → handler → recycler → replica. Its channels into the recycler
//! and the replicas are unbounded: every message on them carries a `Conn`, and the acceptors
//! bound the number of `Conn`s (`max_connections`), so they cannot grow without limit, and a
//! full queue can never close the cycle into a deadlock. The cycle is broken on shutdown by
//! the `draining` flag: the replicas stop accepting, close what they hold and stop, and the
//! recycler closes instead of sending home.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, unbounded, Sender};

use crate::back::recycler::{self, RecyclerOut};
use crate::cache::control::{self as cache_control, ControlOut};
use crate::cache::{CacheBoard, CacheSnapshot, TableBoard};
use crate::farm::cgi::{self, CgiOut};
use crate::farm::plugin::keeper::{Keeper, KeeperOut};
use crate::farm::plugin::{self, PluginOut};
use crate::farm::static_file::{self, StaticOut};
use crate::net::acceptor::Listening;
use crate::net::replica::{self, ReplicaOut};
use crate::net::send_pool::{self, SendPoolOut};
use crate::net::tls_pump::{self, TlsPumpOut};
use crate::par::Net;
use crate::plugin_host::PluginBoard;
use crate::protocol::{
    ToAcme, ToCacheControl, ToCgi, ToLog, ToPlugin, ToPluginKeeper, ToRecycler, ToStatic, ToStats,
};
use crate::support::acme;
use crate::support::config::{self, Config, Live, Overrides, ToConfig};
use crate::support::log;
use crate::support::meters::Meters;
use crate::support::stats::{self, Probe};

/// Handles the main thread keeps on the running network.
pub struct Running {
    pub live: Live,
    pub meters: Arc<Meters>,
    pub to_config: Sender<ToConfig>,
    pub to_log: Sender<ToLog>,
    /// SIGHUP asks the acme process to retry failed orders now.
    pub to_acme: Sender<ToAcme>,
    pub net: Net,
}

/// Wires and starts every process. The listeners are already bound.
pub fn start(
    listeners: Vec<Listening>,
    cfg: Config,
    config_file: Option<PathBuf>,
    overrides: Overrides,
) -> std::io::Result<Running> {
    for listening in &listeners {
        listening.socket.set_nonblocking(true)?;
    }
    let listeners = Arc::new(listeners);
    let cpus = crate::par::allowed_cpus();
    let replicas = match cfg.cores {
        0 => cpus.len().max(1),
        n => n,
    };
    crate::support::log::set_access_log_on(!cfg.access_log.is_empty());
    let live: Live = Arc::new(ArcSwap::from_pointee(cfg.clone()));
    let meters = Arc::new(Meters::with_replicas(replicas));
    let board: PluginBoard = Arc::new(ArcSwap::from_pointee(Vec::new()));
    crate::par::set_batch_scheduling(cfg.batch_scheduling);
    let mut net = Net::default();

    // One channel per arrow of the diagram.
    let mut to_replicas = Vec::new();
    let mut replica_inboxes = Vec::new();
    for _ in 0..replicas {
        let (to_replica, replica_inbox) = replica::channel()?;
        to_replicas.push(to_replica);
        replica_inboxes.push(replica_inbox);
    }
    let (to_cache_control, cache_control_inbox) = bounded::<ToCacheControl>(1024);
    let (to_static, static_inbox) = bounded::<ToStatic>(1024);
    let (to_cgi, cgi_inbox) = bounded::<ToCgi>(cfg.cgi.queue.max(1));
    let (to_plugin, plugin_inbox) = bounded::<ToPlugin>(cfg.ogi.queue.max(1));
    let (to_stats, stats_inbox) = bounded::<ToStats>(4096);
    let (to_recycler, recycler_inbox) = unbounded::<ToRecycler>();
    let (to_send_pool, send_pool_inbox) = send_pool::channel()?;
    let (to_tls_pump, tls_pump_inbox) = tls_pump::channel()?;
    let (to_log, log_inbox) = bounded::<ToLog>(8192);
    let (to_config, config_inbox) = unbounded::<ToConfig>();
    let (to_acme, acme_inbox) = bounded::<ToAcme>(1);
    // The stats page reads each arrow's queue length through a receiver clone.
    let queues = vec![
        Probe::of("cache.control", &cache_control_inbox),
        Probe::of("static", &static_inbox),
        Probe::of("cgi", &cgi_inbox),
        Probe::of("plugin", &plugin_inbox),
        Probe::of("stats", &stats_inbox),
        Probe::of("recycler", &recycler_inbox),
        Probe::new("send.pool", send_pool_inbox.length_probe()),
        Probe::new("tls.pump", tls_pump_inbox.length_probe()),
        Probe::of("log", &log_inbox),
    ];

    let l = live.clone();
    net.process("log", move || log::run(log_inbox, l))?;
    let (l, tl) = (live.clone(), to_log.clone());
    net.process("config", move || {
        config::run(config_inbox, config_file, overrides, l, tl)
    })?;

    if let Some(board) = cfg.acme_state.clone() {
        let tl = to_log.clone();
        net.process("acme", move || acme::run(acme_inbox, board, tl))?;
    }

    let table: TableBoard = Arc::new(ArcSwap::from_pointee(HashMap::new()));
    let cache_board: CacheBoard = Arc::new(ArcSwap::from_pointee(CacheSnapshot::default()));
    let control_out = ControlOut {
        table: table.clone(),
        to_log: to_log.clone(),
        board: cache_board.clone(),
        live: live.clone(),
    };
    net.process("cache.control", move || {
        cache_control::run(cache_control_inbox, control_out)
    })?;

    let static_out = StaticOut {
        to_recycler: to_recycler.clone(),
        to_send_pool: to_send_pool.clone(),
        to_cache_control: to_cache_control.clone(),
        live: live.clone(),
    };
    net.farm(
        "static",
        true,
        static_inbox,
        live.clone(),
        |c| (c.static_idle.min(1), c.static_max),
        move |inbox| static_file::run(inbox, static_out.clone()),
    )?;

    let cgi_out = CgiOut {
        to_recycler: to_recycler.clone(),
        to_static: to_static.clone(),
        to_log: to_log.clone(),
        live: live.clone(),
    };
    net.farm(
        "cgi",
        false,
        cgi_inbox,
        live.clone(),
        |c| (1, c.cgi.max),
        move |inbox| cgi::run(inbox, cgi_out.clone()),
    )?;

    let routes = Arc::new(plugin::Routes::default());
    let (to_plugin_keeper, plugin_keeper_inbox) = unbounded::<ToPluginKeeper>();
    let keeper_out = KeeperOut {
        to_recycler: to_recycler.clone(),
        to_log: to_log.clone(),
        live: live.clone(),
        board: board.clone(),
        routes: routes.clone(),
        meters: meters.clone(),
    };
    // The first scan of the plug-in directory happens here, before the listener is served.
    let keeper = Keeper::new(keeper_out);
    net.process("plugin.keeper", move || keeper.run(plugin_keeper_inbox))?;
    let plugin_out = PluginOut {
        to_recycler: to_recycler.clone(),
        to_keeper: to_plugin_keeper,
        to_log: to_log.clone(),
        live: live.clone(),
        routes,
        to_tls_pump,
    };
    net.farm(
        "plugin",
        false,
        plugin_inbox,
        live.clone(),
        |c| (1, c.ogi.instances),
        move |inbox| plugin::run(inbox, plugin_out.clone()),
    )?;

    let tls_pump_out = TlsPumpOut {
        live: live.clone(),
        meters: meters.clone(),
        to_log: to_log.clone(),
    };
    net.process("tls.pump", move || {
        tls_pump::run(tls_pump_inbox, tls_pump_out)
    })?;

    let send_pool_out = SendPoolOut {
        to_recycler: to_recycler.clone(),
        live: live.clone(),
        meters: meters.clone(),
    };
    net.process("send.pool", move || {
        send_pool::run(send_pool_inbox, send_pool_out)
    })?;

    let recycler_out = RecyclerOut {
        to_replicas: to_replicas.clone(),
        to_stats: to_stats.clone(),
        to_log: to_log.clone(),
        live: live.clone(),
        meters: meters.clone(),
    };
    net.process("recycler", move || {
        recycler::run(recycler_inbox, recycler_out)
    })?;

    for (index, inbox) in replica_inboxes.into_iter().enumerate() {
        let replica_out = ReplicaOut {
            index,
            replicas,
            cpu: (cfg.pin_cores && !cpus.is_empty()).then(|| cpus[index % cpus.len()]),
            listeners: listeners.clone(),
            to_replicas: to_replicas.clone(),
            to_cgi: to_cgi.clone(),
            to_static: to_static.clone(),
            to_plugin: to_plugin.clone(),
            to_stats: to_stats.clone(),
            to_send_pool: to_send_pool.clone(),
            to_cache_control: to_cache_control.clone(),
            to_log: to_log.clone(),
            cache: table.clone(),
            live: live.clone(),
            meters: meters.clone(),
        };
        net.process(&format!("replica#{index}"), move || {
            replica::run(inbox, replica_out)
        })?;
    }
    drop((to_cgi, to_static, to_plugin, to_cache_control, to_replicas));

    let stats_out = stats::StatsOut {
        to_recycler,
        flush_answers: 1 + replicas,
        live: live.clone(),
        meters: meters.clone(),
        gauges: net.gauges(),
        board,
        queues,
        cache: cache_board,
        to_send_pool,
    };
    net.process("stats", move || stats::run(stats_inbox, stats_out))?;

    Ok(Running {
        live,
        meters,
        to_config,
        to_log,
        to_acme,
        net,
    })
}
