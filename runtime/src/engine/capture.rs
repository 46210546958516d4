//! What a task hands up at a checkpoint: each node's capture, and the [`CaptureWriter`] that
//! encodes and stores them. The checkpoint layer implements the writer (and gives it to the
//! tasks when it wires them); the engine only captures and reports.

use async_trait::async_trait;
use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{StateFile, TaskState};

use super::operator::OpSnapshot;
use crate::storage;

/// One node's capture, with where it ran.
pub struct NodeCapture {
    /// Node id.
    pub node: String,
    /// Node parallelism.
    pub parallelism: u32,
    /// What the node's operator captured.
    pub snapshot: OpSnapshot,
    /// Files a delta builds on (the node's confirmed chain); empty for a full snapshot.
    pub base: Vec<StateFile>,
}

/// Writes a task's captures for a checkpoint, off the task (on the job's I/O runtime).
#[async_trait]
pub trait CaptureWriter: Send + Sync {
    /// Encodes and stores the captures of subtask `subtask`'s chain (head first) for
    /// `checkpoint`; returns the task's entries for the manifest, one per capture.
    async fn write(
        &self,
        checkpoint: CheckpointId,
        subtask: u32,
        captures: Vec<NodeCapture>,
    ) -> Result<Vec<TaskState>, storage::Error>;
}
