//! The start-up claim that fences an older attempt still running.
//!
//! An attempt relaunched after a failure may overlap with the attempt it replaces (a pod on a
//! partitioned node, a process the operator believes dead). Sink recovery aborts every
//! transaction the restored checkpoint does not list — including those the old attempt has
//! pre-committed for its next checkpoint. If the old attempt then published that checkpoint,
//! its manifest would list aborted transactions: lost records (found by the protocol model,
//! `runtime/tests/protocol_model.rs`). So before recovering sinks, a new attempt publishes its
//! restore point again under the next checkpoint id, create-if-absent. The old attempt's
//! publish of that id then fails and it stops; if the old attempt got there first, this attempt
//! stops instead and its relaunch restores the newer checkpoint.

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{Manifest, SnapshotKind};

use super::publish::{PublishError, build_manifest, now_ms, publish};
use crate::storage::ObjectStore;

/// Publishes `restored` (or, for a fresh start, an empty checkpoint) as checkpoint `id`.
pub async fn claim(
    store: &dyn ObjectStore,
    job: &str,
    run_id: &str,
    max_parallelism: u32,
    restored: Option<&Manifest>,
    id: CheckpointId,
) -> Result<(), PublishError> {
    let now = now_ms();
    let mut manifest = match restored {
        Some(m) => Manifest {
            checkpoint_id: id,
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: now,
            completed_at_ms: now,
            ..m.clone()
        },
        None => {
            let mut fresh = build_manifest(job, id, SnapshotKind::Checkpoint, now, max_parallelism, Vec::new());
            // Nothing read yet: the count since the job started begins here.
            fresh.records = Some(0);
            fresh
        }
    };
    manifest.run_id = Some(run_id.to_string());
    publish(store, &manifest).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;

    #[test]
    fn a_claimed_id_cannot_be_published_by_an_older_attempt() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let store = MemoryStore::new();
            claim(&store, "j", "r", 8, None, CheckpointId(4)).await.expect("claim");
            let late = build_manifest("j", CheckpointId(4), SnapshotKind::Checkpoint, 1, 8, Vec::new());
            assert!(matches!(publish(&store, &late).await, Err(PublishError::AlreadyPublished(CheckpointId(4)))));
            assert!(matches!(
                claim(&store, "j", "r", 8, None, CheckpointId(4)).await,
                Err(PublishError::AlreadyPublished(_))
            ));
        });
    }
}
