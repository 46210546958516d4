//! Tumbling event-time windows per key. A window `[start, start+size)` fires once, when the
//! watermark reaches `start+size-1`, emitting `{key, start, end, value}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy};

use super::aggregate::{Slot, ValueMap, accumulate};
use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode};
use crate::record::{Batch, Record};
use crate::state::EntryList;
use crate::value::Value;

/// Tumbling windows with one aggregate per (key, window).
pub struct TumblingWindow {
    node: String,
    size: i64,
    function: AggregateFn,
    field: Option<String>,
    policy: ErrorPolicy,
    windows: BTreeMap<i64, ValueMap<Slot>>,
    watermark: i64,
    late: u64,
    /// (key, window start) changed since the last snapshot, each once.
    dirty: Vec<(Value, i64)>,
    /// (key, window start) fired (deleted) since the last snapshot.
    removed: Vec<(Value, i64)>,
    epoch: u64,
}

impl TumblingWindow {
    /// Windows of `size`, aggregating `field` of the value (the value itself when `None`).
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
            function,
            field,
            policy,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            late: 0,
            dirty: Vec::new(),
            removed: Vec::new(),
            epoch: 1,
        }
    }

    /// Records dropped because their window had already fired.
    pub fn late_records(&self) -> u64 {
        self.late
    }

    fn fire_until(&mut self, watermark: i64, out: &mut Batch) {
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            let end = start.saturating_add(self.size);
            if end - 1 > watermark {
                break;
            }
            let keys = entry.remove();
            let mut fired: Vec<(Value, Value)> = keys.into_iter().map(|(k, s)| (k, s.value)).collect();
            fired.sort_by_key(|(k, _)| k.stable_hash());
            for (key, acc) in fired {
                self.removed.push((key.clone(), start));
                let value = Value::Map(Arc::new(BTreeMap::from([
                    (Arc::from("key"), key.clone()),
                    (Arc::from("start"), Value::Int(start)),
                    (Arc::from("end"), Value::Int(end)),
                    (Arc::from("value"), acc),
                ])));
                out.push(Record { key, ts: end - 1, value });
            }
        }
    }
}

impl Operator for TumblingWindow {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        for e in restored.keyed {
            let (Value::Int(start), Some(acc)) = (&e.namespace, e.value) else {
                return Err(OpError::Restore { node: self.node.clone(), message: "window entry without start".into() });
            };
            self.windows.entry(*start).or_default().insert(e.key, Slot { value: acc, epoch: 0 });
        }
        Ok(())
    }

    fn process(&mut self, batch: Batch, _out: &mut Batch) -> Result<(), OpError> {
        for r in batch {
            let start = r.ts - r.ts.rem_euclid(self.size);
            if start.saturating_add(self.size) - 1 <= self.watermark {
                self.late += 1;
                continue;
            }
            let input = match &self.field {
                None => Some(&r.value),
                Some(f) => r.value.get_path(f),
            };
            let window = self.windows.entry(start).or_default();
            let slot = window.get_mut(&r.key);
            let acc = slot.as_ref().map(|s| &s.value);
            match input.ok_or_else(|| "missing field".to_string()).and_then(|i| accumulate(self.function, acc, i)) {
                Ok(value) => match slot {
                    Some(s) => {
                        s.value = value;
                        if s.epoch != self.epoch {
                            s.epoch = self.epoch;
                            self.dirty.push((r.key, start));
                        }
                    }
                    None => {
                        self.dirty.push((r.key.clone(), start));
                        window.insert(r.key, Slot { value, epoch: self.epoch });
                    }
                },
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
        self.watermark = self.watermark.max(watermark);
        self.fire_until(self.watermark, out);
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId, mode: SnapshotMode) -> Result<OpSnapshot, OpError> {
        let entries = match mode {
            SnapshotMode::Full => self
                .windows
                .iter()
                .flat_map(|(start, keys)| {
                    keys.iter().map(move |(k, s)| (k.clone(), Value::Int(*start), Some(s.value.clone())))
                })
                .collect(),
            SnapshotMode::Incremental => {
                let live = self.dirty.iter().filter_map(|(k, start)| {
                    let s = self.windows.get(start)?.get(k)?;
                    Some((k.clone(), Value::Int(*start), Some(s.value.clone())))
                });
                let gone = self.removed.iter().map(|(k, start)| (k.clone(), Value::Int(*start), None));
                live.chain(gone).collect()
            }
        };
        self.dirty.clear();
        self.removed.clear();
        self.epoch += 1;
        let delta = mode == SnapshotMode::Incremental;
        Ok(OpSnapshot { keyed: Some(Box::new(EntryList { entries, delta })), ..OpSnapshot::default() })
    }

    fn finish(&mut self, out: &mut Batch) -> Result<(), OpError> {
        self.fire_until(i64::MAX, out);
        Ok(())
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
