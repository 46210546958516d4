//! The Kafka connectors' recovery and error paths against the real test broker: the commit
//! after a crash that followed checkpoint completion, lingering transactions of a killed
//! attempt, transaction-timeout checks, and malformed records under each error policy.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

#![cfg(feature = "kafka")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use sluice_runtime::verify::kafka as verify;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A Kafka → Kafka pass-through job document.
fn pass_job(
    dir: &Path,
    source_extra: &str,
    policy: &str,
    sink_extra: &str,
    input: &str,
    output: &str,
) -> std::path::PathBuf {
    let brokers = common::kafka_brokers();
    let yaml = format!(
        r#"name: {name}
checkpointing:
  interval: 200ms
  timeout: 20s
  storage:
    uri: file://{dir}/checkpoints
pipeline:
  errorPolicy: {policy}
  nodes:
    - id: in
      kafkaSource: {{bootstrapServers: "{brokers}", topic: {input}, stopAtEnd: true{source_extra}}}
    - id: out
      kafkaSink: {{bootstrapServers: "{brokers}", topic: {output}, transactionTimeout: 5m{sink_extra}}}
  edges:
    - {{from: in, to: out}}
"#,
        dir = dir.display(),
        // Jobs of one name share transactional ids: tests running at once must not fence each other.
        name = unique("kafka-conn"),
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, yaml).expect("write job");
    path
}

fn run(job: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
        .arg("run")
        .arg(job)
        .args(args)
        .env("RUST_LOG", "warn,rdkafka=off")
        .output()
        .expect("run sluice-runtime")
}

fn topics(partitions: i32) -> (String, String) {
    let (input, output) = (unique("in"), unique("out"));
    verify::create_topic(&common::kafka_brokers(), &input, partitions).expect("input topic");
    verify::create_topic(&common::kafka_brokers(), &output, partitions).expect("output topic");
    (input, output)
}

/// Crash at `fault`, check that the pre-committed output is not visible yet (a transaction is
/// open), recover only (and check nothing is left open), then run to the end and check
/// everything arrived exactly once.
fn crash_then_recover(fault: &str) {
    let brokers = common::kafka_brokers();
    let (input, output) = topics(2);
    verify::produce(&brokers, &input, 20_000, 100, 1_700_000_000_000).expect("produce");
    let dir = tempfile::tempdir().expect("tempdir");
    let job = pass_job(dir.path(), ", ratePerSecond: 10000", "fail", "", &input, &output);
    let crashed = run(&job, &["--fault-point", fault]);
    assert!(!crashed.status.success(), "the fault point {fault} must crash the job");
    let open = verify::open_transactions(&brokers, &output, Duration::ZERO).expect("ends");
    assert!(!open.is_empty(), "after a crash at {fault} a pre-committed transaction must still be open");
    let before = verify::check_topic(&brokers, &output, "seq", 20_000).expect("read");
    assert!(before.lost > 0, "nothing may be visible beyond the committed transactions: {before}");

    // Recovery alone (crash right after it, before any producer starts) closes them all.
    let recovered = run(&job, &["--fault-point", "restore.after_sink_recovery@1"]);
    assert!(!recovered.status.success(), "the run must stop right after recovery");
    let open = verify::open_transactions(&brokers, &output, Duration::from_secs(2)).expect("ends");
    assert!(open.is_empty(), "recovery left transactions open (last stable offset stuck): {open:?}");

    let finished = run(&job, &[]);
    assert!(finished.status.success(), "restart failed: {}", String::from_utf8_lossy(&finished.stderr));
    // Named: should a partition stay behind, the message says which transaction holds it.
    let open = verify::open_transactions_named(&brokers, &output, Duration::from_secs(10)).expect("ends");
    assert!(
        open.is_empty(),
        "transactions left open after the finished run: {open}; its stderr: {}",
        String::from_utf8_lossy(&finished.stderr)
    );
    let report = verify::check_topic(&brokers, &output, "seq", 20_000).expect("read");
    assert!(report.is_exactly_once(), "{report}");
}

#[test]
fn commit_after_a_crash_that_followed_checkpoint_completion() {
    // The manifest is published, no sink was told: the restart must commit the transactions.
    crash_then_recover("coordinator.after_publish@3");
}

#[test]
fn transactions_of_a_killed_attempt_are_aborted_on_restart() {
    // Killed after pre-committing (flushed to the broker, open) but before its checkpoint could
    // complete: no completed checkpoint lists the transaction, so recovery must abort it — the
    // last stable offset advances — and the replay writes those records again exactly once.
    crash_then_recover("task.after_precommit@3");
}

#[test]
fn transaction_timeout_above_the_broker_maximum_is_refused_naming_both_values() {
    let (input, output) = topics(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = pass_job(dir.path(), "", "fail", "", &input, &output);
    let text =
        std::fs::read_to_string(&job).expect("read").replace("transactionTimeout: 5m", "transactionTimeout: 20m");
    std::fs::write(&job, text).expect("write");
    let out = run(&job, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("1200000") && stderr.contains("transaction.max.timeout.ms = 900000"), "{stderr}");
}

#[test]
fn transaction_timeout_shorter_than_a_checkpoint_cycle_is_rejected_with_its_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = pass_job(dir.path(), "", "fail", "", "in", "out");
    let text =
        std::fs::read_to_string(&job).expect("read").replace("transactionTimeout: 5m", "transactionTimeout: 10s");
    std::fs::write(&job, text).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-runtime")).arg("validate").arg(&job).output().expect("validate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(text.contains("pipeline.nodes[1].kafkaSink.transactionTimeout") && text.contains("10000"), "{text}");
}

/// Produces 100 good records with 3 malformed ones among them; returns the input topic.
fn input_with_malformed(input: &str) {
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", common::kafka_brokers()).create().expect("producer");
    for i in 0..100 {
        let payload = format!("{{\"seq\":{i}}}");
        producer.send(BaseRecord::to(input).key("k").payload(&payload)).expect("send");
        if i % 40 == 0 {
            producer.send(BaseRecord::to(input).key("k").payload("{broken")).expect("send");
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

#[test]
fn malformed_records_fail_the_job_by_default_naming_where_they_are() {
    let (input, output) = topics(1);
    input_with_malformed(&input);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&pass_job(dir.path(), "", "fail", "", &input, &output), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("malformed record at {input}/0@1")) && stderr.contains("invalid JSON"),
        "{stderr}"
    );
}

#[test]
fn malformed_records_are_skipped_or_dead_lettered_per_policy() {
    let brokers = common::kafka_brokers();
    for policy in ["skip", "deadLetter"] {
        let (input, output) = topics(1);
        input_with_malformed(&input);
        let dlq = unique("dlq");
        verify::create_topic(&brokers, &dlq, 1).expect("dlq topic");
        let extra = if policy == "deadLetter" { format!(", deadLetterTopic: {dlq}") } else { String::new() };
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run(&pass_job(dir.path(), &extra, policy, "", &input, &output), &[]);
        assert!(out.status.success(), "{policy}: {}", String::from_utf8_lossy(&out.stderr));
        let report = verify::check_topic(&brokers, &output, "seq", 100).expect("read");
        assert!(report.is_exactly_once(), "{policy}: {report}");

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "dlq-check")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&[&dlq]).expect("subscribe");
        let mut dead = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(if policy == "deadLetter" { 20 } else { 3 });
        while dead.len() < 3 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                dead.push(m.payload().map(<[u8]>::to_vec).unwrap_or_default());
            }
        }
        match policy {
            "deadLetter" => {
                assert_eq!(dead, vec![b"{broken".to_vec(); 3], "the dead-letter topic holds the raw records")
            }
            _ => assert!(dead.is_empty(), "skip writes no dead letters"),
        }
    }
}

#[test]
fn a_completed_checkpoint_whose_transaction_the_broker_aborted_fails_the_job_as_data_loss() {
    let brokers = common::kafka_brokers();
    let (input, output) = topics(1);
    verify::produce(&brokers, &input, 20_000, 100, 1_700_000_000_000).expect("produce");
    let dir = tempfile::tempdir().expect("tempdir");
    let job = pass_job(dir.path(), ", ratePerSecond: 10000", "fail", "", &input, &output);
    let crashed = run(&job, &["--fault-point", "coordinator.after_publish@3"]);
    assert!(!crashed.status.success());
    // Someone else takes over the sink's transactional ids: the broker aborts the pre-committed
    // transactions of the completed checkpoint.
    let text = std::fs::read_to_string(&job).expect("job");
    let name = text.lines().next().and_then(|l| l.strip_prefix("name: ")).expect("job name").to_owned();
    for slot in 0..4 {
        let id = format!("sluice-{name}-out-0-{slot}");
        let bootstrap = brokers.clone();
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(sluice_runtime::connectors::kafka::init_producer_id(
                &sluice_runtime::connectors::kafka::Cluster::plaintext(&bootstrap),
                &id,
                60_000,
            ))
            .expect("fence");
    }
    let out = run(&job, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(sluice_crds::contract::control::EXIT_DATA_LOSS)), "{stderr}");
    assert!(
        stderr.contains("of completed checkpoint")
            && stderr.contains(&format!("sluice-{name}-out-0-"))
            && stderr.contains("lost"),
        "the error names checkpoint, transactional id and the loss: {stderr}"
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[test]
fn start_from_a_timestamp_and_offsets_committed_back_to_the_group() {
    let brokers = common::kafka_brokers();
    let (input, output) = topics(2);
    // Two rounds of 500 records, 2 s apart; the job starts from a moment between them. (Record
    // timestamps are the production time, so brokers that look up by log-append time agree.)
    verify::produce(&brokers, &input, 500, 10, now_ms()).expect("produce");
    std::thread::sleep(Duration::from_millis(1_500));
    let start = now_ms();
    std::thread::sleep(Duration::from_millis(500));
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    for i in 500..1_000 {
        let payload = format!("{{\"seq\":{i}}}");
        producer.send(BaseRecord::to(&input).key(&format!("{}", i % 10)).payload(&payload)).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");

    let group = unique("group");
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(", startFrom: timestamp, startTimestampMs: {start}, groupId: {group}");
    let out = run(&pass_job(dir.path(), &extra, "fail", "", &input, &output), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut seqs: Vec<i64> = verify::read_committed(&brokers, &output)
        .expect("read")
        .into_iter()
        .filter_map(|(_, v)| v.get_path("seq").and_then(sluice_runtime::value::Value::as_i64))
        .collect();
    seqs.sort_unstable();
    let (first, last, n) = (seqs.first().copied(), seqs.last().copied(), seqs.len());
    assert_eq!((first, last, n), (Some(500), Some(999), 500), "exactly the records produced after the start time");

    // Lag monitoring: the group's committed offsets reach each partition's end.
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", &group).create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&input, 0);
    tpl.add_partition(&input, 1);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).expect("committed offsets");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => o,
            other => panic!("partition {} has no committed offset: {other:?}", e.partition()),
        })
        .sum();
    assert_eq!(total, 1_000, "committed offsets are each partition's end");
}

#[test]
fn at_least_once_sink_loses_nothing_across_a_crash() {
    let brokers = common::kafka_brokers();
    let (input, output) = topics(2);
    const RECORDS: u64 = 10_000;
    verify::produce(&brokers, &input, RECORDS, 100, 1_700_000_000_000).expect("produce");
    let dir = tempfile::tempdir().expect("tempdir");
    // 5 s of input at 200 ms checkpoints, and the crash after the sixth pre-commit: past the
    // producer's start-up (its first flush can hold the first checkpoints for most of a
    // second, so the early ones may all cover the same records) and well before the end.
    let job = pass_job(dir.path(), ", ratePerSecond: 2000", "fail", ", semantic: at-least-once", &input, &output);
    let crashed = run(&job, &["--fault-point", "task.after_precommit@6"]);
    assert!(!crashed.status.success(), "the fault point must crash the job");
    let before = verify::check_topic(&brokers, &output, "seq", RECORDS).expect("read");
    assert!(before.seen > 0 && before.seen < RECORDS, "the crash must come mid-stream: {before}");
    let finished = run(&job, &[]);
    assert!(finished.status.success(), "restart failed: {}", String::from_utf8_lossy(&finished.stderr));
    let report = verify::check_topic(&brokers, &output, "seq", RECORDS).expect("read");
    assert_eq!((report.lost, report.out_of_place), (0, 0), "at-least-once: {report}");
    assert!(report.duplicated > 0, "the replay after the crash writes some records again: {report}");
}

#[test]
fn the_kafka_verifier_reports_a_planted_duplicate_a_planted_loss_and_an_open_transaction() {
    let brokers = common::kafka_brokers();
    let topic = unique("planted");
    verify::create_topic(&brokers, &topic, 2).expect("topic");
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("producer");
    // 0..100 with 17 twice and 42 missing.
    for i in (0..100).filter(|i| *i != 42).chain([17]) {
        let payload = format!("{{\"seq\":{i}}}");
        producer.send(BaseRecord::<str, str>::to(&topic).payload(&payload)).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let verify_cli = || {
        Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
            .args(["verify", "kafka", "--bootstrap", &brokers, "--topic", &topic, "--count", "100"])
            .env("RUST_LOG", "off")
            .output()
            .expect("verify")
    };
    let out = verify_cli();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a planted fault must fail the check: {stdout}");
    assert!(
        stdout.contains("1 lost, 1 duplicated") && stdout.contains("lost 42") && stdout.contains("17 ×2"),
        "{stdout}"
    );

    // An open transaction (a job that left one behind) also fails the check, even with perfect data.
    let clean = unique("clean");
    verify::create_topic(&brokers, &clean, 1).expect("topic");
    verify::produce(&brokers, &clean, 100, 10, 1_700_000_000_000).expect("produce");
    let txn: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("transactional.id", unique("left-open"))
        .create()
        .expect("transactional producer");
    txn.init_transactions(Duration::from_secs(30)).expect("init");
    txn.begin_transaction().expect("begin");
    txn.send(BaseRecord::<str, str>::to(&clean).payload("{\"seq\":5}")).expect("send");
    txn.flush(Duration::from_secs(30)).expect("flush");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
        .args(["verify", "kafka", "--bootstrap", &brokers, "--topic", &clean, "--count", "100"])
        .env("RUST_LOG", "off")
        .output()
        .expect("verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("open transaction") && stdout.contains("left-open"), "{stdout}");
    txn.abort_transaction(Duration::from_secs(30)).expect("abort");
}
