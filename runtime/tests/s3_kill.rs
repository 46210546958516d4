//! The exactly-once kill test (random SIGKILLs plus a crash at every protocol fault point,
//! restarts at parallelism 1, 2 and 3) with checkpoints in S3 — the same harness as the
//! local-directory kill test, given an `s3://` storage block.
#![cfg(feature = "s3")]

mod common;
#[path = "../../storage/tests/s3_support/mod.rs"]
mod s3_support;

use common::{FAULT_RUNS, KillJob};
use s3_support::{s3_env, secret_dir, storage_yaml, unique_uri};

#[test]
fn killed_and_restarted_job_with_s3_checkpoints_commits_every_record_exactly_once() {
    let env = s3_env();
    let secret = secret_dir(&env);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = KillJob {
        count: 2_000_000,
        keys: 1000,
        window_ms: 100_000,
        rate: 50_000,
        storage_yaml: storage_yaml(&env, &unique_uri(&env, "kill"), secret.path()),
        dir: dir.path().to_path_buf(),
        custom_yaml: None,
    };
    let crashed = job.run_with_kills(20, FAULT_RUNS);
    assert!(crashed >= 20, "only {crashed} runs crashed: the kills did not land mid-job");
    job.verify();
}
