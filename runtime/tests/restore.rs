//! Restore: corrupted checkpoints are detected and skipped where that is safe (the job's only
//! sink commits nothing); state is dealt out correctly to another parallelism.

use std::collections::HashMap;

use sluice_crds::JobConfig;
use sluice_runtime::checkpoint::fallback::Fallback;
use sluice_runtime::checkpoint::restore::{RestoreError, assign, load_latest, load_latest_with};
use sluice_runtime::fault::Faults;
use sluice_runtime::graph::KeyGroupRange;
use sluice_runtime::job::{RestoreMode, RuntimeConfig, run};
use sluice_runtime::storage::ObjectStore;
use sluice_runtime::storage::layout::manifest_key;
use sluice_runtime::storage::local::LocalStore;
use sluice_runtime::storage::manifests::list_ids as list_checkpoints;

fn job(dir: &std::path::Path, parallelism: u32) -> JobConfig {
    JobConfig::from_yaml(&format!(
        r#"
name: restore-test
checkpointing:
  interval: 50ms
  retained: 3
  storage: {{uri: "file://{dir}/ckpt"}}
pipeline:
  maxParallelism: 32
  parallelism: {parallelism}
  nodes:
    - {{id: gen, generator: {{count: 60000, keys: 500, ratePerSecond: 100000}}}}
    - {{id: sum, aggregate: {{function: sum}}}}
    - {{id: out, discard: {{}}}}
  edges:
    - {{from: gen, to: sum, partition: hash}}
    - {{from: sum, to: out}}
"#,
        dir = dir.display()
    ))
    .expect("valid job")
}

async fn run_to_end(dir: &std::path::Path, parallelism: u32) {
    let config = RuntimeConfig {
        job: job(dir, parallelism),
        restore: RestoreMode::Latest,
        run_id: "t".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    };
    run(config).await.expect("job runs");
}

fn flip_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_checkpoint_is_detected_and_the_previous_one_is_used() {
    let dir = tempfile::tempdir().expect("tmp");
    run_to_end(dir.path(), 2).await;
    let store = LocalStore::new(dir.path().join("ckpt")).expect("store");
    let ids = list_checkpoints(&store).await.expect("list");
    assert_eq!(ids.len(), 3, "retention keeps 3: {ids:?}");
    let newest = load_latest(&store).await.expect("load").expect("some");
    assert_eq!(newest.manifest.checkpoint_id, ids[2]);

    // Corrupt a state file only the newest checkpoint references (with incremental snapshots a
    // base file may be shared by every retained checkpoint): restore must skip the newest, which
    // is safe here — its manifest lists no sink transaction (`restore_rules.rs` has the rest).
    let previous = sluice_runtime::checkpoint::restore::load(&store, &manifest_key(ids[1])).await.expect("previous");
    let shared: std::collections::HashSet<_> = previous.manifest.referenced_files().map(|f| f.path.clone()).collect();
    let file = newest
        .manifest
        .referenced_files()
        .map(|f| f.path.clone())
        .find(|p| !shared.contains(p))
        .expect("the newest checkpoint wrote a file of its own");
    flip_byte(&dir.path().join("ckpt").join(file));
    let fallback = load_latest(&store).await.expect("load").expect("some");
    assert_eq!(fallback.manifest.checkpoint_id, ids[1]);

    // Corrupt the next manifest itself: nothing is known of what its sinks committed, so
    // falling back further is refused (naming both checkpoints) unless allowed.
    flip_byte(&dir.path().join("ckpt").join(manifest_key(ids[1])));
    let err = load_latest(&store).await.expect_err("fallback past an unreadable manifest");
    assert!(
        matches!(err, RestoreError::FallbackRefused { newest, fallback, .. } if newest == ids[1] && fallback == ids[0]),
        "{err}"
    );
    let oldest = load_latest_with(&store, Fallback::Allow).await.expect("load").expect("some");
    assert_eq!(oldest.manifest.checkpoint_id, ids[0]);

    // Nothing verifies: refuse to start instead of silently starting over.
    store.delete(&[manifest_key(ids[0])]).await.expect("delete");
    let err = load_latest(&store).await.expect_err("nothing restorable");
    assert!(matches!(err, RestoreError::NothingRestorable { count: 2, .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_state_restores_into_any_parallelism_by_key_group() {
    let dir = tempfile::tempdir().expect("tmp");
    run_to_end(dir.path(), 2).await;
    let store = LocalStore::new(dir.path().join("ckpt")).expect("store");
    let loaded = load_latest(&store).await.expect("load").expect("some");
    let mut reference: Option<HashMap<String, String>> = None;
    for p in [1u32, 2, 3, 5] {
        let pipeline = job(dir.path(), p).pipeline;
        let mut plan = assign(&loaded, &pipeline).expect("assign");
        let mut all = HashMap::new();
        for subtask in 0..p {
            let range = KeyGroupRange::for_subtask(subtask, p, 32);
            for e in plan.take(1, subtask).keyed {
                assert!(range.contains(e.key_group), "entry in the wrong subtask");
                let v = e.value.expect("value");
                all.insert(e.key.to_string(), v.to_string());
            }
        }
        assert_eq!(all.len(), 500, "every key restored once at p={p}");
        // Every key's running sum must be identical whatever the parallelism.
        match &reference {
            None => reference = Some(all),
            Some(r) => assert_eq!(r, &all, "p={p} restores the same state"),
        }
    }
    // Source positions: all 16 splits are dealt out, none twice.
    let pipeline = job(dir.path(), 3).pipeline;
    let mut plan = assign(&loaded, &pipeline).expect("assign");
    let splits: usize = (0..3).map(|s| plan.take(0, s).operator_state.len()).sum();
    assert_eq!(splits, 16);
}
