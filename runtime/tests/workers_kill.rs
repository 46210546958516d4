//! A job over several worker processes on loopback (`sluice-runtime run --workers N`): rounds
//! of `kill -9` of a random worker at a random moment, the supervisor relaunching every worker
//! from the latest checkpoint (the job document rewritten at another parallelism before each
//! kill), and every few rounds the whole run killed and started again with another worker
//! count (3 → 2 → 4 → 3 …). The committed output is then checked exactly once against the
//! windows computed in plain Rust (`KillJob::verify`). The job's hash edge (generator → keyed
//! windows) crosses the workers.
//!
//! A second test crashes a worker at each of the protocol's fault points in turn (`--fault-point`,
//! each run on another worker count and parallelism, resuming what the previous crash left),
//! then runs to the end and checks the output the same way.
//!
//! `SLUICE_WORKERS_KILL_ROUNDS` sets the number of rounds (default 6, a bounded slice of the
//! normal test run; `make torture` runs more); `SLUICE_KILL_SEED` replays a schedule.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::KillJob;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_runtime::fault::HIT_PREFIX;

const BIN: &str = env!("CARGO_BIN_EXE_sluice-runtime");

fn rounds() -> usize {
    std::env::var("SLUICE_WORKERS_KILL_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(6)
}

/// The run's log filter: the supervisor's and the job's decisions.
fn log_filter() -> String {
    std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn,sluice_runtime::job=info".into())
}

/// Starts `run --workers workers` as run number `run`, standard error to `<dir>/run-<run>.stderr`.
fn supervise(job: &KillJob, run: usize, workers: usize, parallelism: u32, restarts: u32) -> Child {
    let yaml = job.write_yaml(parallelism);
    let log = std::fs::File::create(stderr_path(&job.dir, run)).expect("create the run's stderr file");
    Command::new(BIN)
        .arg("run")
        .arg(&yaml)
        .args(["--workers", &workers.to_string(), "--run-id", &format!("r{run}"), "--no-control"])
        .args(["--max-restarts", &restarts.to_string()])
        .env("RUST_LOG", log_filter())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn sluice-runtime run --workers")
}

fn stderr_path(dir: &Path, run: usize) -> std::path::PathBuf {
    dir.join(format!("run-{run}.stderr"))
}

fn stderr_of(dir: &Path, run: usize) -> String {
    std::fs::read_to_string(stderr_path(dir, run)).unwrap_or_default()
}

/// The attempts the supervisor launched, in order: each attempt's id and its workers' pids.
fn attempts(stderr: &str) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    for line in stderr.lines() {
        // sluice-runtime: attempt r1-a0: worker 2 pid 1234 exchange 127.0.0.1:4567
        let Some(rest) = line.strip_prefix("sluice-runtime: attempt ") else { continue };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (Some(attempt), Some(pid)) = (words.first(), words.get(4).and_then(|p| p.parse().ok())) else { continue };
        let attempt = attempt.trim_end_matches(':').to_string();
        match out.last_mut() {
            Some((a, pids)) if *a == attempt => pids.push(pid),
            _ => out.push((attempt, vec![pid])),
        }
    }
    out
}

/// Waits until the supervisor of run `run` launched attempt number `nth` (0-based) with all
/// its `workers`; returns their pids.
fn wait_for_attempt(job: &KillJob, run: usize, nth: usize, workers: usize, sup: &mut Child) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let text = stderr_of(&job.dir, run);
        if let Some((_, pids)) = attempts(&text).get(nth).filter(|(_, p)| p.len() == workers) {
            return pids.clone();
        }
        if let Some(s) = sup.try_wait().expect("try_wait") {
            panic!("the supervisor ended ({s}) before attempt {nth}:\n{}", common::tail(&text, 40));
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no attempt {nth} within 60 s:\n{}",
            common::tail(&text, 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// Whether process `pid` is gone (or a zombie waiting for its reaper).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()) == Some("Z"),
    }
}

#[test]
fn workers_killed_at_random_and_relaunched_at_other_counts_commit_every_record_exactly_once() {
    let rounds = rounds();
    let seed = common::kill_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = KillJob {
        count: 80_000 + 25_000 * rounds as u64,
        keys: 50,
        window_ms: 1000,
        rate: 10_000,
        storage_yaml: format!("    uri: file://{}/checkpoints", dir.path().display()),
        dir: dir.path().to_path_buf(),
        custom_yaml: None,
    };
    let counts = [3usize, 2, 4];
    let (mut run, mut count_at, mut parallelism) = (1, 0, 3u32);
    let mut workers = counts[count_at];
    let mut sup = supervise(&job, run, workers, parallelism, 1000);
    let mut attempt = 0;
    let mut schedule = Vec::new();
    for round in 0..rounds {
        let pids = wait_for_attempt(&job, run, attempt, workers, &mut sup);
        let victim = rng.random_range(0..workers);
        let after = Duration::from_millis(rng.random_range(400..2500));
        let switch = round % 3 == 2;
        // The relaunch reads the document again: at another parallelism.
        parallelism = rng.random_range(1..=4);
        job.write_yaml(parallelism);
        std::thread::sleep(after);
        if let Some(s) = sup.try_wait().expect("try_wait") {
            panic!(
                "seed {seed}, round {round}: the job ended ({s}) before the kill: the schedule was cut short\n{}",
                common::tail(&stderr_of(&job.dir, run), 40)
            );
        }
        kill9(pids[victim]);
        schedule.push(format!("kill worker {victim}/{workers} after {after:?}, then p={parallelism}"));
        if switch {
            // The whole run goes, and comes back with another worker count.
            let _ = sup.kill();
            let _ = sup.wait();
            for &pid in &pids {
                kill9(pid);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !pids.iter().all(|&p| gone(p)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            count_at = (count_at + 1) % counts.len();
            workers = counts[count_at];
            run += 1;
            attempt = 0;
            schedule.push(format!("killed the run; restarted with {workers} workers"));
            sup = supervise(&job, run, workers, parallelism, 1000);
        } else {
            attempt += 1;
        }
    }
    eprintln!("schedule (SLUICE_KILL_SEED={seed}): {}", schedule.join("; "));
    let status = common::wait_with_timeout(&mut sup, Duration::from_secs(300));
    let text = stderr_of(&job.dir, run);
    assert!(status.success(), "seed {seed}: the last run failed ({status}):\n{}", common::tail(&text, 60));
    let relaunches = (1..=run).map(|r| stderr_of(&job.dir, r).matches("relaunching all").count()).sum::<usize>();
    assert!(relaunches >= rounds - rounds / 3, "seed {seed}: only {relaunches} relaunches for {rounds} rounds");
    job.verify();
}

/// A job small enough to finish in a few seconds, for the tests below.
fn small(dir: &Path, count: u64, rate: u64) -> KillJob {
    KillJob::local(dir, count, 10, rate)
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", common::free_port())
}

fn worker(job: &Path, index: usize, peers: &str, coordinator: &str, attempt: &str, log: &Path) -> Child {
    Command::new(BIN)
        .arg("worker")
        .arg(job)
        .args(["--index", &index.to_string(), "--peers", peers, "--coordinator", coordinator])
        .args(["--attempt", attempt, "--no-control", "--connect-timeout", "20s"])
        .env("RUST_LOG", log_filter())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn a worker")
}

#[test]
fn a_worker_of_another_attempt_cannot_join_and_the_right_one_can() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = small(dir.path(), 20_000, 20_000);
    let yaml = job.write_yaml(2);
    let peers = format!("{},{}", free_addr(), free_addr());
    let coordinator = free_addr();
    let log = |name: &str| dir.path().join(name);
    let mut zero = worker(&yaml, 0, &peers, &coordinator, "job-a2", &log("w0"));
    let mut stale = worker(&yaml, 1, &peers, &coordinator, "job-a1", &log("stale"));
    let status = common::wait_with_timeout(&mut stale, Duration::from_secs(60));
    let text = std::fs::read_to_string(log("stale")).unwrap_or_default();
    assert!(!status.success(), "a worker of another attempt must not run: {text}");
    assert!(
        text.contains(r#"refused the control connection: attempt "job-a1" is not this coordinator's attempt "job-a2""#),
        "{text}"
    );
    assert!(zero.try_wait().expect("try_wait").is_none(), "worker 0 keeps waiting for its own worker 1");
    let mut one = worker(&yaml, 1, &peers, &coordinator, "job-a2", &log("w1"));
    for (name, child) in [("w0", &mut zero), ("w1", &mut one)] {
        let status = common::wait_with_timeout(child, Duration::from_secs(120));
        let text = std::fs::read_to_string(log(name)).unwrap_or_default();
        assert!(status.success(), "{name}: {status}\n{}", common::tail(&text, 30));
    }
    job.verify();
}

#[test]
fn a_lost_worker_fails_the_attempt_naming_it_when_no_relaunch_is_left() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = small(dir.path(), 1_000_000, 20_000);
    let mut sup = supervise(&job, 1, 3, 3, 0);
    let pids = wait_for_attempt(&job, 1, 0, 3, &mut sup);
    std::thread::sleep(Duration::from_millis(1500));
    kill9(pids[2]);
    let status = common::wait_with_timeout(&mut sup, Duration::from_secs(60));
    let text = stderr_of(&job.dir, 1);
    assert!(!status.success(), "{text}");
    // Worker 0 says which worker it lost; the supervisor which one failed and why it stops.
    assert!(text.contains("worker 2"), "{text}");
    assert!(text.contains("no relaunch left (--max-restarts 0)"), "{text}");
    for pid in pids {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone(pid), "worker pid {pid} outlived the failed attempt");
    }
}

/// Runs `run --workers workers` as run number `run` with `--fault-point point` and no relaunch:
/// the first worker to reach the point crashes there, and the run ends.
fn run_to_fault(
    job: &KillJob,
    run: usize,
    workers: usize,
    parallelism: u32,
    point: &str,
) -> (std::process::ExitStatus, String) {
    let yaml = job.write_yaml(parallelism);
    let log = std::fs::File::create(stderr_path(&job.dir, run)).expect("create the run's stderr file");
    let mut sup = Command::new(BIN)
        .arg("run")
        .arg(&yaml)
        .args(["--workers", &workers.to_string(), "--run-id", &format!("r{run}"), "--no-control"])
        .args(["--max-restarts", "0", "--fault-point", point])
        .env("RUST_LOG", log_filter())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn sluice-runtime run --workers");
    let status = common::wait_with_timeout(&mut sup, Duration::from_secs(120));
    (status, stderr_of(&job.dir, run))
}

#[test]
fn a_worker_crashing_at_each_fault_point_leaves_a_state_the_next_worker_count_resumes_exactly_once() {
    let seed = common::kill_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = small(dir.path(), 120_000, 12_000);
    let counts = [3usize, 2, 4];
    let mut schedule = Vec::new();
    // A first run killed mid-way leaves checkpoints, so the restore's fault points are reached.
    let mut sup = supervise(&job, 1, 2, 2, 0);
    let pids = wait_for_attempt(&job, 1, 0, 2, &mut sup);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = sup.kill();
    let _ = sup.wait();
    for pid in pids {
        kill9(pid);
    }
    let mut points: Vec<&str> = common::FAULT_RUNS.to_vec();
    for i in (1..points.len()).rev() {
        points.swap(i, rng.random_range(0..=i));
    }
    for (i, point) in points.iter().enumerate() {
        let run = i + 2;
        let (workers, parallelism) = (counts[i % counts.len()], rng.random_range(1..=4));
        schedule.push(format!("{point} on {workers} workers at p={parallelism}"));
        let (status, text) = run_to_fault(&job, run, workers, parallelism, point);
        let name = point.split('@').next().unwrap_or(point);
        assert!(
            !status.success() && text.lines().any(|l| l.strip_prefix(HIT_PREFIX) == Some(name)),
            "seed {seed}: run {run} ({point}) did not crash there ({status}): {}\n{}",
            schedule.join("; "),
            common::tail(&text, 40)
        );
    }
    eprintln!("schedule (SLUICE_KILL_SEED={seed}): {}", schedule.join("; "));
    let run = points.len() + 2;
    let mut sup = supervise(&job, run, 3, 3, 3);
    let status = common::wait_with_timeout(&mut sup, Duration::from_secs(300));
    assert!(
        status.success(),
        "seed {seed}: the last run failed ({status}):\n{}",
        common::tail(&stderr_of(&job.dir, run), 60)
    );
    job.verify();
}
