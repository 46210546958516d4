//! The interval join (and the regular join with a time-to-live, the interval `[-ttl, +ttl]`):
//! one entry per key, side and event time (namespace `[side, ts]`) with that side's values at
//! that time; a record meets the other side's entries in its range at once, and an entry is
//! dropped when the watermark makes every further match impossible.

use std::sync::Arc;

use super::{Join, LEFT, RIGHT, items, push_to};
use crate::record::{Batch, Record};
use crate::value::Value;

impl Join {
    /// A record of `side`: paired with every stored record of the other side in range, then
    /// stored; late if it is at or behind the watermark.
    pub(super) fn interval_record(&mut self, side: usize, r: Record, lower: i64, upper: i64, out: &mut Batch) {
        if r.ts <= self.watermark {
            return self.reject_late(r);
        }
        // The other side's times that meet this record: right ∈ [left - lower, left + upper].
        let (lo, hi) = if side == LEFT {
            (r.ts.saturating_sub(lower), r.ts.saturating_add(upper))
        } else {
            (r.ts.saturating_sub(upper), r.ts.saturating_add(lower))
        };
        let other = 1 - side;
        let mut matches: Vec<(i64, &Value)> = Vec::new();
        for (ns, values) in self.table.namespaces(&r.key) {
            if let Some((s, t)) = split(ns)
                && s == other
                && lo <= t
                && t <= hi
            {
                matches.extend(items(values).iter().map(|v| (t, v)));
            }
        }
        matches.sort_by_key(|(t, _)| *t);
        for (t, v) in matches {
            let (l, rv) = if side == LEFT { (&r.value, v) } else { (v, &r.value) };
            out.push(self.pair(&r.key, r.ts.max(t), l, rv, None));
        }
        let ns = Value::List(Arc::new(vec![Value::Int(side as i64), Value::Int(r.ts)]));
        match self.table.get_mut(&r.key, &ns) {
            Some(list) => push_to(list, r.value),
            None => {
                let expires = expiry(side, r.ts, lower, upper);
                self.table.insert(r.key.clone(), ns.clone(), Value::List(Arc::new(vec![r.value])));
                self.timers.entry(expires).or_default().push((r.key, ns));
            }
        }
    }
}

/// `(side, ts)` of an interval-join namespace.
fn split(ns: &Value) -> Option<(usize, i64)> {
    match items(ns) {
        [Value::Int(s @ 0..=1), Value::Int(t)] => Some((*s as usize, *t)),
        _ => None,
    }
}

/// The watermark at which a record of `side` at `ts` can meet nothing more: every later record
/// is after the watermark, and a left record meets right ones up to `ts + upper`, a right one
/// left ones up to `ts + lower`.
fn expiry(side: usize, ts: i64, lower: i64, upper: i64) -> i64 {
    ts.saturating_add(if side == RIGHT { lower } else { upper })
}

/// When the entry `(ns, value)` is dropped; `None` when it is not an interval-join entry.
pub(super) fn timer_of(lower: i64, upper: i64, ns: &Value, value: &Value) -> Option<i64> {
    let (side, ts) = split(ns)?;
    matches!(value, Value::List(_)).then(|| expiry(side, ts, lower, upper))
}
