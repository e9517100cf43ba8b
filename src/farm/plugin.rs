//! ogi.farm worker: calls gateway plug-ins under `/ogi/NAME`.
//! Instances: a farm sized by `ogi.instances`. In: ToPlugin. Out: ToRecycler, ToLog.
//! Stops: inbox disconnected.

use crossbeam_channel::Sender;

use crate::par::Inbox;
use crate::plugin_host::PluginBoard;
use crate::protocol::{Handler, ToLog, ToPlugin, ToRecycler};
use crate::support::config::Live;

/// ogi.farm's outputs.
#[derive(Clone)]
pub struct PluginOut {
    pub to_recycler: Sender<ToRecycler>,
    pub to_log: Sender<ToLog>,
    pub live: Live,
    pub board: PluginBoard,
}

pub fn run(inbox: Inbox<ToPlugin>, out: PluginOut) {
    for ToPlugin::Call { conn, req, .. } in inbox {
        let cfg = out.live.load();
        let done = crate::farm::reply::error(conn, Some(&req), 404, &cfg, Handler::Plugin);
        if out.to_recycler.send(done).is_err() {
            return;
        }
    }
}
