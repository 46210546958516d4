//! Top-N per key and event-time window (see [`TopNSpec`]): the N records ranked first by a
//! field, emitted with their rank when the watermark passes the window's end.
//!
//! A window `[start, end)` (tumbling, or sliding: aligned to the epoch as the `window` node's)
//! keeps only its key's N best records so far (and, `withTies`, those tied with the Nth) — a
//! later record can only push one out, so they are enough even with `allowedLateness` — as one
//! keyed-state entry: namespace the window's
//! start, value the rows `[order, ts, value]` in rank order. The ranking is a total order on
//! the records themselves: the `orderBy` value (ascending, or descending), then the earlier
//! event time, then the smaller encoded value; so which N are kept and their ranks never
//! depend on arrival order, batching, restarts or parallelism.
//!
//! A window fires once, when the watermark reaches `end - 1`: rows `{key, start, end, rank,
//! ts, value}` with event time `end - 1`, by key hash then rank. Within `allowedLateness` a
//! record that enters a fired window's top N makes it emit all its rows again at once; a record
//! none of whose windows is open is late (counted; dropped or dead-lettered). The windows live
//! in the node's [`KeyedTable`] (incremental checkpoints, restored by key group at any
//! parallelism); the timers are rebuilt from it on restore, and the watermark is checkpointed
//! as the window node's is.

use std::cmp::Ordering;
use std::sync::Arc;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{ErrorPolicy, TopNSpec, WindowKind};

use super::event_time_state;
use super::firing::{FIRE_CHUNK, FireCursor, Timers};
use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode};
use crate::ops::late::LateOutput;
use crate::record::{Batch, Record};
use crate::state::KeyedTable;
use crate::value::{FieldPath, Fields, Schema, Value};

/// Compares two `orderBy` values: numbers numerically (an int before an equal float), strings
/// by their bytes, every number before every string. Only numbers and strings are ranked.
pub fn cmp_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Str(_), _) => Ordering::Greater,
        (_, Value::Str(_)) => Ordering::Less,
        _ => {
            let (x, y) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
            x.total_cmp(&y).then_with(|| matches!(a, Value::Float(_)).cmp(&matches!(b, Value::Float(_))))
        }
    }
}

/// Compares two values by their binary encoding: the last, deterministic tie-break.
pub fn cmp_encoded(a: &Value, b: &Value) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.encode(&mut x);
    b.encode(&mut y);
    x.cmp(&y)
}

/// A row of a window's state: `[order, ts, value]`.
fn row(order: Value, ts: i64, value: Value) -> Value {
    Value::List(Arc::new(vec![order, Value::Int(ts), value]))
}

/// A row's `(order, ts, value)`.
fn parts(row: &Value) -> Option<(&Value, i64, &Value)> {
    match row {
        Value::List(l) if l.len() == 3 => Some((&l[0], l[1].as_i64()?, &l[2])),
        _ => None,
    }
}

/// Top-N records per key and window, with their ranks.
pub struct TopN {
    node: String,
    n: usize,
    order_by: FieldPath,
    descending: bool,
    with_ties: bool,
    size: i64,
    slide: i64,
    lateness: i64,
    policy: ErrorPolicy,
    /// One entry per (key, window): namespace the start, value the rows in rank order.
    table: KeyedTable,
    /// The keys with a window whose last event time (`end - 1`) is the map's key.
    timers: Timers,
    /// How far the timers have fired.
    cursor: FireCursor,
    watermark: i64,
    /// Records found too late: counted, dead-lettered or dropped.
    late: LateOutput,
    dropped: u64,
    /// The output's shape: end, key, rank, start, ts, value.
    schema: Schema,
}

impl TopN {
    /// The operator a job document's `topN:` block describes; the block must validate.
    pub fn from_spec(node: &str, spec: &TopNSpec, policy: ErrorPolicy) -> Result<TopN, OpError> {
        let (size, slide) = match spec.kind() {
            Some(WindowKind::Tumbling { size }) => (size, size),
            Some(WindowKind::Sliding { size, slide }) => (size, slide),
            _ => {
                return Err(OpError::Config {
                    node: node.into(),
                    message: "topN needs window.size (with an optional slide dividing it) (validate the job)".into(),
                });
            }
        };
        if spec.n < 1 {
            return Err(OpError::Config {
                node: node.into(), message: "topN.n must be ≥ 1 (validate the job)".into()
            });
        }
        Ok(TopN {
            node: node.into(),
            n: spec.n as usize,
            order_by: FieldPath::new(&spec.order_by),
            descending: spec.descending,
            with_ties: spec.with_ties,
            size,
            slide,
            lateness: spec.lateness_ms(),
            policy,
            table: KeyedTable::new(),
            timers: Timers::new(),
            cursor: FireCursor::default(),
            watermark: i64::MIN,
            late: LateOutput::new(spec.late_records),
            dropped: 0,
            schema: Schema::new(["end", "key", "rank", "start", "ts", "value"]),
        })
    }

    /// Records dropped (or dead-lettered) because their windows had closed, over the lifetime.
    pub fn late_records(&self) -> u64 {
        self.late.total()
    }

    /// Malformed records skipped under a lenient error policy, over the lifetime.
    pub fn malformed_records(&self) -> u64 {
        self.dropped
    }

    /// How row `a` ranks against row `b` (`Less`: `a` first).
    fn rank(&self, a: (&Value, i64, &Value), b: (&Value, i64, &Value)) -> Ordering {
        let by_order = cmp_order(a.0, b.0);
        let by_order = if self.descending { by_order.reverse() } else { by_order };
        by_order.then(a.1.cmp(&b.1)).then_with(|| cmp_encoded(a.2, b.2))
    }

    fn closed(&self, max_ts: i64) -> bool {
        max_ts.saturating_add(self.lateness) <= self.watermark
    }

    fn reject_late(&mut self, r: Record) {
        self.late.push(r);
    }

    /// Where a record ranks among `rows` (sorted), or `None` when it does not make the top N.
    fn position(&self, rows: &[Value], new: (&Value, i64, &Value)) -> Option<usize> {
        let at = rows.partition_point(|r| parts(r).is_some_and(|p| self.rank(p, new) != Ordering::Greater));
        let tied_with_nth = || nth_order(self.n, rows).is_some_and(|o| cmp_order(o, new.0) == Ordering::Equal);
        (at < self.n || (self.with_ties && tied_with_nth())).then_some(at)
    }
}

/// The `orderBy` value of the Nth row, when there are N.
fn nth_order(n: usize, rows: &[Value]) -> Option<&Value> {
    rows.get(n - 1).and_then(parts).map(|p| p.0)
}

/// Cuts a ranking back to `n` rows (and, `with_ties`, the rows tied with the Nth).
fn cut(n: usize, with_ties: bool, rows: &mut Vec<Value>) {
    let mut keep = n.min(rows.len());
    if with_ties && let Some(nth) = nth_order(n, rows).cloned() {
        let tied = |r: &Value| parts(r).is_some_and(|p| cmp_order(p.0, &nth) == Ordering::Equal);
        keep += rows[keep..].iter().take_while(|r| tied(r)).count();
    }
    rows.truncate(keep);
}

impl TopN {
    /// The rows of the window `[start, start + size)` of `key`.
    fn emit(&self, key: &Value, start: i64, rows: &[Value], out: &mut Batch) {
        let end = start.saturating_add(self.size);
        let (mut rank, mut prev) = (0, None);
        for (i, r) in rows.iter().enumerate() {
            let Some((order, ts, value)) = parts(r) else { continue };
            // `withTies`: rows tied on `orderBy` share the rank of the first of them (SQL's RANK).
            let tied = self.with_ties && prev.is_some_and(|p| cmp_order(p, order) == Ordering::Equal);
            if !tied {
                rank = i as i64 + 1;
            }
            prev = Some(order);
            // In the schema's order: end, key, rank, start, ts, value.
            let values =
                vec![Value::Int(end), key.clone(), Value::Int(rank), Value::Int(start), Value::Int(ts), value.clone()];
            let fields = Fields::from_schema(&self.schema, values);
            out.push(Record { key: key.clone(), ts: end - 1, value: Value::Map(Arc::new(fields)) });
        }
    }

    fn process_one(&mut self, r: Record, out: &mut Batch) -> Result<(), OpError> {
        let last_start = r.ts - r.ts.rem_euclid(self.slide);
        if self.closed(last_start.saturating_add(self.size) - 1) {
            self.reject_late(r);
            return Ok(());
        }
        let order = match self.order_by.get(&r.value) {
            Some(v @ (Value::Int(_) | Value::Float(_) | Value::Str(_))) => v.clone(),
            other => {
                if self.policy.skips() {
                    self.dropped += 1;
                    return Ok(());
                }
                let found = other.map_or("nothing", Value::type_name);
                return Err(OpError::Malformed {
                    node: self.node.clone(),
                    location: format!("key {}", r.key),
                    message: format!("orderBy {:?} must be a number or a string, found {found}", self.order_by),
                });
            }
        };
        let mut start = last_start;
        while start > r.ts.saturating_sub(self.size) {
            let max_ts = start.saturating_add(self.size) - 1;
            if !self.closed(max_ts) {
                let ns = Value::Int(start);
                let new = (&order, r.ts, &r.value);
                let entered = match self.table.get(&r.key, &ns) {
                    Some(Value::List(rows)) => self.position(rows, new),
                    _ => {
                        self.timers.entry(max_ts).or_default().push(r.key.clone());
                        self.table.insert(r.key.clone(), ns.clone(), Value::List(Arc::new(Vec::new())));
                        Some(0)
                    }
                };
                if let Some(at) = entered
                    && let Some(Value::List(rows)) = self.table.get_mut(&r.key, &ns)
                {
                    let rows = Arc::make_mut(rows);
                    rows.insert(at, row(order.clone(), r.ts, r.value.clone()));
                    cut(self.n, self.with_ties, rows);
                    if max_ts <= self.watermark {
                        // A late record inside the allowed lateness changed a fired ranking.
                        let rows = rows.clone();
                        self.emit(&r.key, start, &rows, out);
                    }
                }
            }
            let Some(next) = start.checked_sub(self.slide) else { break };
            start = next;
        }
        Ok(())
    }

    /// Fires the windows the watermark passed, at most [`FIRE_CHUNK`] keys' worth (the rest at
    /// the next call: [`Operator::more_due`]), by key hash then key; once every one of them has
    /// fired, the windows past their allowed lateness go.
    fn fire(&mut self, out: &mut Batch) {
        let w = self.watermark;
        let mut budget = FIRE_CHUNK;
        while let Some((max_ts, keys)) = self.cursor.next_chunk(&mut self.timers, w, budget, by_hash_then_key) {
            budget -= keys.len();
            let start = Value::Int(max_ts - self.size + 1);
            for key in &keys {
                if let Some(Value::List(rows)) = self.table.get(key, &start) {
                    self.emit(key, max_ts - self.size + 1, rows, out);
                }
            }
        }
        while let Some((max_ts, keys)) = self.cursor.take_closed(&mut self.timers, w, self.lateness) {
            let ns = Value::Int(max_ts - self.size + 1);
            for key in keys {
                self.table.remove(&key, &ns);
            }
        }
    }
}

/// Puts keys in firing order: by stable hash, ties by their encoding.
fn by_hash_then_key(keys: &mut Vec<Value>) {
    let mut hashed: Vec<(u64, Value)> = keys.drain(..).map(|k| (k.stable_hash(), k)).collect();
    hashed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| cmp_encoded(&a.1, &b.1)));
    keys.extend(hashed.into_iter().map(|(_, k)| k));
}

impl Operator for TopN {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        for e in &restored.keyed {
            let Some(value) = &e.value else { continue };
            match (&e.namespace, value) {
                (Value::Int(start), Value::List(rows)) if rows.iter().all(|r| parts(r).is_some()) => {
                    let max_ts = start.saturating_add(self.size) - 1;
                    self.timers.entry(max_ts).or_default().push(e.key.clone());
                }
                _ => {
                    return Err(OpError::Restore {
                        node: self.node.clone(),
                        message: format!(
                            "topN entry of key {} is not a window's ranking (was the node changed?)",
                            e.key
                        ),
                    });
                }
            }
        }
        self.table.restore(restored.keyed);
        if let Some(w) = event_time_state::restored_watermark(&restored.operator_state) {
            self.watermark = w;
        }
        self.cursor.restored(self.watermark);
        Ok(())
    }

    fn process(&mut self, batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        for r in batch {
            self.process_one(r, out)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) -> Result<(), OpError> {
        self.watermark = self.watermark.max(watermark);
        self.fire(out);
        Ok(())
    }

    fn more_due(&self) -> bool {
        self.cursor.due(&self.timers, self.watermark)
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
