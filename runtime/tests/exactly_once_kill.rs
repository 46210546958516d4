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

/// Two attempts alive at once: a relaunch starts while the attempt it replaces still runs (a
/// pod the operator believes dead). The relaunch claims the next checkpoint id before touching
/// the sinks, so the old attempt's next publish fails and it stops; the output stays exact.
#[test]
fn an_old_attempt_still_running_beside_its_relaunch_is_stopped_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = KillJob {
        count: 200_000,
        keys: 100,
        window_ms: 10_000,
        rate: 50_000,
        storage_yaml: format!("    uri: file://{}/checkpoints", dir.path().display()),
        dir: dir.path().to_path_buf(),
        custom_yaml: None,
    };
    let mut old = job.command(1, 2).spawn().expect("spawn the old attempt");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The relaunch; if the old attempt published a newer checkpoint between the relaunch's
    // listing and its claim, the relaunch is the stale one: launch again, as the operator would.
    let mut run = 2;
    loop {
        let out = job.command(run, 3).output().expect("run the relaunch");
        if out.status.success() {
            break;
        }
        let stderr = job.stderr_of(run);
        assert!(stderr.contains("already published"), "the relaunch failed for another reason: {stderr}");
        assert!(run < 5, "the relaunch never won its claim: {stderr}");
        run += 1;
    }
    let status = common::wait_with_timeout(&mut old, std::time::Duration::from_secs(60));
    let stderr = job.stderr_of(1);
    assert!(!status.success(), "the old attempt must stop once the relaunch claimed its next checkpoint");
    assert!(stderr.contains("already published"), "the old attempt stops as stale: {stderr}");
    // Temp files the old attempt opened after the relaunch's recovery are invisible garbage;
    // the next start's recovery deletes them (and, the input being done, adds nothing).
    let again = job.command(run + 1, 1).output().expect("run once more");
    assert!(again.status.success(), "{}", job.stderr_of(run + 1));
    job.verify();
}

fn small_job(dir: &std::path::Path, count: u64, rate: u64) -> KillJob {
    KillJob::local(dir, count, 10, rate)
}

/// A planned crash counts only when the runtime reports it: `sluice-fault: hit POINT` and exit
/// status 86. A run that finishes, or fails otherwise, is not a crash at that point.
#[test]
fn a_fault_run_counts_only_when_the_runtime_reports_the_planned_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = small_job(dir.path(), 20_000, 100_000);
    let status = job.command(1, 2).arg("--fault-point").arg("coordinator.after_publish@1").status().expect("run");
    common::check_fault_hit("coordinator.after_publish@1", &status, &job.stderr_of(1)).expect("the crash is confirmed");
    assert!(common::check_fault_hit("sink.mid_commit@1", &status, &job.stderr_of(1)).is_err(), "another point");
    // A Kafka-only point is never passed by this file job: the run finishes instead.
    let status = job.command(2, 2).arg("--fault-point").arg("sink.mid_recovery@1").status().expect("run");
    let err = common::check_fault_hit("sink.mid_recovery@1", &status, &job.stderr_of(2)).expect_err("never hit");
    assert!(err.contains("never reached"), "{err}");
    assert!(common::check_killed(&status).is_err(), "a run that finished was not killed");
    job.verify();
}

/// A schedule whose fault point is never reached fails the test instead of being skipped.
#[test]
#[should_panic(expected = "fault point sink.mid_recovery@1 was never reached")]
fn a_planned_fault_that_is_never_reached_fails_the_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = small_job(dir.path(), 40_000, 10_000);
    job.run_with_kills(1, &["sink.mid_recovery@1"]);
}
