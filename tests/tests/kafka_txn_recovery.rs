//! The sink's recovery primitive (sluice-runtime `connectors::kafka::txn`): a transaction
//! pre-committed by a process that then crashed is finished from another process using
//! only its transactional id and the producer id/epoch recorded at pre-commit.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

use std::process::Command;

use rdkafka::producer::Producer as _;
use sluice_runtime::connectors::kafka::{
    Error, PartitionEnds, ProducerIdentity, TxnOutcome, end_transaction, first_batch_identity, init_producer_id,
    partition_ends,
};
use sluice_tests::kafka::{
    Isolation, TIMEOUT, cluster, create_topic, payloads, read_all, send_all, transactional_producer, unique, values,
};

const PARTITIONS: i32 = 2;
const HELPER_ENV: &str = "SLUICE_TEST_CRASH_PRODUCER";
const RECORDS: usize = 10;

/// Child-process half of the crash tests: begins a transaction, produces, flushes
/// (pre-commit), prints the first delivery of each partition, then aborts the process
/// without committing. Only meaningful when spawned by [`crash_after_precommit`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper: run as a child process by the crash tests"]
async fn crashing_producer_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        eprintln!("{HELPER_ENV} unset: this helper only runs as a child of the crash tests");
        return;
    };
    let (topic, transactional_id) = spec.split_once(' ').expect("topic and transactional id");
    let producer = transactional_producer(transactional_id).expect("producer");
    producer.begin_transaction().expect("begin");
    let deliveries = send_all(&producer, topic, PARTITIONS, &values("crashed", RECORDS)).await.expect("send");
    producer.flush(TIMEOUT).expect("flush");
    for partition in 0..PARTITIONS {
        let first = deliveries
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, offset)| *offset)
            .min()
            .expect("a record per partition");
        println!("DELIVERED {partition} {first}");
    }
    use std::io::Write as _;
    std::io::stdout().flush().expect("flush stdout");
    std::process::abort();
}

/// Runs [`crashing_producer_helper`] in a child process and returns the first offset it
/// delivered in each partition.
fn crash_after_precommit(topic: &str, transactional_id: &str) -> Vec<(i32, i64)> {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "crashing_producer_helper", "--nocapture", "--test-threads", "1"])
        .env(HELPER_ENV, format!("{topic} {transactional_id}"))
        .output()
        .expect("spawn helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "the helper must crash, it exited with {}", output.status);
    let delivered: Vec<(i32, i64)> = stdout
        .lines()
        // The harness prints "test name ... " without a newline before the first line.
        .filter_map(|line| line.split_once("DELIVERED ").map(|(_, rest)| rest))
        .map(|rest| {
            let (p, o) = rest.split_once(' ').expect("partition offset");
            (p.parse().expect("partition"), o.parse().expect("offset"))
        })
        .collect();
    assert_eq!(
        delivered.len(),
        usize::try_from(PARTITIONS).expect("partitions"),
        "helper output:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    delivered
}

/// What the sink records at pre-commit: the producer identity, read from the header of the
/// transaction's first batch in each partition (all partitions must agree).
async fn recorded_identity(topic: &str, delivered: &[(i32, i64)]) -> ProducerIdentity {
    let mut identities = Vec::new();
    for &(partition, offset) in delivered {
        identities.push(first_batch_identity(&cluster(), topic, partition, offset).await.expect("batch header"));
    }
    identities.dedup();
    assert_eq!(identities.len(), 1, "one transaction, one identity: {identities:?}");
    identities[0]
}

async fn assert_no_open_transaction(topic: &str) {
    for partition in 0..PARTITIONS {
        let PartitionEnds { high_watermark, last_stable_offset } =
            partition_ends(&cluster(), topic, partition).await.expect("ends");
        assert_eq!(last_stable_offset, high_watermark, "{topic}/{partition} has an open transaction");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_precommitted_transaction_is_committed_from_its_recorded_identity_exactly_once() {
    let topic = unique("recover-commit");
    let transactional_id = unique("txn");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let delivered = crash_after_precommit(&topic, &transactional_id);
    let identity = recorded_identity(&topic, &delivered).await;

    // The crashed transaction is open: written, not visible, blocking the LSO.
    assert!(read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read").is_empty());
    let ends = partition_ends(&cluster(), &topic, 0).await.expect("ends");
    assert!(ends.last_stable_offset < ends.high_watermark, "transaction should be open: {ends:?}");

    end_transaction(&cluster(), &transactional_id, identity, TxnOutcome::Commit)
        .await
        .expect("commit from the recorded identity");
    // A repeated commit (recovery crashed after committing, runs again) is fine.
    end_transaction(&cluster(), &transactional_id, identity, TxnOutcome::Commit)
        .await
        .expect("repeated commit is idempotent");

    let read = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read");
    assert_eq!(payloads(&read), values("crashed", RECORDS), "exactly once");
    assert_no_open_transaction(&topic).await;

    // The transactional id stays usable: a new producer takes over with a newer epoch.
    let next = transactional_producer(&transactional_id).expect("next producer");
    next.begin_transaction().expect("begin");
    send_all(&next, &topic, PARTITIONS, &values("next", 4)).await.expect("send");
    next.commit_transaction(TIMEOUT).expect("commit");
    let read = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read");
    assert_eq!(read.len(), RECORDS + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transaction_cannot_be_committed_and_the_error_names_it() {
    let topic = unique("recover-aborted");
    let transactional_id = unique("txn");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let delivered = crash_after_precommit(&topic, &transactional_id);
    let identity = recorded_identity(&topic, &delivered).await;

    end_transaction(&cluster(), &transactional_id, identity, TxnOutcome::Abort).await.expect("abort");
    let error = end_transaction(&cluster(), &transactional_id, identity, TxnOutcome::Commit)
        .await
        .expect_err("an aborted transaction must not commit");
    assert_lost(&error, &transactional_id, identity);
    assert!(read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read").is_empty());
    assert_no_open_transaction(&topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_transaction_cannot_be_committed_and_lingering_data_is_aborted() {
    let topic = unique("recover-fenced");
    let transactional_id = unique("txn");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let delivered = crash_after_precommit(&topic, &transactional_id);
    let identity = recorded_identity(&topic, &delivered).await;

    // Recovery of a transaction the checkpoint does not list: fence the id, which aborts
    // the lingering transaction and unblocks read_committed consumers.
    let fenced_by = init_producer_id(&cluster(), &transactional_id, 60_000).await.expect("init producer id");
    assert_eq!(fenced_by.producer_id, identity.producer_id);
    assert!(fenced_by.producer_epoch > identity.producer_epoch, "{fenced_by:?} vs {identity:?}");
    assert_no_open_transaction(&topic).await;
    assert!(read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read").is_empty());

    let error = end_transaction(&cluster(), &transactional_id, identity, TxnOutcome::Commit)
        .await
        .expect_err("a fenced transaction must not commit");
    assert_lost(&error, &transactional_id, identity);
}

fn assert_lost(error: &Error, transactional_id: &str, identity: ProducerIdentity) {
    match error {
        Error::TransactionLost { transactional_id: id, producer_id, producer_epoch, .. } => {
            assert_eq!(id, transactional_id);
            assert_eq!((*producer_id, *producer_epoch), (identity.producer_id, identity.producer_epoch));
        }
        other => panic!("expected TransactionLost, got {other}"),
    }
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(message.contains(transactional_id), "{message}");
    assert!(message.contains(&identity.producer_id.to_string()), "{message}");
}
