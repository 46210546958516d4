//! Restore: find the newest checkpoint whose manifest and state files all verify (falling back
//! to an older retained one only where that cannot duplicate committed output, or where the run
//! allows it: see [`super::fallback`]), then deal its state out to the new plan's subtasks —
//! keyed state by key group, list state round-robin — which is what makes rescaling work.

use std::collections::HashMap;

use bytes::Bytes;
use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::Manifest;
use sluice_crds::contract::pipeline::Pipeline;

use super::completed;
use super::fallback::{self, Fallback, Skipped};
use crate::error::{ErrorKind, storage_kind};
use crate::graph::KeyGroupRange;
use crate::ops::Restored;
use crate::ops::window::WATERMARK_STATE_FIELD;
use crate::state::{ChainFold, decode_state_file};
use crate::storage::manifests::{self, Candidates, ReadError};
use crate::storage::{self, ObjectStore, layout};

/// Why restoring failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Storage failed while reading.
    #[error("reading checkpoint storage: {0}")]
    Storage(#[from] storage::Error),
    /// A manifest or state file failed verification.
    #[error("checkpoint at {key} is unusable: {reason}")]
    Corrupt {
        /// The manifest key.
        key: String,
        /// What failed.
        reason: String,
    },
    /// Checkpoints exist but none verifies: refuse to start fresh silently (that could
    /// duplicate output). The operator surfaces this; a user may choose `--no-restore`.
    #[error(
        "none of the {count} completed checkpoints in {store} verifies (newest problem: {last}); refusing to start fresh — use --no-restore to discard state"
    )]
    NothingRestorable {
        /// The store.
        store: String,
        /// How many were tried.
        count: usize,
        /// The last error.
        last: String,
    },
    /// The newest checkpoint failed verification and its sinks may have committed output that
    /// restoring the older one would write again (see [`super::fallback`]).
    #[error(
        "checkpoint {newest} failed verification ({reason}) and sinks may have committed its output: {sinks}; restoring the older checkpoint {fallback} would commit that output again, so restore is refused — restart with --allow-fallback to accept duplicates, or with --restore <uri> to choose a checkpoint or savepoint"
    )]
    FallbackRefused {
        /// The newest skipped checkpoint whose sinks may have committed.
        newest: CheckpointId,
        /// The older checkpoint that verifies.
        fallback: CheckpointId,
        /// The sinks involved.
        sinks: String,
        /// Why the newest one failed verification (and which others were skipped).
        reason: String,
    },
    /// No manifest is readable, yet the location holds state or committed output of an
    /// earlier attempt: a fresh start would ignore it (see [`super::fallback`]).
    #[error(
        "no checkpoint manifest in {store}, but it holds {evidence}: the manifests were lost or removed, and starting fresh would duplicate committed output — restore one with --restore <uri>, or start over on purpose with --no-restore"
    )]
    ManifestsMissing {
        /// The store.
        store: String,
        /// What was found, for people.
        evidence: String,
    },
    /// The checkpoint does not fit this job.
    #[error("checkpoint {id} does not fit this job: {reason}")]
    Incompatible {
        /// The checkpoint.
        id: CheckpointId,
        /// Why.
        reason: String,
    },
}

impl RestoreError {
    /// True when restore refused because going on could duplicate or lose committed output:
    /// the runtime exits with the data-loss-risk status, and the operator waits for a human.
    pub fn is_data_loss_risk(&self) -> bool {
        self.kind() == ErrorKind::DataLossRisk
    }

    /// What the failure means for the run: a refusal to go on past committed output is a
    /// data-loss risk; a checkpoint that is corrupt or does not fit is bad input (choose
    /// another); storage failures are as their kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RestoreError::FallbackRefused { .. }
            | RestoreError::ManifestsMissing { .. }
            | RestoreError::NothingRestorable { .. } => ErrorKind::DataLossRisk,
            RestoreError::Corrupt { .. } | RestoreError::Incompatible { .. } => ErrorKind::BadInput,
            RestoreError::Storage(e) => storage_kind(e),
        }
    }
}

/// A verified checkpoint with its state files in memory.
#[derive(Debug)]
pub struct LoadedCheckpoint {
    /// The manifest.
    pub manifest: Manifest,
    /// State file bytes by path, each already checked against the manifest's size and CRC.
    pub files: HashMap<String, Bytes>,
    /// Where it came from, for logs and status.
    pub location: String,
}

/// Reads and verifies the manifest at `key` and every file it references.
pub async fn load(store: &dyn ObjectStore, key: &str) -> Result<LoadedCheckpoint, RestoreError> {
    let manifest = match manifests::read(store, key).await {
        Ok(m) => m,
        Err(ReadError::Storage(e)) => return Err(e.into()),
        Err(ReadError::Corrupt(e)) => {
            return Err(RestoreError::Corrupt { key: key.to_string(), reason: e.to_string() });
        }
    };
    load_files(store, key, manifest).await
}

/// Reads every file the manifest at `key` references, verifying each against its size and CRC.
async fn load_files(store: &dyn ObjectStore, key: &str, manifest: Manifest) -> Result<LoadedCheckpoint, RestoreError> {
    let corrupt = |reason: String| RestoreError::Corrupt { key: key.to_string(), reason };
    let mut files = HashMap::new();
    for f in manifest.referenced_files() {
        if files.contains_key(&f.path) {
            continue;
        }
        let data = match store.get(&f.path).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Err(corrupt(format!("state file {} is missing", f.path))),
            Err(e) => return Err(e.into()),
        };
        if data.len() as u64 != f.size_bytes {
            return Err(corrupt(format!("state file {} is {} bytes, expected {}", f.path, data.len(), f.size_bytes)));
        }
        let crc = crc32c::crc32c(&data);
        if crc != f.crc32c {
            return Err(corrupt(format!("state file {} fails its checksum ({crc:08x} ≠ {:08x})", f.path, f.crc32c)));
        }
        files.insert(f.path.clone(), data);
    }
    Ok(LoadedCheckpoint { manifest, files, location: layout::uri(&store.describe(), key) })
}

/// The newest completed checkpoint that verifies, refusing to fall back past one whose sinks
/// may have committed; `None` for a fresh location. See [`load_latest_with`].
pub async fn load_latest(store: &dyn ObjectStore) -> Result<Option<LoadedCheckpoint>, RestoreError> {
    load_latest_with(store, Fallback::Refuse).await
}

/// The newest completed checkpoint that verifies. Falling back past newer ones that fail
/// verification follows `policy` where their sinks may have committed ([`super::fallback`]).
/// `None` only for a location without manifests that holds no state files or sink notes
/// either; with them it is [`RestoreError::ManifestsMissing`].
pub async fn load_latest_with(
    store: &dyn ObjectStore,
    policy: Fallback,
) -> Result<Option<LoadedCheckpoint>, RestoreError> {
    // The listing and reading the operator shares (`manifests`); verifying state files and the
    // fallback rule are the runtime's own.
    let mut candidates = Candidates::list(store).await?;
    let count = candidates.count();
    let mut skipped: Vec<Skipped> = Vec::new();
    // A completion newer than every manifest: that manifest was removed after its sinks may
    // have committed (see `super::completed`).
    match completed::read(store).await {
        Ok(Some(done)) if candidates.newest().is_some_and(|newest| done > newest) => {
            let reason = format!("its manifest is gone, yet {} records that it completed", completed::NOTE_KEY);
            tracing::warn!(checkpoint = %done, %reason, "newest completed checkpoint is missing");
            skipped.push(Skipped { id: done, reason });
        }
        Ok(_) => {}
        Err(completed::NoteError::Storage(e)) => return Err(e.into()),
        Err(e) => tracing::warn!(error = %e, "ignoring the completion note"),
    }
    while let Some(candidate) = candidates.next(store).await? {
        let id = candidate.id;
        let loaded = match candidate.manifest {
            Ok(m) => load_files(store, &candidate.key, m).await,
            Err(e) => Err(RestoreError::Corrupt { key: candidate.key, reason: e.to_string() }),
        };
        match loaded {
            Ok(c) => {
                if let Some(r) = fallback::decide(store, &skipped, &c.manifest, policy).await? {
                    let reasons: Vec<String> = r.skipped.iter().map(|s| format!("{}: {}", s.id, s.reason)).collect();
                    return Err(RestoreError::FallbackRefused {
                        newest: r.newest,
                        fallback: id,
                        sinks: r.sinks,
                        reason: reasons.join("; "),
                    });
                }
                return Ok(Some(c));
            }
            Err(RestoreError::Corrupt { key, reason }) => {
                tracing::warn!(checkpoint = %id, %key, %reason, "checkpoint failed verification");
                skipped.push(Skipped { id, reason });
            }
            Err(e) => return Err(e),
        }
    }
    if count > 0 {
        let last = skipped.first().map(|s| s.reason.clone()).unwrap_or_default();
        return Err(RestoreError::NothingRestorable { store: store.describe(), count, last });
    }
    let evidence = fallback::orphaned_state(store).await?;
    if evidence.is_empty() {
        Ok(None)
    } else {
        Err(RestoreError::ManifestsMissing { store: store.describe(), evidence: evidence.join(" and ") })
    }
}

/// The id of a new attempt's first checkpoint: after every id ever published (a newer one may
/// exist than the one restored, e.g. when it failed verification) and after the restored one.
pub fn first_checkpoint_id(newest_published: Option<CheckpointId>, restored: Option<CheckpointId>) -> CheckpointId {
    newest_published.max(restored).map_or(CheckpointId(1), CheckpointId::next)
}

/// State dealt out to the subtasks of a plan.
#[derive(Debug, Default)]
pub struct RestorePlan {
    /// The restored checkpoint.
    pub checkpoint: Option<CheckpointId>,
    /// Operator state per (node index, subtask).
    pub operators: HashMap<(usize, u32), Restored>,
    /// Committables per sink node index, to recover before start.
    pub committables: HashMap<usize, Vec<serde_json::Value>>,
}

impl RestorePlan {
    /// Takes the restored state of one subtask (empty if none).
    pub fn take(&mut self, node: usize, subtask: u32) -> Restored {
        self.operators.remove(&(node, subtask)).unwrap_or_default()
    }
}

/// Refuses a checkpoint or savepoint that is not this job's as it stands: one written by a job
/// of another name (two jobs sharing a storage URI, or a savepoint of another job), or one with
/// state for nodes `pipeline` no longer has (that state would be dropped). `allow`
/// (`--allow-non-restored-state`, Flink's flag of that name) restores it anyway, dropping
/// such state, and logs the decision.
pub fn check_fit(loaded: &LoadedCheckpoint, job: &str, pipeline: &Pipeline, allow: bool) -> Result<(), RestoreError> {
    let m = &loaded.manifest;
    let mut misfits = Vec::new();
    if m.job != job {
        misfits.push(format!("it was written by job {:?}, not {job:?}", m.job));
    }
    let mut gone: Vec<&str> = m
        .tasks
        .iter()
        .filter(|t| !(t.files.is_empty() && t.operator_state.is_empty() && t.committables.is_empty()))
        .map(|t| t.node.as_str())
        .filter(|n| !pipeline.nodes.iter().any(|x| x.id == *n))
        .collect();
    gone.sort_unstable();
    gone.dedup();
    if !gone.is_empty() {
        misfits.push(format!("it holds state for nodes this job no longer has ({})", gone.join(", ")));
    }
    if misfits.is_empty() {
        return Ok(());
    }
    let reason = misfits.join("; ");
    if allow {
        tracing::warn!(checkpoint = %m.checkpoint_id, location = %loaded.location, %reason, "restoring anyway (--allow-non-restored-state): state without a node is dropped");
        return Ok(());
    }
    Err(RestoreError::Incompatible {
        id: m.checkpoint_id,
        reason: format!(
            "{reason} (in {}); pass --allow-non-restored-state (spec.allowNonRestoredState) to restore it anyway, dropping that state",
            loaded.location
        ),
    })
}

/// Deals a checkpoint's state out to `pipeline`'s subtasks.
pub fn assign(loaded: &LoadedCheckpoint, pipeline: &Pipeline) -> Result<RestorePlan, RestoreError> {
    let m = &loaded.manifest;
    let id = m.checkpoint_id;
    if m.max_parallelism != pipeline.max_parallelism {
        return Err(RestoreError::Incompatible {
            id,
            reason: format!(
                "maxParallelism was {} and is now {}; key groups cannot change",
                m.max_parallelism, pipeline.max_parallelism
            ),
        });
    }
    let mut plan = RestorePlan { checkpoint: Some(id), ..RestorePlan::default() };
    for (idx, node) in pipeline.nodes.iter().enumerate() {
        let mut old: Vec<_> = m.tasks.iter().filter(|t| t.node == node.id).collect();
        old.sort_by_key(|t| t.subtask);
        let p = pipeline.parallelism_of(node);
        let list: Vec<&serde_json::Value> = old.iter().flat_map(|t| &t.operator_state).collect();
        let committables: Vec<serde_json::Value> = old.iter().flat_map(|t| t.committables.iter().cloned()).collect();
        if !committables.is_empty() {
            plan.committables.insert(idx, committables);
        }
        if old.is_empty() {
            continue;
        }
        for subtask in 0..p {
            let range = KeyGroupRange::for_subtask(subtask, p, m.max_parallelism);
            let mut keyed = Vec::new();
            // Each old subtask's files are a base followed by deltas, in order; old subtasks own
            // disjoint key groups, so their chains fold independently.
            for t in &old {
                let mut folded = ChainFold::new();
                for f in &t.files {
                    let file_range = KeyGroupRange { start: f.key_group_start, end: f.key_group_end };
                    if !file_range.overlaps(&range) {
                        continue;
                    }
                    let bytes = loaded.files.get(&f.path).ok_or_else(|| RestoreError::Corrupt {
                        key: loaded.location.clone(),
                        reason: format!("state file {} was not loaded", f.path),
                    })?;
                    let entries = decode_state_file(&f.path, bytes, f.size_bytes, f.crc32c, range)
                        .map_err(|e| RestoreError::Corrupt { key: loaded.location.clone(), reason: e.to_string() })?;
                    folded.apply(entries);
                }
                keyed.extend(folded.into_entries());
            }
            let operator_state = deal_list_state(&list, subtask, p);
            plan.operators.insert((idx, subtask), Restored { keyed, operator_state });
        }
    }
    Ok(plan)
}

/// Subtask `subtask`'s share of a node's list state at parallelism `p`. Elements that carry
/// an integer `split` (generator splits, Kafka partitions) go to `split % p`, as a fresh start
/// assigns them, so a source can tell its own new splits from another subtask's restored
/// ones; a window's watermark elements are broadcast: every subtask gets the minimum over the
/// old subtasks (they are equal at an aligned barrier of all-to-all inputs; the minimum never
/// closes a window early); other elements are dealt round-robin.
fn deal_list_state(list: &[&serde_json::Value], subtask: u32, p: u32) -> Vec<serde_json::Value> {
    let watermark = |v: &serde_json::Value| v.get(WATERMARK_STATE_FIELD).and_then(serde_json::Value::as_i64);
    let (marks, list): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) =
        list.iter().copied().partition(|v| watermark(v).is_some());
    let mut share: Vec<serde_json::Value> = marks
        .iter()
        .filter_map(|v| watermark(v))
        .min()
        .map(|w| serde_json::json!({ WATERMARK_STATE_FIELD: w }))
        .into_iter()
        .collect();
    let split = |v: &serde_json::Value| v.get("split").and_then(serde_json::Value::as_u64);
    if !list.is_empty() && list.iter().all(|v| split(v).is_some()) {
        share.extend(
            list.iter()
                .filter(|v| split(v).is_some_and(|s| s % u64::from(p) == u64::from(subtask)))
                .map(|v| (*v).clone()),
        );
    } else {
        share.extend(list.iter().skip(subtask as usize).step_by(p as usize).map(|v| (*v).clone()));
    }
    share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_attempt_numbers_after_every_published_id() {
        assert_eq!(first_checkpoint_id(None, None), CheckpointId(1));
        assert_eq!(first_checkpoint_id(Some(CheckpointId(7)), Some(CheckpointId(5))), CheckpointId(8));
        assert_eq!(first_checkpoint_id(None, Some(CheckpointId(5))), CheckpointId(6), "a savepoint restore");
    }

    #[test]
    fn splits_go_where_a_fresh_start_puts_them_other_list_state_round_robin() {
        let splits: Vec<serde_json::Value> = (0..7).map(|s| serde_json::json!({"split": s, "next": 0})).collect();
        let refs: Vec<&serde_json::Value> = splits.iter().collect();
        let of = |subtask| -> Vec<u64> {
            deal_list_state(&refs, subtask, 3).iter().filter_map(|v| v["split"].as_u64()).collect()
        };
        assert_eq!((of(0), of(1), of(2)), (vec![0, 3, 6], vec![1, 4], vec![2, 5]));
        let plain = [serde_json::json!("a"), serde_json::json!("b"), serde_json::json!("c")];
        let refs: Vec<&serde_json::Value> = plain.iter().collect();
        assert_eq!(deal_list_state(&refs, 1, 2), vec![serde_json::json!("b")]);
    }

    #[test]
    fn every_subtask_gets_the_least_window_watermark() {
        let marks = [serde_json::json!({"watermark": 70}), serde_json::json!({"watermark": 50})];
        let refs: Vec<&serde_json::Value> = marks.iter().collect();
        for subtask in 0..3 {
            assert_eq!(deal_list_state(&refs, subtask, 3), vec![serde_json::json!({"watermark": 50})]);
        }
    }
}
