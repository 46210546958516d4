//! Keyed inner joins of two inputs (see [`JoinSpec`]): a left and a right record of one key
//! meet by event time, in one of two forms.
//!
//! - **Window join** (`window: {size}`): records in the same tumbling window `[start, end)` meet;
//!   the window's pairs are emitted when the watermark reaches `end - 1`, with event time
//!   `end - 1`, as `{key, start, end, left, right}`, and the window's state is dropped then. A
//!   record whose window has fired is late.
//! - **Interval join** (`interval: {lower, upper}`): a right record meets each left record with
//!   `left.ts - lower <= right.ts <= left.ts + upper`, emitted as `{key, left, right}` with event
//!   time `max(left.ts, right.ts)` as soon as the second of the two arrives. A **regular join**
//!   with `ttl` is the interval `[-ttl, +ttl]`: a record is kept `ttl` of event time after its
//!   own, and two records farther apart than that never meet. (Flink's regular join expires
//!   state by processing time, so what it outputs depends on when things ran; by event time the
//!   output is the same on every run, through any restart.) A record at or behind the
//!   watermark is late; a stored record is dropped once the watermark makes every further
//!   match impossible (a left one at `ts + upper`, a right one at `ts + lower`).
//!
//! Late records are counted and dropped, or sent along `output: late` edges (`lateRecords:
//! deadLetter`). State lives in the node's [`KeyedTable`] — a window join's entries are the
//! (key, window start) namespaces holding `[lefts, rights]`, an interval join's the (key,
//! `[side, ts]`) namespaces holding the values of that side and time — so it is checkpointed
//! incrementally and restored by key group at any parallelism; the timers are rebuilt from it
//! on restore, and the watermark is part of the checkpoint (as a window's).

mod interval;
#[cfg(test)]
mod tests;
mod windowed;

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{JoinKind, JoinSpec, LateRecords};

use super::event_time_state;
use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode};
use crate::ops::late::LateOutput;
use crate::record::{Batch, Record};
use crate::state::KeyedTable;
use crate::value::{Fields, Schema, Value};

/// The left input.
const LEFT: usize = 0;
/// The right input.
const RIGHT: usize = 1;

/// The output's shapes, made once per operator: with the window's bounds, and without.
struct Shapes {
    windowed: Schema,
    pair: Schema,
}

/// A keyed join of two inputs; see the module docs.
pub struct Join {
    node: String,
    kind: JoinKind,
    /// The join's state; see the module docs for its namespaces.
    table: KeyedTable,
    /// `(key, namespace)` of entries by the time the watermark must reach to fire (window
    /// join) or drop (interval join) them.
    timers: BTreeMap<i64, Vec<(Value, Value)>>,
    watermark: i64,
    shapes: Shapes,
    /// Records found too late: counted, dead-lettered or dropped.
    late: LateOutput,
}

impl Join {
    /// The join a job document's `join:` block describes; the block must validate.
    pub fn from_spec(node: &str, spec: &JoinSpec) -> Result<Join, OpError> {
        let kind = spec.kind().ok_or_else(|| OpError::Config {
            node: node.into(),
            message: "the join needs exactly one of window, interval, ttl (validate the job)".into(),
        })?;
        Ok(Join::new(node, kind, spec.late_records))
    }

    /// A join of `kind`, dropping or dead-lettering late records per `late`.
    pub fn new(node: &str, kind: JoinKind, late: LateRecords) -> Join {
        let kind = match kind {
            JoinKind::Window { size } => JoinKind::Window { size: size.max(1) },
            JoinKind::Interval { lower, upper } => JoinKind::Interval { lower: lower.max(0), upper: upper.max(0) },
        };
        Join {
            node: node.into(),
            kind,
            table: KeyedTable::new(),
            timers: BTreeMap::new(),
            watermark: i64::MIN,
            shapes: Shapes {
                windowed: Schema::new(["end", "key", "left", "right", "start"]),
                pair: Schema::new(["key", "left", "right"]),
            },
            late: LateOutput::new(late),
        }
    }

    /// Records found late over the lifetime.
    pub fn late_records(&self) -> u64 {
        self.late.total()
    }

    /// Entries in the join's state (for tests and metrics).
    pub fn state_entries(&self) -> usize {
        self.table.len()
    }

    /// A late record: counted, and kept for the late output when dead-lettering.
    fn reject_late(&mut self, r: Record) {
        self.late.push(r);
    }

    /// The output record of a pair at `ts`: `{key, left, right}`, with the window's `start` and
    /// `end` when there is one.
    fn pair(&self, key: &Value, ts: i64, left: &Value, right: &Value, window: Option<(i64, i64)>) -> Record {
        // In each schema's order: end, key, left, right, start; or key, left, right.
        let fields = match window {
            Some((start, end)) => Fields::from_schema(
                &self.shapes.windowed,
                vec![Value::Int(end), key.clone(), left.clone(), right.clone(), Value::Int(start)],
            ),
            None => Fields::from_schema(&self.shapes.pair, vec![key.clone(), left.clone(), right.clone()]),
        };
        Record { key: key.clone(), ts, value: Value::Map(Arc::new(fields)) }
    }

    /// The time the watermark must reach for the entry `(key, ns, value)` to fire or be dropped;
    /// `None` when the entry does not fit this join.
    fn timer_of(&self, ns: &Value, value: &Value) -> Option<i64> {
        match self.kind {
            JoinKind::Window { size } => windowed::timer_of(size, ns, value),
            JoinKind::Interval { lower, upper } => interval::timer_of(lower, upper, ns, value),
        }
    }
}

/// Appends `v` to the list `list` (a `Value::List`, copied only if a capture shares it).
fn push_to(list: &mut Value, v: Value) {
    if let Value::List(items) = list {
        Arc::make_mut(items).push(v);
    } else {
        *list = Value::List(Arc::new(vec![v]));
    }
}

/// The items of a `Value::List` (none for anything else).
fn items(v: &Value) -> &[Value] {
    match v {
        Value::List(items) => items,
        _ => &[],
    }
}

impl Operator for Join {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        for e in &restored.keyed {
            let Some(value) = &e.value else { continue };
            let Some(at) = self.timer_of(&e.namespace, value) else {
                return Err(OpError::Restore {
                    node: self.node.clone(),
                    message: format!(
                        "join entry of key {} does not fit this join's kind (was the join changed?)",
                        e.key
                    ),
                });
            };
            self.timers.entry(at).or_default().push((e.key.clone(), e.namespace.clone()));
        }
        self.table.restore(restored.keyed);
        if let Some(w) = event_time_state::restored_watermark(&restored.operator_state) {
            self.watermark = w;
        }
        Ok(())
    }

    fn process(&mut self, batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        self.process_input(LEFT, batch, out)
    }

    fn process_input(&mut self, input: usize, batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let side = input.min(RIGHT);
        for r in batch {
            match self.kind {
                JoinKind::Window { size } => self.window_record(side, r, size),
                JoinKind::Interval { lower, upper } => self.interval_record(side, r, lower, upper, out),
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) -> Result<(), OpError> {
        if watermark <= self.watermark {
            return Ok(());
        }
        self.watermark = watermark;
        let due: Vec<i64> = self.timers.range(..=watermark).map(|(t, _)| *t).collect();
        for at in due {
            let entries = self.timers.remove(&at).unwrap_or_default();
            match self.kind {
                JoinKind::Window { size } => self.fire_window(at, size, entries, out),
                JoinKind::Interval { .. } => {
                    for (key, ns) in entries {
                        self.table.remove(&key, &ns);
                    }
                }
            }
        }
        Ok(())
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
