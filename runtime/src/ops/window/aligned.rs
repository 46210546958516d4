//! Tumbling and sliding (hop) windows: aligned to the epoch, the same for every key. A record at
//! `ts` belongs to the windows `[s, s + size)` with `s` a multiple of `slide` and
//! `ts - size < s ≤ ts`: one (tumbling, `slide == size`) or `size / slide` (sliding).
//!
//! # Panes
//! State is kept per *pane* `[p, p + slide)` (`slide` divides `size`), not per window: a record
//! updates the one pane it falls in, and a window's result merges the `size / slide` panes it
//! covers when it is emitted (Flink slices hop windows the same way). A sliding window of 10 s
//! every 2 s thus costs one entry and one update per record instead of five (Nexmark q5: 1.5 M
//! entries became 0.3 M). A tumbling window is its one pane, so its namespace is still the
//! window's start.
//!
//! Timers stay per window: a key is registered once at the end of each window one of its panes
//! lies in (a new pane in a window that already holds one of the key's panes adds nothing, as
//! that pane registered it). The window that starts at a pane's start is the last to contain
//! it, so when that window closes its purge removes the pane.

use std::borrow::Cow;
use std::collections::HashSet;

use super::aggregates::Aggs;
use super::{Batch, OpError, Record, Window};
use crate::state::KeyedTable;
use crate::value::Value;

impl Window {
    pub(super) fn process_aligned(&mut self, r: Record, size: i64, slide: i64, out: &mut Batch) -> Result<(), OpError> {
        let pane = r.ts - r.ts.rem_euclid(slide);
        // Every window of the record is closed when its latest one (starting at the pane) is.
        if self.closed(pane.saturating_add(size) - 1) {
            self.reject_late(r);
            return Ok(());
        }
        if let Err(message) = self.aggs.check(&r.value) {
            return self.malformed(&r.key, message);
        }
        let ns = Value::Int(pane);
        let new = match self.table.get_mut(&r.key, &ns) {
            Some(state) => {
                self.aggs.add(state, &r.value);
                false
            }
            None => {
                let mut state = self.aggs.empty();
                self.aggs.add(&mut state, &r.value);
                self.table.insert(r.key.clone(), ns, state);
                true
            }
        };
        if new {
            // The key's other panes: a window holding one of them already has the key's timer.
            let others: Vec<i64> = if slide == size {
                Vec::new()
            } else {
                self.table.namespaces(&r.key).filter_map(|(n, _)| n.as_i64()).filter(|&p| p != pane).collect()
            };
            for start in starts(pane, size, slide) {
                let max_ts = start.saturating_add(size) - 1;
                if !self.closed(max_ts) && !others.iter().any(|&p| p >= start && p <= max_ts) {
                    self.timers.entry(max_ts).or_default().push(r.key.clone());
                }
            }
        }
        for start in starts(pane, size, slide) {
            let max_ts = start.saturating_add(size) - 1;
            if max_ts <= self.watermark && !self.closed(max_ts) {
                // A late record inside the allowed lateness: emit the updated window.
                if let Some(state) = window_state(&self.table, &self.aggs, &r.key, start, size, slide) {
                    out.push(self.result(r.key.clone(), start, max_ts + 1, &state));
                }
            }
        }
        Ok(())
    }
}

/// The starts of the windows that contain the pane starting at `pane`, latest first.
fn starts(pane: i64, size: i64, slide: i64) -> impl Iterator<Item = i64> {
    (0..size / slide).map_while(move |i| pane.checked_sub(i.checked_mul(slide)?))
}

/// The state of `key`'s window `[start, start + size)`: its panes merged in time order (the one
/// pane itself when tumbling); `None` when the key has none there. The key's own panes are
/// looked at, not every pane start of the window (a day's window every second has 86 400).
pub(super) fn window_state<'a>(
    table: &'a KeyedTable,
    aggs: &Aggs,
    key: &Value,
    start: i64,
    size: i64,
    slide: i64,
) -> Option<Cow<'a, Value>> {
    if slide == size {
        return table.get(key, &Value::Int(start)).map(Cow::Borrowed);
    }
    let max_ts = start.saturating_add(size - 1);
    let mut panes: Vec<(i64, &Value)> = table
        .namespaces(key)
        .filter_map(|(n, state)| Some((n.as_i64()?, state)))
        .filter(|&(p, _)| p >= start && p <= max_ts)
        .collect();
    panes.sort_unstable_by_key(|&(p, _)| p);
    let mut panes = panes.into_iter();
    let mut merged = Cow::Borrowed(panes.next()?.1);
    for (_, state) in panes {
        aggs.merge(merged.to_mut(), state);
    }
    Some(merged)
}

/// The timers of restored panes: each key at the end of every window its panes lie in, once.
pub(super) fn restored_timers<'a>(
    panes: impl Iterator<Item = (&'a Value, i64)>,
    size: i64,
    slide: i64,
    mut register: impl FnMut(i64, &Value),
) {
    let mut seen: HashSet<(i64, &Value)> = HashSet::new();
    for (key, pane) in panes {
        for start in starts(pane, size, slide) {
            let max_ts = start.saturating_add(size) - 1;
            if slide == size || seen.insert((max_ts, key)) {
                register(max_ts, key);
            }
        }
    }
}

/// Removes the panes of `keys` that the window whose last event time is `max_ts` was the last
/// to contain: the one starting where the window does.
pub(super) fn purge(table: &mut KeyedTable, max_ts: i64, size: i64, keys: Vec<Value>) {
    let ns = Value::Int(max_ts - size + 1);
    for key in keys {
        table.remove(&key, &ns);
    }
}
