//! Publishing a checkpoint: the manifest is written with create-if-absent, so of two attempts
//! that both think they own checkpoint N (an old pod still alive and its replacement), exactly
//! one succeeds; the other learns it is a zombie and stops.

use std::time::{SystemTime, UNIX_EPOCH};

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{MANIFEST_VERSION, Manifest, SnapshotKind};

use crate::engine::message::TaskAck;
use crate::error::{ErrorKind, storage_kind};
use crate::storage::{self, ObjectStore, PutOutcome, manifests};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Builds the manifest of a checkpoint from every task's ack (tasks sorted for stable output).
pub fn build_manifest(
    job: &str,
    id: CheckpointId,
    kind: SnapshotKind,
    triggered_at_ms: u64,
    max_parallelism: u32,
    acks: Vec<TaskAck>,
) -> Manifest {
    let mut tasks: Vec<_> = acks.into_iter().flat_map(|a| a.states).collect();
    tasks.sort_by(|a, b| (&a.node, a.subtask).cmp(&(&b.node, b.subtask)));
    Manifest {
        version: MANIFEST_VERSION,
        job: job.to_string(),
        checkpoint_id: id,
        kind,
        triggered_at_ms,
        completed_at_ms: now_ms(),
        max_parallelism,
        tasks,
        run_id: None,
        records: None,
    }
}

/// Why a manifest was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another writer already published this id: this attempt must stop.
    #[error("checkpoint {0} was already published by another attempt of this job: this attempt is stale and stops")]
    AlreadyPublished(CheckpointId),
    /// Storage failed; the checkpoint fails and the job goes on.
    #[error("publishing checkpoint {id}: {source}")]
    Storage {
        /// The checkpoint.
        id: CheckpointId,
        /// The storage error.
        source: storage::Error,
    },
}

impl PublishError {
    /// What the failure means for the run: a stale attempt stops (a newer one goes on); storage
    /// failures are as their kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PublishError::AlreadyPublished(_) => ErrorKind::Retryable,
            PublishError::Storage { source, .. } => storage_kind(source),
        }
    }
}

/// Writes `manifest` at its key if nothing is there yet.
pub async fn publish(store: &dyn ObjectStore, manifest: &Manifest) -> Result<(), PublishError> {
    let id = manifest.checkpoint_id;
    match manifests::publish(store, manifest).await {
        Ok(PutOutcome::Created) => Ok(()),
        Ok(PutOutcome::AlreadyExists) => Err(PublishError::AlreadyPublished(id)),
        Err(source) => Err(PublishError::Storage { id, source }),
    }
}
