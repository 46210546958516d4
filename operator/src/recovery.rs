//! The restore point status reports: the newest checkpoint whose manifest reads back intact,
//! found by `sluice_storage::manifests::newest_readable` — the listing and reading the
//! runtime's restore uses too (newest first, falling back past unreadable ones).

use sluice_storage::ObjectStore;
use sluice_storage::layout;
use sluice_storage::manifests::{self, Newest, NewestError};

use crate::store;

/// A completed checkpoint the next attempt can restore from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePoint {
    /// Checkpoint id.
    pub id: u64,
    /// URI of its manifest: the `--restore` argument.
    pub path: String,
    /// Completion time, milliseconds since the epoch.
    pub completed_at_ms: u64,
    /// Bytes of state it references.
    pub size_bytes: u64,
    /// Trigger-to-completion time in milliseconds.
    pub duration_ms: u64,
}

/// The newest checkpoint with an intact manifest in `store` (the job's storage, whose root URI
/// is `root`), or `None` when the job has none yet: what status reports, and whether a relaunch
/// has a checkpoint to restore at all. Which checkpoint a relaunch restores is not decided here
/// but by the runtime's one rule (`--restore` is not passed for the latest checkpoint: the
/// runtime also verifies state files and refuses to fall back past committed output). When
/// manifests exist and none reads back, that is [`store::Error::Unverified`] (never "no
/// checkpoint"); a storage error is returned as such.
pub async fn latest_restore_point(store: &dyn ObjectStore, root: &str) -> Result<Option<RestorePoint>, store::Error> {
    match manifests::newest_readable(store).await {
        Ok(Newest::Readable(m)) => Ok(Some(RestorePoint {
            id: m.checkpoint_id.0,
            path: layout::manifest_uri(root, m.checkpoint_id),
            completed_at_ms: m.completed_at_ms,
            size_bytes: m.state_bytes(),
            duration_ms: m.completed_at_ms.saturating_sub(m.triggered_at_ms),
        })),
        Ok(Newest::Empty) => Ok(None),
        Ok(Newest::Unreadable { count, newest }) => Err(store::Error::Unverified { count, newest }),
        Err(NewestError::List(e)) => Err(store::Error::List(e)),
        Err(NewestError::Read(e)) => Err(store::Error::Read(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use sluice_crds::checkpointing::CheckpointStorage;
    use sluice_crds::contract::manifest::{CheckpointId, MANIFEST_VERSION, Manifest, SnapshotKind};
    use sluice_storage::memory::MemoryStore;
    use sluice_storage::{ObjectStore, SharedStore};

    use super::*;

    fn manifest(id: u64) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            job: "j".into(),
            checkpoint_id: CheckpointId(id),
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: 100,
            completed_at_ms: 150,
            max_parallelism: 128,
            tasks: vec![],
            run_id: None,
            records: None,
        }
    }

    fn storage() -> CheckpointStorage {
        CheckpointStorage {
            uri: "s3://bucket/job/".into(),
            endpoint: None,
            region: None,
            path_style: None,
            credentials_secret: None,
        }
    }

    #[tokio::test]
    async fn newest_intact_manifest_wins_and_a_corrupt_one_is_skipped() {
        let mem = Arc::new(MemoryStore::new());
        for id in [3, 7] {
            mem.put(&layout::manifest_key(CheckpointId(id)), Bytes::from(manifest(id).encode())).await.expect("put");
        }
        mem.put(&layout::manifest_key(CheckpointId(9)), Bytes::from_static(b"{\"torn")).await.expect("put");
        let shared: SharedStore = mem;
        let point = latest_restore_point(shared.as_ref(), &storage().uri).await.expect("reads");
        let point = point.expect("a checkpoint");
        assert_eq!(point.id, 7);
        assert_eq!(point.path, "s3://bucket/job/manifests/chk-00000000000000000007.json");
        assert_eq!(point.duration_ms, 50);
    }

    #[tokio::test]
    async fn manifests_of_which_none_reads_back_are_not_an_empty_storage() {
        let mem = Arc::new(MemoryStore::new());
        for id in [3, 9] {
            mem.put(&layout::manifest_key(CheckpointId(id)), Bytes::from_static(b"{\"torn")).await.expect("put");
        }
        let shared: SharedStore = mem;
        match latest_restore_point(shared.as_ref(), &storage().uri).await {
            Err(store::Error::Unverified { count: 2, newest }) => {
                assert!(newest.starts_with("checkpoint 9:"), "{newest}")
            }
            other => panic!("expected Unverified, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn empty_storage_has_no_restore_point() {
        let shared: SharedStore = Arc::new(MemoryStore::new());
        assert_eq!(latest_restore_point(shared.as_ref(), &storage().uri).await.expect("reads"), None);
    }
}
