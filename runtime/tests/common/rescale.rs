//! A keyed operator's subtasks driven by hand, checkpointed and restored into another number
//! of subtasks through the real restore path (state files written by `StateWriter`, a
//! manifest, `checkpoint::restore::assign` by key group), as `window_differential.rs` does for
//! windows; generic over the operator. Include it with `#[path = "common/rescale.rs"] mod rescale;`.

#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use sluice_crds::contract::manifest::{Manifest, SnapshotKind, StateFile, TaskState};
use sluice_crds::contract::pipeline::Pipeline;
use sluice_crds::{CheckpointId, JobConfig};
use sluice_runtime::checkpoint::restore::{LoadedCheckpoint, assign};
use sluice_runtime::graph::key_groups::{key_group, subtask_for_group};
use sluice_runtime::ops::{Operator, SnapshotMode};
use sluice_runtime::record::Record;
use sluice_runtime::state::StateWriter;

/// Key groups of the harness's job.
pub const MAX_P: u32 = 16;

/// A subtask's checkpoint chain: its state files (bytes and manifest entry), its operator state.
type Chain = (Vec<(Vec<u8>, StateFile)>, Vec<serde_json::Value>);

/// An output with the watermarks around its emission: `(before, after)` the call that emitted
/// it (equal for records emitted while processing).
pub type Emitted = (Record, i64, i64);

/// The subtasks of one keyed node `op` with their checkpoint chains.
pub struct Rescaled<O: Operator> {
    make: Box<dyn Fn() -> O>,
    /// The subtasks, by index.
    pub ops: Vec<O>,
    chains: Vec<Chain>,
    next_id: u64,
    wm: i64,
    /// Every output, with the watermarks around it.
    pub out: Vec<Emitted>,
    /// Dead-lettered records.
    pub late: Vec<Record>,
    /// Late records counted.
    pub late_counted: u64,
}

fn pipeline(p: u32) -> Pipeline {
    JobConfig::from_yaml(&format!(
        "name: t\npipeline:\n  maxParallelism: {MAX_P}\n  parallelism: {p}\n  nodes:\n    - {{id: gen, generator: {{count: 1}}}}\n    - {{id: op, window: {{size: 10ms, function: count}}}}\n  edges:\n    - {{from: gen, to: op, partition: hash}}\n"
    ))
    .expect("valid")
    .pipeline
}

impl<O: Operator> Rescaled<O> {
    /// `p` fresh subtasks made by `make`.
    pub fn new(p: u32, make: impl Fn() -> O + 'static) -> Rescaled<O> {
        let ops = (0..p).map(|_| make()).collect();
        let chains = (0..p).map(|_| (Vec::new(), Vec::new())).collect();
        Rescaled {
            make: Box::new(make),
            ops,
            chains,
            next_id: 1,
            wm: i64::MIN,
            out: Vec::new(),
            late: Vec::new(),
            late_counted: 0,
        }
    }

    fn collect_late(&mut self) {
        for op in &mut self.ops {
            self.late_counted += op.take_late(&mut self.late);
        }
    }

    /// Sends `rec` to the subtask owning its key group.
    pub fn record(&mut self, rec: Record) {
        let group = key_group(rec.key.stable_hash(), MAX_P);
        let sub = subtask_for_group(group, self.ops.len() as u32, MAX_P) as usize;
        let mut out = Vec::new();
        self.ops[sub].process(vec![rec], &mut out).expect("process");
        self.out.extend(out.into_iter().map(|r| (r, self.wm, self.wm)));
        self.collect_late();
    }

    /// Every subtask sees watermark `w`.
    pub fn watermark(&mut self, w: i64) {
        let mut out = Vec::new();
        for op in &mut self.ops {
            op.on_watermark(w, &mut out).expect("watermark");
        }
        let before = self.wm;
        self.wm = self.wm.max(w);
        self.out.extend(out.into_iter().map(|r| (r, before, self.wm)));
    }

    /// Every subtask adds a file to its chain: a full base first, deltas after.
    pub fn checkpoint(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        for (i, op) in self.ops.iter_mut().enumerate() {
            let mode = if self.chains[i].0.is_empty() { SnapshotMode::Full } else { SnapshotMode::Incremental };
            let snap = op.snapshot(CheckpointId(id), mode).expect("snapshot");
            let keyed = snap.keyed.expect("keyed state");
            let delta = keyed.is_delta();
            let mut w = StateWriter::new(MAX_P);
            keyed.write_to(&mut w);
            let (bytes, span) = w.finish(delta);
            let (start, end) = span.unwrap_or((0, 0));
            let file = StateFile {
                path: format!("state/chk-{id}/op-{i}.state"),
                size_bytes: bytes.len() as u64,
                crc32c: crc32c::crc32c(&bytes),
                key_group_start: start,
                key_group_end: end,
                delta,
            };
            self.chains[i].0.push((bytes, file));
            self.chains[i].1 = snap.operator_state;
        }
    }

    /// Checkpoints, then restores the checkpoint into `p` new subtasks (the old ones are gone,
    /// with everything not in the checkpoint: timers, caches).
    pub fn rescale(&mut self, p: u32) {
        self.checkpoint();
        let mut files = HashMap::new();
        let mut tasks = Vec::new();
        let old_p = self.ops.len() as u32;
        for (i, (chain, operator_state)) in std::mem::take(&mut self.chains).into_iter().enumerate() {
            let mut list = Vec::new();
            for (bytes, file) in chain {
                files.insert(file.path.clone(), Bytes::from(bytes));
                list.push(file);
            }
            let (node, subtask, parallelism) = ("op".into(), i as u32, old_p);
            tasks.push(TaskState { node, subtask, parallelism, files: list, operator_state, committables: vec![] });
        }
        let manifest = Manifest {
            version: 1,
            job: "t".into(),
            checkpoint_id: CheckpointId(self.next_id - 1),
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: 0,
            completed_at_ms: 0,
            max_parallelism: MAX_P,
            tasks,
            run_id: None,
            records: None,
        };
        let loaded = LoadedCheckpoint { manifest, files, location: "test".into() };
        let mut plan = assign(&loaded, &pipeline(p)).expect("assign");
        self.ops = (0..p)
            .map(|sub| {
                let mut op = (self.make)();
                op.restore(plan.take(1, sub)).expect("restore");
                op
            })
            .collect();
        self.chains = (0..p).map(|_| (Vec::new(), Vec::new())).collect();
    }

    /// Input ends: every subtask finishes (the watermark goes to the end of time).
    pub fn finish(&mut self) {
        let mut out = Vec::new();
        for op in &mut self.ops {
            op.finish(&mut out).expect("finish");
        }
        self.out.extend(out.into_iter().map(|r| (r, self.wm, i64::MAX)));
        self.wm = i64::MAX;
        self.collect_late();
    }
}
