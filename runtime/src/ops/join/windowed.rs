//! The window join: one entry per key and tumbling window (namespace: the window's start) with
//! the values of both sides, `[lefts, rights]`, paired when the watermark passes the window.

use std::sync::Arc;

use super::{Join, items, push_to};
use crate::record::{Batch, Record};
use crate::value::Value;

impl Join {
    /// A record of `side` (0 left, 1 right): into its window, or late if that window fired.
    pub(super) fn window_record(&mut self, side: usize, r: Record, size: i64) {
        let start = r.ts - r.ts.rem_euclid(size);
        let max_ts = start.saturating_add(size - 1);
        if max_ts <= self.watermark {
            return self.reject_late(r);
        }
        let ns = Value::Int(start);
        match self.table.get_mut(&r.key, &ns) {
            Some(Value::List(sides)) => {
                if let Some(list) = Arc::make_mut(sides).get_mut(side) {
                    push_to(list, r.value);
                }
            }
            _ => {
                let mut sides = vec![Value::List(Arc::new(Vec::new())), Value::List(Arc::new(Vec::new()))];
                sides[side] = Value::List(Arc::new(vec![r.value]));
                self.table.insert(r.key.clone(), ns.clone(), Value::List(Arc::new(sides)));
                self.timers.entry(max_ts).or_default().push((r.key, ns));
            }
        }
    }

    /// The windows ending at `max_ts` (`entries`): every left × right pair of each, keys in
    /// stable-hash order; their state is dropped.
    pub(super) fn fire_window(&mut self, max_ts: i64, size: i64, mut entries: Vec<(Value, Value)>, out: &mut Batch) {
        entries.sort_by_key(|(key, _)| key.stable_hash());
        for (key, ns) in entries {
            let Some(state) = self.table.remove(&key, &ns) else { continue };
            let start = ns.as_i64().unwrap_or(max_ts);
            let window = Some((start, start.saturating_add(size)));
            let sides = items(&state);
            let (lefts, rights) = match sides {
                [l, r] => (items(l), items(r)),
                _ => continue,
            };
            for l in lefts {
                for r in rights {
                    out.push(self.pair(&key, max_ts, l, r, window));
                }
            }
        }
    }
}

/// When the window entry `(ns, value)` fires: its window's last event time.
pub(super) fn timer_of(size: i64, ns: &Value, value: &Value) -> Option<i64> {
    match (ns, items(value)) {
        (Value::Int(start), [Value::List(_), Value::List(_)]) => Some(start.saturating_add(size - 1)),
        _ => None,
    }
}
