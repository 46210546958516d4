//! Event time across crashes and rescales (issue 13, defect 1): a jsonFile source over several
//! time-ordered files → keyBy → tumbling windows → exactly-once files. Whatever the kills, the
//! parallelism of each run and the dealing of files that follows, every record whose event
//! time is within `maxOutOfOrderness` of its own file's maximum lands in its window, every
//! window is emitted exactly once with its exact count, and the pass-through is exact.
//!
//! The expected output is computed here from the input alone (no engine code). Seeded:
//! `EVENT_TIME_SEED=N` replays a schedule; the seed and schedule are printed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, read_committed, wait_with_timeout};
use rand::{Rng, SeedableRng};

const FILES: usize = 8;
const WINDOW_MS: i64 = 20_000;
const LAG_MS: i64 = 2_000;
const KEYS: i64 = 50;

/// Writes `FILES` files, file `f` covering event times `[f·T, (f+1)·T)` in order, each record
/// out of order by at most `LAG_MS` within its file. Returns (n, key, ts) of every record.
fn write_input(dir: &Path, per_file: i64, rng: &mut impl Rng) -> Vec<(i64, i64, i64)> {
    std::fs::create_dir_all(dir).expect("input dir");
    let span = 100_000;
    let mut all = Vec::new();
    for f in 0..FILES as i64 {
        let mut text = String::new();
        for j in 0..per_file {
            let n = f * per_file + j;
            let base = f * span + j * span / per_file;
            let ts = (base - rng.random_range(0..=LAG_MS)).max(f * span);
            let key = rng.random_range(0..KEYS);
            text.push_str(&format!("{{\"n\":{n},\"k\":{key},\"ts\":{ts}}}\n"));
            all.push((n, key, ts));
        }
        std::fs::write(dir.join(format!("part-{f:02}.jsonl")), text).expect("write input");
    }
    all
}

fn job_yaml(dir: &Path, p: u32) -> String {
    let d = dir.display();
    format!(
        r#"name: event-time
checkpointing:
  interval: 200ms
  retained: 2
  tolerableFailures: 1000
  storage:
    uri: file://{d}/checkpoints
pipeline:
  maxParallelism: 32
  parallelism: {p}
  nodes:
    - id: in
      jsonFile: {{path: {d}/input, timestampField: ts, maxOutOfOrderness: {LAG_MS}ms}}
    - id: by-key
      keyBy: {{field: k}}
    - id: win
      window: {{size: {WINDOW_MS}ms, function: count}}
    - id: windows
      fileSink: {{path: {d}/windows}}
    - id: pass
      fileSink: {{path: {d}/pass}}
  edges:
    - {{from: in, to: by-key}}
    - {{from: by-key, to: win, partition: hash}}
    - {{from: win, to: windows}}
    - {{from: in, to: pass, partition: rebalance}}
"#
    )
}

fn command(dir: &Path, run: usize, p: u32) -> Command {
    let job = dir.join("job.yaml");
    std::fs::write(&job, job_yaml(dir, p)).expect("write job");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-runtime"));
    cmd.arg("run").arg(&job).arg("--run-id").arg(format!("r{run}"));
    cmd.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

fn run_to_end(mut cmd: Command) {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every record exactly once in `pass`; every (key, window) exactly once with its exact count.
fn verify(dir: &Path, input: &[(i64, i64, i64)]) {
    let mut seen: Vec<i64> =
        read_committed(&dir.join("pass")).iter().map(|v| v["value"]["n"].as_i64().expect("n")).collect();
    seen.sort_unstable();
    let want: Vec<i64> = input.iter().map(|r| r.0).collect();
    let lost = want.iter().filter(|n| seen.binary_search(n).is_err()).count();
    assert_eq!(seen.len(), want.len(), "pass-through: {} records, {lost} lost", seen.len());
    assert_eq!(seen, want, "pass-through exactly once");

    let mut expected: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for &(_, key, ts) in input {
        *expected.entry((key, ts - ts.rem_euclid(WINDOW_MS))).or_default() += 1;
    }
    let mut got: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut twice = 0;
    for v in read_committed(&dir.join("windows")) {
        let w = &v["value"];
        let id = (w["key"].as_i64().expect("key"), w["start"].as_i64().expect("start"));
        if got.insert(id, w["value"].as_i64().expect("count")).is_some() {
            twice += 1;
        }
    }
    let missing = expected.keys().filter(|k| !got.contains_key(k)).count();
    let wrong = expected.iter().filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v)).count();
    assert!(
        twice == 0 && missing == 0 && wrong == 0 && got.len() == expected.len(),
        "windows: {} expected, {} emitted, {twice} emitted twice, {missing} missing, {wrong} with a wrong count",
        expected.len(),
        got.len()
    );
    for sub in ["pass", "windows"] {
        let temps = std::fs::read_dir(dir.join(sub))
            .expect("sink dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with('.')))
            .count();
        assert_eq!(temps, 0, "temp files left in {sub}");
    }
}

fn seed() -> u64 {
    std::env::var("EVENT_TIME_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261130)
}

#[test]
fn kills_and_rescales_lose_no_event_time_data() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let input = write_input(&dir.join("input"), 40_000, &mut rng);
    let mut schedule = Vec::new();
    for run in 1..=8usize {
        let p = [1, 2, 3][run % 3];
        let delay = rng.random_range(200..1200);
        schedule.push((run, p, delay));
    }
    eprintln!("seed {seed} (EVENT_TIME_SEED={seed} to replay); runs (run, parallelism, kill after ms): {schedule:?}");
    let mut landed = 0;
    for &(run, p, delay) in &schedule {
        let mut child = command(dir, run, p).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().expect("try_wait").is_none() {
            landed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("{landed} of {} kills landed mid-run", schedule.len());
    run_to_end(command(dir, 100, 1));
    verify(dir, &input);
}

fn stop_with_savepoint(dir: &Path, run: usize, p: u32, restore: Option<&str>, after: Duration) -> Option<String> {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = command(dir, run, p);
    cmd.arg("--control-addr").arg(&addr);
    if let Some(r) = restore {
        cmd.arg("--restore").arg(r);
    }
    let mut child = cmd.spawn().expect("spawn");
    let start = Instant::now();
    while !matches!(http(&addr, "GET", "/readyz", None), Ok((200, _))) {
        if child.try_wait().expect("try_wait").is_some() {
            return None; // finished before it could be stopped
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(after);
    let location = match http(&addr, "POST", "/v1/stop", Some(r#"{"savepoint": true}"#)) {
        Ok((200, body)) => {
            let v: serde_json::Value = serde_json::from_str(&body).expect("stop response");
            v["savepoint"].as_str().map(str::to_string)
        }
        _ => None, // the job ended first
    };
    let status = wait_with_timeout(&mut child, Duration::from_secs(60));
    assert!(status.success(), "stop-with-savepoint exits 0, got {status}");
    location
}

#[test]
fn stop_with_savepoint_and_restore_at_other_parallelisms_keeps_every_window() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let input = write_input(&dir.join("input"), 40_000, &mut rng);
    let mut from: Option<String> = None;
    let mut finished = false;
    for (run, p) in [(1, 1), (2, 2), (3, 3)] {
        let after = Duration::from_millis(rng.random_range(100..500));
        eprintln!("seed {seed}: run {run} at parallelism {p}, stop after {after:?}");
        match stop_with_savepoint(dir, run, p, from.as_deref(), after) {
            Some(sp) => from = Some(sp),
            None => {
                finished = true; // the input ended before the stop: nothing to resume
                break;
            }
        }
    }
    if !finished {
        let mut last = command(dir, 10, 1);
        if let Some(sp) = &from {
            last.arg("--restore").arg(sp);
        }
        run_to_end(last);
    }
    verify(dir, &input);
}
