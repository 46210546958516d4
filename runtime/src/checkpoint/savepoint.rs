//! Savepoints: a savepoint is a full-snapshot checkpoint (published like any checkpoint, so sinks
//! commit on it) whose manifest and files are then copied to their own location, where retention
//! never touches them. The copy is self-contained: `--restore <location>` needs nothing else.

use std::sync::Arc;

use sluice_crds::CheckpointId;
use sluice_crds::contract::job_config::StorageSpec;
use sluice_crds::contract::manifest::{Manifest, ManifestError, SnapshotKind};

use crate::error::{ErrorKind, storage_kind};
use crate::storage::layout::{self, manifest_key};
use crate::storage::{self, ObjectStore, PutOutcome};

/// Why a savepoint was not taken. Cheap to clone: the outcome goes both to the control
/// endpoint's status and to a stop waiting for it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SavepointError {
    /// The completed checkpoint could not be read back.
    #[error("{0}")]
    Read(Arc<storage::Error>),
    /// The completed checkpoint's manifest does not decode.
    #[error("{0}")]
    Manifest(Arc<ManifestError>),
    /// The target location could not be opened or written.
    #[error("{0}")]
    Write(Arc<storage::Error>),
    /// The target location already holds a savepoint (a savepoint is never overwritten).
    #[error("{target} already holds a savepoint")]
    Exists {
        /// The target directory.
        target: String,
    },
    /// The job did not take it (no checkpoint storage, a stop in progress, the job cancelled
    /// or ended, its checkpoint failed): why.
    #[error("{0}")]
    NotTaken(String),
}

impl SavepointError {
    /// What the failure means (see [`crate::error`]): a target that holds a savepoint or a
    /// manifest that does not decode is bad input; storage failures are as their kind; a
    /// savepoint not taken may be asked for again.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SavepointError::Read(e) | SavepointError::Write(e) => storage_kind(e),
            SavepointError::Manifest(_) | SavepointError::Exists { .. } => ErrorKind::BadInput,
            SavepointError::NotTaken(_) => ErrorKind::Retryable,
        }
    }
}

/// Copies completed checkpoint `id` from `store` to the directory `target` as a savepoint.
/// Returns the savepoint's URI.
pub async fn write_savepoint(
    store: &dyn ObjectStore,
    id: CheckpointId,
    target: &str,
    options: &StorageSpec,
) -> Result<String, SavepointError> {
    let read = |e| SavepointError::Read(Arc::new(e));
    let write = |e| SavepointError::Write(Arc::new(e));
    let bytes = store.get(&manifest_key(id)).await.map_err(read)?;
    let mut manifest = Manifest::decode(&bytes).map_err(|e| SavepointError::Manifest(Arc::new(e)))?;
    let dest = storage::open_uri(target, options).await.map_err(write)?;
    for f in manifest.referenced_files() {
        let data = store.get(&f.path).await.map_err(read)?;
        dest.put(&f.path, data).await.map_err(write)?;
    }
    manifest.kind = SnapshotKind::Savepoint;
    match dest.put_if_absent(&layout::savepoint_manifest_key(""), bytes::Bytes::from(manifest.encode())).await {
        Ok(PutOutcome::Created) => Ok(target.trim_end_matches('/').to_string()),
        Ok(PutOutcome::AlreadyExists) => Err(SavepointError::Exists { target: target.to_string() }),
        Err(e) => Err(write(e)),
    }
}
