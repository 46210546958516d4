//! Session windows, merged as Flink merges them: a record at `ts` is the window `[ts, ts + gap)`;
//! it merges with every session of its key it intersects (`start ≤ ts + gap` and `end ≥ ts`,
//! ends included, as Flink's `TimeWindow.intersects`), the result spanning them all. Sessions of
//! a key never intersect one another, so one pass finds everything a record merges. A record is
//! late when the session it would end up in is closed (`end - 1 + allowedLateness ≤ watermark`);
//! only a record that merges with no open session can be.
//!
//! A session is one keyed-state entry: namespace its start, value `[end, state]`; a session
//! that merges is written under its (possibly new) start.
//!
//! Timers are wake-ups per key, not one per record: every session has a wake-up of its key at
//! or before its next event — firing at `end - 1`, or, once fired, closing at `end - 1 +
//! allowedLateness`. A record extending a session that has not fired registers nothing (the
//! session's wake-up comes first); a woken key re-examines all its sessions, fires, purges and
//! registers the next wake-up of each. So the timers hold about one entry per session, however
//! many records extend it.

use std::sync::Arc;

use super::{Batch, OpError, Record, Window};
use crate::ops::aggregate::ValueMap;
use crate::state::KeyedTable;
use crate::value::Value;

/// A session entry's `(end, state)`.
pub(super) fn split(v: &Value) -> Option<(i64, &Value)> {
    match v {
        Value::List(l) if l.len() == 2 => match &l[0] {
            Value::Int(end) => Some((*end, &l[1])),
            _ => None,
        },
        _ => None,
    }
}

fn entry(end: i64, state: Value) -> Value {
    Value::List(Arc::new(vec![Value::Int(end), state]))
}

/// The sessions of `key` that `[lo, hi]` intersects, as `(start, end)`.
fn intersecting(table: &KeyedTable, key: &Value, lo: i64, hi: i64) -> impl Iterator<Item = (i64, i64)> {
    table.namespaces(key).filter_map(move |(ns, v)| match (ns, split(v)) {
        (Value::Int(s), Some((e, _))) if *s <= hi && e >= lo => Some((*s, e)),
        _ => None,
    })
}

impl Window {
    pub(super) fn process_session(&mut self, r: Record, gap: i64, out: &mut Batch) -> Result<(), OpError> {
        let (lo, hi) = (r.ts, r.ts.saturating_add(gap));
        let (mut start, mut end, mut merged, mut first) = (lo, hi, 0usize, None);
        for (s, e) in intersecting(&self.table, &r.key, lo, hi) {
            start = start.min(s);
            end = end.max(e);
            merged += 1;
            first = Some((s, e));
        }
        if self.closed(end - 1) {
            self.reject_late(r);
            return Ok(());
        }
        if let Err(message) = self.aggs.check(&r.value) {
            return self.malformed(&r.key, message);
        }
        let ns = Value::Int(start);
        let wake = match (merged, first) {
            (1, Some((s, e))) if s == start => {
                // The common case: the record falls into (or extends) one session.
                if let Some(Value::List(l)) = self.table.get_mut(&r.key, &ns) {
                    let l = Arc::make_mut(l);
                    l[0] = Value::Int(end);
                    self.aggs.add(&mut l[1], &r.value);
                }
                // A session that had not fired has a wake-up at or before its old end - 1; one
                // that fired has its closing wake-up, which is early enough unless it reopened.
                e - 1 <= self.watermark && end - 1 > self.watermark
            }
            _ => {
                let starts: Vec<i64> = intersecting(&self.table, &r.key, lo, hi).map(|(s, _)| s).collect();
                let mut state = self.aggs.empty();
                for s in starts {
                    if let Some(old) = self.table.remove(&r.key, &Value::Int(s))
                        && let Some((_, old_state)) = split(&old)
                    {
                        self.aggs.merge(&mut state, old_state);
                    }
                }
                self.aggs.add(&mut state, &r.value);
                self.table.insert(r.key.clone(), ns.clone(), entry(end, state));
                true
            }
        };
        if wake {
            let at = self.next_event(end - 1);
            self.timers.entry(at).or_default().push(r.key.clone());
        }
        if end - 1 <= self.watermark {
            // Inside the allowed lateness: the updated (perhaps merged) session is emitted at once.
            if let Some((_, state)) = self.table.get(&r.key, &ns).and_then(split) {
                out.push(self.result(r.key.clone(), start, end, state));
            }
        }
        Ok(())
    }
}

impl Window {
    /// When a session whose last event time is `max_ts` next needs its key woken: to fire, or
    /// (fired) to close.
    fn next_event(&self, max_ts: i64) -> i64 {
        if max_ts > self.watermark { max_ts } else { max_ts.saturating_add(self.lateness) }
    }

    /// The watermark moved from `prev` to `self.watermark`: the keys woken by it fire their
    /// sessions whose last event time it passed (once, ordered by that time, then key hash),
    /// purge the closed ones and register the next wake-up of the others.
    pub(super) fn advance_sessions(&mut self, prev: i64, out: &mut Batch) {
        let w = self.watermark;
        let due = match w.checked_add(1) {
            Some(after) => {
                let later = self.timers.split_off(&after);
                std::mem::replace(&mut self.timers, later)
            }
            None => std::mem::take(&mut self.timers),
        };
        let mut seen: ValueMap<()> = ValueMap::default();
        let mut fired = Vec::new();
        let mut closed = Vec::new();
        for key in due.into_values().flatten() {
            if seen.insert(key.clone(), ()).is_some() {
                continue;
            }
            let sessions: Vec<(i64, i64)> = self
                .table
                .namespaces(&key)
                .filter_map(|(ns, v)| match (ns, split(v)) {
                    (Value::Int(s), Some((end, _))) => Some((*s, end)),
                    _ => None,
                })
                .collect();
            for (start, end) in sessions {
                let max_ts = end - 1;
                if max_ts > prev
                    && max_ts <= w
                    && let Some((_, state)) = self.table.get(&key, &Value::Int(start)).and_then(split)
                {
                    fired.push((max_ts, key.stable_hash(), self.result(key.clone(), start, end, state)));
                }
                if self.closed(max_ts) {
                    closed.push((key.clone(), Value::Int(start)));
                } else {
                    let at = self.next_event(max_ts);
                    self.timers.entry(at).or_default().push(key.clone());
                }
            }
        }
        fired.sort_by_key(|(t, h, _)| (*t, *h));
        out.extend(fired.into_iter().map(|(.., r)| r));
        for (key, ns) in closed {
            self.table.remove(&key, &ns);
        }
    }
}
