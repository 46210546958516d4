//! Runs one keyed operator as several subtasks by hand, checkpoints them (a full base, then
//! incremental deltas, encoded as real state files) and restores the checkpoint into another
//! number of subtasks through the runtime's own restore path (`checkpoint::restore::assign`, by
//! key group). Differential tests drive it record by record against a reference.
//!
//! Include it with `#[path = "common/rescale.rs"] mod rescale;`.

#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use sluice_crds::contract::manifest::{Manifest, SnapshotKind, StateFile, TaskState};
use sluice_crds::{CheckpointId, JobConfig};
use sluice_runtime::checkpoint::restore::{LoadedCheckpoint, assign};
use sluice_runtime::graph::key_groups::{key_group, subtask_for_group};
use sluice_runtime::ops::{Operator, SnapshotMode};
use sluice_runtime::record::{Batch, Record};
use sluice_runtime::state::StateWriter;

/// A subtask's checkpoint chain: its state files (bytes and manifest entry), its operator state.
type Chain = (Vec<(Vec<u8>, StateFile)>, Vec<serde_json::Value>);

/// The subtasks of one keyed node, with their checkpoint chains.
pub struct Subtasks<O> {
    /// The operator of each subtask.
    pub ops: Vec<O>,
    chains: Vec<Chain>,
    next_id: u64,
    max_p: u32,
    /// The node's id and its index in the pipeline `pipeline(p)` returns.
    node: (String, usize),
    pipeline: Box<dyn Fn(u32) -> sluice_crds::contract::pipeline::Pipeline>,
    make: Box<dyn Fn() -> O>,
    /// Everything the subtasks emitted.
    pub out: Batch,
    /// Everything they sent to their late output.
    pub late: Batch,
    /// The late records they counted.
    pub late_counted: u64,
}

impl<O: Operator> Subtasks<O> {
    /// `p` subtasks of node `node` (index `index` in the document), each made by `make`;
    /// `yaml(p)` is a job document holding the node at parallelism `p` with `max_p` key groups.
    pub fn new(
        p: u32,
        max_p: u32,
        node: &str,
        index: usize,
        yaml: impl Fn(u32) -> String + 'static,
        make: impl Fn() -> O + 'static,
    ) -> Subtasks<O> {
        let pipeline = move |p: u32| JobConfig::from_yaml(&yaml(p)).expect("a valid document").pipeline;
        Subtasks {
            ops: (0..p).map(|_| make()).collect(),
            chains: (0..p).map(|_| (Vec::new(), Vec::new())).collect(),
            next_id: 1,
            max_p,
            node: (node.to_string(), index),
            pipeline: Box::new(pipeline),
            make: Box::new(make),
            out: Batch::new(),
            late: Batch::new(),
            late_counted: 0,
        }
    }

    /// Sends `r` to the subtask owning its key, as input `input`.
    pub fn record(&mut self, input: usize, r: Record) {
        let group = key_group(r.key.stable_hash(), self.max_p);
        let sub = subtask_for_group(group, self.ops.len() as u32, self.max_p) as usize;
        self.ops[sub].process_input(input, vec![r], &mut self.out).expect("process");
        self.late_counted += self.ops[sub].take_late(&mut self.late);
    }

    /// Every subtask's watermark moves to `w`.
    pub fn watermark(&mut self, w: i64) {
        for op in &mut self.ops {
            op.on_watermark_all(w, &mut self.out).expect("watermark");
        }
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
            let mut w = StateWriter::new(self.max_p);
            keyed.write_to(&mut w);
            let (bytes, span) = w.finish(delta);
            let (start, end) = span.unwrap_or((0, 0));
            let file = StateFile {
                path: format!("state/chk-{id}/{}-{i}.state", self.node.0),
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

    /// Checkpoints, then restores the checkpoint into `p` new subtasks.
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
            tasks.push(TaskState {
                node: self.node.0.clone(),
                subtask: i as u32,
                parallelism: old_p,
                files: list,
                operator_state,
                committables: vec![],
            });
        }
        let manifest = Manifest {
            version: 1,
            job: "t".into(),
            checkpoint_id: CheckpointId(self.next_id - 1),
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: 0,
            completed_at_ms: 0,
            max_parallelism: self.max_p,
            tasks,
            run_id: None,
            records: None,
        };
        let loaded = LoadedCheckpoint { manifest, files, location: "test".into() };
        let mut plan = assign(&loaded, &(self.pipeline)(p)).expect("assign");
        self.ops = (0..p)
            .map(|sub| {
                let mut op = (self.make)();
                op.restore(plan.take(self.node.1, sub)).expect("restore");
                op
            })
            .collect();
        self.chains = (0..p).map(|_| (Vec::new(), Vec::new())).collect();
    }

    /// Every subtask's input ends.
    pub fn finish(&mut self) {
        for op in &mut self.ops {
            op.finish_all(&mut self.out).expect("finish");
            self.late_counted += op.take_late(&mut self.late);
        }
    }
}

/// Key groups of [`Rescaled`]'s job.
pub const MAX_P: u32 = 16;

/// An output with the watermarks around its emission: `(before, after)` the call that emitted
/// it (equal for records emitted while processing).
pub type Emitted = (Record, i64, i64);

/// [`Subtasks`] of a one-input keyed node `op`, keeping the watermarks around every output (for
/// tests that check *when* a record was emitted, not only that it was).
pub struct Rescaled<O: Operator> {
    inner: Subtasks<O>,
    wm: i64,
    /// Every output, with the watermarks around it.
    pub out: Vec<Emitted>,
}

impl<O: Operator> std::ops::Deref for Rescaled<O> {
    type Target = Subtasks<O>;
    fn deref(&self) -> &Subtasks<O> {
        &self.inner
    }
}

impl<O: Operator> Rescaled<O> {
    /// `p` fresh subtasks made by `make`.
    pub fn new(p: u32, make: impl Fn() -> O + 'static) -> Rescaled<O> {
        let yaml = |p: u32| {
            format!(
                "name: t\npipeline:\n  maxParallelism: {MAX_P}\n  parallelism: {p}\n  nodes:\n    - {{id: gen, generator: {{count: 1}}}}\n    - {{id: op, window: {{size: 10ms, function: count}}}}\n  edges:\n    - {{from: gen, to: op, partition: hash}}\n"
            )
        };
        Rescaled { inner: Subtasks::new(p, MAX_P, "op", 1, yaml, make), wm: i64::MIN, out: Vec::new() }
    }

    fn collect(&mut self, before: i64, after: i64) {
        self.out.extend(self.inner.out.drain(..).map(|r| (r, before, after)));
    }

    /// Sends `rec` to the subtask owning its key group.
    pub fn record(&mut self, rec: Record) {
        self.inner.record(0, rec);
        self.collect(self.wm, self.wm);
    }

    /// Every subtask sees watermark `w`.
    pub fn watermark(&mut self, w: i64) {
        self.inner.watermark(w);
        let before = self.wm;
        self.wm = self.wm.max(w);
        self.collect(before, self.wm);
    }

    /// Every subtask adds a file to its chain.
    pub fn checkpoint(&mut self) {
        self.inner.checkpoint();
    }

    /// Checkpoints, then restores the checkpoint into `p` new subtasks.
    pub fn rescale(&mut self, p: u32) {
        self.inner.rescale(p);
    }

    /// Every subtask's input ends.
    pub fn finish(&mut self) {
        self.inner.finish();
        self.collect(self.wm, i64::MAX);
        self.wm = i64::MAX;
    }
}
