//! Deduplication per key on event time (see [`DeduplicateSpec`]): one record per key and
//! time-to-live span, the first or the last.
//!
//! A key's span opens at its first record by event time and lasts `ttl`, `[t, t + ttl)`; the
//! next record at or after its end opens the next one. Which record comes first by event time
//! is only known once the watermark has reached it (an earlier one may still come until then;
//! Flink's event-time deduplication waits for the watermark too), so records ahead of the
//! watermark wait in the key's state — one per distinct event time, the one a tie would keep —
//! and are resolved in event-time order as it passes them:
//! - `keep: first` emits a span's first record, unchanged, when the watermark reaches it;
//! - `keep: last` emits a span's last record when the watermark reaches the span's end − 1,
//!   with that event time (as a window's result, so that it is on time downstream).
//!
//! Ties of event time go to the smaller (`first`) or greater (`last`) encoded value. A record at
//! or behind the watermark is late: counted, and dropped or dead-lettered. A key's state — the
//! open span (its start, and for `last` its latest record) and the records ahead of the
//! watermark — is one entry of the node's [`KeyedTable`], removed when the span ends, so it is
//! checkpointed incrementally, restored by key group at any parallelism, and the timers (one
//! wake-up per key, at its next event) are rebuilt from it; the watermark is checkpointed as the
//! window node's is, so which records are late does not change across restarts.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{DeduplicateSpec, Keep};

use super::aggregate::ValueMap;
use super::event_time_state;
use super::firing::FIRE_CHUNK;
use super::topn::cmp_encoded;
use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode};
use crate::ops::late::LateOutput;
use crate::record::{Batch, Record};
use crate::state::KeyedTable;
use crate::value::Value;

/// A key's state.
#[derive(Debug, Default)]
struct KeyState {
    /// The span the watermark reached: its start and (`last`) its latest record so far.
    span: Option<(i64, Option<(i64, Value)>)>,
    /// Records ahead of the watermark, by event time, one per event time.
    pending: Vec<(i64, Value)>,
}

fn pair(ts: i64, v: &Value) -> Value {
    Value::List(Arc::new(vec![Value::Int(ts), v.clone()]))
}

fn unpair(v: &Value) -> Option<(i64, Value)> {
    match v {
        Value::List(l) if l.len() == 2 => Some((l[0].as_i64()?, l[1].clone())),
        _ => None,
    }
}

impl KeyState {
    /// Stored as `[span start | null, kept [ts, value] | null, [ts, value]…]`.
    fn encode(&self) -> Value {
        let (start, kept) = match &self.span {
            Some((s, kept)) => (Value::Int(*s), kept.as_ref().map_or(Value::Null, |(t, v)| pair(*t, v))),
            None => (Value::Null, Value::Null),
        };
        let mut l = vec![start, kept];
        l.extend(self.pending.iter().map(|(t, v)| pair(*t, v)));
        Value::List(Arc::new(l))
    }

    fn decode(v: &Value) -> Option<KeyState> {
        let Value::List(l) = v else { return None };
        let span = match (l.first()?, l.get(1)?) {
            (Value::Null, Value::Null) => None,
            (Value::Int(s), Value::Null) => Some((*s, None)),
            (Value::Int(s), kept) => Some((*s, Some(unpair(kept)?))),
            _ => return None,
        };
        let pending = l[2..].iter().map(unpair).collect::<Option<Vec<_>>>()?;
        Some(KeyState { span, pending })
    }

    fn is_empty(&self) -> bool {
        self.span.is_none() && self.pending.is_empty()
    }
}

/// One record per key and time-to-live span.
pub struct Deduplicate {
    node: String,
    keep: Keep,
    ttl: i64,
    /// One entry per key (no namespace): its [`KeyState`].
    table: KeyedTable,
    /// Wake-ups: the keys to look at when the watermark reaches the map's key.
    timers: BTreeMap<i64, Vec<Value>>,
    /// Keys the watermark woke that are still to resolve (see [`crate::ops::firing`]).
    woken: VecDeque<Value>,
    watermark: i64,
    /// Records found too late: counted, dead-lettered or dropped.
    late: LateOutput,
}

impl Deduplicate {
    /// The operator a job document's `deduplicate:` block describes; the block must validate.
    pub fn from_spec(node: &str, spec: &DeduplicateSpec) -> Result<Deduplicate, OpError> {
        if spec.ttl_ms() < 1 {
            return Err(OpError::Config {
                node: node.into(),
                message: "deduplicate.ttl must be ≥ 1ms (validate the job)".into(),
            });
        }
        Ok(Deduplicate {
            node: node.into(),
            keep: spec.keep,
            ttl: spec.ttl_ms(),
            table: KeyedTable::new(),
            timers: BTreeMap::new(),
            woken: VecDeque::new(),
            watermark: i64::MIN,
            late: LateOutput::new(spec.late_records),
        })
    }

    /// Records dropped (or dead-lettered) for being at or behind the watermark, over the lifetime.
    pub fn late_records(&self) -> u64 {
        self.late.total()
    }

    /// Whether `(ts, a)` should replace `(ts, b)` as the record a tie keeps.
    fn wins_tie(&self, a: &Value, b: &Value) -> bool {
        let o = cmp_encoded(a, b);
        match self.keep {
            Keep::First => o == Ordering::Less,
            Keep::Last => o == Ordering::Greater,
        }
    }

    /// Whether `(ts, v)` comes after `(t, w)` (`last`: replaces it as the span's latest).
    fn later(&self, ts: i64, v: &Value, t: i64, w: &Value) -> bool {
        ts > t || (ts == t && self.wins_tie(v, w))
    }

    fn span_end(&self, start: i64) -> i64 {
        start.saturating_add(self.ttl)
    }

    /// When the watermark next matters to a key: its earliest waiting record, or its span's
    /// end − 1 (`last` emits then; either way the span ends).
    fn next_wake(&self, s: &KeyState) -> Option<i64> {
        let span = s.span.as_ref().map(|(start, _)| self.span_end(*start) - 1);
        let pending = s.pending.first().map(|(t, _)| *t);
        span.into_iter().chain(pending).min()
    }

    fn state(&self, key: &Value) -> Result<KeyState, OpError> {
        match self.table.get(key, &Value::Null) {
            None => Ok(KeyState::default()),
            Some(v) => KeyState::decode(v).ok_or_else(|| OpError::Restore {
                node: self.node.clone(),
                message: format!("deduplicate state of key {key} does not fit (was the node changed?)"),
            }),
        }
    }

    fn store(&mut self, key: &Value, s: &KeyState) {
        if s.is_empty() {
            self.table.remove(key, &Value::Null);
        } else {
            self.table.insert(key.clone(), Value::Null, s.encode());
        }
    }

    fn process_one(&mut self, r: Record) -> Result<(), OpError> {
        if r.ts <= self.watermark {
            self.late.push(r);
            return Ok(());
        }
        let mut s = self.state(&r.key)?;
        let before = self.next_wake(&s);
        let in_span = s.span.as_ref().is_some_and(|(start, _)| r.ts < self.span_end(*start));
        if in_span {
            if self.keep == Keep::First {
                return Ok(()); // a duplicate of the span's first record, already emitted
            }
            if let Some((_, kept)) = &mut s.span
                && kept.as_ref().is_none_or(|(t, v)| self.later(r.ts, &r.value, *t, v))
            {
                *kept = Some((r.ts, r.value));
            }
        } else {
            let at = s.pending.partition_point(|(t, _)| *t < r.ts);
            match s.pending.get_mut(at) {
                Some((t, v)) if *t == r.ts => {
                    if !self.wins_tie(&r.value, v) {
                        return Ok(());
                    }
                    *v = r.value;
                }
                _ => s.pending.insert(at, (r.ts, r.value)),
            }
        }
        let after = self.next_wake(&s);
        if let Some(at) = after
            && before.is_none_or(|b| at < b)
        {
            self.timers.entry(at).or_default().push(r.key.clone());
        }
        self.store(&r.key, &s);
        Ok(())
    }

    /// Resolves a key's state up to watermark `w`: its waiting records at or behind it in
    /// event-time order, then its span if `w` reached its end − 1. Emits `(ts, record)`;
    /// returns whether the state changed.
    fn resolve(&self, key: &Value, s: &mut KeyState, w: i64, out: &mut Vec<(i64, Record)>) -> bool {
        let emit_last = |out: &mut Vec<(i64, Record)>, start: i64, kept: Option<(i64, Value)>| {
            if let Some((_, value)) = kept {
                let ts = self.span_end(start) - 1;
                out.push((ts, Record { key: key.clone(), ts, value }));
            }
        };
        let ready = s.pending.partition_point(|(t, _)| *t <= w);
        for (ts, value) in s.pending.drain(..ready) {
            match &mut s.span {
                Some((start, kept)) if ts < start.saturating_add(self.ttl) => {
                    // `last`: a record that came after the span opened may be later still.
                    if self.keep == Keep::Last && kept.as_ref().is_none_or(|(t, v)| self.later(ts, &value, *t, v)) {
                        *kept = Some((ts, value));
                    }
                }
                span => {
                    if let Some((start, kept)) = span.take() {
                        emit_last(out, start, kept);
                    }
                    match self.keep {
                        Keep::First => {
                            out.push((ts, Record { key: key.clone(), ts, value }));
                            *span = Some((ts, None));
                        }
                        Keep::Last => *span = Some((ts, Some((ts, value)))),
                    }
                }
            }
        }
        if let Some((start, _)) = s.span
            && self.span_end(start) - 1 <= w
            && let Some((start, kept)) = s.span.take()
        {
            emit_last(out, start, kept);
            return true;
        }
        ready > 0
    }

    /// Resolves the keys the watermark woke, at most [`FIRE_CHUNK`] per call (the rest at the
    /// next: [`Operator::more_due`]); a call's rows go out by event time, then key hash, then
    /// key. The keys due are taken from the timers at once, each once, in wake-up order.
    fn advance(&mut self, out: &mut Batch) -> Result<(), OpError> {
        let w = self.watermark;
        let mut budget = FIRE_CHUNK;
        let mut emitted = Vec::new();
        // Woken at most once per call: a key resolved up to `w` wakes after it, so a second
        // look would find nothing (and could never loop).
        let mut woke = false;
        while budget > 0 {
            if self.woken.is_empty() {
                if woke || !self.wake(w) {
                    break;
                }
                woke = true;
            }
            let take = budget.min(self.woken.len());
            budget -= take;
            let keys: Vec<Value> = self.woken.drain(..take).collect();
            for key in keys {
                let mut s = self.state(&key)?;
                let mut rows = Vec::new();
                let changed = self.resolve(&key, &mut s, w, &mut rows);
                emitted.extend(rows.into_iter().map(|(ts, r)| (ts, key.stable_hash(), r)));
                if let Some(at) = self.next_wake(&s) {
                    self.timers.entry(at).or_default().push(key.clone());
                }
                if changed {
                    self.store(&key, &s);
                }
            }
        }
        emitted.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| cmp_encoded(&a.2.key, &b.2.key)));
        out.extend(emitted.into_iter().map(|(.., r)| r));
        Ok(())
    }

    /// Moves the keys with a wake-up at or before `w` from the timers to `woken`, each once;
    /// whether there were any. (A resolved key's next wake-up is after `w`.)
    fn wake(&mut self, w: i64) -> bool {
        let due = match w.checked_add(1) {
            Some(after) => {
                let later = self.timers.split_off(&after);
                std::mem::replace(&mut self.timers, later)
            }
            None => std::mem::take(&mut self.timers),
        };
        let mut seen: ValueMap<()> = ValueMap::default();
        let keys = due.into_values().flatten().filter(|key| seen.insert(key.clone(), ()).is_none());
        self.woken = keys.collect::<Vec<_>>().into();
        !self.woken.is_empty()
    }
}

impl Operator for Deduplicate {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        for e in &restored.keyed {
            let Some(value) = &e.value else { continue };
            let wake = KeyState::decode(value).filter(|_| e.namespace == Value::Null).and_then(|s| self.next_wake(&s));
            let Some(at) = wake else {
                return Err(OpError::Restore {
                    node: self.node.clone(),
                    message: format!("deduplicate entry of key {} does not fit (was the node changed?)", e.key),
                });
            };
            self.timers.entry(at).or_default().push(e.key.clone());
        }
        self.table.restore(restored.keyed);
        if let Some(w) = event_time_state::restored_watermark(&restored.operator_state) {
            self.watermark = w;
        }
        Ok(())
    }

    fn process(&mut self, batch: Batch, _out: &mut Batch) -> Result<(), OpError> {
        for r in batch {
            self.process_one(r)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) -> Result<(), OpError> {
        if watermark > self.watermark || self.more_due() {
            self.watermark = self.watermark.max(watermark);
            self.advance(out)?;
        }
        Ok(())
    }

    fn more_due(&self) -> bool {
        !self.woken.is_empty()
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId, mode: SnapshotMode) -> Result<OpSnapshot, OpError> {
        Ok(event_time_state::snapshot(&mut self.table, mode, self.watermark))
    }

    fn finish(&mut self, out: &mut Batch) -> Result<(), OpError> {
        self.on_watermark(i64::MAX, out)
    }

    fn take_late(&mut self, late: &mut Batch) -> u64 {
        self.late.take(late)
    }
}
