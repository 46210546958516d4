//! Backpressure across worker processes: one slow subtask on one worker must slow the whole job
//! (credit-based flow control on the network exchange) instead of letting its input pile up in
//! memory, and checkpoints must still complete while it is slow (their barriers travel behind
//! the queued data, which is bounded).
//!
//! The job, over `run --workers 3`: a generator as fast as it can go, whose records are padded
//! to about 4 KB each before a hash exchange; after it, a map that is slow for key 0 only (a CEL
//! filter over a long list: a hot key) and cheap for key 1, then a file sink. Key 0 is half of
//! the records, so the slow subtask sees ~400 MB of input: without flow control it would pile
//! up in its worker; with it, the generator waits and every worker stays small. The committed
//! output is then checked exactly once.

mod common;

use std::collections::HashMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-runtime");
const COUNT: u64 = 200_000;
const PAD_BYTES: usize = 4096;
/// Half the slow subtask's input (COUNT / 2 × PAD_BYTES ≈ 400 MB): what piles up without flow control.
const RSS_LIMIT_MB: u64 = 200;

fn job_yaml(dir: &std::path::Path) -> String {
    let pad = "x".repeat(PAD_BYTES);
    let list = (1..=80).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
    format!(
        r#"name: backpressure
checkpointing:
  interval: 300ms
  timeout: 60s
  storage:
    uri: file://{dir}/checkpoints
pipeline:
  maxParallelism: 64
  parallelism: 3
  nodes:
    - id: gen
      generator: {{count: {COUNT}, keys: 2, eventTimeStepMs: 1, splits: 6}}
    - id: pad
      map: {{expr: '{{"seq": value, "pad": "{pad}"}}'}}
    - id: slow
      map: {{expr: 'key == 0 ? {{"seq": value.seq, "w": [{list}].filter(i, (i * value.seq) % 7 == 3).size()}} : {{"seq": value.seq, "w": 0}}'}}
    - id: pass
      fileSink: {{path: {dir}/pass}}
  edges:
    - {{from: gen, to: pad}}
    - {{from: pad, to: slow, partition: hash}}
    - {{from: slow, to: pass}}
"#,
        dir = dir.display(),
    )
}

/// The resident set of process `pid` in MB, if it still runs.
fn rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
}

/// The workers' pids, from the supervisor's `attempt …: worker I pid P …` lines.
fn worker_pids(stderr: &str) -> Vec<u32> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("sluice-runtime: attempt "))
        .filter_map(|rest| rest.split_whitespace().nth(4)?.parse().ok())
        .collect()
}

#[test]
fn a_slow_subtask_on_one_worker_slows_the_job_without_piling_up_memory_and_checkpoints_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = dir.path().join("job.yaml");
    std::fs::write(&yaml, job_yaml(dir.path())).expect("write the job");
    let stderr_path = dir.path().join("run.stderr");
    let mut sup = Command::new(BIN)
        .arg("run")
        .arg(&yaml)
        .args(["--workers", "3", "--no-control", "--max-restarts", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn run --workers 3");
    let start = Instant::now();
    let mut peak: HashMap<u32, u64> = HashMap::new();
    let status = loop {
        if let Some(status) = sup.try_wait().expect("try_wait") {
            break status;
        }
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        for pid in worker_pids(&stderr) {
            if let Some(mb) = rss_mb(pid) {
                let p = peak.entry(pid).or_default();
                *p = (*p).max(mb);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(300), "the job did not finish in 300 s");
        std::thread::sleep(Duration::from_millis(25));
    };
    let mut stdout = String::new();
    sup.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.success(), "the job failed ({status}):\n{}", common::tail(&stderr, 40));
    eprintln!("{} in {:.1} s; peak RSS per worker (MB): {peak:?}", stdout.trim(), start.elapsed().as_secs_f64());

    assert_eq!(peak.len(), 3, "RSS seen for every worker: {peak:?}");
    for (pid, mb) in &peak {
        assert!(*mb < RSS_LIMIT_MB, "worker pid {pid} reached {mb} MB: the slow subtask's input piled up ({peak:?})");
    }
    // "…, N checkpoints completed, …": checkpoints went on while the job was slowed.
    let completed: u64 = stdout
        .split(" checkpoints completed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no checkpoint count in {stdout:?}"));
    assert!(completed >= 3, "only {completed} checkpoints completed: {stdout}");

    let mut seen = vec![0u32; COUNT as usize];
    for line in common::read_committed(&dir.path().join("pass")) {
        let seq = line["value"]["seq"].as_u64().expect("seq");
        seen[seq as usize] += 1;
    }
    let missing = seen.iter().filter(|n| **n == 0).count();
    let twice = seen.iter().filter(|n| **n > 1).count();
    assert_eq!((missing, twice), (0, 0), "records missing, and committed more than once");
}
