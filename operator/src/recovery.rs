//! Picks the restore point: the newest checkpoint whose manifest reads back intact, found
//! through `sluice_crds::contract::manifest` (newest first, falling back past corrupt ones).

use sluice_crds::checkpointing::CheckpointStorage;
use sluice_crds::contract::manifest::{self, CheckpointId, Manifest};

use crate::store::{self, StoreFactory};

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

/// URI of checkpoint `id`'s manifest under a storage root URI.
pub fn manifest_uri(root: &str, id: CheckpointId) -> String {
    format!("{}/{}", root.trim_end_matches('/'), manifest::manifest_key(id))
}

/// The newest checkpoint with an intact manifest, or `None` when the job has none yet: what
/// status reports, and whether a relaunch has a checkpoint to restore at all. Which checkpoint
/// a relaunch restores is not decided here but by the runtime's one rule (`--restore` is not
/// passed for the latest checkpoint: the runtime also verifies state files and refuses to fall
/// back past committed output). When manifests exist and none reads back, that is
/// [`store::Error::Unverified`] (never "no checkpoint"); a storage error is returned as such.
pub async fn latest_restore_point(
    stores: &dyn StoreFactory,
    namespace: &str,
    storage: &CheckpointStorage,
) -> Result<Option<RestorePoint>, store::Error> {
    let store = stores.open(namespace, storage).await?;
    let keys = store.list(manifest::MANIFESTS_PREFIX).await.map_err(store::Error::List)?;
    let ids = manifest::latest_restorable(keys.iter().filter_map(|o| manifest::parse_manifest_key(&o.key)).collect());
    let count = ids.len();
    let mut newest_problem: Option<String> = None;
    for id in ids {
        let bytes = match store.get(&manifest::manifest_key(id)).await {
            Ok(b) => b,
            // Deleted by retention between list and get: try the next one.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(store::Error::Read(e)),
        };
        match Manifest::decode(&bytes) {
            Ok(m) => {
                return Ok(Some(RestorePoint {
                    id: m.checkpoint_id.0,
                    path: manifest_uri(&storage.uri, m.checkpoint_id),
                    completed_at_ms: m.completed_at_ms,
                    size_bytes: m.state_bytes(),
                    duration_ms: m.completed_at_ms.saturating_sub(m.triggered_at_ms),
                }));
            }
            Err(e) => {
                tracing::warn!(checkpoint = id.0, error = %e, "skipping unreadable checkpoint manifest");
                newest_problem.get_or_insert_with(|| format!("checkpoint {}: {e}", id.0));
            }
        }
    }
    match newest_problem {
        Some(newest) => Err(store::Error::Unverified { count, newest }),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use sluice_crds::contract::manifest::{MANIFEST_VERSION, SnapshotKind};
    use sluice_runtime::storage::memory::MemoryStore;
    use sluice_runtime::storage::{ObjectStore, SharedStore};

    use super::*;
    use crate::store::FixedStore;

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
            mem.put(&manifest::manifest_key(CheckpointId(id)), Bytes::from(manifest(id).encode())).await.expect("put");
        }
        mem.put(&manifest::manifest_key(CheckpointId(9)), Bytes::from_static(b"{\"torn")).await.expect("put");
        let shared: SharedStore = mem;
        let point = latest_restore_point(&FixedStore(shared), "ns", &storage()).await.expect("reads");
        let point = point.expect("a checkpoint");
        assert_eq!(point.id, 7);
        assert_eq!(point.path, "s3://bucket/job/manifests/chk-00000000000000000007.json");
        assert_eq!(point.duration_ms, 50);
    }

    #[tokio::test]
    async fn manifests_of_which_none_reads_back_are_not_an_empty_storage() {
        let mem = Arc::new(MemoryStore::new());
        for id in [3, 9] {
            mem.put(&manifest::manifest_key(CheckpointId(id)), Bytes::from_static(b"{\"torn")).await.expect("put");
        }
        let shared: SharedStore = mem;
        match latest_restore_point(&FixedStore(shared), "ns", &storage()).await {
            Err(store::Error::Unverified { count: 2, newest }) => {
                assert!(newest.starts_with("checkpoint 9:"), "{newest}")
            }
            other => panic!("expected Unverified, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn empty_storage_has_no_restore_point() {
        let shared: SharedStore = Arc::new(MemoryStore::new());
        assert_eq!(latest_restore_point(&FixedStore(shared), "ns", &storage()).await.expect("reads"), None);
    }
}
