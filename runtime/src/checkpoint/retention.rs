//! Retention and garbage collection of checkpoint storage, as mark-and-sweep: a state file is
//! deleted only when no retained manifest references it; files of checkpoints newer than the
//! latest completed one are never touched (they may be in flight).

use std::collections::HashSet;

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{MANIFESTS_PREFIX, Manifest, manifest_key, parse_manifest_key};

use crate::storage::{self, ObjectStore};

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Manifests deleted by retention.
    pub manifests_deleted: usize,
    /// State files deleted.
    pub files_deleted: usize,
    /// Bytes of the deleted files.
    pub bytes_deleted: u64,
    /// Bytes referenced by the retained checkpoints.
    pub live_bytes: u64,
}

/// Completed checkpoint ids in storage, ascending.
pub async fn list_checkpoints(store: &dyn ObjectStore) -> Result<Vec<CheckpointId>, storage::Error> {
    let mut ids: Vec<CheckpointId> =
        store.list(MANIFESTS_PREFIX).await?.iter().filter_map(|o| parse_manifest_key(&o.key)).collect();
    ids.sort_unstable();
    Ok(ids)
}

fn checkpoint_of_state_key(key: &str) -> Option<u64> {
    key.strip_prefix("state/chk-")?.split('/').next()?.parse().ok()
}

/// Keeps the newest `retained` checkpoints, deletes older manifests, then deletes every state
/// file under `state/` that no retained manifest references and that belongs to a checkpoint
/// not newer than the latest completed one (this also removes orphans of failed checkpoints).
pub async fn sweep(store: &dyn ObjectStore, retained: usize) -> Result<SweepReport, storage::Error> {
    let ids = list_checkpoints(store).await?;
    let Some(&latest) = ids.last() else { return Ok(SweepReport::default()) };
    let keep_from = ids.len().saturating_sub(retained.max(1));
    let (old, kept) = ids.split_at(keep_from);
    let mut report = SweepReport::default();
    let mut referenced = HashSet::new();
    for id in kept {
        match store.get(&manifest_key(*id)).await.map(|b| Manifest::decode(&b)) {
            Ok(Ok(m)) => {
                for f in m.referenced_files() {
                    if referenced.insert(f.path.clone()) {
                        report.live_bytes += f.size_bytes;
                    }
                }
            }
            // An unreadable retained manifest: keep everything rather than guess.
            Ok(Err(e)) => {
                tracing::warn!(checkpoint = %id, error = %e, "retained manifest unreadable; skipping the sweep");
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
    }
    let old_keys: Vec<String> = old.iter().map(|id| manifest_key(*id)).collect();
    store.delete(&old_keys).await?;
    report.manifests_deleted = old_keys.len();
    let mut doomed = Vec::new();
    for obj in store.list("state/").await? {
        let Some(chk) = checkpoint_of_state_key(&obj.key) else { continue };
        if chk <= latest.0 && !referenced.contains(&obj.key) {
            report.bytes_deleted += obj.size;
            doomed.push(obj.key);
        }
    }
    report.files_deleted = doomed.len();
    store.delete(&doomed).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use bytes::Bytes;
    use sluice_crds::contract::manifest::{SnapshotKind, StateFile, TaskState};

    fn manifest(id: u64, files: &[&str]) -> Manifest {
        Manifest {
            version: 1,
            job: "j".into(),
            checkpoint_id: CheckpointId(id),
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: 0,
            completed_at_ms: 0,
            max_parallelism: 128,
            tasks: vec![TaskState {
                node: "n".into(),
                subtask: 0,
                parallelism: 1,
                files: files
                    .iter()
                    .map(|p| StateFile {
                        path: p.to_string(),
                        size_bytes: 1,
                        crc32c: 0,
                        key_group_start: 0,
                        key_group_end: 127,
                        delta: false,
                    })
                    .collect(),
                operator_state: vec![],
                committables: vec![],
            }],
        }
    }

    #[tokio::test]
    async fn keeps_retained_checkpoints_and_their_files_and_removes_the_rest() {
        let store = MemoryStore::new();
        for id in 1..=4u64 {
            let path = format!("state/chk-{id}/n-0-r.state");
            store.put(&path, Bytes::from_static(b"x")).await.expect("put");
            store
                .put(&manifest_key(CheckpointId(id)), Bytes::from(manifest(id, &[&path]).encode()))
                .await
                .expect("put");
        }
        store.put("state/chk-3/orphan.state", Bytes::from_static(b"x")).await.expect("put");
        store.put("state/chk-9/in-flight.state", Bytes::from_static(b"x")).await.expect("put");
        let report = sweep(&store, 2).await.expect("sweep");
        assert_eq!(report.manifests_deleted, 2);
        assert_eq!(list_checkpoints(&store).await.expect("list"), vec![CheckpointId(3), CheckpointId(4)]);
        let left: Vec<String> = store.list("state/").await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(left, vec!["state/chk-3/n-0-r.state", "state/chk-4/n-0-r.state", "state/chk-9/in-flight.state"]);
    }
}
