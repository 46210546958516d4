//! ListTransactions (API 66) and DescribeTransactions (API 65) on the test broker
//! (tests/broker/src/txns.rs), through Sluice's client (`connectors::kafka::txn_admin`), and
//! the verifier naming the transaction that holds a partition back.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

use std::time::Duration;

use rdkafka::producer::Producer as _;
use sluice_runtime::connectors::kafka::{
    Error,
    txn_admin::{OPEN_STATES, TxnDescription, describe_transaction, list_transactions, open_transactions_on},
};
use sluice_runtime::verify::kafka as verify;
use sluice_tests::kafka::{TIMEOUT, brokers, cluster, create_topic, send_all, transactional_producer, unique, values};

const PARTITIONS: i32 = 3;

async fn describe(id: &str) -> TxnDescription {
    describe_transaction(&cluster(), id).await.expect("describe")
}

async fn listed_state(id: &str, states: &[&str]) -> Option<String> {
    let listed = list_transactions(&cluster(), states).await.expect("list");
    listed.into_iter().find(|(listed_id, _, _)| listed_id == id).map(|(_, _, state)| state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_listed_and_described_through_its_states() {
    let topic = unique("described");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let id = unique("txn");
    let producer = transactional_producer(&id).expect("producer");

    let initialised = describe(&id).await;
    assert_eq!(initialised.state, "Empty");
    assert!(initialised.producer_id >= 0 && initialised.producer_epoch >= 0, "{initialised:?}");
    assert_eq!(initialised.timeout_ms, 60_000);
    assert!(initialised.partitions.is_empty());
    assert_eq!(listed_state(&id, &[]).await.as_deref(), Some("Empty"));
    assert_eq!(listed_state(&id, &OPEN_STATES).await, None, "an idle id is not open");

    producer.begin_transaction().expect("begin");
    // Two records, round-robin: partitions 0 and 1.
    send_all(&producer, &topic, PARTITIONS, &values("open", 2)).await.expect("send");
    producer.flush(TIMEOUT).expect("flush");
    let ongoing = describe(&id).await;
    assert_eq!(ongoing.state, "Ongoing");
    assert_eq!((ongoing.producer_id, ongoing.producer_epoch), (initialised.producer_id, initialised.producer_epoch));
    assert_eq!(ongoing.partitions, vec![(topic.clone(), 0), (topic.clone(), 1)]);
    assert!(ongoing.start_time_ms > 0);
    assert_eq!(listed_state(&id, &["Ongoing"]).await.as_deref(), Some("Ongoing"));
    let open = open_transactions_on(&cluster(), &topic).await.expect("open transactions");
    assert_eq!(open, vec![ongoing.clone()]);

    producer.commit_transaction(TIMEOUT).expect("commit");
    let committed = describe(&id).await;
    assert_eq!(committed.state, "CompleteCommit");
    assert!(committed.partitions.is_empty(), "an ended transaction has no partitions: {committed:?}");
    assert_eq!(listed_state(&id, &OPEN_STATES).await, None);
    assert_eq!(listed_state(&id, &["CompleteCommit"]).await.as_deref(), Some("CompleteCommit"));
    assert!(open_transactions_on(&cluster(), &topic).await.expect("open transactions").is_empty());

    producer.begin_transaction().expect("begin 2");
    send_all(&producer, &topic, PARTITIONS, &values("aborted", 1)).await.expect("send 2");
    producer.abort_transaction(TIMEOUT).expect("abort");
    assert_eq!(describe(&id).await.state, "CompleteAbort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_ends_the_open_transaction_and_describes_the_new_epoch() {
    let topic = unique("fenced");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let id = unique("txn");
    let old = transactional_producer(&id).expect("old producer");
    old.begin_transaction().expect("begin");
    send_all(&old, &topic, PARTITIONS, &values("fenced", 3)).await.expect("send");
    old.flush(TIMEOUT).expect("flush");
    let before = describe(&id).await;
    assert_eq!(before.state, "Ongoing");

    let _new = transactional_producer(&id).expect("new producer");
    let after = describe(&id).await;
    assert_eq!(after.state, "Empty");
    assert_eq!(after.producer_id, before.producer_id);
    assert!(after.producer_epoch > before.producer_epoch, "{before:?} -> {after:?}");
    assert!(after.partitions.is_empty());
    assert!(open_transactions_on(&cluster(), &topic).await.expect("open transactions").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_transactional_id_is_not_found() {
    match describe_transaction(&cluster(), &unique("never-used")).await {
        Err(Error::Broker { code, .. }) => assert_eq!(code, 105, "TRANSACTIONAL_ID_NOT_FOUND"),
        other => panic!("expected TRANSACTIONAL_ID_NOT_FOUND, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_names_the_transaction_that_holds_a_partition_back() {
    let topic = unique("held");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let id = unique("txn");
    let producer = transactional_producer(&id).expect("producer");
    producer.begin_transaction().expect("begin");
    send_all(&producer, &topic, PARTITIONS, &values("held", 1)).await.expect("send");
    producer.flush(TIMEOUT).expect("flush");

    let (b, t) = (brokers(), topic.clone());
    let open = tokio::task::spawn_blocking(move || verify::open_transactions_named(&b, &t, Duration::ZERO))
        .await
        .expect("verifier thread")
        .expect("verifier");
    assert!(!open.is_empty());
    assert_eq!(open.partitions, vec![(0, 0, 1)]);
    let message = open.to_string();
    assert!(message.contains("partition 0: last stable offset 0 < high watermark 1"), "{message}");
    assert!(message.contains(&format!("open transaction {id} (Ongoing, producer ")), "{message}");
    assert!(message.contains(&format!("on partitions [{topic}-0]")), "{message}");

    producer.commit_transaction(TIMEOUT).expect("commit");
    let (b, t) = (brokers(), topic.clone());
    let open = tokio::task::spawn_blocking(move || verify::open_transactions_named(&b, &t, Duration::from_secs(5)))
        .await
        .expect("verifier thread")
        .expect("verifier");
    assert!(open.is_empty(), "{open}");
}
