//! Helpers for tests against the Kafka-protocol test broker that
//! `scripts/services/kafka.sh start` runs (address in `SLUICE_TEST_KAFKA_BROKERS`).

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{ClientContext, DefaultClientContext},
    consumer::{BaseConsumer, Consumer as _},
    error::KafkaError,
    producer::{FutureProducer, FutureRecord, Producer as _},
};

/// Environment variable with the broker address, written by `scripts/services/kafka.sh`.
pub const BROKERS_ENV: &str = "SLUICE_TEST_KAFKA_BROKERS";
/// Upper bound for any single broker interaction in tests (a hang fails, never skips).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The test broker's address. Panics with set-up instructions when it is not running:
/// Kafka tests fail loudly rather than skip.
pub fn brokers() -> String {
    match std::env::var(BROKERS_ENV) {
        Ok(addr) if !addr.is_empty() => addr,
        _ => panic!(
            "{BROKERS_ENV} is not set: the Kafka tests need the test broker. Run \
             `bash scripts/services/kafka.sh start && source .tools/run/kafka.env` \
             (or `make test`, which does both)"
        ),
    }
}

/// The test broker as Sluice's own protocol client reaches it (plain TCP).
pub fn cluster() -> sluice_runtime::connectors::kafka::Cluster {
    sluice_runtime::connectors::kafka::Cluster::plaintext(&brokers())
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().context("admin client")?;
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .context("create topics")?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("create topic {name}: {code}"))?;
    }
    Ok(())
}

/// A transactional producer for `transactional_id`, with `init_transactions` done.
pub fn transactional_producer(transactional_id: &str) -> anyhow::Result<FutureProducer> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .set("linger.ms", "0")
        .create()
        .context("transactional producer")?;
    producer.init_transactions(TIMEOUT).context("init_transactions")?;
    Ok(producer)
}

/// Sends `values` (key = value) round-robin over `partitions` and waits for every
/// delivery; returns (partition, offset) of each record in send order.
pub async fn send_all<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    partitions: i32,
    values: &[String],
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let mut deliveries = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let partition = i32::try_from(i).unwrap_or(0) % partitions;
        let record = FutureRecord::to(topic).partition(partition).key(value).payload(value);
        let delivery = producer.send(record, TIMEOUT).await.map_err(|(error, _message)| error)?;
        deliveries.push((delivery.partition, delivery.offset));
    }
    Ok(deliveries)
}

/// `count` distinct values with a prefix.
pub fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:06}")).collect()
}

/// Consumer isolation levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// `isolation.level=read_committed`.
    ReadCommitted,
    /// `isolation.level=read_uncommitted`.
    ReadUncommitted,
}

/// One consumed record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Consumed {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Payload as UTF-8.
    pub value: String,
}

/// Reads every partition of `topic` from the beginning to its end (the last stable offset
/// for read_committed) with librdkafka, partitions assigned explicitly.
pub fn read_all(topic: &str, partitions: i32, isolation: Isolation) -> anyhow::Result<Vec<Consumed>> {
    let consumer: BaseConsumer = reader_config()
        .set(
            "isolation.level",
            match isolation {
                Isolation::ReadCommitted => "read_committed",
                Isolation::ReadUncommitted => "read_uncommitted",
            },
        )
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("consumer")?;
    read_with(&consumer, topic, partitions)
}

/// The configuration every test reader starts from (read_committed unless overridden).
fn reader_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers())
        .set("group.id", unique("sluice-test-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    c
}

/// Like [`read_all`] with small fetches, so one transaction spans many fetch answers.
pub fn read_committed_small_fetches(topic: &str, partitions: i32) -> anyhow::Result<Vec<Consumed>> {
    let consumer: BaseConsumer = reader_config()
        .set("fetch.max.bytes", "1024")
        .set("message.max.bytes", "1000")
        .set("max.partition.fetch.bytes", "512")
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("consumer")?;
    read_with(&consumer, topic, partitions)
}

/// Reads one partition from `offset` to its end (read_committed), as a restored source does.
pub fn read_from(topic: &str, partition: i32, offset: i64) -> anyhow::Result<Vec<Consumed>> {
    let consumer: BaseConsumer = reader_config().set("fetch.wait.max.ms", "100").create().context("consumer")?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(offset)).context("assignment")?;
    consumer.assign(&assignment).context("assign")?;
    drain(&consumer, topic, 1)
}

fn read_with(consumer: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<Vec<Consumed>> {
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).context("assignment")?;
    }
    consumer.assign(&assignment).context("assign")?;
    drain(consumer, topic, partitions)
}

/// Polls until `partitions` partitions reported their end; returns the records sorted.
fn drain(consumer: &BaseConsumer, topic: &str, partitions: i32) -> anyhow::Result<Vec<Consumed>> {
    let mut at_end = BTreeSet::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while at_end.len() < usize::try_from(partitions).unwrap_or(0) {
        if Instant::now() > deadline {
            bail!("reading {topic}: partitions {at_end:?} reached their end within {TIMEOUT:?}, not all {partitions}");
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => records.push(Consumed {
                partition: message.partition(),
                offset: message.offset(),
                value: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            }),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                let _ = at_end.insert(partition);
            }
            Some(Err(error)) => bail!("reading {topic}: {error}"),
        }
    }
    records.sort();
    Ok(records)
}

/// Sorted payloads of `records`.
pub fn payloads(records: &[Consumed]) -> Vec<String> {
    let mut values: Vec<String> = records.iter().map(|r| r.value.clone()).collect();
    values.sort();
    values
}
