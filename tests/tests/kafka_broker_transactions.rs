//! The test broker's transaction semantics (tests/broker: tansu + EndTxn), proven with
//! librdkafka before anything builds on them: commit visible to read_committed, abort
//! invisible, fencing by a newer `init_transactions`, and the last stable offset.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    producer::Producer as _,
};
use sluice_runtime::connectors::kafka::{PartitionEnds, broker_config, partition_ends};
use sluice_tests::kafka::{
    Isolation, TIMEOUT, cluster, create_topic, payloads, read_all, read_committed_small_fetches, send_all,
    transactional_producer, unique, values,
};

const PARTITIONS: i32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transaction_is_visible_to_read_committed_consumers() {
    let topic = unique("commit");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let producer = transactional_producer(&unique("txn")).expect("producer");
    let sent = values("committed", 30);

    producer.begin_transaction().expect("begin");
    send_all(&producer, &topic, PARTITIONS, &sent).await.expect("send");
    producer.commit_transaction(TIMEOUT).expect("commit");

    let committed = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read");
    assert_eq!(payloads(&committed), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transaction_is_invisible_to_read_committed_consumers() {
    let topic = unique("abort");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let producer = transactional_producer(&unique("txn")).expect("producer");
    let aborted = values("aborted", 20);
    let committed = values("committed", 10);

    producer.begin_transaction().expect("begin 1");
    send_all(&producer, &topic, PARTITIONS, &aborted).await.expect("send 1");
    producer.abort_transaction(TIMEOUT).expect("abort");
    producer.begin_transaction().expect("begin 2");
    send_all(&producer, &topic, PARTITIONS, &committed).await.expect("send 2");
    producer.commit_transaction(TIMEOUT).expect("commit");

    let read = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read committed");
    assert_eq!(payloads(&read), committed);
    // The aborted records were written: a read_uncommitted consumer sees both.
    let everything = read_all(&topic, PARTITIONS, Isolation::ReadUncommitted).expect("read uncommitted");
    let mut both = [aborted, committed].concat();
    both.sort();
    assert_eq!(payloads(&everything), both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transaction_spanning_many_fetches_stays_invisible() {
    // One partition, 400 aborted records, 512-byte fetches: the ABORT marker is many fetch
    // answers after the transaction's first record.
    let topic = unique("abort-long");
    create_topic(&topic, 1).await.expect("create topic");
    let producer = transactional_producer(&unique("txn")).expect("producer");
    let aborted = values("aborted", 400);
    let committed = values("committed", 5);

    producer.begin_transaction().expect("begin 1");
    send_all(&producer, &topic, 1, &aborted).await.expect("send 1");
    producer.abort_transaction(TIMEOUT).expect("abort");
    producer.begin_transaction().expect("begin 2");
    send_all(&producer, &topic, 1, &committed).await.expect("send 2");
    producer.commit_transaction(TIMEOUT).expect("commit");

    let read = read_committed_small_fetches(&topic, 1).expect("read committed");
    assert_eq!(payloads(&read), committed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_init_transactions_fences_the_older_producer_and_aborts_its_transaction() {
    let topic = unique("fence");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let transactional_id = unique("txn");
    let old = transactional_producer(&transactional_id).expect("old producer");
    let fenced_values = values("fenced", 12);
    old.begin_transaction().expect("begin old");
    send_all(&old, &topic, PARTITIONS, &fenced_values).await.expect("send old");

    // Same transactional id: the broker aborts the old transaction and bumps the epoch.
    let new = transactional_producer(&transactional_id).expect("new producer");

    let error = old.commit_transaction(TIMEOUT).expect_err("the fenced producer must not commit");
    match &error {
        KafkaError::Transaction(e) => {
            assert!(
                matches!(
                    e.code(),
                    RDKafkaErrorCode::Fenced
                        | RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                ),
                "expected a fencing error, got {error}"
            );
            assert!(e.is_fatal(), "fencing must be fatal for the old producer: {error}");
        }
        other => panic!("expected a transaction error, got {other}"),
    }

    let new_values = values("new", 6);
    new.begin_transaction().expect("begin new");
    send_all(&new, &topic, PARTITIONS, &new_values).await.expect("send new");
    new.commit_transaction(TIMEOUT).expect("commit new");

    let read = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read");
    assert_eq!(payloads(&read), new_values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_stable_offset_waits_for_the_open_transaction_and_advances_when_it_ends() {
    let topic = unique("lso");
    create_topic(&topic, 1).await.expect("create topic");
    let bootstrap = cluster();
    let ends = || async { partition_ends(&bootstrap, &topic, 0).await.expect("partition ends") };
    assert_eq!(ends().await, PartitionEnds { high_watermark: 0, last_stable_offset: 0 });

    let producer = transactional_producer(&unique("txn")).expect("producer");
    producer.begin_transaction().expect("begin 1");
    send_all(&producer, &topic, 1, &values("a", 4)).await.expect("send 1");
    // Open transaction: 4 records written, none stable.
    assert_eq!(ends().await, PartitionEnds { high_watermark: 4, last_stable_offset: 0 });

    producer.commit_transaction(TIMEOUT).expect("commit");
    // 4 records + the COMMIT marker, all stable.
    assert_eq!(ends().await, PartitionEnds { high_watermark: 5, last_stable_offset: 5 });

    producer.begin_transaction().expect("begin 2");
    send_all(&producer, &topic, 1, &values("b", 3)).await.expect("send 2");
    assert_eq!(ends().await, PartitionEnds { high_watermark: 8, last_stable_offset: 5 });

    producer.abort_transaction(TIMEOUT).expect("abort");
    assert_eq!(ends().await, PartitionEnds { high_watermark: 9, last_stable_offset: 9 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_reports_transaction_max_timeout() {
    let max = broker_config::transaction_max_timeout_ms(&cluster()).await.expect("describe configs");
    // The test broker's default, Apache Kafka's default.
    assert_eq!(max, Some(900_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_makes_open_transaction_records_durable_but_not_stable() {
    // Pre-commit = flush and keep the transaction open: the records are written (visible
    // read_uncommitted) but read_committed consumers do not see them yet.
    let topic = unique("precommit");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let producer = transactional_producer(&unique("txn")).expect("producer");
    let pending = values("pending", 9);
    producer.begin_transaction().expect("begin");
    send_all(&producer, &topic, PARTITIONS, &pending).await.expect("send");
    producer.flush(TIMEOUT).expect("flush");

    let uncommitted = read_all(&topic, PARTITIONS, Isolation::ReadUncommitted).expect("read uncommitted");
    assert_eq!(payloads(&uncommitted), pending);
    let committed = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read committed");
    assert!(committed.is_empty(), "open transaction leaked: {committed:?}");

    producer.commit_transaction(TIMEOUT).expect("commit");
    let committed = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read committed");
    assert_eq!(payloads(&committed), pending);
}
