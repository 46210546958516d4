//! A task's part of checkpoints: capture every operator's state at an aligned barrier, hand the
//! captures to the [`CaptureWriter`](crate::engine::capture::CaptureWriter) off the task, and
//! track which state files each node's next delta builds on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{StateFile, TaskState};

use super::{Task, TaskError};
use crate::engine::capture::NodeCapture;
use crate::engine::message::{Barrier, BarrierKind, Message, TaskAck, TaskControl, TaskEvent, TaskId};
use crate::engine::operator::{OpSnapshot, SnapshotMode};

/// Longest run of deltas on one base before the next snapshot is a full one again (compaction).
pub const MAX_DELTAS: usize = 8;

/// The keyed-state files of one node as of its last completed checkpoint.
#[derive(Debug, Default)]
pub(super) struct NodeChain {
    confirmed: Vec<StateFile>,
}

impl NodeChain {
    /// Whether the chain is long or heavy enough to rebase: more than [`MAX_DELTAS`] deltas, or
    /// deltas that together outweigh the base (restore time stays bounded).
    fn wants_rebase(&self) -> bool {
        let (base, deltas): (Vec<_>, Vec<_>) = self.confirmed.iter().partition(|f| !f.delta);
        let base_bytes: u64 = base.iter().map(|f| f.size_bytes).sum();
        let delta_bytes: u64 = deltas.iter().map(|f| f.size_bytes).sum();
        base.is_empty() || deltas.len() >= MAX_DELTAS || delta_bytes > base_bytes
    }
}

/// Files written per (checkpoint, node position), waiting for the checkpoint's completion.
pub(super) type PendingFiles = Arc<Mutex<BTreeMap<(CheckpointId, usize), Vec<StateFile>>>>;

impl Task {
    /// Synchronous part of a checkpoint, then the barrier goes downstream and the upload runs
    /// in the background.
    pub(super) async fn checkpoint(
        &mut self,
        barrier: Barrier,
        source_state: Option<Vec<serde_json::Value>>,
        alignment_us: u64,
    ) -> Result<(), TaskError> {
        // A source's records up to this barrier: the manifest's running total builds on them.
        let records = if source_state.is_some() { self.counters.first().map_or(0, |c| c.records_out.get()) } else { 0 };
        let snapshots = self.capture(&barrier, source_state)?;
        self.unresolved.insert(barrier.id);
        if barrier.kind == BarrierKind::StopSavepoint {
            self.stopping = true;
        }
        self.router.broadcast(|| Message::Barrier(barrier)).await.map_err(self.closed())?;
        self.env.faults.hit("task.after_precommit");
        let captures: Vec<NodeCapture> = self
            .nodes
            .iter()
            .zip(snapshots)
            .map(|(n, (snapshot, base))| NodeCapture { node: n.id.clone(), parallelism: n.parallelism, snapshot, base })
            .collect();
        let ack = AckFigures { records, alignment_us };
        self.env.io.spawn(upload(self.env.clone(), self.id, self.pending.clone(), barrier, captures, ack));
        Ok(())
    }

    /// Every node's capture (the source's positions first, if any) with the files a delta
    /// builds on.
    fn capture(
        &mut self,
        barrier: &Barrier,
        source_state: Option<Vec<serde_json::Value>>,
    ) -> Result<Vec<(OpSnapshot, Vec<StateFile>)>, TaskError> {
        let mut snapshots = Vec::with_capacity(self.nodes.len());
        if let Some(state) = source_state {
            snapshots.push((OpSnapshot { operator_state: state, ..OpSnapshot::default() }, Vec::new()));
        }
        // A delta is only safe on top of a confirmed chain with no earlier checkpoint unresolved
        // (an aborted or still-running one may hold changes the delta would miss).
        let settled = self.unresolved.is_empty();
        let offset = self.op_offset();
        let err = self.op_err();
        for (i, op) in self.ops.iter_mut().enumerate() {
            let chain = &self.chains[offset + i];
            let full = barrier.kind.is_savepoint() || !settled || chain.wants_rebase();
            let mode = if full { SnapshotMode::Full } else { SnapshotMode::Incremental };
            let base = if full { Vec::new() } else { chain.confirmed.clone() };
            snapshots.push((op.snapshot(barrier.id, mode).map_err(&err)?, base));
        }
        Ok(snapshots)
    }

    /// Applies a completion or an abort from the coordinator.
    pub(super) fn on_control(&mut self, c: TaskControl) -> Result<(), TaskError> {
        match c {
            TaskControl::Complete(id) => self.complete(id),
            TaskControl::Abort(id) => {
                self.unresolved.remove(&id);
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).retain(|(c, _), _| *c != id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn complete(&mut self, id: CheckpointId) -> Result<(), TaskError> {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (i, chain) in self.chains.iter_mut().enumerate() {
                if let Some(files) = p.remove(&(id, i)) {
                    chain.confirmed = files;
                }
            }
            p.retain(|(c, _), _| *c > id);
        }
        // Everything up to a completed checkpoint is settled (older ones were subsumed).
        self.unresolved = self.unresolved.split_off(&id.next());
        let err = self.op_err();
        for op in &mut self.ops {
            op.checkpoint_complete(id).map_err(&err)?;
        }
        Ok(())
    }
}

/// What an ack reports besides the states.
struct AckFigures {
    /// Records the task's source emitted this run up to the barrier (0 for other tasks).
    records: u64,
    /// Time spent aligning barriers, in microseconds.
    alignment_us: u64,
}

/// The background part: the writer stores the captures, the written files wait in `pending`
/// for the completion, and the coordinator hears an ack or a decline.
async fn upload(
    env: Arc<super::TaskEnv>,
    task: TaskId,
    pending: PendingFiles,
    barrier: Barrier,
    captures: Vec<NodeCapture>,
    figures: AckFigures,
) {
    let AckFigures { records, alignment_us } = figures;
    let Some(writer) = env.snapshots.clone() else {
        let reason = "the job has no checkpoint storage".to_string();
        let _ = env.events.send(TaskEvent::Decline { checkpoint: barrier.id, task, reason });
        return;
    };
    let event = match writer.write(barrier.id, task.subtask, captures).await {
        Ok(states) => {
            remember(&pending, barrier.id, &states);
            TaskEvent::Ack(TaskAck { checkpoint: barrier.id, task, states, alignment_us, records })
        }
        Err(e) => TaskEvent::Decline { checkpoint: barrier.id, task, reason: e.to_string() },
    };
    let _ = env.events.send(event);
}

/// Keeps each node's written files until the checkpoint completes or aborts.
fn remember(pending: &PendingFiles, checkpoint: CheckpointId, states: &[TaskState]) {
    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
    for (i, st) in states.iter().enumerate() {
        p.insert((checkpoint, i), st.files.clone());
    }
}
