//! Checkpoints: the coordinator's decisions (pure), the asynchronous snapshot upload, manifest
//! publication, restore, and retention.

pub mod claim;
pub mod completed;
pub mod coordinator;
pub mod driver;
pub mod fallback;
pub mod publish;
pub mod restore;
pub mod retention;
pub mod savepoint;
pub mod snapshot;

pub use coordinator::{Action, Coordinator, CoordinatorConfig, Input, JobFailure};

use sluice_crds::CheckpointId;

use crate::error::ErrorKind;

/// Why checkpointing stopped a run.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The coordinator stopped the job.
    #[error(transparent)]
    Coordinator(#[from] JobFailure),
    /// The checkpoint id this attempt takes before recovery (see [`claim`]) could not be claimed.
    #[error("claiming checkpoint {checkpoint} before recovery: {source}")]
    Claim {
        /// The id.
        checkpoint: CheckpointId,
        /// What the publish said.
        source: publish::PublishError,
    },
    /// A task or the coordinator panicked.
    #[error("{what} panicked: {source}")]
    Panicked {
        /// `task` or `coordinator`.
        what: &'static str,
        /// The join error.
        source: tokio::task::JoinError,
    },
}

impl CheckpointError {
    /// What the failure means for the run (see [`crate::error`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            CheckpointError::Coordinator(f) => f.kind(),
            CheckpointError::Claim { source, .. } => source.kind(),
            CheckpointError::Panicked { .. } => ErrorKind::Retryable,
        }
    }
}
