//! Tumbling and sliding (hop) windows: aligned to the epoch, the same for every key. A record at
//! `ts` belongs to the windows `[s, s + size)` with `s` a multiple of `slide` and
//! `ts - size < s ≤ ts`: one (tumbling, `slide == size`) or `size / slide` (sliding).

use super::{Batch, OpError, Record, Window};
use crate::state::KeyedTable;
use crate::value::Value;

impl Window {
    pub(super) fn process_aligned(&mut self, r: Record, size: i64, slide: i64, out: &mut Batch) -> Result<(), OpError> {
        let last_start = r.ts - r.ts.rem_euclid(slide);
        // Every window of the record is closed when its latest one is.
        if self.closed(last_start.saturating_add(size) - 1) {
            self.reject_late(r);
            return Ok(());
        }
        if let Err(message) = self.aggs.check(&r.value) {
            return self.malformed(&r.key, message);
        }
        let mut start = last_start;
        while start > r.ts.saturating_sub(size) {
            let max_ts = start.saturating_add(size) - 1;
            if !self.closed(max_ts) {
                let ns = Value::Int(start);
                match self.table.get_mut(&r.key, &ns) {
                    Some(state) => self.aggs.add(state, &r.value),
                    None => {
                        let mut state = self.aggs.empty();
                        self.aggs.add(&mut state, &r.value);
                        self.table.insert(r.key.clone(), ns.clone(), state);
                        self.timers.entry(max_ts).or_default().push(r.key.clone());
                    }
                }
                if max_ts <= self.watermark {
                    // A late record inside the allowed lateness: emit the updated window.
                    if let Some(state) = self.table.get(&r.key, &ns) {
                        out.push(self.result(r.key.clone(), start, max_ts + 1, state));
                    }
                }
            }
            let Some(next) = start.checked_sub(slide) else { break };
            start = next;
        }
        Ok(())
    }
}

/// The windows of `keys` whose last event time is `max_ts`: `(key, start, state)`.
pub(super) fn ending_at<'a>(
    table: &'a KeyedTable,
    max_ts: i64,
    size: i64,
    keys: &'a [Value],
) -> Vec<(&'a Value, i64, &'a Value)> {
    let start = max_ts - size + 1;
    let ns = Value::Int(start);
    keys.iter().filter_map(|k| Some((k, start, table.get(k, &ns)?))).collect()
}

/// Removes the windows of `keys` whose last event time is `max_ts`.
pub(super) fn purge(table: &mut KeyedTable, max_ts: i64, size: i64, keys: Vec<Value>) {
    let ns = Value::Int(max_ts - size + 1);
    for key in keys {
        table.remove(&key, &ns);
    }
}
