//! cache.hash: sends a request to its cached entry or on to static.farm.
//! Instances: 1. In: ToCacheHash (lookups from the front end, new tables from cache.control).
//! Out: ToStatic. Stops: inbox disconnected or static.farm gone.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, SendError, Sender};

use super::Table;
use crate::http::Method;
use crate::protocol::{ToCacheHash, ToStatic};

pub fn run(inbox: Receiver<ToCacheHash>, to_static: Sender<ToStatic>) {
    let mut table: Table = Arc::new(HashMap::new());
    for msg in inbox {
        let job = match msg {
            ToCacheHash::Table(new) => {
                table = new;
                continue;
            }
            ToCacheHash::Lookup { conn, req } => {
                let cacheable = matches!(req.method, Method::Get | Method::Head);
                let key = match &req.site {
                    Some(site) => site.cache_key(&req.path),
                    None => std::borrow::Cow::Borrowed(req.path.as_str()),
                };
                match table.get(&*key) {
                    Some(entry) if cacheable => ToStatic::Cached {
                        conn,
                        req,
                        entry: entry.clone(),
                    },
                    _ => ToStatic::File { conn, req },
                }
            }
        };
        if let Err(SendError(orphan)) = to_static.send(job) {
            drop(orphan);
            return;
        }
    }
}
