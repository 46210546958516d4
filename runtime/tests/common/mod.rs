//! The exactly-once kill harness shared by the kill tests (local directory, S3, …): runs a
//! bounded job as a child process, kills it at random moments and at every protocol fault
//! point, restarts it (at varying parallelism), and checks the committed output exactly.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_crds::JobConfig;
use sluice_runtime::fault::{EXIT_FAULT, Faults, HIT_PREFIX};
use sluice_runtime::job::{RestoreMode, RuntimeConfig};

/// The job's shape: `count` sequence numbers, `keys` keys, windows of `window_ms` event time.
#[derive(Clone, Debug)]
pub struct KillJob {
    /// Records generated.
    pub count: u64,
    /// Distinct keys (`seq % keys`).
    pub keys: u64,
    /// Tumbling window size, ms of event time (one record per ms).
    pub window_ms: u64,
    /// Generator rate limit, records per second.
    pub rate: u64,
    /// The `storage:` block of the job, as YAML lines (indented 4 spaces).
    pub storage_yaml: String,
    /// Working directory for output (and local checkpoints).
    pub dir: PathBuf,
    /// A whole job document to run instead of the built-in one; `{p}` stands for the parallelism.
    pub custom_yaml: Option<String>,
}

impl KillJob {
    /// The built-in job (windows of 1 s) over `count` records and `keys` keys at `rate` records
    /// per second, with output and checkpoints in the local directory `dir`.
    pub fn local(dir: &Path, count: u64, keys: u64, rate: u64) -> KillJob {
        KillJob {
            count,
            keys,
            window_ms: 1000,
            rate,
            storage_yaml: format!("    uri: file://{}/checkpoints", dir.display()),
            dir: dir.to_path_buf(),
            custom_yaml: None,
        }
    }

    /// Writes the job document for parallelism `p`.
    pub fn write_yaml(&self, p: u32) -> PathBuf {
        let path = self.dir.join("job.yaml");
        if let Some(template) = &self.custom_yaml {
            std::fs::write(&path, template.replace("{p}", &p.to_string())).expect("write job");
            return path;
        }
        let yaml = format!(
            r#"name: kill-test
checkpointing:
  interval: 200ms
  timeout: 20s
  retained: 2
  tolerableFailures: 1000
  storage:
{storage}
pipeline:
  maxParallelism: 64
  parallelism: {p}
  nodes:
    - id: gen
      generator: {{count: {count}, keys: {keys}, ratePerSecond: {rate}, eventTimeStepMs: 1, splits: 6}}
    - id: win
      window: {{size: {window}ms, function: count}}
    - id: win-out
      parallelism: 1
      fileSink: {{path: {out}/windows}}
    - id: pass
      fileSink: {{path: {out}/pass}}
  edges:
    - {{from: gen, to: win, partition: hash}}
    - {{from: win, to: win-out, partition: rebalance}}
    - {{from: gen, to: pass}}
"#,
            storage = self.storage_yaml,
            count = self.count,
            keys = self.keys,
            rate = self.rate,
            window = self.window_ms,
            out = self.dir.display(),
        );
        std::fs::write(&path, yaml).expect("write job");
        path
    }

    /// The command that runs the job at parallelism `p` as run number `run`. Its standard error
    /// goes to `<dir>/run-<run>.stderr` (read it with [`KillJob::stderr_of`]).
    pub fn command(&self, run: usize, p: u32) -> Command {
        let job = self.write_yaml(p);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-runtime"));
        cmd.arg("run").arg(&job).arg("--run-id").arg(format!("r{run}"));
        let log = std::fs::File::create(self.stderr_path(run)).expect("create the run's stderr file");
        // SLUICE_TEST_LOG overrides the runs' log filter when debugging a schedule.
        // By default the sinks' transaction steps and the restores are logged (a few lines per
        // checkpoint), so a failed check can be traced to the run and transaction that caused it.
        let filter = std::env::var("SLUICE_TEST_LOG")
            .unwrap_or_else(|_| "warn,rdkafka=off,sluice_runtime::connectors=debug,sluice_runtime::job=info".into());
        cmd.env("RUST_LOG", filter).stdout(Stdio::null()).stderr(log);
        // A supervisor's per-attempt copy of the job document goes to the temporary directory
        // and is removed when the attempt ends; a SIGKILLed supervisor leaves it: keep it here.
        cmd.env("TMPDIR", &self.dir);
        cmd
    }

    fn stderr_path(&self, run: usize) -> PathBuf {
        self.dir.join(format!("run-{run}.stderr"))
    }

    /// What run number `run` wrote to standard error.
    pub fn stderr_of(&self, run: usize) -> String {
        std::fs::read_to_string(self.stderr_path(run)).unwrap_or_default()
    }

    fn spawn(&self, run: usize, p: u32, fault: Option<&str>) -> Child {
        let mut cmd = self.command(run, p);
        if let Some(f) = fault {
            cmd.arg("--fault-point").arg(f);
        }
        cmd.spawn().expect("spawn sluice-runtime")
    }

    /// Runs the kill schedule, then a last run to completion. Returns how many runs crashed.
    ///
    /// Every random choice comes from one seed (`SLUICE_KILL_SEED`, random when unset), printed
    /// with the schedule. Each step must end the way it was planned: a kill must land while the
    /// job runs (killed by SIGKILL), a fault run must end at its fault point (the runtime's
    /// `sluice-fault: hit POINT` report and exit status [`EXIT_FAULT`]). Anything else — a job
    /// that finished early, a fault point never reached, an error exit — fails the test with
    /// the seed, the schedule and the run's standard error.
    pub fn run_with_kills(&self, random_kills: usize, faults: &[&str]) -> usize {
        let seed = kill_seed();
        let schedule = kill_schedule(seed, random_kills, faults);
        let described: Vec<String> = schedule.iter().enumerate().map(|(i, s)| format!("{}: {s}", i + 1)).collect();
        eprintln!("kill schedule (SLUICE_KILL_SEED={seed}): {}", described.join("; "));
        let fail = |run: usize, what: String| -> ! {
            panic!(
                "{what}\nrun {run} of the schedule (replay with SLUICE_KILL_SEED={seed}): {}\n--- stderr of run {run} ---\n{}",
                described.join("; "),
                tail(&self.stderr_of(run), 40)
            )
        };
        let mut crashed = 0;
        for (i, step) in schedule.iter().enumerate() {
            let run = i + 1;
            let mut child = self.spawn(run, step.parallelism, step.fault());
            let status = match &step.kind {
                KillStep::Kill { after_ms } => {
                    std::thread::sleep(Duration::from_millis(*after_ms));
                    if let Some(early) = child.try_wait().expect("try_wait") {
                        fail(
                            run,
                            format!("the job ended ({early}) before kill {step} landed: the schedule was cut short"),
                        );
                    }
                    let _ = child.kill();
                    child.wait().expect("wait")
                }
                KillStep::Fault(_) => wait_with_timeout(&mut child, Duration::from_secs(60)),
            };
            if let Err(e) = step.check(&status, &self.stderr_of(run)) {
                fail(run, e);
            }
            crashed += 1;
        }
        let run = schedule.len() + 1;
        let mut child = self.spawn(run, 2, None);
        let status = wait_with_timeout(&mut child, Duration::from_secs(300));
        if !status.success() {
            fail(run, format!("final run failed ({status})"));
        }
        crashed
    }

    /// Checks the committed output: every sequence number exactly once in `pass`, every window
    /// count exact and emitted once, no temp file anywhere.
    pub fn verify(&self) {
        let report =
            sluice_runtime::verify::check_file_sink(&self.dir.join("pass"), "value", self.count).expect("read pass");
        assert!(report.is_exactly_once(), "pass-through: {report}");

        let mut windows: HashMap<(i64, i64), i64> = HashMap::new();
        for v in read_committed(&self.dir.join("windows")) {
            let w = &v["value"];
            let key = (w["key"].as_i64().expect("key"), w["start"].as_i64().expect("start"));
            let prev = windows.insert(key, w["value"].as_i64().expect("count"));
            assert!(prev.is_none(), "window {key:?} emitted twice");
        }
        let mut expected: HashMap<(i64, i64), i64> = HashMap::new();
        for seq in 0..self.count {
            let start = (seq - seq % self.window_ms) as i64;
            *expected.entry(((seq % self.keys) as i64, start)).or_default() += 1;
        }
        assert_eq!(windows.len(), expected.len(), "number of windows");
        for (k, v) in &expected {
            assert_eq!(windows.get(k), Some(v), "window {k:?}");
        }
        for sub in ["pass", "windows"] {
            let temps = list(&self.dir.join(sub)).into_iter().filter(|n| n.ends_with(".inprogress")).count();
            assert_eq!(temps, 0, "temp files left in {sub}");
        }
    }
}

/// A minimal HTTP/1.1 exchange with the control endpoint: returns status and body.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The test broker's address (`scripts/services/kafka.sh start` exports it); the Kafka tests fail
/// with set-up instructions rather than skip when it is missing.
pub fn kafka_brokers() -> String {
    match std::env::var("SLUICE_TEST_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ => panic!(
            "SLUICE_TEST_KAFKA_BROKERS is not set: run `bash scripts/services/kafka.sh start && source .tools/run/kafka.env` (or `make test`)"
        ),
    }
}

/// Sends signal `name` (`TERM`, `INT`, …) to `child` with `kill(1)`.
pub fn signal(child: &Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{name} failed");
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Waits for a child, killing it after `limit`.
pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn list(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(e) => e.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `job` to run in this process from its latest checkpoint, with no faults, progress or control
/// endpoint (run id `t`).
pub fn in_process(job: JobConfig) -> RuntimeConfig {
    RuntimeConfig {
        job,
        restore: RestoreMode::Latest,
        run_id: "t".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    }
}

/// Every JSON line of every committed `part-*` file in `dir`.
pub fn read_committed(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for name in list(dir) {
        if !name.starts_with("part-") {
            continue;
        }
        let text = std::fs::read_to_string(dir.join(&name)).expect("read part file");
        for line in text.lines() {
            out.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line in {name}: {e}: {line}")));
        }
    }
    out
}

/// Every fault point of the protocol, each hit on a later pass so some progress comes first.
pub const FAULT_RUNS: &[&str] = &[
    "task.after_precommit@3",
    "snapshot.mid_write@4",
    "coordinator.before_publish@2",
    "coordinator.after_publish@2",
    "sink.mid_commit@2",
    "restore.after_sink_recovery@1",
    "retention.mid_sweep@3",
];

/// The kill harness's seed: `SLUICE_KILL_SEED` when set, else a fresh random one (printed with
/// the schedule, so any run can be replayed).
pub fn kill_seed() -> u64 {
    match std::env::var("SLUICE_KILL_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("SLUICE_KILL_SEED={s:?} is not a u64")),
        Err(_) => rand::random(),
    }
}

/// How one run of a kill schedule ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KillStep {
    /// SIGKILL this many milliseconds after the start.
    Kill {
        /// Delay after the start.
        after_ms: u64,
    },
    /// A crash on purpose at this fault point (`name@N`).
    Fault(String),
}

/// One run of a kill schedule: how it ends, at which parallelism.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRun {
    /// How the run ends.
    pub kind: KillStep,
    /// The job's parallelism in this run.
    pub parallelism: u32,
}

impl PlannedRun {
    /// The `--fault-point` argument of this run.
    pub fn fault(&self) -> Option<&str> {
        match &self.kind {
            KillStep::Fault(f) => Some(f),
            KillStep::Kill { .. } => None,
        }
    }

    /// Checks that the run ended as planned.
    pub fn check(&self, status: &std::process::ExitStatus, stderr: &str) -> Result<(), String> {
        match &self.kind {
            KillStep::Kill { .. } => check_killed(status),
            KillStep::Fault(f) => check_fault_hit(f, status, stderr),
        }
    }
}

impl std::fmt::Display for PlannedRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            KillStep::Kill { after_ms } => write!(f, "kill -9 after {after_ms}ms at p={}", self.parallelism),
            KillStep::Fault(point) => write!(f, "crash at {point} at p={}", self.parallelism),
        }
    }
}

/// The schedule for `seed`: `random_kills` kills at random moments and one run per fault point,
/// shuffled, the first run a kill (some fault points are only reached while restoring a
/// checkpoint), parallelism cycling 1, 2, 3.
pub fn kill_schedule(seed: u64, random_kills: usize, faults: &[&str]) -> Vec<PlannedRun> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds: Vec<KillStep> = faults.iter().map(|f| KillStep::Fault(f.to_string())).collect();
    for _ in 0..random_kills {
        kinds.push(KillStep::Kill { after_ms: rng.random_range(300..1500) });
    }
    for i in (1..kinds.len()).rev() {
        let j = rng.random_range(0..=i);
        kinds.swap(i, j);
    }
    if let Some(first_kill) = kinds.iter().position(|k| matches!(k, KillStep::Kill { .. })) {
        kinds.swap(0, first_kill);
    }
    kinds.into_iter().enumerate().map(|(i, kind)| PlannedRun { kind, parallelism: [2, 3, 1][i % 3] }).collect()
}

/// Ok when the process died of SIGKILL.
pub fn check_killed(status: &std::process::ExitStatus) -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal() {
        Some(9) => Ok(()),
        _ => Err(format!("expected death by SIGKILL, got {status}")),
    }
}

/// Ok when the process crashed at fault point `planned` (`name` or `name@N`): it reported
/// `sluice-fault: hit name` and exited with [`EXIT_FAULT`].
pub fn check_fault_hit(planned: &str, status: &std::process::ExitStatus, stderr: &str) -> Result<(), String> {
    let name = planned.split('@').next().unwrap_or(planned);
    let reported: Vec<&str> = stderr.lines().filter_map(|l| l.strip_prefix(HIT_PREFIX)).collect();
    if status.code() == Some(EXIT_FAULT) && reported.contains(&name) {
        return Ok(());
    }
    if status.success() {
        return Err(format!("fault point {planned} was never reached: the job finished (exit 0)"));
    }
    Err(format!("expected a crash at fault point {planned}, got {status} with fault reports {reported:?}"))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
