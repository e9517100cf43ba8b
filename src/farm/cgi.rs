//! cgi.farm worker: runs CGI/1.1 programs from the cgi-bin directory.
//! Instances: a farm sized by `cgi.max`. In: ToCgi. Out: ToRecycler, ToLog.
//! Stops: inbox disconnected.

use crossbeam_channel::Sender;

use crate::par::Inbox;
use crate::protocol::{Handler, ToCgi, ToLog, ToRecycler};
use crate::support::config::Live;

/// cgi.farm's outputs.
#[derive(Clone)]
pub struct CgiOut {
    pub to_recycler: Sender<ToRecycler>,
    pub to_log: Sender<ToLog>,
    pub live: Live,
}

pub fn run(inbox: Inbox<ToCgi>, out: CgiOut) {
    for ToCgi::Run { conn, req } in inbox {
        let cfg = out.live.load();
        let done = crate::farm::reply::error(conn, Some(&req), 404, &cfg, Handler::Cgi);
        if out.to_recycler.send(done).is_err() {
            return;
        }
    }
}
