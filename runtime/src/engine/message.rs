//! What flows between tasks (in-band) and between tasks and the coordinator (control).

use std::fmt;

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::TaskState;

use crate::record::Batch;

/// Identifies a task: a chain of the physical plan and a subtask index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Chain index in the physical plan.
    pub chain: usize,
    /// Subtask index.
    pub subtask: u32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain{}#{}", self.chain, self.subtask)
    }
}

/// Why a barrier was injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarrierKind {
    /// A periodic checkpoint.
    Checkpoint,
    /// The last checkpoint of a bounded job (all sources exhausted).
    Final,
    /// A savepoint requested by a user or the operator.
    Savepoint,
    /// A savepoint after which sources stop and tasks end without draining (stop-with-savepoint):
    /// nothing is emitted after it, so resuming from it is exactly-once.
    StopSavepoint,
}

impl BarrierKind {
    /// Whether the snapshot must be full and self-contained.
    pub fn is_savepoint(self) -> bool {
        matches!(self, BarrierKind::Savepoint | BarrierKind::StopSavepoint)
    }
}

/// A checkpoint barrier: everything before it belongs to checkpoint `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Barrier {
    /// The checkpoint.
    pub id: CheckpointId,
    /// Periodic, final or savepoint.
    pub kind: BarrierKind,
}

/// An in-band message on a channel between tasks.
#[derive(Debug)]
pub enum Message {
    /// Records.
    Batch(Batch),
    /// No record with an earlier event time will follow on this channel.
    Watermark(i64),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The channel's sender is done; nothing follows.
    End,
}

/// A command from the coordinator to a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskControl {
    /// Sources only: inject this barrier now.
    Trigger(Barrier),
    /// Checkpoint complete: its manifest is published; sinks commit.
    Complete(CheckpointId),
    /// Checkpoint aborted.
    Abort(CheckpointId),
    /// Sources only: the final checkpoint is complete; end the stream.
    EndInput,
    /// The job is cancelled (see `engine::cancel`): wakes the task so it sees the flag.
    Cancel,
}

/// A task's acknowledgement of a checkpoint: the state of every node of its chain.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskAck {
    /// The checkpoint.
    pub checkpoint: CheckpointId,
    /// The acknowledging task.
    pub task: TaskId,
    /// One entry per node of the chain.
    pub states: Vec<TaskState>,
    /// Time the task spent aligning barriers, in microseconds.
    pub alignment_us: u64,
    /// Records the task's source emitted in this run up to the barrier (0 for a task without
    /// a source).
    pub records: u64,
}

/// A report from a task to the coordinator.
#[derive(Debug)]
pub enum TaskEvent {
    /// Snapshot written.
    Ack(TaskAck),
    /// The task could not take its part of the checkpoint (e.g. storage down).
    Decline {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// The task.
        task: TaskId,
        /// Why.
        reason: String,
    },
    /// A source task has no more data (it keeps answering barriers until `EndInput`).
    SourceFinished(TaskId),
}
