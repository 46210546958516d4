//! Tumbling event-time windows per key. A window `[start, start+size)` fires once, when the
//! watermark reaches `start+size-1`, emitting `{key, start, end, value}`. With
//! `allowedLateness` it stays open that much longer: a late record updates it and its updated
//! result is emitted at once. A record whose window closed (watermark ≥ `end-1+allowedLateness`)
//! is late: counted, and dropped or sent along the node's `output: late` edges.
//!
//! The watermark is part of the checkpoint, so after a restore a window that fired never fires
//! again and a record that was late stays late.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy, LateRecords, WindowSpec};

use super::aggregate::accumulate;
use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode};
use crate::record::{Batch, Record};
use crate::state::KeyedTable;
use crate::value::Value;

/// The operator-state element that carries a window's watermark through a checkpoint. On
/// restore every subtask gets the minimum over the old subtasks (see `checkpoint::restore`).
pub const WATERMARK_STATE_FIELD: &str = "watermark";

/// Tumbling windows with one aggregate per (key, window).
pub struct TumblingWindow {
    node: String,
    size: i64,
    lateness: i64,
    function: AggregateFn,
    field: Option<String>,
    policy: ErrorPolicy,
    dead_letter: bool,
    /// One entry per (key, window): the namespace is the window's start.
    table: KeyedTable,
    /// The keys with an entry in each window, by window start (each key once).
    timers: BTreeMap<i64, Vec<Value>>,
    watermark: i64,
    late: u64,
    /// Late records since the last [`Operator::take_late`].
    late_pending: u64,
    late_out: Batch,
}

impl TumblingWindow {
    /// Windows of `size`, aggregating `field` of the value (the value itself when `None`), closed
    /// as soon as they fire and dropping late records.
    pub fn new(
        node: &str,
        size: Duration,
        function: AggregateFn,
        field: Option<String>,
        policy: ErrorPolicy,
    ) -> TumblingWindow {
        TumblingWindow {
            node: node.into(),
            size: (size.as_millis() as i64).max(1),
            lateness: 0,
            function,
            field,
            policy,
            dead_letter: false,
            table: KeyedTable::new(),
            timers: BTreeMap::new(),
            watermark: i64::MIN,
            late: 0,
            late_pending: 0,
            late_out: Batch::new(),
        }
    }

    /// Windows as a job document's `window:` block describes them.
    pub fn from_spec(node: &str, spec: &WindowSpec, policy: ErrorPolicy) -> TumblingWindow {
        let mut w = TumblingWindow::new(node, spec.size, spec.function, spec.field.clone(), policy);
        w.lateness = spec.allowed_lateness.as_millis().min(i64::MAX as u128) as i64;
        w.dead_letter = spec.late_records == LateRecords::DeadLetter;
        w
    }

    /// Records dropped (or dead-lettered) because their window had closed, over the lifetime.
    pub fn late_records(&self) -> u64 {
        self.late
    }

    /// The last event time of the window starting at `start`.
    fn max_ts(&self, start: i64) -> i64 {
        start.saturating_add(self.size) - 1
    }

    fn result(&self, key: Value, start: i64, acc: Value) -> Record {
        let end = start.saturating_add(self.size);
        let value = Value::Map(Arc::new(BTreeMap::from([
            (Arc::from("key"), key.clone()),
            (Arc::from("start"), Value::Int(start)),
            (Arc::from("end"), Value::Int(end)),
            (Arc::from("value"), acc),
        ])));
        Record { key, ts: end - 1, value }
    }

    /// The watermark moved from `prev` to `self.watermark`: windows whose end it passed fire
    /// (once), and windows past their allowed lateness are purged.
    fn advance(&mut self, prev: i64, out: &mut Batch) {
        let w = self.watermark;
        let mut purge = Vec::new();
        for (&start, keys) in &self.timers {
            let max_ts = self.max_ts(start);
            if max_ts > w {
                break;
            }
            if max_ts > prev {
                let ns = Value::Int(start);
                let mut fired: Vec<(&Value, &Value)> =
                    keys.iter().filter_map(|k| Some((k, self.table.get(k, &ns)?))).collect();
                fired.sort_by_key(|(k, _)| k.stable_hash());
                for (key, acc) in fired {
                    out.push(self.result(key.clone(), start, acc.clone()));
                }
            }
            if max_ts.saturating_add(self.lateness) <= w {
                purge.push(start);
            }
        }
        for start in purge {
            let ns = Value::Int(start);
            for key in self.timers.remove(&start).unwrap_or_default() {
                self.table.remove(&key, &ns);
            }
        }
    }
}

impl Operator for TumblingWindow {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        for e in &restored.keyed {
            let (Value::Int(start), Some(_)) = (&e.namespace, &e.value) else {
                return Err(OpError::Restore { node: self.node.clone(), message: "window entry without start".into() });
            };
            self.timers.entry(*start).or_default().push(e.key.clone());
        }
        self.table.restore(restored.keyed);
        let restored_wm = restored
            .operator_state
            .iter()
            .filter_map(|v| v.get(WATERMARK_STATE_FIELD).and_then(serde_json::Value::as_i64))
            .min();
        if let Some(w) = restored_wm {
            self.watermark = w;
        }
        Ok(())
    }

    fn process(&mut self, batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        for r in batch {
            let start = r.ts - r.ts.rem_euclid(self.size);
            let max_ts = self.max_ts(start);
            if max_ts.saturating_add(self.lateness) <= self.watermark {
                self.late += 1;
                self.late_pending += 1;
                if self.dead_letter {
                    self.late_out.push(r);
                }
                continue;
            }
            let fired = max_ts <= self.watermark;
            let input = match &self.field {
                None => Some(&r.value),
                Some(f) => r.value.get_path(f),
            };
            let ns = Value::Int(start);
            let acc = self.table.get(&r.key, &ns);
            match input.ok_or_else(|| "missing field".to_string()).and_then(|i| accumulate(self.function, acc, i)) {
                Ok(value) => {
                    let update = fired.then(|| value.clone());
                    match self.table.get_mut(&r.key, &ns) {
                        Some(slot) => *slot = value,
                        None => {
                            self.table.insert(r.key.clone(), ns, value);
                            self.timers.entry(start).or_default().push(r.key.clone());
                        }
                    }
                    if let Some(acc) = update {
                        // A late record inside the allowed lateness: emit the updated window.
                        out.push(self.result(r.key, start, acc));
                    }
                }
                Err(message) if self.policy == ErrorPolicy::Fail => {
                    return Err(OpError::Malformed {
                        node: self.node.clone(),
                        location: format!("key {}", r.key),
                        message,
                    });
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) -> Result<(), OpError> {
        if watermark > self.watermark {
            let prev = self.watermark;
            self.watermark = watermark;
            self.advance(prev, out);
        }
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId, mode: SnapshotMode) -> Result<OpSnapshot, OpError> {
        Ok(OpSnapshot {
            keyed: Some(Box::new(self.table.capture(mode))),
            operator_state: vec![serde_json::json!({ WATERMARK_STATE_FIELD: self.watermark })],
            ..OpSnapshot::default()
        })
    }

    fn finish(&mut self, out: &mut Batch) -> Result<(), OpError> {
        self.on_watermark(i64::MAX, out)
    }

    fn take_late(&mut self, late: &mut Batch) -> u64 {
        late.append(&mut self.late_out);
        std::mem::take(&mut self.late_pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: i64, ts: i64) -> Record {
        Record { key: Value::Int(key), ts, value: Value::Int(1) }
    }

    #[test]
    fn windows_fire_once_when_the_watermark_passes_their_end() {
        let mut w = TumblingWindow::new("w", Duration::from_millis(10), AggregateFn::Count, None, ErrorPolicy::Fail);
        let mut out = Vec::new();
        w.process(vec![rec(1, 0), rec(1, 9), rec(2, 5), rec(1, 10)], &mut out).expect("process");
        w.on_watermark(8, &mut out).expect("wm");
        assert!(out.is_empty());
        w.on_watermark(9, &mut out).expect("wm");
        let mut got: Vec<(i64, i64)> = out
            .iter()
            .map(|r| (r.key.as_i64().unwrap_or(-1), r.value.get_path("value").and_then(Value::as_i64).unwrap_or(-1)))
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![(1, 2), (2, 1)]);
        out.clear();
        w.process(vec![rec(3, 4)], &mut out).expect("late");
        assert_eq!(w.late_records(), 1);
        w.finish(&mut out).expect("finish");
        assert_eq!(out.len(), 1, "the open window [10,20) fires at the end");
    }

    fn spec(lateness_ms: u64, late_records: LateRecords) -> WindowSpec {
        WindowSpec {
            size: Duration::from_millis(10),
            function: AggregateFn::Count,
            field: None,
            allowed_lateness: Duration::from_millis(lateness_ms),
            late_records,
        }
    }

    fn counts(out: &Batch) -> Vec<(i64, i64, i64)> {
        out.iter()
            .map(|r| {
                let get = |f: &str| r.value.get_path(f).and_then(Value::as_i64).unwrap_or(-1);
                (get("key"), get("start"), get("value"))
            })
            .collect()
    }

    #[test]
    fn a_restored_watermark_keeps_fired_windows_closed() {
        let mut w = TumblingWindow::from_spec("w", &spec(0, LateRecords::Drop), ErrorPolicy::Fail);
        let mut out = Vec::new();
        w.process(vec![rec(1, 0), rec(1, 12)], &mut out).expect("process");
        w.on_watermark(9, &mut out).expect("wm");
        assert_eq!(counts(&out), vec![(1, 0, 1)]);
        let snap = w.snapshot(CheckpointId(1), SnapshotMode::Full).expect("snap");
        let mut again = TumblingWindow::from_spec("w", &spec(0, LateRecords::Drop), ErrorPolicy::Fail);
        again.restore(Restored { keyed: Vec::new(), operator_state: snap.operator_state }).expect("restore");
        let mut out = Vec::new();
        again.process(vec![rec(1, 5)], &mut out).expect("late after restore");
        again.on_watermark(5, &mut out).expect("an older watermark changes nothing");
        assert!(out.is_empty(), "the window [0,10) fired before the checkpoint: {out:?}");
        assert_eq!(again.take_late(&mut Vec::new()), 1);
        again.finish(&mut out).expect("finish");
        assert!(out.is_empty(), "no window reopened");
    }

    #[test]
    fn allowed_lateness_updates_a_fired_window_then_closes_it() {
        let mut w = TumblingWindow::from_spec("w", &spec(5, LateRecords::DeadLetter), ErrorPolicy::Fail);
        let mut out = Vec::new();
        w.process(vec![rec(1, 0), rec(1, 3)], &mut out).expect("process");
        w.on_watermark(9, &mut out).expect("wm");
        assert_eq!(counts(&out), vec![(1, 0, 2)]);
        out.clear();
        w.process(vec![rec(1, 4)], &mut out).expect("late but allowed");
        assert_eq!(counts(&out), vec![(1, 0, 3)], "the updated window is emitted at once");
        out.clear();
        w.on_watermark(13, &mut out).expect("wm");
        assert!(out.is_empty(), "a fired window does not fire again");
        w.on_watermark(14, &mut out).expect("wm: 9 + 5 reached, the window closes");
        w.process(vec![rec(1, 2), rec(2, 25)], &mut out).expect("too late");
        assert!(out.is_empty());
        let mut late = Vec::new();
        assert_eq!(w.take_late(&mut late), 1);
        assert_eq!(late, vec![rec(1, 2)], "dead-lettered unchanged");
        assert_eq!(w.take_late(&mut late), 0, "counted once");
        w.finish(&mut out).expect("finish");
        assert_eq!(counts(&out), vec![(2, 20, 1)]);
    }

    #[test]
    fn snapshot_and_restore_keep_open_windows() {
        let mut w = TumblingWindow::new("w", Duration::from_millis(10), AggregateFn::Sum, None, ErrorPolicy::Fail);
        w.process(vec![rec(1, 0), rec(1, 3), rec(2, 12)], &mut Vec::new()).expect("p");
        let snap = w.snapshot(CheckpointId(1), SnapshotMode::Full).expect("snap");
        let mut writer = crate::state::StateWriter::new(128);
        snap.keyed.expect("keyed").write_to(&mut writer);
        let (bytes, _) = writer.finish(false);
        let entries = crate::state::decode_state_file(
            "f",
            &bytes,
            bytes.len() as u64,
            crc32c::crc32c(&bytes),
            crate::graph::KeyGroupRange { start: 0, end: 127 },
        )
        .expect("decode");
        let mut restored =
            TumblingWindow::new("w", Duration::from_millis(10), AggregateFn::Sum, None, ErrorPolicy::Fail);
        restored.restore(Restored { keyed: entries, operator_state: vec![] }).expect("restore");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        w.finish(&mut a).expect("f");
        restored.finish(&mut b).expect("f");
        assert_eq!(a, b);
    }
}
