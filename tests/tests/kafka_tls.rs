//! Kafka over TLS end to end: Sluice's own protocol client (metadata, transaction
//! coordinator, EndTxn, fetch) and librdkafka (admin, transactional producer, read_committed
//! consumer) against a TLS listener, configured from the same `properties` a StreamJob's
//! Kafka block carries. The listener is a TLS proxy in front of a test broker that advertises
//! the proxy (tests/src/tls_broker.rs); the CA is generated per test. Needs
//! `scripts/services/kafka.sh start` (for the broker binary's path).

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer as _},
    producer::{BaseProducer, BaseRecord, Producer as _},
};
use sluice_runtime::connectors::kafka::{
    Cluster, Error, PartitionEnds, TxnOutcome, end_transaction, first_batch_identity, metadata, partition_ends,
};
use sluice_tests::kafka::{TIMEOUT, unique};
use sluice_tests::tls_broker::{TestCa, TlsBroker};

fn tls_properties(broker: &TlsBroker) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("security.protocol".to_owned(), "SSL".to_owned()),
        ("ssl.ca.location".to_owned(), broker.ca_file().display().to_string()),
    ])
}

/// librdkafka's config from the block's bootstrap servers and properties (as the connectors build it).
fn rdkafka_config(broker: &TlsBroker, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &broker.addr);
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn our_client_and_librdkafka_finish_a_transaction_over_tls() {
    let ca = TestCa::new("sluice test CA").expect("CA");
    let broker = TlsBroker::start(&ca, &["localhost"]).expect("TLS broker");
    let properties = tls_properties(&broker);
    let cluster = Cluster::new(&broker.addr, &properties).expect("cluster");
    let rt = runtime();

    // Our client: the broker list comes back through TLS and names the TLS listener.
    let brokers = rt.block_on(metadata::brokers(&cluster)).expect("metadata over TLS");
    assert_eq!(brokers.iter().map(|b| b.addr.as_str()).collect::<Vec<_>>(), [broker.addr.as_str()]);

    // librdkafka (built with ssl): create a topic, write an open transaction.
    let topic = unique("tls");
    let admin: AdminClient<DefaultClientContext> = rdkafka_config(&broker, &properties).create().expect("admin");
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        ))
        .expect("create topic over TLS");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let transactional_id = unique("tls-txn");
    let producer: BaseProducer = rdkafka_config(&broker, &properties)
        .set("transactional.id", &transactional_id)
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("producer");
    producer.init_transactions(TIMEOUT).expect("init_transactions over TLS");
    producer.begin_transaction().expect("begin");
    for i in 0..3 {
        producer.send(BaseRecord::to(&topic).key("k").payload(&format!("v{i}")).partition(0)).expect("send");
    }
    producer.flush(TIMEOUT).expect("flush over TLS");

    // Our client finishes it, as recovery does: identity from the batch header, then EndTxn
    // through the coordinator FindCoordinator names (the TLS listener again).
    let ends = rt.block_on(partition_ends(&cluster, &topic, 0)).expect("fetch over TLS");
    assert_eq!(ends, PartitionEnds { high_watermark: 3, last_stable_offset: 0 }, "the transaction is open");
    let identity = rt.block_on(first_batch_identity(&cluster, &topic, 0, 0)).expect("batch header over TLS");
    rt.block_on(end_transaction(&cluster, &transactional_id, identity, TxnOutcome::Commit)).expect("EndTxn over TLS");
    let ends = rt.block_on(partition_ends(&cluster, &topic, 0)).expect("fetch over TLS");
    assert_eq!(ends.last_stable_offset, ends.high_watermark, "committed: {ends:?}");
    drop(producer);

    // librdkafka reads the committed records back over TLS.
    let consumer: BaseConsumer = rdkafka_config(&broker, &properties)
        .set("group.id", unique("tls-group"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Beginning).expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while values.len() < 3 && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume over TLS");
            values.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(values, ["v0", "v1", "v2"]);
}

#[test]
fn an_untrusted_or_misnamed_certificate_is_refused_with_the_reason() {
    let ca = TestCa::new("sluice test CA").expect("CA");
    let broker = TlsBroker::start(&ca, &["some-other-host"]).expect("TLS broker");
    let rt = runtime();

    // The right CA, but the certificate does not name `localhost`.
    let properties = tls_properties(&broker);
    let cluster = Cluster::new(&broker.addr, &properties).expect("cluster");
    match rt.block_on(metadata::brokers(&cluster)) {
        Err(Error::Tls { addr, message }) => {
            assert_eq!(addr, broker.addr);
            assert!(message.contains("TLS handshake failed") && message.contains("not valid for name"), "{message}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // ssl.endpoint.identification.algorithm=none skips the name check only.
    let mut no_name_check = properties.clone();
    no_name_check.insert("ssl.endpoint.identification.algorithm".into(), "none".into());
    let cluster = Cluster::new(&broker.addr, &no_name_check).expect("cluster");
    rt.block_on(metadata::brokers(&cluster)).expect("chain verified, name not checked");

    // Another CA: refused even without the name check.
    let other = TestCa::new("another CA").expect("CA");
    std::fs::write(broker.dir.path().join("other.pem"), &other.pem).expect("write");
    no_name_check.insert("ssl.ca.location".into(), broker.dir.path().join("other.pem").display().to_string());
    let cluster = Cluster::new(&broker.addr, &no_name_check).expect("cluster");
    match rt.block_on(metadata::brokers(&cluster)) {
        Err(Error::Tls { message, .. }) => {
            assert!(
                message.contains("invalid peer certificate") && !message.contains("not valid for name"),
                "{message}"
            )
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // Plain TCP against the TLS listener fails (no hang) instead of reading garbage as Kafka.
    let plain = Cluster::plaintext(&broker.addr);
    let answer = rt.block_on(async { tokio::time::timeout(TIMEOUT, metadata::brokers(&plain)).await });
    assert!(answer.expect("no hang").is_err());
}
