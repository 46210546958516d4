//! Random fault schedules and their execution against a real `sluice-runtime` process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;

use super::job::{RunParallelism, Shape};
use crate::common::{check_fault_hit, check_killed, free_port, http, signal, tail};

/// How one run of the schedule is ended.
#[derive(Clone, Debug)]
pub enum Fault {
    /// SIGKILL after this long.
    Kill(u64),
    /// `--fault-point POINT@N`; SIGKILL after the backstop if the point was not reached by then.
    Crash(&'static str, u32, u64),
    /// `POST /v1/stop {"savepoint": true}` after this long, then restore from that savepoint.
    StopWithSavepoint(u64),
    /// `POST /v1/stop {"savepoint": false}` after this long.
    Cancel(u64),
    /// SIGTERM after this long (a pod deletion): a graceful cancel, exit 0.
    Terminate(u64),
    /// Damage the newest checkpoint, expect the runtime to refuse it (exit 3 naming it), then
    /// repair it as an operator would.
    Corrupt(Corruption),
}

/// A damage to the newest checkpoint.
#[derive(Clone, Copy, Debug)]
pub enum Corruption {
    /// Flip a byte in its manifest.
    FlipManifest,
    /// Delete every manifest (an emptied `manifests/`, issue 13 hole 3): must be refused.
    DeleteManifests,
    /// Delete only the newest manifest, older ones left: the completion note still names it,
    /// so falling back to the older one must be refused when its sinks may have committed.
    DeleteNewestManifest,
    /// Flip a byte in one of the newest checkpoint's own state files (same size): only the
    /// checksums can tell.
    FlipStateFile,
}

/// One run of the schedule.
#[derive(Clone, Debug)]
pub struct Step {
    /// How it ends.
    pub fault: Fault,
    /// Its parallelism (every run rescales at random).
    pub parallelism: RunParallelism,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.parallelism;
        match &self.fault {
            Fault::Kill(ms) => write!(f, "kill -9 @{ms}ms [{p}]"),
            Fault::Crash(point, n, _) => write!(f, "crash {point}@{n} [{p}]"),
            Fault::StopWithSavepoint(ms) => write!(f, "stop+savepoint @{ms}ms [{p}]"),
            Fault::Cancel(ms) => write!(f, "cancel @{ms}ms [{p}]"),
            Fault::Terminate(ms) => write!(f, "SIGTERM @{ms}ms [{p}]"),
            Fault::Corrupt(c) => write!(f, "corrupt newest checkpoint ({c:?}) [{p}]"),
        }
    }
}

impl Step {
    /// One letter for the schedule's summary line.
    pub fn code(&self) -> &'static str {
        match self.fault {
            Fault::Kill(_) => "K",
            Fault::Crash(..) => "C",
            Fault::StopWithSavepoint(_) => "S",
            Fault::Cancel(_) => "X",
            Fault::Terminate(_) => "T",
            Fault::Corrupt(Corruption::DeleteNewestManifest) => "D",
            Fault::Corrupt(Corruption::FlipManifest) => "M",
            Fault::Corrupt(Corruption::FlipStateFile) => "B",
            Fault::Corrupt(Corruption::DeleteManifests) => "E",
        }
    }
}

/// True when corruption faults are part of schedules: the runtime refuses to fall back past a
/// newer checkpoint (`run --allow-fallback` exists), or `TORTURE_CORRUPT` is set.
pub fn corruption_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        if std::env::var("TORTURE_CORRUPT").is_ok_and(|v| !v.is_empty() && v != "0") {
            return true;
        }
        let help = Command::new(env!("CARGO_BIN_EXE_sluice-runtime")).args(["run", "--help"]).output();
        help.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--allow-fallback"))
    })
}

/// The one corruption every damage fault uses when `TORTURE_CORRUPT` names it (`newest`,
/// `manifest`, `state` or `emptied`), to aim a run at one hole; the schedules are otherwise
/// those of the same seeds.
fn forced_corruption() -> Option<Corruption> {
    match std::env::var("TORTURE_CORRUPT").ok()?.as_str() {
        "newest" => Some(Corruption::DeleteNewestManifest),
        "manifest" => Some(Corruption::FlipManifest),
        "state" => Some(Corruption::FlipStateFile),
        "emptied" => Some(Corruption::DeleteManifests),
        _ => None,
    }
}

/// True when `TORTURE_SKIP` (comma-separated) names `what`: a way to look past an open, known
/// defect while bisecting another (`cancel`: no cancel faults; `orphans`: storage temp files
/// are not checked). Never set in `make test`.
pub fn skipped(what: &str) -> bool {
    std::env::var("TORTURE_SKIP").is_ok_and(|v| v.split(',').any(|s| s.trim() == what))
}

/// A random schedule for `shape`.
pub fn random_schedule(rng: &mut StdRng, shape: &Shape) -> Vec<Step> {
    let points: Vec<&'static str> =
        sluice_runtime::fault::POINTS.iter().copied().filter(|p| *p != "sink.mid_recovery").collect();
    let est = shape.expected_ms().max(400);
    let delay = |rng: &mut StdRng| {
        if rng.random_bool(0.3) { rng.random_range(60..400) } else { rng.random_range(150..est.min(2500)) }
    };
    let steps = rng.random_range(3..=8);
    (0..steps)
        .map(|i| {
            let roll = rng.random_range(0..100);
            let fault = match roll {
                0..40 => Fault::Kill(delay(rng)),
                40..72 => {
                    let point = points[rng.random_range(0..points.len())];
                    Fault::Crash(point, rng.random_range(1..=3), est + 2000)
                }
                72..86 => Fault::StopWithSavepoint(delay(rng)),
                86..92 if !skipped("cancel") => {
                    let ms = delay(rng);
                    if roll < 89 { Fault::Cancel(ms) } else { Fault::Terminate(ms) }
                }
                _ if i > 0 && corruption_enabled() => {
                    let drawn = match rng.random_range(0..4) {
                        0 => Corruption::DeleteNewestManifest,
                        1 => Corruption::FlipManifest,
                        2 => Corruption::FlipStateFile,
                        _ => Corruption::DeleteManifests,
                    };
                    Fault::Corrupt(forced_corruption().unwrap_or(drawn))
                }
                _ => Fault::Kill(delay(rng)),
            };
            Step { fault, parallelism: shape.random_parallelism(rng) }
        })
        .collect()
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Killed, crashed on purpose, or stopped as planned (a fault landed).
    Faulted(String),
    /// The job finished (exit 0) before the fault: the rest of the schedule is skipped.
    Finished,
    /// A fault that did not apply (e.g. no checkpoint to corrupt yet).
    Skipped(String),
}

/// A case's working directory and process runner.
pub struct Runner<'a> {
    /// The job shape.
    pub shape: &'a Shape,
    /// Working directory (input, out, checkpoints, logs).
    pub dir: PathBuf,
    /// Runs started so far.
    pub runs: usize,
    /// `--restore` for the next run (after a stop with savepoint).
    pub restore_next: Option<String>,
}

impl Runner<'_> {
    /// Standard error of run `n`.
    pub fn stderr_of(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("logs/run-{n}.stderr"))).unwrap_or_default()
    }

    fn spawn(&mut self, p: RunParallelism, extra: &[String]) -> Child {
        self.runs += 1;
        let job = self.dir.join(format!("logs/job-{}.yaml", self.runs));
        std::fs::write(&job, self.shape.yaml(&self.dir, p)).expect("write job");
        let log = std::fs::File::create(self.dir.join(format!("logs/run-{}.stderr", self.runs))).expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-runtime"));
        cmd.arg("run").arg(&job).arg("--run-id").arg(format!("r{}", self.runs)).args(extra);
        if let Some(sp) = self.restore_next.take() {
            cmd.arg("--restore").arg(sp);
        }
        cmd.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(log);
        cmd.spawn().expect("spawn sluice-runtime")
    }

    fn fail(&self, what: String) -> String {
        format!(
            "run {}: {what}\n--- stderr of run {} ---\n{}",
            self.runs,
            self.runs,
            tail(&self.stderr_of(self.runs), 30)
        )
    }

    /// Runs one step of the schedule.
    pub fn step(&mut self, step: &Step) -> Result<Outcome, String> {
        match &step.fault {
            Fault::Kill(ms) => self.kill_after(step.parallelism, *ms),
            Fault::Crash(point, n, backstop) => self.crash(step.parallelism, point, *n, *backstop),
            Fault::StopWithSavepoint(ms) => self.stop(step.parallelism, *ms, true),
            Fault::Cancel(ms) => self.stop(step.parallelism, *ms, false),
            Fault::Terminate(ms) => self.terminate_after(step.parallelism, *ms),
            Fault::Corrupt(c) => self.corrupt(step.parallelism, *c),
        }
    }

    fn kill_after(&mut self, p: RunParallelism, ms: u64) -> Result<Outcome, String> {
        let mut child = self.spawn(p, &[]);
        if let Some(status) = wait_for(&mut child, Duration::from_millis(ms)) {
            return self.ended_early(status);
        }
        let _ = child.kill();
        let status = child.wait().expect("wait");
        if status.success() {
            // It finished between the timer and the kill (a zombie takes the signal silently).
            return self.ended_early(status);
        }
        check_killed(&status).map_err(|e| self.fail(e))?;
        Ok(Outcome::Faulted("killed".into()))
    }

    fn terminate_after(&mut self, p: RunParallelism, ms: u64) -> Result<Outcome, String> {
        let mut child = self.spawn(p, &[]);
        if let Some(status) = wait_for(&mut child, Duration::from_millis(ms)) {
            return self.ended_early(status);
        }
        signal(&child, "TERM");
        let Some(status) = wait_for(&mut child, Duration::from_secs(60)) else {
            let _ = child.kill();
            return Err(self.fail("the job did not end within 60s of SIGTERM".into()));
        };
        if status.success() {
            Ok(Outcome::Faulted("cancelled by SIGTERM".into()))
        } else {
            Err(self.fail(format!("SIGTERM: the job ended {status}, not with a graceful cancel")))
        }
    }

    fn ended_early(&self, status: ExitStatus) -> Result<Outcome, String> {
        if status.success() {
            Ok(Outcome::Finished)
        } else {
            Err(self.fail(format!("the run failed on its own: {status}")))
        }
    }

    fn crash(&mut self, p: RunParallelism, point: &str, n: u32, backstop: u64) -> Result<Outcome, String> {
        let planned = format!("{point}@{n}");
        let mut child = self.spawn(p, &["--fault-point".into(), planned.clone()]);
        let Some(status) = wait_for(&mut child, Duration::from_millis(backstop)) else {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Outcome::Skipped(format!("{planned} not reached within {backstop}ms: killed")));
        };
        if status.success() {
            return Ok(Outcome::Finished);
        }
        check_fault_hit(&planned, &status, &self.stderr_of(self.runs)).map_err(|e| self.fail(e))?;
        Ok(Outcome::Faulted(format!("crashed at {planned}")))
    }

    fn stop(&mut self, p: RunParallelism, ms: u64, savepoint: bool) -> Result<Outcome, String> {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = self.spawn(p, &["--control-addr".into(), addr.clone()]);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return self.ended_early(status);
            }
            if let Ok((200, _)) = http(&addr, "GET", "/readyz", None) {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                return Err(self.fail("the control endpoint never became ready".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(status) = wait_for(&mut child, Duration::from_millis(ms)) {
            return self.ended_early(status);
        }
        let body = format!("{{\"savepoint\": {savepoint}}}");
        let reply = http(&addr, "POST", "/v1/stop", Some(&body));
        let status = wait_for(&mut child, Duration::from_secs(60));
        let Some(status) = status else {
            let _ = child.kill();
            return Err(self.fail(format!("the job did not end within 60s of the stop ({reply:?})")));
        };
        match (reply, savepoint) {
            (Ok((200, body)), true) if status.success() => {
                let v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| self.fail(format!("{e}: {body}")))?;
                let sp = v["savepoint"].as_str().ok_or_else(|| self.fail(format!("no savepoint in {body}")))?;
                self.restore_next = Some(sp.to_string());
                Ok(Outcome::Faulted("stopped with a savepoint".into()))
            }
            (Ok((200, _)), false) if status.success() => Ok(Outcome::Faulted("cancelled".into())),
            // The request raced with the end of the input: the job finished.
            (Err(_), _) if status.success() => Ok(Outcome::Finished),
            (Ok((code, body)), _)
                if status.success() && code != 200 && (body.contains("ended") || body.contains("(state Finished)")) =>
            {
                Ok(Outcome::Finished)
            }
            (reply, _) => {
                Err(self.fail(format!("stop (savepoint: {savepoint}) answered {reply:?}, the job ended {status}")))
            }
        }
    }

    fn corrupt(&mut self, p: RunParallelism, c: Corruption) -> Result<Outcome, String> {
        if self.restore_next.is_some() {
            return Ok(Outcome::Skipped("a savepoint restore is pending".into()));
        }
        let manifests = self.dir.join("checkpoints/manifests");
        let Some((id, path)) = newest_manifest(&manifests) else {
            return Ok(Outcome::Skipped("no checkpoint yet".into()));
        };
        let all = all_manifests(&manifests);
        let mut originals: Vec<(PathBuf, Vec<u8>)> =
            all.iter().map(|p| (p.clone(), std::fs::read(p).expect("read manifest"))).collect();
        let state_file = self.dir.join(format!("checkpoints/state/chk-{id}"));
        let state_file = all_files(&state_file).into_iter().find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
        match c {
            Corruption::FlipManifest => {
                let mut bad = std::fs::read(&path).expect("read manifest");
                let mid = bad.len() / 2;
                bad[mid] ^= 0x20;
                std::fs::write(&path, bad).expect("damage manifest");
            }
            Corruption::DeleteNewestManifest => std::fs::remove_file(&path).expect("delete manifest"),
            Corruption::FlipStateFile => {
                let Some(file) = state_file else {
                    return Ok(Outcome::Skipped(format!("checkpoint {id} has no state file of its own")));
                };
                let bytes = std::fs::read(&file).expect("read state file");
                let mut bad = bytes.clone();
                let mid = bad.len() / 2;
                bad[mid] ^= 0x10;
                std::fs::write(&file, bad).expect("damage state file");
                originals.push((file, bytes));
            }
            Corruption::DeleteManifests => all.iter().for_each(|p| std::fs::remove_file(p).expect("delete manifest")),
        }
        let mut child = self.spawn(p, &[]);
        let status = wait_for(&mut child, Duration::from_secs(60));
        // Repair, as an operator would, whatever happened (a state directory the run's
        // retention removed stays removed).
        for (p, bytes) in &originals {
            if p.parent().is_some_and(Path::exists) {
                std::fs::write(p, bytes).expect("repair");
            }
        }
        let Some(status) = status else {
            let _ = child.kill();
            return Err(self.fail(format!("damaged checkpoint {id} ({c:?}) was not refused: the job kept running")));
        };
        let stderr = self.stderr_of(self.runs);
        // The documented refusal names the checkpoint (or, with no manifest left, the state
        // files without one).
        if status.code() == Some(3) && (stderr.contains(&id.to_string()) || stderr.contains("manifest")) {
            return Ok(Outcome::Faulted(format!("checkpoint {id} damaged ({c:?}): refused, repaired")));
        }
        if status.success() {
            // Not refused: the runtime restored another checkpoint and finished; the output
            // comparison decides whether that was safe.
            return Ok(Outcome::Finished);
        }
        Err(self.fail(format!("damaged checkpoint {id} ({c:?}): expected exit 3 naming it, got {status}")))
    }

    /// Runs the job to its end (and checks it ends with exit 0).
    pub fn complete(&mut self, p: RunParallelism) -> Result<(), String> {
        let mut child = self.spawn(p, &[]);
        match wait_for(&mut child, Duration::from_secs(240)) {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(self.fail(format!("the run to completion failed: {s}"))),
            None => {
                let _ = child.kill();
                Err(self.fail("the run to completion did not finish within 240s".into()))
            }
        }
    }
}

/// Waits up to `limit` for the child; `None` if it still runs.
fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every `chk-<id>.json` in the manifests directory.
fn all_manifests(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()
}

/// Every file under `dir`, sorted (empty when there is none).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The newest `chk-<id>.json` in the manifests directory.
fn newest_manifest(dir: &Path) -> Option<(u64, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id = name.strip_prefix("chk-")?.strip_suffix(".json")?.parse::<u64>().ok()?;
            Some((id, e.path()))
        })
        .max()
}
