//! When restore may not quietly use older state.
//!
//! **Falling back past a checkpoint.** When the newest completed checkpoint fails verification,
//! restoring an older one replays the records between the two. That is harmless unless the
//! skipped checkpoint's sinks may already have committed output for those records: then the
//! replay commits it a second time. A skipped checkpoint *may have committed* when its manifest
//! cannot be decoded (nothing is known about it), or when it lists a committable (a
//! pre-committed sink transaction, committed once the checkpoint completed) that the fallback
//! checkpoint does not list too — a committable both list is committed again, idempotently, by
//! sink recovery. Falling back past checkpoints that may have committed is refused unless the
//! run allows it ([`Fallback::Allow`], `--allow-fallback`), which is then logged as a decision.
//!
//! **A location with state but no manifest.** Every attempt that checkpoints publishes a
//! manifest (its start-up claim) before it writes anything else, so state files (`state/`) or
//! sink notes (`sinks/`) without any manifest mean the manifests were lost or removed; so does
//! committed output of the job's sinks. Starting fresh there would duplicate that output, so it
//! is refused unless the run says `--no-restore`. Savepoints alone (`savepoints/`) do not block
//! a fresh start: they are user-owned snapshots a run only uses when named with `--restore`;
//! the run logs that they exist.

use std::collections::{BTreeSet, HashMap, HashSet};

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::Manifest;

use crate::storage::layout::{self, manifest_key};
use crate::storage::{self, ObjectStore};

/// Whether a run may restore a checkpoint older than one whose sinks may have committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Refuse (the default): the operator surfaces a data-loss risk and a human decides.
    #[default]
    Refuse,
    /// Fall back anyway, logging which output may be duplicated.
    Allow,
}

/// A newer checkpoint that failed verification and was skipped.
#[derive(Clone, Debug)]
pub struct Skipped {
    /// Its id.
    pub id: CheckpointId,
    /// Why it failed.
    pub reason: String,
}

/// What a skipped checkpoint's sinks may have committed beyond the fallback checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Nothing: every committable it lists, the fallback lists too.
    None,
    /// These sink nodes list committables the fallback does not.
    Sinks(BTreeSet<String>),
    /// Its manifest cannot be read: any sink may have committed.
    Unknown(String),
}

/// Committables per sink node, as compared between manifests.
fn committables(m: &Manifest) -> HashMap<&str, HashSet<String>> {
    let mut out: HashMap<&str, HashSet<String>> = HashMap::new();
    for t in &m.tasks {
        for c in &t.committables {
            out.entry(t.node.as_str()).or_default().insert(c.to_string());
        }
    }
    out
}

/// What checkpoint `skipped` may have committed that `fallback` does not cover.
pub async fn exposure(
    store: &dyn ObjectStore,
    skipped: CheckpointId,
    fallback: &Manifest,
) -> Result<Exposure, storage::Error> {
    let bytes = match store.get(&manifest_key(skipped)).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(Exposure::Unknown("its manifest is gone".into())),
        Err(e) => return Err(e),
    };
    let manifest = match Manifest::decode(&bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Exposure::Unknown(e.to_string())),
    };
    let covered = committables(fallback);
    let sinks: BTreeSet<String> = committables(&manifest)
        .into_iter()
        .filter(|(node, listed)| covered.get(node).is_none_or(|c| !listed.is_subset(c)))
        .map(|(node, _)| node.to_string())
        .collect();
    Ok(if sinks.is_empty() { Exposure::None } else { Exposure::Sinks(sinks) })
}

/// A refusal to fall back: the skipped checkpoints whose sinks may have committed, and which.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The newest of them.
    pub newest: CheckpointId,
    /// Every skipped checkpoint that may have committed, newest first, with why it was skipped.
    pub skipped: Vec<Skipped>,
    /// The sinks involved, for people ("win-out, pass", or a note when a manifest is unreadable).
    pub sinks: String,
}

/// Decides whether restoring `fallback` past the `skipped` checkpoints (newest first) is safe,
/// logging the decision; returns the refusal when it is not and `policy` refuses.
pub async fn decide(
    store: &dyn ObjectStore,
    skipped: &[Skipped],
    fallback: &Manifest,
    policy: Fallback,
) -> Result<Option<Refusal>, storage::Error> {
    let to = fallback.checkpoint_id;
    let mut exposed = Vec::new();
    let mut sinks = BTreeSet::new();
    let mut unknown = Vec::new();
    for s in skipped {
        match exposure(store, s.id, fallback).await? {
            Exposure::None => tracing::warn!(
                skipped = %s.id, fallback = %to, reason = %s.reason,
                "checkpoint failed verification; its sinks committed nothing the older checkpoint does not cover, so falling back is safe"
            ),
            Exposure::Sinks(names) => {
                sinks.extend(names);
                exposed.push(s.clone());
            }
            Exposure::Unknown(why) => {
                unknown.push(format!("checkpoint {}: {why}", s.id));
                exposed.push(s.clone());
            }
        }
    }
    let Some(newest) = exposed.first().map(|s| s.id) else { return Ok(None) };
    let mut names: Vec<String> = sinks.into_iter().collect();
    if !unknown.is_empty() {
        names.push(format!("any sink: manifest unreadable ({})", unknown.join("; ")));
    }
    let refusal = Refusal { newest, skipped: exposed, sinks: names.join(", ") };
    match policy {
        Fallback::Refuse => Ok(Some(refusal)),
        Fallback::Allow => {
            let ids: Vec<String> = refusal.skipped.iter().map(|s| s.id.to_string()).collect();
            tracing::warn!(
                skipped = %ids.join(","), fallback = %to, sinks = %refusal.sinks,
                "falling back past checkpoints whose sinks may have committed, as --allow-fallback permits: output they committed may be written again"
            );
            Ok(None)
        }
    }
}

/// Committed output the job's sinks already hold outside the checkpoint store (see
/// [`crate::connectors::two_phase::SinkRecovery::committed_output`]), for people.
pub fn sink_output(job: &sluice_crds::JobConfig) -> Vec<String> {
    job.pipeline
        .nodes
        .iter()
        .filter_map(|n| crate::nodes::sink_recovery(n, job)?.committed_output().map(|o| format!("{}: {o}", n.id)))
        .collect()
}

/// What a location with no manifest holds that a fresh start would ignore (empty when nothing):
/// state files and sink notes; savepoints are only logged.
pub async fn orphaned_state(store: &dyn ObjectStore) -> Result<Vec<String>, storage::Error> {
    let mut evidence = Vec::new();
    for (prefix, what) in [(layout::STATE_PREFIX, "state files"), (layout::SINKS_PREFIX, "sink notes")] {
        let objects = store.list(prefix).await?;
        if let Some(first) = objects.first() {
            evidence.push(format!("{} {what} (e.g. {})", objects.len(), first.key));
        }
    }
    let savepoints: Vec<String> = store
        .list(layout::SAVEPOINTS_PREFIX)
        .await?
        .into_iter()
        .filter(|o| layout::is_savepoint_manifest(&o.key))
        .map(|o| o.key)
        .collect();
    if evidence.is_empty() && !savepoints.is_empty() {
        tracing::warn!(
            store = %store.describe(), savepoints = %savepoints.join(", "),
            "no checkpoint to restore: starting fresh although savepoints exist (restore one with --restore <uri>)"
        );
    }
    Ok(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use bytes::Bytes;
    use sluice_crds::contract::manifest::{MANIFEST_VERSION, SnapshotKind, TaskState};

    fn manifest(id: u64, committables: &[(&str, serde_json::Value)]) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            job: "j".into(),
            checkpoint_id: CheckpointId(id),
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: 0,
            completed_at_ms: 0,
            max_parallelism: 8,
            tasks: committables
                .iter()
                .map(|(node, c)| TaskState {
                    node: node.to_string(),
                    subtask: 0,
                    parallelism: 1,
                    files: vec![],
                    operator_state: vec![],
                    committables: vec![c.clone()],
                })
                .collect(),
            run_id: None,
            records: None,
        }
    }

    async fn publish(store: &MemoryStore, m: &Manifest) {
        store.put(&manifest_key(m.checkpoint_id), Bytes::from(m.encode())).await.expect("put");
    }

    #[tokio::test]
    async fn exposure_is_what_the_fallback_does_not_cover() {
        let store = MemoryStore::new();
        let t = |n: u64| serde_json::json!({"checkpoint": n, "txn": n});
        let fallback = manifest(4, &[("out", t(4))]);
        publish(&store, &manifest(5, &[])).await;
        publish(&store, &manifest(6, &[("out", t(4))])).await; // a claim: same committables
        publish(&store, &manifest(7, &[("out", t(4)), ("out", t(7)), ("log", t(7))])).await;
        store.put(&manifest_key(CheckpointId(8)), Bytes::from_static(b"{torn")).await.expect("put");
        assert_eq!(exposure(&store, CheckpointId(5), &fallback).await.expect("5"), Exposure::None);
        assert_eq!(exposure(&store, CheckpointId(6), &fallback).await.expect("6"), Exposure::None);
        assert_eq!(
            exposure(&store, CheckpointId(7), &fallback).await.expect("7"),
            Exposure::Sinks(["log".to_string(), "out".to_string()].into())
        );
        assert!(matches!(exposure(&store, CheckpointId(8), &fallback).await.expect("8"), Exposure::Unknown(_)));
        assert!(matches!(exposure(&store, CheckpointId(9), &fallback).await.expect("9"), Exposure::Unknown(_)));

        let skipped = |ids: &[u64]| -> Vec<Skipped> {
            ids.iter().map(|&i| Skipped { id: CheckpointId(i), reason: "bad".into() }).collect()
        };
        let safe = decide(&store, &skipped(&[6, 5]), &fallback, Fallback::Refuse).await.expect("decide");
        assert!(safe.is_none(), "nothing committed beyond the fallback");
        let refused = decide(&store, &skipped(&[8, 7, 5]), &fallback, Fallback::Refuse).await.expect("decide");
        let refused = refused.expect("refused");
        assert_eq!(refused.newest, CheckpointId(8));
        assert_eq!(refused.skipped.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![8, 7]);
        assert!(refused.sinks.starts_with("log, out, any sink: manifest unreadable"), "{}", refused.sinks);
        let allowed = decide(&store, &skipped(&[8, 7]), &fallback, Fallback::Allow).await.expect("decide");
        assert!(allowed.is_none());
    }

    #[tokio::test]
    async fn state_or_sink_notes_without_a_manifest_are_evidence_savepoints_are_not() {
        let store = MemoryStore::new();
        assert!(orphaned_state(&store).await.expect("empty").is_empty(), "a fresh location");
        store.put("savepoints/sp-1/_manifest.json", Bytes::from_static(b"m")).await.expect("put");
        store.put("savepoints/sp-1/state/a.state", Bytes::from_static(b"s")).await.expect("put");
        assert!(orphaned_state(&store).await.expect("savepoints").is_empty(), "savepoints alone");
        store.put("sinks/out/transactional-ids.json", Bytes::from_static(b"{}")).await.expect("put");
        assert_eq!(orphaned_state(&store).await.expect("sinks").len(), 1);
        store.put("state/chk-3/sum-0-r.state", Bytes::from_static(b"s")).await.expect("put");
        let evidence = orphaned_state(&store).await.expect("state");
        assert_eq!(evidence.len(), 2);
        assert!(evidence[0].contains("state/chk-3/sum-0-r.state"), "{evidence:?}");
    }
}
