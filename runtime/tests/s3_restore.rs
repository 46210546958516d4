//! Restore from S3 checkpoints: a corrupted state object or a truncated manifest is detected by
//! its checksum; restore falls back to the previous retained checkpoint where that cannot
//! duplicate committed output, and otherwise only when allowed.
#![cfg(feature = "s3")]

#[path = "../../storage/tests/s3_support/mod.rs"]
mod s3_support;

use std::collections::HashSet;

use bytes::Bytes;
use sluice_crds::JobConfig;
use sluice_runtime::checkpoint::restore::{RestoreError, load, load_latest};
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{JobError, JobOutcome, RestoreMode, RuntimeConfig, run};
use sluice_runtime::storage::ObjectStore;
use sluice_runtime::storage::layout::manifest_key;
use sluice_runtime::storage::manifests::list_ids as list_checkpoints;
use sluice_runtime::storage::s3::S3Store;

use s3_support::{S3Env, config, s3_env, secret_dir, storage_yaml, unique_uri};

fn job(env: &S3Env, uri: &str, secret: &std::path::Path, count: u64) -> JobConfig {
    JobConfig::from_yaml(&format!(
        r#"
name: s3-restore-test
checkpointing:
  interval: 50ms
  retained: 3
  storage:
{storage}
pipeline:
  maxParallelism: 32
  parallelism: 2
  nodes:
    - {{id: gen, generator: {{count: {count}, keys: 500, ratePerSecond: 100000}}}}
    - {{id: sum, aggregate: {{function: sum}}}}
    - {{id: out, discard: {{}}}}
  edges:
    - {{from: gen, to: sum, partition: hash}}
    - {{from: sum, to: out}}
"#,
        storage = storage_yaml(env, uri, secret),
    ))
    .expect("valid job")
}

async fn run_job(job: JobConfig) -> JobOutcome {
    run_with(job, RestoreMode::Latest).await.expect("job runs")
}

async fn run_with(job: JobConfig, restore: RestoreMode) -> Result<JobOutcome, JobError> {
    run(RuntimeConfig {
        job,
        restore,
        run_id: "t".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    })
    .await
}

/// Reads an object, lets `damage` change it, and writes it back.
async fn damage(store: &S3Store, key: &str, damage: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = store.get(key).await.expect("get").to_vec();
    damage(&mut bytes);
    store.put(key, Bytes::from(bytes)).await.expect("put damaged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_state_object_in_s3_is_detected_and_restore_falls_back() {
    let env = s3_env();
    let secret = secret_dir(&env);
    let uri = unique_uri(&env, "restore");
    run_job(job(&env, &uri, secret.path(), 60_000)).await;

    let store = S3Store::connect(config(&env, &uri)).await.expect("connect");
    let ids = list_checkpoints(&store).await.expect("list");
    assert_eq!(ids.len(), 3, "retention keeps 3: {ids:?}");
    let newest = load_latest(&store).await.expect("load").expect("some");
    assert_eq!(newest.manifest.checkpoint_id, ids[2]);

    // Flip a byte in a state object only the newest checkpoint references (with incremental
    // snapshots a base file may be shared by every retained checkpoint): restore skips the newest.
    let previous = load(&store, &manifest_key(ids[1])).await.expect("previous");
    let shared: HashSet<_> = previous.manifest.referenced_files().map(|f| f.path.clone()).collect();
    let file = newest
        .manifest
        .referenced_files()
        .map(|f| f.path.clone())
        .find(|p| !shared.contains(p))
        .expect("the newest checkpoint wrote a state object of its own");
    damage(&store, &file, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
    })
    .await;
    assert_eq!(load_latest(&store).await.expect("load").expect("some").manifest.checkpoint_id, ids[1]);

    // Truncate the next manifest: what its sinks committed is unknown, so falling back to the
    // oldest retained checkpoint is refused, naming both, as a data-loss risk.
    damage(&store, &manifest_key(ids[1]), |b| b.truncate(b.len() / 2)).await;
    let err = load_latest(&store).await.expect_err("refused");
    assert!(
        matches!(err, RestoreError::FallbackRefused { newest, fallback, .. } if newest == ids[1] && fallback == ids[0]),
        "{err}"
    );
    let refused = run_with(job(&env, &uri, secret.path(), 60_000), RestoreMode::Latest).await.expect_err("refused");
    assert!(refused.is_data_loss(), "{refused}");

    // Allowed, a job started on this storage restores from the checkpoint that verifies.
    let outcome = run_with(job(&env, &uri, secret.path(), 60_000), RestoreMode::LatestAllowingFallback).await;
    assert_eq!(outcome.expect("allowed").restored_from, Some(ids[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_restores_from_an_explicit_s3_manifest_uri() {
    let env = s3_env();
    let secret = secret_dir(&env);
    let uri = unique_uri(&env, "restore-from");
    run_job(job(&env, &uri, secret.path(), 60_000)).await;
    let store = S3Store::connect(config(&env, &uri)).await.expect("connect");
    let oldest = *list_checkpoints(&store).await.expect("list").first().expect("a checkpoint");

    let config = RuntimeConfig {
        job: job(&env, &uri, secret.path(), 60_000),
        restore: RestoreMode::From(format!("{uri}/{}", manifest_key(oldest))),
        run_id: "from".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    };
    let outcome = run(config).await.expect("job runs");
    assert_eq!(outcome.restored_from, Some(oldest));
}
