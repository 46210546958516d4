//! Savepoints: a savepoint is a full-snapshot checkpoint (published like any checkpoint, so sinks
//! commit on it) whose manifest and files are then copied to their own location, where retention
//! never touches them. The copy is self-contained: `--restore <location>` needs nothing else.

use sluice_crds::CheckpointId;
use sluice_crds::contract::job_config::StorageSpec;
use sluice_crds::contract::manifest::{Manifest, SnapshotKind};

use crate::storage::layout::{self, manifest_key};
use crate::storage::{self, ObjectStore, PutOutcome};

/// Copies completed checkpoint `id` from `store` to the directory `target` as a savepoint.
/// Returns the savepoint's URI.
pub async fn write_savepoint(
    store: &dyn ObjectStore,
    id: CheckpointId,
    target: &str,
    options: &StorageSpec,
) -> Result<String, String> {
    let bytes = store.get(&manifest_key(id)).await.map_err(|e| e.to_string())?;
    let mut manifest = Manifest::decode(&bytes).map_err(|e| e.to_string())?;
    let dest = storage::open_uri(target, options).await.map_err(|e| e.to_string())?;
    for f in manifest.referenced_files() {
        let data = store.get(&f.path).await.map_err(|e| e.to_string())?;
        dest.put(&f.path, data).await.map_err(|e| e.to_string())?;
    }
    manifest.kind = SnapshotKind::Savepoint;
    match dest.put_if_absent(&layout::savepoint_manifest_key(""), bytes::Bytes::from(manifest.encode())).await {
        Ok(PutOutcome::Created) => Ok(target.trim_end_matches('/').to_string()),
        Ok(PutOutcome::AlreadyExists) => Err(format!("{target} already holds a savepoint")),
        Err(e) => Err(e.to_string()),
    }
}
