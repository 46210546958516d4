//! The Nexmark source: the benchmark's auction system — persons, auctions and bids — generated
//! deterministically and replayably, following the definitions of the Nexmark generator
//! (nexmark/nexmark's `GeneratorConfig`, `PersonGenerator`, `AuctionGenerator`, `BidGenerator`).
//!
//! Event `n` is a pure function of `n` (`model.rs`), with event time `config.rs`'s timestamp of
//! `n`. The event numbers `0..events` are cut into `splits` interleaved splits (split `s` emits
//! `s`, `s+S`, `s+2S`, …); each split's next event number is checkpointed as one element of
//! list state, so a restore at another parallelism deals the splits out again and every split
//! replays exactly from its position. Within a split event time never decreases, so the
//! watermark is the least over this subtask's unfinished splits of the next event's time − 1.
//! Records have no key; their value's shape is in `record.rs`.

mod config;
mod model;
mod record;
mod rng;
mod tables;

use serde::{Deserialize, Serialize};
use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::NexmarkSpec;

use self::config::GenConfig;
use self::model::Model;
use self::record::Shape;
use super::rate::RateLimit;
use super::reads::Reads;
use super::{OpContext, OpError, Source, SourcePoll};
use crate::record::{Batch, Record};
use crate::value::Value;

/// Checkpointed position of one split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SplitPosition {
    split: u32,
    next: u64,
}

/// A subtask of a `nexmark` node.
pub struct NexmarkSource {
    ctx: OpContext,
    splits_total: u32,
    events: u64,
    model: Model,
    shape: Shape,
    splits: Vec<SplitPosition>,
    cursor: usize,
    rate: Option<RateLimit>,
}

impl NexmarkSource {
    /// A subtask of the node `spec` whose records the job reads `reads` of (`nodes::reads`);
    /// call [`Source::open`] before polling.
    pub fn new(spec: &NexmarkSpec, ctx: OpContext, reads: &Reads) -> NexmarkSource {
        let rate = spec.rate_per_second.map(|r| RateLimit::new(r as f64 / f64::from(ctx.parallelism.max(1))));
        NexmarkSource {
            ctx,
            splits_total: spec.splits.max(1),
            events: spec.events.unwrap_or(u64::MAX),
            model: Model::new(GenConfig::new(spec)),
            shape: Shape::new(reads),
            splits: Vec::new(),
            cursor: 0,
            rate,
        }
    }

    fn restore_error(&self, message: String) -> OpError {
        OpError::Restore { node: self.ctx.node.clone(), message }
    }
}

impl Source for NexmarkSource {
    fn open(&mut self, restored: Option<Vec<serde_json::Value>>) -> Result<(), OpError> {
        let s = self.splits_total;
        self.splits = match restored {
            None => (0..s)
                .filter(|split| split % self.ctx.parallelism.max(1) == self.ctx.subtask)
                .map(|split| SplitPosition { split, next: u64::from(split) })
                .collect(),
            Some(state) => state
                .into_iter()
                .map(|v| {
                    serde_json::from_value::<SplitPosition>(v)
                        .map_err(|e| self.restore_error(format!("nexmark split position: {e}")))
                })
                .collect::<Result<_, _>>()?,
        };
        for pos in &self.splits {
            if pos.split >= s || pos.next % u64::from(s) != u64::from(pos.split) {
                return Err(self
                    .restore_error(format!("split position {pos:?} does not fit {s} splits (was `splits` changed?)")));
            }
        }
        if let Some(r) = self.rate.as_mut() {
            r.restart();
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut Batch, max: usize) -> Result<SourcePoll, OpError> {
        let budget = match self.rate.as_ref().map(|r| r.budget(max)) {
            None => max,
            Some(Ok(n)) => n,
            Some(Err(wait)) => return Ok(SourcePoll::Idle(wait)),
        };
        let n = self.splits.len();
        let events = self.events;
        let Some(idx) = (0..n).map(|k| (self.cursor + k) % n).find(|&i| self.splits[i].next < events) else {
            return Ok(SourcePoll::Finished);
        };
        self.cursor = (idx + 1) % n;
        let stride = u64::from(self.splits_total);
        let mut next = self.splits[idx].next;
        let mut produced = 0;
        out.reserve(budget);
        while produced < budget && next < events {
            let ts = self.model.config.timestamp(next);
            let value = self.shape.value(&mut self.model, next);
            out.push(Record { key: Value::Null, ts, value });
            next = next.saturating_add(stride);
            produced += 1;
        }
        self.splits[idx].next = next;
        if let Some(r) = self.rate.as_mut() {
            r.emitted(produced);
        }
        Ok(SourcePoll::Data)
    }

    fn watermark(&self) -> i64 {
        self.splits
            .iter()
            .filter(|p| p.next < self.events)
            .map(|p| self.model.config.timestamp(p.next) - 1)
            .min()
            .unwrap_or(i64::MAX)
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Vec<serde_json::Value>, OpError> {
        Ok(self.splits.iter().map(|p| serde_json::json!({"split": p.split, "next": p.next})).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::KeyGroupRange;

    fn ctx(subtask: u32, parallelism: u32) -> OpContext {
        OpContext {
            node: "nexmark".into(),
            subtask,
            parallelism,
            max_parallelism: 128,
            key_groups: KeyGroupRange::for_subtask(subtask, parallelism, 128),
            run_id: "r".into(),
            job: "job".into(),
            checkpointing: true,
            max_concurrent_checkpoints: 1,
            io: None,
        }
    }

    fn spec(events: u64) -> NexmarkSpec {
        NexmarkSpec { events: Some(events), splits: 5, events_per_second: 1000, ..Default::default() }
    }

    /// Drains up to `limit` records in polls of 7.
    fn drain(s: &mut NexmarkSource, limit: usize) -> Vec<Record> {
        let mut all = Vec::new();
        let mut batch = Vec::new();
        while all.len() < limit {
            batch.clear();
            match s.poll(&mut batch, 7).expect("poll") {
                SourcePoll::Finished => break,
                _ => all.append(&mut batch),
            }
        }
        all
    }

    /// At 1000 events/s event `n` is at `n` ms: the time names the event.
    fn by_time(mut records: Vec<Record>) -> Vec<Record> {
        records.sort_by_key(|r| r.ts);
        records
    }

    fn one_subtask(events: u64) -> Vec<Record> {
        let mut s = NexmarkSource::new(&spec(events), ctx(0, 1), &Reads::Whole);
        s.open(None).expect("open");
        by_time(drain(&mut s, usize::MAX))
    }

    #[test]
    fn records_have_the_flink_row_shape() {
        let all = one_subtask(100);
        assert_eq!(all.len(), 100);
        for (n, r) in all.iter().enumerate() {
            let kind = r.value.get_path("event_type").and_then(Value::as_i64).expect("event_type");
            assert_eq!(kind, [0, 1, 1, 1].get(n % 50).copied().unwrap_or(2), "event {n}");
            let column = ["person", "auction", "bid"][kind as usize];
            for other in ["person", "auction", "bid"] {
                assert_eq!(r.value.get_path(other).is_some_and(|v| v != &Value::Null), other == column);
            }
            assert_eq!(r.value.get_path(&format!("{column}.dateTime")), Some(&Value::Int(r.ts)));
            assert_eq!(r.value.get_path("dateTime"), Some(&Value::Int(n as i64)));
        }
    }

    #[test]
    fn restore_at_another_parallelism_replays_from_the_snapshot() {
        let whole = one_subtask(1000);
        let mut got = Vec::new();
        let mut state = Vec::new();
        for i in 0..2 {
            let mut s = NexmarkSource::new(&spec(1000), ctx(i, 2), &Reads::Whole);
            s.open(None).expect("open");
            got.extend(drain(&mut s, 100));
            state.extend(s.snapshot(CheckpointId(1)).expect("snapshot"));
        }
        for i in 0..3 {
            let share: Vec<_> =
                state.iter().filter(|v| v["split"].as_u64().is_some_and(|s| s % 3 == u64::from(i))).cloned().collect();
            let mut s = NexmarkSource::new(&spec(1000), ctx(i, 3), &Reads::Whole);
            s.open(Some(share)).expect("restore");
            got.extend(drain(&mut s, usize::MAX));
        }
        assert_eq!(by_time(got), whole);
    }

    #[test]
    fn watermark_never_passes_a_record_still_to_come() {
        let mut s = NexmarkSource::new(&NexmarkSpec { events: Some(5000), ..spec(0) }, ctx(1, 2), &Reads::Whole);
        s.open(None).expect("open");
        let mut batch = Vec::new();
        loop {
            let wm = s.watermark();
            batch.clear();
            if s.poll(&mut batch, 13).expect("poll") == SourcePoll::Finished {
                break;
            }
            assert!(batch.iter().all(|r| r.ts > wm));
        }
        assert_eq!(s.watermark(), i64::MAX);
    }

    #[test]
    fn a_position_of_another_split_count_is_refused() {
        let mut s = NexmarkSource::new(&spec(10), ctx(0, 1), &Reads::Whole);
        let err = s.open(Some(vec![serde_json::json!({"split": 2, "next": 8})])).expect_err("5 splits");
        assert!(err.to_string().contains("does not fit 5 splits"), "{err}");
    }
}
