//! The exactly-once kill test on local checkpoint storage: ≥ 2M sequence-numbered records,
//! ≥ 1000 keys, windowed counts and a pass-through branch; ≥ 20 random SIGKILLs plus a crash at
//! every protocol fault point, restarting at parallelism 1, 2 and 3.

mod common;

use common::{FAULT_RUNS, KillJob};

#[test]
fn killed_and_restarted_job_commits_every_record_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = KillJob {
        count: 2_000_000,
        keys: 1000,
        window_ms: 100_000,
        rate: 50_000,
        storage_yaml: format!("    uri: file://{}/checkpoints", dir.path().display()),
        dir: dir.path().to_path_buf(),
        custom_yaml: None,
    };
    let crashed = job.run_with_kills(20, FAULT_RUNS);
    assert!(crashed >= 20, "only {crashed} runs crashed: the kills did not land mid-job");
    job.verify();
}
