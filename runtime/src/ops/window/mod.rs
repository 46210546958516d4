//! Event-time windows per key: tumbling, sliding (hop) and session windows, each with one or
//! several aggregates (see [`WindowSpec`]).
//!
//! A window `[start, end)` fires once, when the watermark reaches `end - 1` (Flink's
//! `maxTimestamp`), emitting `{key, start, end, value}` (one `function`) or `{key, start, end,
//! <name>: …}` (`aggregates`), with event time `end - 1`. A session window's `end` is its last
//! record's time plus the gap, so it fires when the watermark reaches `last + gap - 1`.
//!
//! With `allowedLateness` a window stays open that much longer: a late record updates it and its
//! updated result is emitted at once. A window is closed when the watermark reaches `end - 1 +
//! allowedLateness`; its state is purged then. A record none of whose windows is open is late:
//! counted, and dropped or sent along the node's `output: late` edges. A sliding-window record
//! some of whose windows closed updates the open ones only (as in Flink) and is not counted late.
//!
//! All window state lives in the node's [`KeyedTable`] (namespace: the window's start; a sliding
//! window's state is kept per pane of `slide`, namespace the pane's start: see `aligned`), so it is
//! checkpointed incrementally and restored by key group at any parallelism; the timers are
//! rebuilt from it on restore. The watermark is part of the checkpoint, so after a restore a
//! window that fired never fires again and a record that was late stays late.

mod aggregates;
mod aligned;
mod distinct;
mod session;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy, WindowFn, WindowKind, WindowSpec};

use self::aggregates::Aggs;
use super::firing::{FIRE_CHUNK, FireCursor, Timers};
use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode, event_time_state};
use crate::ops::late::LateOutput;
use crate::record::{Batch, Record};
use crate::state::KeyedTable;
use crate::value::{Fields, Schema, Value};

pub use super::event_time_state::WATERMARK_STATE_FIELD;

/// The name the windows were known by when they were tumbling only.
pub type TumblingWindow = Window;

/// How records are assigned to windows, in milliseconds.
#[derive(Clone, Copy, Debug)]
enum Assigner {
    /// Tumbling (`slide == size`) and sliding windows.
    Aligned { size: i64, slide: i64 },
    /// Per-key sessions.
    Session { gap: i64 },
}

/// Windows of one kind with their aggregates, per key.
pub struct Window {
    node: String,
    assigner: Assigner,
    lateness: i64,
    aggs: Aggs,
    policy: ErrorPolicy,
    /// Aligned windows: one entry per (key, pane of `slide`), namespace the pane's start (a
    /// tumbling window's own), value its state. Sessions: one entry per (key, session),
    /// namespace its start, value `[end, state]`.
    table: KeyedTable,
    /// Aligned windows: the keys with a window ending at each time, by that window's last event
    /// time (`end - 1`), each once. Sessions: the keys to wake at each time (see `session`).
    timers: Timers,
    /// How far the aligned windows' timers have fired.
    cursor: FireCursor,
    watermark: i64,
    /// Records found too late: counted, dead-lettered or dropped.
    late: LateOutput,
    /// Malformed records skipped under a lenient error policy.
    dropped: u64,
    /// The shape of the results.
    out: OutShape,
}

/// The shape of a window's results: `key`, `start`, `end` and the aggregates' outputs, and
/// where each is in the schema's order.
struct OutShape {
    schema: Schema,
    key: usize,
    start: usize,
    end: usize,
    aggs: Vec<usize>,
}

impl OutShape {
    fn new(aggs: &Aggs) -> OutShape {
        let names: Vec<&str> = ["key", "start", "end"].into_iter().chain(aggs.names().map(|n| &**n)).collect();
        let schema = Schema::new(&names);
        let at = |name: &str| schema.position(name).unwrap_or(0);
        OutShape {
            key: at("key"),
            start: at("start"),
            end: at("end"),
            aggs: names[3..].iter().map(|n| at(n)).collect(),
            schema,
        }
    }
}

impl Window {
    /// Tumbling windows of `size`, aggregating `field` of the value (the value itself when
    /// `None`) with `function`, closed as soon as they fire and dropping late records.
    pub fn new(
        node: &str,
        size: Duration,
        function: AggregateFn,
        field: Option<String>,
        policy: ErrorPolicy,
    ) -> Window {
        let function = match function {
            AggregateFn::Count => WindowFn::Count,
            AggregateFn::Sum => WindowFn::Sum,
            AggregateFn::Min => WindowFn::Min,
            AggregateFn::Max => WindowFn::Max,
        };
        let spec = WindowSpec::tumbling(size.max(Duration::from_millis(1)), function, field);
        Window::build(node, &spec, WindowKind::Tumbling { size: (size.as_millis() as i64).max(1) }, policy)
    }

    /// Windows as a job document's `window:` block describes them; the block must validate.
    pub fn from_spec(node: &str, spec: &WindowSpec, policy: ErrorPolicy) -> Result<Window, OpError> {
        let kind = spec.kind().ok_or_else(|| OpError::Config {
            node: node.into(),
            message: "the window needs size (with an optional slide dividing it) or session (validate the job)".into(),
        })?;
        Ok(Window::build(node, spec, kind, policy))
    }

    fn build(node: &str, spec: &WindowSpec, kind: WindowKind, policy: ErrorPolicy) -> Window {
        let assigner = match kind {
            WindowKind::Tumbling { size } => Assigner::Aligned { size, slide: size },
            WindowKind::Sliding { size, slide } => Assigner::Aligned { size, slide },
            WindowKind::Session { gap } => Assigner::Session { gap },
        };
        let aggs = Aggs::new(spec.outputs());
        Window {
            node: node.into(),
            assigner,
            lateness: spec.lateness_ms(),
            out: OutShape::new(&aggs),
            aggs,
            policy,
            table: KeyedTable::new(),
            timers: Timers::new(),
            cursor: FireCursor::default(),
            watermark: i64::MIN,
            late: LateOutput::new(spec.late_records),
            dropped: 0,
        }
    }

    /// Records dropped (or dead-lettered) because their window had closed, over the lifetime.
    pub fn late_records(&self) -> u64 {
        self.late.total()
    }

    /// Malformed records skipped under a lenient error policy, over the lifetime.
    pub fn malformed_records(&self) -> u64 {
        self.dropped
    }

    /// Whether a window whose last event time is `max_ts` is closed (purged, or about to be).
    fn closed(&self, max_ts: i64) -> bool {
        max_ts.saturating_add(self.lateness) <= self.watermark
    }

    /// The output record of the window `[start, end)` of `key` with `state`.
    fn result(&self, key: Value, start: i64, end: i64, state: &Value) -> Record {
        let o = &self.out;
        let mut values = vec![Value::Null; o.schema.len()];
        // Set in the order a map built field by field would take them: a later name that is
        // already there (an aggregate named `end`) replaces the earlier value.
        values[o.key] = key.clone();
        values[o.start] = Value::Int(start);
        values[o.end] = Value::Int(end);
        let mut given = 0;
        self.aggs.emit(state, |i, v| {
            values[o.aggs[i]] = v;
            given += 1;
        });
        let fields = if given == o.aggs.len() {
            Fields::from_schema(&o.schema, values)
        } else {
            // A state of another shape gives no aggregates: the map has just the window.
            let mut fields = Fields::with_capacity(3);
            for (name, at) in [("key", o.key), ("start", o.start), ("end", o.end)] {
                fields.insert(Arc::from(name), std::mem::take(&mut values[at]));
            }
            fields
        };
        Record { key, ts: end - 1, value: Value::Map(Arc::new(fields)) }
    }

    /// A late record: counted, and kept for the late output when dead-lettering.
    fn reject_late(&mut self, r: Record) {
        self.late.push(r);
    }

    /// A record the aggregates cannot take: fails the job or is skipped, per the error policy.
    fn malformed(&mut self, key: &Value, message: String) -> Result<(), OpError> {
        if self.policy.skips() {
            self.dropped += 1;
            Ok(())
        } else {
            Err(OpError::Malformed { node: self.node.clone(), location: format!("key {key}"), message })
        }
    }

    /// Fires the aligned windows the watermark passed, at most [`FIRE_CHUNK`] keys' worth
    /// (the rest at the next call: [`Operator::more_due`]), and once every one of them has
    /// fired purges the windows past their allowed lateness.
    fn fire_aligned(&mut self, size: i64, slide: i64, out: &mut Batch) {
        let w = self.watermark;
        let mut budget = FIRE_CHUNK;
        let by_hash = |keys: &mut Vec<Value>| keys.sort_by_cached_key(Value::stable_hash);
        while let Some((max_ts, keys)) = self.cursor.next_chunk(&mut self.timers, w, budget, by_hash) {
            budget -= keys.len();
            let start = max_ts - size + 1;
            for key in keys {
                if let Some(state) = aligned::window_state(&self.table, &self.aggs, &key, start, size, slide) {
                    out.push(self.result(key.clone(), start, max_ts + 1, &state));
                }
            }
        }
        while let Some((max_ts, keys)) = self.cursor.take_closed(&mut self.timers, w, self.lateness) {
            aligned::purge(&mut self.table, max_ts, size, keys);
        }
    }
}

impl Operator for Window {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        let mut panes = Vec::new();
        for e in &restored.keyed {
            let Some(value) = &e.value else { continue };
            let max_ts = match (self.assigner, &e.namespace) {
                (Assigner::Aligned { slide, .. }, Value::Int(pane))
                    if self.aggs.fits(value) && pane.rem_euclid(slide) == 0 =>
                {
                    panes.push((&e.key, *pane));
                    continue;
                }
                (Assigner::Session { .. }, Value::Int(_)) => {
                    session::split(value).filter(|(_, state)| self.aggs.fits(state)).map(|(end, _)| end - 1)
                }
                _ => None,
            };
            let Some(max_ts) = max_ts else {
                return Err(OpError::Restore {
                    node: self.node.clone(),
                    message: format!(
                        "window entry of key {} does not fit this window's kind and aggregates (was the window changed?)",
                        e.key
                    ),
                });
            };
            self.timers.entry(max_ts).or_default().push(e.key.clone());
        }
        if let Assigner::Aligned { size, slide } = self.assigner {
            let timers = &mut self.timers;
            aligned::restored_timers(panes.into_iter(), size, slide, |max_ts, key| {
                timers.entry(max_ts).or_default().push(key.clone());
            });
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
            match self.assigner {
                Assigner::Aligned { size, slide } => self.process_aligned(r, size, slide, out)?,
                Assigner::Session { gap } => self.process_session(r, gap, out)?,
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) -> Result<(), OpError> {
        let prev = self.watermark;
        self.watermark = prev.max(watermark);
        match self.assigner {
            Assigner::Aligned { size, slide } => self.fire_aligned(size, slide, out),
            Assigner::Session { .. } if watermark > prev => self.advance_sessions(prev, out),
            Assigner::Session { .. } => {}
        }
        Ok(())
    }

    fn more_due(&self) -> bool {
        matches!(self.assigner, Assigner::Aligned { .. }) && self.cursor.due(&self.timers, self.watermark)
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
