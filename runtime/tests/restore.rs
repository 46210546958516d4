//! Restore: corrupted checkpoints are detected and skipped where that is safe (the job's only
//! sink commits nothing); state is dealt out correctly to another parallelism.

mod common;

use std::collections::{HashMap, HashSet};

use sluice_crds::JobConfig;
use sluice_runtime::checkpoint::fallback::Fallback;
use sluice_runtime::checkpoint::restore::{RestoreError, assign, load_latest, load_latest_with};
use sluice_runtime::graph::KeyGroupRange;
use sluice_runtime::job::{RuntimeConfig, run};
use sluice_runtime::storage::ObjectStore;
use sluice_runtime::storage::layout::manifest_key;
use sluice_runtime::storage::local::LocalStore;
use sluice_runtime::storage::manifests::list_ids as list_checkpoints;

/// Checkpoints the job keeps: enough that several taken after its source ended still leave
/// older ones that differ.
const RETAINED: usize = 6;

fn job(dir: &std::path::Path, parallelism: u32) -> JobConfig {
    JobConfig::from_yaml(&format!(
        r#"
name: restore-test
checkpointing:
  interval: 50ms
  retained: {RETAINED}
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
        dir = dir.display(),
        RETAINED = RETAINED
    ))
    .expect("valid job")
}

async fn run_to_end(dir: &std::path::Path, parallelism: u32) {
    run(common::in_process(job(dir, parallelism))).await.expect("job runs");
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
    assert_eq!(ids.len(), RETAINED, "retention keeps {RETAINED}: {ids:?}");
    let newest = load_latest(&store).await.expect("load").expect("some");
    assert_eq!(newest.manifest.checkpoint_id, ids[RETAINED - 1]);

    // Corrupt a state file that one checkpoint wrote of its own (with incremental snapshots a
    // base file is shared by every later checkpoint). Checkpoints taken after the source ended
    // write nothing new, and a loaded machine takes several, so the test looks for the newest
    // one that did write a file: `k`. Restore must skip every checkpoint referencing the file
    // (safe here: no manifest lists a sink transaction; `restore_rules.rs` has the rest).
    let mut files = Vec::new();
    for id in &ids {
        let loaded = sluice_runtime::checkpoint::restore::load(&store, &manifest_key(*id)).await.expect("load");
        files.push(loaded.manifest.referenced_files().map(|f| f.path.clone()).collect::<HashSet<_>>());
    }
    let k = (1..ids.len())
        .rev()
        .find(|&i| !files[i].is_subset(&files[i - 1]))
        .expect("a checkpoint wrote a file of its own");
    assert!(k >= 2, "the source ended before the third of {RETAINED} retained checkpoints: {ids:?}");
    let file = files[k].difference(&files[k - 1]).next().expect("own file").clone();
    flip_byte(&dir.path().join("ckpt").join(&file));
    let expected = (0..ids.len()).rev().find(|&i| !files[i].contains(&file)).expect("an older checkpoint");
    assert_eq!(expected, k - 1, "a file is referenced from the checkpoint that wrote it on");
    let fallback = load_latest(&store).await.expect("load").expect("some");
    assert_eq!(fallback.manifest.checkpoint_id, ids[k - 1]);

    // Corrupt the next manifest itself: nothing is known of what its sinks committed, so
    // falling back further is refused (naming both checkpoints) unless allowed.
    flip_byte(&dir.path().join("ckpt").join(manifest_key(ids[k - 1])));
    let err = load_latest(&store).await.expect_err("fallback past an unreadable manifest");
    assert!(
        matches!(err, RestoreError::FallbackRefused { newest, fallback, .. } if newest == ids[k - 1] && fallback == ids[k - 2]),
        "{err}"
    );
    let older = load_latest_with(&store, Fallback::Allow).await.expect("load").expect("some");
    assert_eq!(older.manifest.checkpoint_id, ids[k - 2]);

    // Nothing verifies: refuse to start instead of silently starting over.
    let readable: Vec<_> = ids[..k - 1].iter().map(|id| manifest_key(*id)).collect();
    store.delete(&readable).await.expect("delete");
    let err = load_latest(&store).await.expect_err("nothing restorable");
    let tried = ids.len() - (k - 1);
    assert!(matches!(err, RestoreError::NothingRestorable { count, .. } if count == tried), "{err}");
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

/// The generator job of [`job`] with `count` records, keeping every checkpoint.
fn counting_job(dir: &std::path::Path, parallelism: u32, count: u64) -> JobConfig {
    let mut job = job(dir, parallelism);
    job.pipeline.nodes[0] = serde_yaml::from_str(&format!(
        "{{id: gen, generator: {{count: {count}, keys: 500, ratePerSecond: 100000, splits: 7}}}}"
    ))
    .expect("node");
    if let Some(c) = job.checkpointing.as_mut() {
        c.retained = 1000;
    }
    job
}

/// Records the generator positions of `manifest` cover: split `s` of `S` emits `s, s+S, …`,
/// so a split whose next number is `n` has emitted `(n - s) / S`. Shares nothing with the
/// counters the runtime writes into `records`.
fn covered_by_positions(manifest: &sluice_crds::Manifest) -> u64 {
    let positions = manifest.tasks.iter().filter(|t| t.node == "gen").flat_map(|t| &t.operator_state);
    positions
        .map(|p| {
            let (split, next) = (p["split"].as_u64().expect("split"), p["next"].as_u64().expect("next"));
            next.saturating_sub(split) / 7
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checkpoint_counts_the_records_since_the_job_started_across_a_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = LocalStore::new(dir.path().join("ckpt")).expect("store");
    // First run: 30 000 records at p = 2; second run: restored at p = 3 and run on to 70 000.
    let mut latest_total = 0;
    for (parallelism, count) in [(2, 30_000), (3, 70_000)] {
        let config = RuntimeConfig {
            run_id: format!("p{parallelism}"),
            ..common::in_process(counting_job(dir.path(), parallelism, count))
        };
        let outcome = run(config).await.expect("job runs");
        assert_eq!(outcome.records_before, Some(latest_total), "the restored checkpoint's total");
        assert_eq!(latest_total + outcome.source_records, count, "records replayed or skipped");
        let latest = load_latest(&store).await.expect("load").expect("a checkpoint");
        latest_total = latest.manifest.records.expect("a record count");
    }
    let ids = list_checkpoints(&store).await.expect("list");
    let mut seen = Vec::new();
    for id in &ids {
        let m = sluice_runtime::checkpoint::restore::load(&store, &manifest_key(*id)).await.expect("load").manifest;
        let records = m.records.unwrap_or_else(|| panic!("checkpoint {id} has no record count"));
        assert_eq!(records, covered_by_positions(&m), "checkpoint {id} (run {:?})", m.run_id);
        seen.push(records);
    }
    // The counts never go back, and both runs' checkpoints were seen mid-stream and at the end.
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().any(|&r| r > 30_000 && r < 70_000), "no checkpoint inside the second run: {seen:?}");
    assert_eq!(seen.last(), Some(&70_000), "{seen:?}");
}
