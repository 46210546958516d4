//! Issue 17, "see and steer a running job", against real `sluice-runtime` processes: the
//! README's curl examples (read from README.md, so the test fails when the README drifts) and
//! the `status`, `checkpoints`, `savepoint`, `stop` and `cancel` commands, each driving a
//! running job; the endpoint answers with the final state until the process exits.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, signal, wait_with_timeout};
use sluice_crds::contract::control::{History, JobState, JobStatus, SavepointState, SavepointStatus, StopResponse};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-runtime");

/// A running job with a control endpoint.
struct Job {
    child: Child,
    addr: String,
    dir: PathBuf,
}

/// Writes a slow generator → file sink job (checkpoints every 200 ms, all retained) in `dir`.
fn write_job(dir: &Path) -> PathBuf {
    let yaml = format!(
        r#"name: control-test
checkpointing:
  interval: 200ms
  timeout: 20s
  retained: 1000
  storage:
    uri: file://{d}/checkpoints
pipeline:
  maxParallelism: 16
  parallelism: 1
  nodes:
    - id: gen
      generator: {{count: 100000000, keys: 10, ratePerSecond: 2000, eventTimeStepMs: 1, splits: 2}}
    - id: win
      window: {{size: 1000ms, function: count}}
    - id: out
      fileSink: {{path: {d}/out}}
  edges:
    - {{from: gen, to: win, partition: hash}}
    - {{from: win, to: out}}
"#,
        d = dir.display()
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, yaml).expect("write job");
    path
}

/// Starts the job with `extra` arguments; the endpoint lingers 300 s after the job ended (the
/// tests end the linger with SIGTERM once they have seen the final state).
fn start(dir: &Path, extra: &[&str]) -> Job {
    let addr = format!("127.0.0.1:{}", free_port());
    let job = write_job(dir);
    let stderr = std::fs::File::create(dir.join("run.stderr")).expect("stderr file");
    let child = Command::new(BIN)
        .arg("run")
        .arg(&job)
        .args(["--run-id", "c1", "--control-addr", &addr, "--control-linger", "300s"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn sluice-runtime run");
    Job { child, addr, dir: dir.to_path_buf() }
}

impl Job {
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("run.stderr")).unwrap_or_default()
    }

    /// Runs `sluice-runtime <args> --control-addr <addr>`.
    fn cli(&self, args: &[&str]) -> Output {
        cli(&self.addr, args)
    }

    /// `status -o json`, parsed.
    fn status(&self) -> JobStatus {
        let out = self.cli(&["status", "-o", "json"]);
        assert!(out.status.success(), "status failed: {}; run stderr: {}", text(&out.stderr), self.stderr());
        serde_json::from_slice(&out.stdout).expect("status -o json is a JobStatus")
    }

    /// Waits until the job has completed `n` checkpoints.
    fn wait_checkpoints(&mut self, n: u64) -> JobStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("the job exited ({s}) early; stderr: {}", self.stderr());
            }
            let out = self.cli(&["status", "-o", "json"]);
            if out.status.success() {
                let s: JobStatus = serde_json::from_slice(&out.stdout).expect("JobStatus");
                if s.completed >= n {
                    return s;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(120), "no {n} checkpoints; stderr: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ends the linger (SIGTERM) and returns the run's exit status.
    fn finish(mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        wait_with_timeout(&mut self.child, Duration::from_secs(60))
    }
}

fn cli(addr: &str, args: &[&str]) -> Output {
    Command::new(BIN).args(args).args(["--control-addr", addr]).output().expect("run sluice-runtime")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The local directory of a `file://` URI.
fn local(uri: &str) -> PathBuf {
    PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
}

#[test]
fn status_checkpoints_and_savepoint_show_the_figures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut job = start(tmp.path(), &[]);
    job.wait_checkpoints(3);
    let human = job.cli(&["status"]);
    let status = job.status();
    assert!(human.status.success(), "{}", text(&human.stderr));
    let human = text(&human.stdout);
    assert_eq!((status.state, status.run_id.as_str()), (JobState::Running, "c1"));
    for needle in ["state:           running", "run id:          c1", "restored from:   nothing (fresh start)"] {
        assert!(human.contains(needle), "{needle:?} not in\n{human}");
    }
    let shown: u64 = human
        .lines()
        .find_map(|l| l.strip_prefix("last checkpoint: #"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no last checkpoint id in\n{human}"));
    let latest = status.latest.expect("a latest checkpoint");
    assert!(shown >= 1 && shown <= latest.id.0, "shown #{shown}, latest #{}", latest.id);
    assert!(local(&latest.path).exists(), "the latest manifest {} exists", latest.path);

    let out = job.cli(&["checkpoints", "-o", "json"]);
    let history: History = serde_json::from_slice(&out.stdout).expect("checkpoints -o json is a History");
    let completed: Vec<_> = history.checkpoints.iter().filter(|c| c.location.is_some()).collect();
    assert!(completed.len() >= 3, "{history:?}");
    assert!(history.checkpoints.windows(2).all(|w| w[0].id > w[1].id), "newest first: {history:?}");
    for c in &completed {
        assert!(local(c.location.as_deref().unwrap_or_default()).exists(), "manifest of {c:?}");
        assert!(c.duration_ms.is_some() && c.size_bytes.is_some(), "{c:?}");
    }
    let table = text(&job.cli(&["checkpoints"]).stdout);
    let row = format!("{:>6}  checkpoint", completed[completed.len() - 1].id.0);
    assert!(table.lines().any(|l| l.starts_with(&row) && l.contains("completed")), "{row:?} not in\n{table}");

    let out = job.cli(&["savepoint", "--wait", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sp: SavepointStatus = serde_json::from_slice(&out.stdout).expect("SavepointStatus");
    assert_eq!(sp.state, SavepointState::Completed, "{sp:?}");
    let location = sp.location.expect("location");
    assert!(local(&location).join("_manifest.json").exists(), "savepoint {location} is in storage");
    let target = format!("file://{}/sp-here", tmp.path().display());
    let out = job.cli(&["savepoint", "--wait", "--location", &target]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("completed: {target}")), "{}", text(&out.stdout));
    assert!(local(&target).join("_manifest.json").exists());
    let history: History = serde_json::from_slice(&job.cli(&["checkpoints", "-o", "json"]).stdout).expect("History");
    let sps: Vec<_> = history.savepoints.iter().map(|s| (s.state, s.location.clone())).collect();
    assert_eq!(sps, [(SavepointState::Completed, Some(target)), (SavepointState::Completed, Some(location))]);

    let out = job.cli(&["savepoint", "--location", "relative/dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("invalid savepoint location \"relative/dir\""), "{}", text(&out.stderr));
    assert_eq!(job.status().state, JobState::Running, "a refused savepoint changes nothing");
    assert!(job.finish().success());
}

#[test]
fn stop_with_savepoint_prints_it_and_the_job_exits_0() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut job = start(tmp.path(), &[]);
    job.wait_checkpoints(1);
    let out = job.cli(&["stop", "--savepoint"]);
    assert!(out.status.success(), "{}; run: {}", text(&out.stderr), job.stderr());
    let line = text(&out.stdout);
    let location = line.trim().strip_prefix("job stopped with savepoint: ").unwrap_or_else(|| panic!("{line}"));
    assert!(local(location).join("_manifest.json").exists(), "{location}");
    // Lingering: the final state is readable, and a second stop is refused in JSON terms.
    assert_eq!(job.status().state, JobState::Finished);
    let again = job.cli(&["cancel"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("HTTP 409"), "{}", text(&again.stderr));
    assert!(job.finish().success());
}

#[test]
fn cancel_ends_the_job_with_exit_0_and_says_so() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut job = start(tmp.path(), &[]);
    job.wait_checkpoints(1);
    let out = job.cli(&["cancel", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: StopResponse = serde_json::from_slice(&out.stdout).expect("StopResponse");
    assert_eq!((r.stopped, r.savepoint), (sluice_crds::contract::control::StopKind::Cancel, None));
    assert_eq!(job.status().state, JobState::Cancelled);
    assert!(job.finish().success());
}

#[test]
fn a_failed_job_stays_readable_as_failed_until_it_exits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = format!("file://{}/no-such-savepoint", tmp.path().display());
    let mut job = start(tmp.path(), &["--restore", &missing]);
    let start = Instant::now();
    let status = loop {
        let out = job.cli(&["status", "-o", "json"]);
        if out.status.success() {
            let s: JobStatus = serde_json::from_slice(&out.stdout).expect("JobStatus");
            if s.state != JobState::Running {
                break s;
            }
        }
        assert!(job.child.try_wait().expect("try_wait").is_none(), "exited before its state was seen");
        assert!(start.elapsed() < Duration::from_secs(60), "never failed; stderr: {}", job.stderr());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.state, JobState::Failed);
    let code = job.finish().code();
    assert_eq!(code, Some(1), "a failed run exits 1");
}

#[test]
fn nothing_listening_names_the_address_and_exits_1() {
    let addr = format!("127.0.0.1:{}", free_port());
    for cmd in [&["status"][..], &["checkpoints"], &["savepoint", "--wait"], &["stop", "--savepoint"], &["cancel"]] {
        let out = cli(&addr, cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("no sluice-runtime answers at {addr}")), "{cmd:?}: {err}");
        assert_eq!(err.lines().count(), 1, "said once: {err}");
    }
}

#[path = "control/readme.rs"]
mod readme;

#[path = "control/job_view.rs"]
mod job_view;

#[test]
fn savepoints_racing_a_stop_get_202_or_a_409_naming_it_and_none_stays_pending() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut job = start(tmp.path(), &[]);
    job.wait_checkpoints(1);
    let addr = job.addr.clone();
    let stopper = std::thread::spawn(move || cli(&addr, &["stop", "--savepoint", "-o", "json"]));
    let (mut accepted, mut refused) = (0, 0);
    while !stopper.is_finished() {
        let out = job.cli(&["savepoint", "-o", "json"]);
        if out.status.success() {
            let sp: SavepointStatus = serde_json::from_slice(&out.stdout).expect("SavepointStatus");
            assert_eq!(sp.state, SavepointState::Pending, "{sp:?}");
            accepted += 1;
        } else {
            let err = text(&out.stderr);
            assert!(err.contains("(HTTP 409)") && err.contains("stop with savepoint"), "{err}");
            refused += 1;
        }
    }
    let out = stopper.join().expect("join");
    assert!(out.status.success(), "{}; run: {}", text(&out.stderr), job.stderr());
    let stopped: StopResponse = serde_json::from_slice(&out.stdout).expect("StopResponse");
    assert!(local(stopped.savepoint.as_deref().expect("location")).join("_manifest.json").exists());
    let history: History = serde_json::from_slice(&job.cli(&["checkpoints", "-o", "json"]).stdout).expect("History");
    println!("{accepted} savepoints accepted, {refused} refused during the stop");
    assert!(history.savepoints.iter().all(|s| s.state != SavepointState::Pending), "{history:?}");
    for s in history.savepoints.iter().filter(|s| s.state == SavepointState::Completed) {
        assert!(local(s.location.as_deref().unwrap_or_default()).join("_manifest.json").exists(), "{s:?}");
    }
    assert!(job.finish().success());
}
