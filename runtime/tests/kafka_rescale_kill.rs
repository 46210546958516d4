//! Issue 13, found defect 7: an exactly-once Kafka sink *forwarded from a window at the job's
//! parallelism* (so its subtask count changes with every rescale), killed with SIGKILL at
//! seeded random moments and restarted at parallelism 1, 2, 3, 1, … (down-scales included),
//! then run to the end. An independent read_committed check afterwards: every partition of
//! both output topics readable to its end (no transaction left open — the coordinator's
//! ListTransactions/DescribeTransactions name any that is), the pass-through exactly once,
//! and every window count exact and emitted once.
//!
//! The seed (and the schedule it draws) is printed; `SLUICE_TEST_SEED=N` replays a schedule.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

#![cfg(feature = "kafka")]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};
use sluice_runtime::value::Value;
use sluice_runtime::verify::kafka as verify;

const RECORDS: u64 = 150_000;
const KEYS: u64 = 200;
const WINDOW_MS: i64 = 5_000;
const START_MS: i64 = 1_700_000_000_000;
const RATE: u64 = 25_000;
const KILLS: usize = 10;
/// A schedule replays from this seed unless `SLUICE_TEST_SEED` says otherwise.
const DEFAULT_SEED: u64 = 13_007;

fn job_yaml(brokers: &str, input: &str, pass: &str, windows: &str, checkpoints: &str, p: u32) -> String {
    format!(
        r#"name: kafka-rescale-kill
checkpointing:
  interval: 200ms
  timeout: 20s
  retained: 2
  tolerableFailures: 1000
  storage:
    uri: file://{checkpoints}
pipeline:
  maxParallelism: 64
  parallelism: {p}
  nodes:
    - id: in
      kafkaSource: {{bootstrapServers: "{brokers}", topic: {input}, stopAtEnd: true, ratePerSecond: {RATE}}}
    - id: win
      window: {{size: {WINDOW_MS}ms, function: count}}
    - id: win-out
      kafkaSink: {{bootstrapServers: "{brokers}", topic: {windows}, transactionTimeout: 5m}}
    - id: pass
      kafkaSink: {{bootstrapServers: "{brokers}", topic: {pass}, transactionTimeout: 5m}}
  edges:
    - {{from: in, to: win, partition: hash}}
    - {{from: win, to: win-out}}
    - {{from: in, to: pass}}
"#
    )
}

/// One planned attempt: its parallelism and when it is killed (`None`: runs to the end).
#[derive(Clone, Copy, Debug)]
struct Attempt {
    parallelism: u32,
    kill_after: Option<Duration>,
}

/// `kills` attempts killed 0.2–1.2 s after their start, parallelism cycling 1, 2, 3 (so
/// every change — 1→2, 2→3, 3→1 — occurs), then one run to the end.
fn schedule(seed: u64, kills: usize) -> Vec<Attempt> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut attempts: Vec<Attempt> = (0..kills)
        .map(|i| Attempt {
            parallelism: [1, 2, 3][i % 3],
            kill_after: Some(Duration::from_millis(rng.random_range(200..=1200))),
        })
        .collect();
    attempts.push(Attempt { parallelism: [1, 2, 3][kills % 3], kill_after: None });
    attempts
}

fn spawn(dir: &Path, yaml: &str, run: usize) -> Child {
    let job = dir.join(format!("job-{run}.yaml"));
    std::fs::write(&job, yaml).expect("write job");
    let log = std::fs::File::create(dir.join(format!("run-{run}.log"))).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
        .arg("run")
        .arg(&job)
        .arg("--run-id")
        .arg(format!("r{run}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn sluice-runtime")
}

fn log_of(dir: &Path, run: usize) -> String {
    std::fs::read_to_string(dir.join(format!("run-{run}.log"))).unwrap_or_default()
}

/// Runs the attempts; each killed one must still be running when its kill lands.
fn run_schedule(dir: &Path, attempts: &[Attempt], yaml: impl Fn(u32) -> String) {
    for (run, attempt) in attempts.iter().enumerate() {
        let mut child = spawn(dir, &yaml(attempt.parallelism), run);
        let started = Instant::now();
        let limit = attempt.kill_after.unwrap_or(Duration::from_secs(240));
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if started.elapsed() >= limit {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        match (attempt.kill_after, status) {
            (Some(_), None) => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
            }
            (Some(after), Some(status)) => panic!(
                "run {run} (p={}) ended ({status}) before its kill at {after:?}: the rest of the schedule would not run\n{}",
                attempt.parallelism,
                log_of(dir, run)
            ),
            (None, Some(status)) if status.success() => {}
            (None, Some(status)) => panic!("final run failed ({status}):\n{}", log_of(dir, run)),
            (None, None) => {
                let _ = child.kill();
                panic!("final run did not finish within {limit:?}:\n{}", log_of(dir, run));
            }
        }
    }
}

/// Window counts as read back: (key, start) → count; panics on a window emitted twice.
fn read_windows(brokers: &str, topic: &str) -> HashMap<(String, i64), i64> {
    let mut seen = HashMap::new();
    for (_, w) in verify::read_committed(brokers, topic).expect("read windows") {
        let key = match w.get_path("key") {
            Some(Value::Str(s)) => s.to_string(),
            other => panic!("window without a text key: {other:?}"),
        };
        let start = w.get_path("start").and_then(Value::as_i64).expect("window start");
        let count = w.get_path("value").and_then(Value::as_i64).expect("window count");
        assert!(seen.insert((key.clone(), start), count).is_none(), "window {key}@{start} emitted twice");
    }
    seen
}

#[test]
fn window_sink_at_job_parallelism_survives_kills_across_rescales() {
    let brokers = std::env::var("SLUICE_TEST_KAFKA_BROKERS").unwrap_or_default();
    assert!(
        !brokers.is_empty(),
        "SLUICE_TEST_KAFKA_BROKERS is not set: run `bash scripts/services/kafka.sh start && source .tools/run/kafka.env`"
    );
    let seed = std::env::var("SLUICE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    let attempts = schedule(seed, KILLS);
    let plan: Vec<String> = attempts
        .iter()
        .map(|a| match a.kill_after {
            Some(d) => format!("p{} kill@{}ms", a.parallelism, d.as_millis()),
            None => format!("p{} to the end", a.parallelism),
        })
        .collect();
    println!("seed {seed} (replay: SLUICE_TEST_SEED={seed}); schedule: {}", plan.join(", "));

    let run = uuid::Uuid::new_v4().simple().to_string();
    let (input, pass, windows) = (format!("in-{run}"), format!("pass-{run}"), format!("win-{run}"));
    for topic in [&input, &pass, &windows] {
        verify::create_topic(&brokers, topic, 3).expect("create topic");
    }
    verify::produce(&brokers, &input, RECORDS, KEYS, START_MS).expect("produce input");

    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints").display().to_string();
    run_schedule(dir.path(), &attempts, |p| job_yaml(&brokers, &input, &pass, &windows, &checkpoints, p));

    for topic in [&pass, &windows] {
        let open = verify::open_transactions_named(&brokers, topic, Duration::from_secs(10)).expect("partition ends");
        assert!(open.is_empty(), "seed {seed}: {topic}: {open}");
    }
    let report = verify::check_topic(&brokers, &pass, "seq", RECORDS).expect("read pass-through");
    assert!(report.is_exactly_once(), "seed {seed}: pass-through: {report}");

    let seen = read_windows(&brokers, &windows);
    let mut expected: HashMap<(String, i64), i64> = HashMap::new();
    for seq in 0..RECORDS {
        let ts = START_MS + seq as i64;
        *expected.entry(((seq % KEYS).to_string(), ts - ts.rem_euclid(WINDOW_MS))).or_default() += 1;
    }
    let missing = expected.keys().filter(|k| !seen.contains_key(*k)).count();
    let wrong = expected.iter().filter(|(k, v)| seen.get(*k).is_some_and(|c| c != *v)).count();
    let extra = seen.keys().filter(|k| !expected.contains_key(*k)).count();
    assert_eq!(
        (missing, wrong, extra),
        (0, 0, 0),
        "seed {seed}: of {} windows, (missing, wrong count, unexpected)",
        expected.len()
    );
}
