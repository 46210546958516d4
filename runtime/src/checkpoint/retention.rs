//! Retention and garbage collection of checkpoint storage, as mark-and-sweep: a state file is
//! deleted only when no retained manifest references it; files of checkpoints newer than the
//! latest completed one are never touched (they may be in flight). Each sweep also removes the
//! remains of writes a killed process left unfinished — temp files of a local store, multipart
//! uploads on S3 — by a rule that never touches a write in flight in this process (see
//! [`ObjectStore::remove_abandoned_writes`] and the stores' docs).

use std::collections::HashSet;

use sluice_crds::contract::manifest::Manifest;

use crate::fault::Faults;
use crate::storage::layout::{self, manifest_key};
use crate::storage::manifests::list_ids;
use crate::storage::{self, ObjectStore};

/// Unfinished writes outside the job's storage layout are removed only when older than this (no
/// upload runs this long); inside it, the stores tell their own writes in flight apart.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a sweep did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    /// Manifests deleted by retention.
    pub manifests_deleted: usize,
    /// State files deleted.
    pub files_deleted: usize,
    /// Bytes of the deleted files.
    pub bytes_deleted: u64,
    /// Bytes referenced by the retained checkpoints.
    pub live_bytes: u64,
    /// Of those, bytes referenced by more than one retained checkpoint (incremental sharing).
    pub shared_bytes: u64,
    /// Bytes of deleted files that no manifest ever referenced (leftovers of failed checkpoints).
    pub orphan_bytes: u64,
    /// Unfinished writes of dead processes removed (temp files, multipart uploads).
    pub abandoned_writes: usize,
}

/// Keeps the newest `retained` checkpoints, deletes older manifests, then deletes every state
/// file under `state/` that no retained manifest references and that belongs to a checkpoint
/// not newer than the latest completed one (this also removes orphans of failed checkpoints).
pub async fn sweep(store: &dyn ObjectStore, retained: usize, faults: &Faults) -> Result<SweepReport, storage::Error> {
    // Unfinished writes of dead processes go first: this needs no manifest.
    let abandoned_writes = store.remove_abandoned_writes(ABANDONED_AFTER).await?;
    if abandoned_writes > 0 {
        tracing::info!(abandoned_writes, "removed unfinished writes of interrupted attempts");
    }
    let mut report = SweepReport { abandoned_writes, ..SweepReport::default() };
    let ids = list_ids(store).await?;
    let Some(&latest) = ids.last() else { return Ok(report) };
    let keep_from = ids.len().saturating_sub(retained.max(1));
    let (old, kept) = ids.split_at(keep_from);
    let mut referenced = HashSet::new();
    let mut shared = HashSet::new();
    for id in kept {
        match store.get(&manifest_key(*id)).await.map(|b| Manifest::decode(&b)) {
            Ok(Ok(m)) => {
                for f in m.referenced_files() {
                    if referenced.insert(f.path.clone()) {
                        report.live_bytes += f.size_bytes;
                    } else if shared.insert(f.path.clone()) {
                        report.shared_bytes += f.size_bytes;
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
    // Files the old manifests referenced (the rest of what is deleted are orphans).
    let mut once_referenced = HashSet::new();
    for id in old {
        if let Ok(Ok(m)) = store.get(&manifest_key(*id)).await.map(|b| Manifest::decode(&b)) {
            once_referenced.extend(m.referenced_files().map(|f| f.path.clone()));
        }
    }
    let old_keys: Vec<String> = old.iter().map(|id| manifest_key(*id)).collect();
    store.delete(&old_keys).await?;
    report.manifests_deleted = old_keys.len();
    faults.hit("retention.mid_sweep");
    let mut doomed = Vec::new();
    for obj in store.list(layout::STATE_PREFIX).await? {
        let Some(chk) = layout::parse_state_key(&obj.key) else { continue };
        if chk <= latest && !referenced.contains(&obj.key) {
            report.bytes_deleted += obj.size;
            if !once_referenced.contains(&obj.key) {
                report.orphan_bytes += obj.size;
            }
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
    use sluice_crds::CheckpointId;
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
            run_id: None,
            records: None,
        }
    }

    /// Property: over random sequences of checkpoint / complete / fail / savepoint / restore / GC, the sweep
    /// never deletes a file that a retained checkpoint, an in-flight checkpoint or a savepoint
    /// references, and it leaves no orphan of a failed checkpoint older than the latest one.
    #[tokio::test]
    async fn gc_never_deletes_a_referenced_file() {
        use rand::{Rng, SeedableRng};
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let store = MemoryStore::new();
            let retained = rng.random_range(1..4usize);
            let mut next = 1u64;
            let mut chain: Vec<String> = Vec::new(); // files of the latest completed checkpoint
            let mut in_flight: Option<(u64, Vec<String>)> = None;
            let mut completed: Vec<(u64, Vec<String>)> = Vec::new();
            let mut savepoint_files: Vec<String> = Vec::new();
            for _ in 0..60 {
                match rng.random_range(0..7) {
                    0 | 1 if in_flight.is_none() => {
                        // Snapshot: a new base, or a delta on the completed chain.
                        let id = next;
                        next += 1;
                        let own = format!("state/chk-{id}/n-0-r.state");
                        store.put(&own, Bytes::from_static(b"x")).await.expect("put");
                        let files = if chain.is_empty() || chain.len() > 4 || rng.random_bool(0.3) {
                            vec![own]
                        } else {
                            chain.iter().cloned().chain([own]).collect()
                        };
                        in_flight = Some((id, files));
                    }
                    2 if in_flight.is_some() => {
                        let Some((id, files)) = in_flight.take() else { continue };
                        store
                            .put(
                                &manifest_key(CheckpointId(id)),
                                Bytes::from(
                                    manifest(id, &files.iter().map(String::as_str).collect::<Vec<_>>()).encode(),
                                ),
                            )
                            .await
                            .expect("publish");
                        chain = files.clone();
                        completed.push((id, files));
                    }
                    3 => {
                        in_flight = None; // failed: its own file is an orphan now
                    }
                    6 => {
                        // Crash and restore from a retained checkpoint: the in-flight one is
                        // lost, and the new run starts its chain with a full base.
                        in_flight = None;
                        chain.clear();
                    }
                    4 => {
                        let key = format!("savepoints/sp-{}/state/x.state", next);
                        store.put(&key, Bytes::from_static(b"x")).await.expect("put");
                        savepoint_files.push(key);
                    }
                    _ => {
                        sweep(&store, retained, &Faults::none()).await.expect("sweep");
                        let present: std::collections::HashSet<String> =
                            store.list("").await.expect("list").into_iter().map(|o| o.key).collect();
                        let kept: Vec<&(u64, Vec<String>)> = completed.iter().rev().take(retained).collect();
                        for (id, files) in &kept {
                            assert!(
                                present.contains(&manifest_key(CheckpointId(*id))),
                                "seed {seed}: manifest {id} deleted"
                            );
                            for f in files {
                                assert!(present.contains(f), "seed {seed}: {f} of retained checkpoint {id} deleted");
                            }
                        }
                        if let Some((_, files)) = &in_flight {
                            for f in files {
                                assert!(present.contains(f), "seed {seed}: {f} of the in-flight checkpoint deleted");
                            }
                        }
                        for f in &savepoint_files {
                            assert!(present.contains(f), "seed {seed}: savepoint file {f} deleted");
                        }
                        let live: std::collections::HashSet<&String> = kept.iter().flat_map(|(_, f)| f).collect();
                        let latest = completed.last().map_or(0, |c| c.0);
                        for key in present.iter().filter(|k| k.starts_with("state/")) {
                            let chk = layout::parse_state_key(key).map_or(0, |c| c.0);
                            assert!(live.contains(key) || chk > latest, "seed {seed}: orphan {key} survived the sweep");
                        }
                    }
                }
            }
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
        let report = sweep(&store, 2, &Faults::none()).await.expect("sweep");
        assert_eq!(report.manifests_deleted, 2);
        assert_eq!((report.live_bytes, report.orphan_bytes, report.bytes_deleted), (2, 1, 3));
        assert_eq!(list_ids(&store).await.expect("list"), vec![CheckpointId(3), CheckpointId(4)]);
        let left: Vec<String> = store.list("state/").await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(left, vec!["state/chk-3/n-0-r.state", "state/chk-4/n-0-r.state", "state/chk-9/in-flight.state"]);
    }
}
