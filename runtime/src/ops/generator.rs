//! The deterministic sequence generator: a replayable source for demos, tests and benchmarks.
//!
//! The sequence `0..count` is cut into `splits` interleaved splits (split `s` emits `s`, `s+S`,
//! `s+2S`, …). Each split's next sequence number is checkpointed as one element of list state,
//! so a restore at another parallelism simply deals the splits out again.

use serde::{Deserialize, Serialize};
use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::GeneratorSpec;

use super::rate::RateLimit;
use super::{OpContext, OpError, Source, SourcePoll};
use crate::record::{Batch, Record};
use crate::value::Value;

/// Checkpointed position of one split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SplitPosition {
    split: u32,
    next: u64,
}

/// A subtask of the generator.
pub struct Generator {
    spec: GeneratorSpec,
    ctx: OpContext,
    splits: Vec<SplitPosition>,
    cursor: usize,
    rate: Option<RateLimit>,
}

impl Generator {
    /// A generator subtask; call [`Source::open`] before polling.
    pub fn new(spec: GeneratorSpec, ctx: OpContext) -> Generator {
        let rate = spec.rate_per_second.map(|r| RateLimit::new(r as f64 / f64::from(ctx.parallelism.max(1))));
        Generator { spec, ctx, splits: Vec::new(), cursor: 0, rate }
    }

    fn exhausted(&self, pos: &SplitPosition) -> bool {
        self.spec.count.is_some_and(|c| pos.next >= c)
    }

    fn event_time(&self, seq: u64) -> i64 {
        (self.spec.start_time_ms + seq.saturating_mul(self.spec.event_time_step_ms)) as i64
    }
}

impl Source for Generator {
    fn open(&mut self, restored: Option<Vec<serde_json::Value>>) -> Result<(), OpError> {
        let s = self.spec.splits;
        self.splits = match restored {
            None => (0..s)
                .filter(|split| split % self.ctx.parallelism == self.ctx.subtask)
                .map(|split| SplitPosition { split, next: u64::from(split) })
                .collect(),
            Some(state) => state
                .into_iter()
                .map(|v| {
                    serde_json::from_value::<SplitPosition>(v).map_err(|e| OpError::Restore {
                        node: self.ctx.node.clone(),
                        message: format!("generator split position: {e}"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        for pos in &self.splits {
            if pos.split >= s || pos.next % u64::from(s) != u64::from(pos.split) {
                return Err(OpError::Restore {
                    node: self.ctx.node.clone(),
                    message: format!("split position {pos:?} does not fit {s} splits (was `splits` changed?)"),
                });
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
        let Some(idx) = (0..n).map(|k| (self.cursor + k) % n).find(|&i| !self.exhausted(&self.splits[i])) else {
            return Ok(SourcePoll::Finished);
        };
        self.cursor = (idx + 1) % n;
        let stride = u64::from(self.spec.splits);
        let (keys, count) = (self.spec.keys, self.spec.count.unwrap_or(u64::MAX));
        let mut seq = self.splits[idx].next;
        let mut produced = 0;
        out.reserve(budget);
        while produced < budget && seq < count {
            out.push(Record {
                key: Value::Int((seq % keys) as i64),
                ts: self.event_time(seq),
                value: Value::Int(seq as i64),
            });
            seq += stride;
            produced += 1;
        }
        self.splits[idx].next = seq;
        if let Some(r) = self.rate.as_mut() {
            r.emitted(produced);
        }
        Ok(SourcePoll::Data)
    }

    fn watermark(&self) -> i64 {
        self.splits.iter().filter(|p| !self.exhausted(p)).map(|p| self.event_time(p.next) - 1).min().unwrap_or(i64::MAX)
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
            node: "gen".into(),
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

    fn spec(count: u64) -> GeneratorSpec {
        GeneratorSpec {
            count: Some(count),
            keys: 10,
            rate_per_second: None,
            event_time_step_ms: 1,
            start_time_ms: 0,
            splits: 4,
        }
    }

    fn drain(g: &mut Generator, limit: usize) -> Vec<i64> {
        let mut seqs = Vec::new();
        let mut batch = Vec::new();
        while seqs.len() < limit {
            batch.clear();
            match g.poll(&mut batch, 7).expect("poll") {
                SourcePoll::Finished => break,
                _ => seqs.extend(batch.iter().filter_map(|r| r.value.as_i64())),
            }
        }
        seqs
    }

    #[test]
    fn subtasks_together_emit_every_sequence_number_once() {
        let mut all = Vec::new();
        for i in 0..3 {
            let mut g = Generator::new(spec(100), ctx(i, 3));
            g.open(None).expect("open");
            all.extend(drain(&mut g, usize::MAX));
            assert_eq!(g.watermark(), i64::MAX);
        }
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn restore_at_another_parallelism_continues_where_the_snapshot_was() {
        let mut first = Vec::new();
        let mut state = Vec::new();
        for i in 0..2 {
            let mut g = Generator::new(spec(1000), ctx(i, 2));
            g.open(None).expect("open");
            first.extend(drain(&mut g, 100));
            state.extend(g.snapshot(CheckpointId(1)).expect("snapshot"));
        }
        let mut g = Generator::new(spec(1000), ctx(0, 1));
        g.open(Some(state)).expect("restore");
        first.extend(drain(&mut g, usize::MAX));
        first.sort_unstable();
        assert_eq!(first, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn watermark_never_passes_a_record_still_to_come() {
        let mut g = Generator::new(spec(1000), ctx(0, 1));
        g.open(None).expect("open");
        let mut batch = Vec::new();
        for _ in 0..20 {
            let wm = g.watermark();
            batch.clear();
            g.poll(&mut batch, 13).expect("poll");
            assert!(batch.iter().all(|r| r.ts > wm));
        }
    }
}
