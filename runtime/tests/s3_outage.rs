//! Outages of the S3 server, made by freezing it (SIGSTOP) and resuming it (SIGCONT):
//! - the store: operations fail with a retryable error instead of hanging, and work again after;
//! - a running job: processing goes on, checkpoints fail while storage is down and resume after,
//!   the output is still exactly-once, and the orphan sweep leaves no unreferenced state behind.
//!
//! In its own test binary because it freezes the server the other S3 tests use; the tests in it
//! take turns through [`SERVER`].
#![cfg(feature = "s3")]

mod common;
#[path = "../../storage/tests/s3_support/mod.rs"]
mod s3_support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::KillJob;
use sluice_crds::JobConfig;
use sluice_crds::contract::manifest::Manifest;
use sluice_runtime::checkpoint::driver::stats;
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{JobHandles, RestoreMode, RuntimeConfig, run_observed};
use sluice_runtime::storage::ObjectStore;
use sluice_runtime::storage::layout::manifest_key;
use sluice_runtime::storage::manifests::list_ids as list_checkpoints;
use sluice_runtime::storage::s3::S3Store;

use s3_support::{Outage, config, s3_env, secret_dir, storage_yaml, unique_uri};

/// One outage at a time.
static SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Upper bound for one failing operation: far above the retry budget, only to fail instead of hang.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn frozen_server_gives_retryable_errors_and_operations_recover_when_it_resumes() {
    let _turn = SERVER.lock().await;
    let env = s3_env();
    let store = S3Store::connect(config(&env, &unique_uri(&env, "outage"))).await.expect("connect");
    store.put("state/before", Bytes::from_static(b"before")).await.expect("put before the outage");

    let outage = Outage::begin(&env);
    let put = tokio::time::timeout(HANG, store.put("state/during", Bytes::from_static(b"x"))).await;
    let err = put.expect("put must fail, not hang").expect_err("server is frozen");
    assert!(err.is_retryable(), "{err:?}");
    let get = tokio::time::timeout(HANG, store.get("state/before")).await;
    assert!(get.expect("get must fail, not hang").expect_err("server is frozen").is_retryable());
    let claim = tokio::time::timeout(HANG, store.put_if_absent("manifests/chk-1.json", Bytes::from_static(b"m"))).await;
    assert!(claim.expect("put_if_absent must fail, not hang").expect_err("server is frozen").is_retryable());
    let big = Bytes::from(vec![7u8; 9 * 1024 * 1024]);
    let multipart = tokio::time::timeout(HANG, store.put("state/big", big.clone())).await;
    assert!(multipart.expect("multipart must fail, not hang").expect_err("server is frozen").is_retryable());
    outage.end();

    store.put("state/after", Bytes::from_static(b"after")).await.expect("put after the outage");
    assert_eq!(store.get("state/before").await.expect("get"), Bytes::from_static(b"before"));
    store.put("state/big", big.clone()).await.expect("multipart after the outage");
    assert_eq!(store.get("state/big").await.expect("get big"), big);
    let keys: Vec<_> = store.list("state/").await.expect("list").into_iter().map(|o| o.key).collect();
    assert!(keys.contains(&"state/after".to_string()) && keys.contains(&"state/big".to_string()), "{keys:?}");
}

/// What a running job has done so far.
#[derive(Clone, Copy, Debug)]
struct Progress {
    records: u64,
    completed: u64,
    failed: u64,
}

fn progress(h: &JobHandles) -> Progress {
    let s = stats(&h.stats);
    Progress { records: h.metrics.source_records(&h.sources), completed: s.completed, failed: s.failed }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_keeps_processing_through_a_storage_outage_and_stays_exactly_once() {
    let _turn = SERVER.lock().await;
    let env = s3_env();
    let secret = secret_dir(&env);
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = unique_uri(&env, "job-outage");
    let job = KillJob {
        count: 400_000,
        keys: 200,
        window_ms: 20_000,
        rate: 40_000,
        storage_yaml: storage_yaml(&env, &uri, secret.path()),
        dir: dir.path().to_path_buf(),
        custom_yaml: None,
    };
    // The kill test's job, with a checkpoint timeout short enough to fail checkpoints mid-outage.
    let yaml = std::fs::read_to_string(job.write_yaml(2)).expect("read job");
    assert!(yaml.contains("timeout: 20s"), "the harness's job changed shape:\n{yaml}");
    let yaml = yaml.replace("timeout: 20s", "timeout: 1s");
    let runtime = RuntimeConfig {
        job: JobConfig::from_yaml(&yaml).expect("valid job"),
        restore: RestoreMode::Latest,
        run_id: "outage".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let running = tokio::spawn(run_observed(runtime, move |h| {
        let _ = tx.send(h);
    }));
    let handles = rx.await.expect("job started");

    let deadline = Instant::now() + Duration::from_secs(60);
    while progress(&handles).completed < 3 {
        assert!(Instant::now() < deadline, "no 3 checkpoints before the outage: {:?}", progress(&handles));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = progress(&handles);
    let outage = Outage::begin(&env);
    // 20 checkpoint intervals (200 ms) without storage.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = progress(&handles);
    outage.end();
    let outcome = running.await.expect("job task").expect("job finishes after the outage");

    assert!(during.records > before.records, "processing stopped during the outage: {before:?} → {during:?}");
    assert!(during.failed > before.failed, "no checkpoint failed while storage was down: {before:?} → {during:?}");
    assert!(
        outcome.checkpoints.completed > during.completed,
        "checkpoints did not resume: {during:?} → {} completed",
        outcome.checkpoints.completed
    );
    job.verify();

    // The orphan sweep: every state file left is referenced by a retained manifest.
    let store = S3Store::connect(config(&env, &uri)).await.expect("connect");
    let mut referenced = HashSet::new();
    for id in list_checkpoints(&store).await.expect("list checkpoints") {
        let manifest = Manifest::decode(&store.get(&manifest_key(id)).await.expect("get manifest")).expect("decode");
        referenced.extend(manifest.referenced_files().map(|f| f.path.clone()));
    }
    let orphans: Vec<String> = store
        .list("state/")
        .await
        .expect("list state")
        .into_iter()
        .map(|o| o.key)
        .filter(|k| !referenced.contains(k))
        .collect();
    assert!(orphans.is_empty(), "state files no retained checkpoint references: {orphans:?}");
}
