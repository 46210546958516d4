//! The Kafka → Kafka exactly-once kill test: ≥ 1M sequence-numbered records on a 3-partition
//! topic → key_by (the record key) → windowed count + pass-through → two exactly-once Kafka
//! sinks; ≥ 20 random SIGKILLs plus a crash at every two-phase-commit phase (before pre-commit,
//! after pre-commit before ack, before and after the manifest publish, mid-commit, mid-recovery,
//! after recovery), restarting at parallelism 1, 2 and 3. Afterwards a read_committed consumer
//! must see every input exactly once in the pass-through topic, exactly the expected window
//! counts, and no transaction of the job may be left open.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

#![cfg(feature = "kafka")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::KillJob;
use sluice_runtime::value::Value;
use sluice_runtime::verify::kafka as verify;

const RECORDS: u64 = 1_000_000;
const KEYS: u64 = 1000;
const WINDOW_MS: i64 = 100_000;
const START_MS: i64 = 1_700_000_000_000;

/// Every two-phase-commit phase, each hit after some progress.
const KAFKA_FAULTS: &[&str] = &[
    "sink.before_precommit@3",
    "task.after_precommit@3",
    "coordinator.before_publish@2",
    "coordinator.after_publish@2",
    "sink.mid_commit@2",
    "sink.mid_recovery@1",
    "restore.after_sink_recovery@1",
];

fn job_yaml(brokers: &str, input: &str, pass: &str, windows: &str, checkpoints: &str, rate: u64) -> String {
    format!(
        r#"name: kafka-kill
checkpointing:
  interval: 200ms
  timeout: 20s
  retained: 2
  tolerableFailures: 1000
  storage:
    uri: file://{checkpoints}
pipeline:
  maxParallelism: 64
  parallelism: {{p}}
  nodes:
    - id: in
      kafkaSource: {{bootstrapServers: "{brokers}", topic: {input}, stopAtEnd: true, ratePerSecond: {rate}}}
    - id: win
      window: {{size: {WINDOW_MS}ms, function: count}}
    - id: win-out
      parallelism: 1
      kafkaSink: {{bootstrapServers: "{brokers}", topic: {windows}, transactionTimeout: 5m}}
    - id: pass
      kafkaSink: {{bootstrapServers: "{brokers}", topic: {pass}, transactionTimeout: 5m}}
  edges:
    - {{from: in, to: win, partition: hash}}
    - {{from: win, to: win-out, partition: rebalance}}
    - {{from: in, to: pass}}
"#
    )
}

#[test]
fn kafka_to_kafka_job_killed_and_restarted_commits_every_record_exactly_once() {
    let brokers = common::kafka_brokers();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (input, pass, windows) = (format!("in-{run}"), format!("pass-{run}"), format!("win-{run}"));
    verify::create_topic(&brokers, &input, 3).expect("input topic");
    verify::create_topic(&brokers, &pass, 3).expect("pass topic");
    verify::create_topic(&brokers, &windows, 1).expect("windows topic");
    verify::produce(&brokers, &input, RECORDS, KEYS, START_MS).expect("produce input");

    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoints = dir.path().join("checkpoints").display().to_string();
    let job = KillJob {
        count: RECORDS,
        keys: KEYS,
        window_ms: WINDOW_MS as u64,
        rate: 30_000,
        storage_yaml: String::new(),
        dir: dir.path().to_path_buf(),
        custom_yaml: Some(job_yaml(&brokers, &input, &pass, &windows, &checkpoints, 30_000)),
    };
    let crashed = job.run_with_kills(20, KAFKA_FAULTS);
    assert!(crashed >= 20, "only {crashed} runs crashed: the kills did not land mid-job");

    for topic in [&pass, &windows] {
        let open = verify::open_transactions_named(&brokers, topic, Duration::from_secs(10)).expect("partition ends");
        if !open.is_empty() {
            keep(dir, format!("transactions left open in {topic}: {open}"));
        }
    }
    let report = verify::check_topic(&brokers, &pass, "seq", RECORDS).expect("read pass-through");
    if !report.is_exactly_once() {
        let origins = sluice_runtime::verify::kafka_origins::duplicate_origins(&brokers, &pass, "seq", 12)
            .unwrap_or_else(|e| vec![format!("(origins unknown: {e})")]);
        keep(dir, format!("pass-through: {report}\nduplicated runs:\n  {}", origins.join("\n  ")));
    }

    let mut seen: HashMap<(String, i64), i64> = HashMap::new();
    for (_, w) in verify::read_committed(&brokers, &windows).expect("read windows") {
        let key = match w.get_path("key") {
            Some(Value::Str(s)) => s.to_string(),
            other => panic!("window without a text key: {other:?}"),
        };
        let start = w.get_path("start").and_then(Value::as_i64).expect("window start");
        let count = w.get_path("value").and_then(Value::as_i64).expect("window count");
        assert!(seen.insert((key.clone(), start), count).is_none(), "window {key}@{start} emitted twice");
    }
    let mut expected: HashMap<(String, i64), i64> = HashMap::new();
    for seq in 0..RECORDS {
        let ts = START_MS + seq as i64;
        *expected.entry(((seq % KEYS).to_string(), ts - ts.rem_euclid(WINDOW_MS))).or_default() += 1;
    }
    assert_eq!(seen.len(), expected.len(), "number of windows");
    for (k, v) in &expected {
        assert_eq!(seen.get(k), Some(v), "window {k:?}");
    }
}

/// Fails the test with `what`, keeping the runs' directory (their logs name every transaction
/// step of every run) instead of deleting it.
fn keep(dir: tempfile::TempDir, what: String) -> ! {
    let kept = dir.keep();
    panic!("{what}\nthe runs' logs and checkpoints are kept in {}", kept.display())
}
