//! The plug-in table for `/stats.html`: one row per attached or refused name, and one per
//! detached name whose generations are still draining.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{GenerationState, NameCounters, Route};
use crate::plugin_host::{Library, PluginRow};

/// A replaced or detached generation, listed until it has drained.
pub(super) struct Retired {
    pub library: Arc<Library>,
    pub state: Arc<GenerationState>,
}

/// The rows, sorted by name.
pub(super) fn rows(
    table: &HashMap<String, Route>,
    counters_by_name: &HashMap<String, Arc<NameCounters>>,
    retired: &[Retired],
) -> Vec<PluginRow> {
    let mut ordered: Vec<&String> = table.keys().collect();
    let mut draining: Vec<String> = retired
        .iter()
        .map(|r| r.library.name())
        .filter(|n| !table.contains_key(n))
        .collect();
    draining.sort();
    draining.dedup();
    ordered.sort();
    let mut rows = Vec::with_capacity(ordered.len() + draining.len());
    for name in ordered {
        let counters = counters_by_name.get(name).cloned().unwrap_or_default();
        let older = retired.iter().filter(|r| &r.library.name() == name).count() as u32;
        let row = match &table[name] {
            Route::Ready(generation) => {
                let running = generation.state.running.load(Ordering::Relaxed);
                let state = if generation.state.holding.load(Ordering::Relaxed) {
                    "owning".to_string()
                } else if running > 0 {
                    format!("busy {running}")
                } else {
                    "idle".to_string()
                };
                PluginRow {
                    name: name.clone(),
                    version: generation.library.declaration.version(),
                    state,
                    persist: generation.state.persist(),
                    requests: counters.requests.load(Ordering::Relaxed),
                    faults: counters.faults.load(Ordering::Relaxed),
                    timeouts: counters.timeouts.load(Ordering::Relaxed),
                    generations: 1 + older,
                    generation: generation.library.generation,
                    file: generation.library.file.display().to_string(),
                    note: counters
                        .last_fault
                        .lock()
                        .map(|n| n.clone())
                        .unwrap_or_default(),
                }
            }
            Route::Refused(refusal) => PluginRow {
                name: name.clone(),
                version: String::new(),
                state: "refused".to_string(),
                persist: false,
                requests: counters.requests.load(Ordering::Relaxed),
                faults: counters.faults.load(Ordering::Relaxed),
                timeouts: counters.timeouts.load(Ordering::Relaxed),
                generations: older,
                generation: 0,
                file: refusal.file.display().to_string(),
                note: refusal.why.clone(),
            },
        };
        rows.push(row);
    }
    for name in draining {
        let counters = counters_by_name.get(&name).cloned().unwrap_or_default();
        let older: Vec<&Retired> = retired
            .iter()
            .filter(|r| r.library.name() == name)
            .collect();
        let Some(last) = older.last() else { continue };
        rows.push(PluginRow {
            name: name.clone(),
            version: last.library.declaration.version(),
            state: "draining".to_string(),
            persist: last.state.persist(),
            requests: counters.requests.load(Ordering::Relaxed),
            faults: counters.faults.load(Ordering::Relaxed),
            timeouts: counters.timeouts.load(Ordering::Relaxed),
            generations: older.len() as u32,
            generation: last.library.generation,
            file: last.library.file.display().to_string(),
            note: String::new(),
        });
    }
    rows
}
