//! The exactly-once verifier for Kafka: produce sequence-numbered input to a topic, and after
//! the job drains read an output topic with a read_committed consumer and report lost,
//! duplicated and out-of-place records — and any transaction left open (last stable offset
//! below the high watermark), which would block read_committed readers, named by the
//! coordinator's ListTransactions/DescribeTransactions.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::{SequenceCheck, VerifyReport};
use crate::connectors::kafka::io::{block_on, partition_ends_blocking};
use crate::connectors::kafka::security::Cluster;
use crate::connectors::kafka::txn_admin::{self, TxnDescription};
use crate::value::Value;

/// A verifier step failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct VerifyError {
    /// What was being done.
    pub step: &'static str,
    /// What went wrong.
    pub message: String,
}

fn fail(step: &'static str) -> impl Fn(KafkaError) -> VerifyError {
    move |e| VerifyError { step, message: e.to_string() }
}

/// Upper bound for any one broker interaction.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Creates `topic` with `partitions` partitions (replication 1) unless it exists.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), VerifyError> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().map_err(fail("admin client"))?;
    let topic_owned = topic.to_owned();
    let results = block_on(None, async move {
        admin
            .create_topics(
                &[NewTopic::new(&topic_owned, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
    })
    .map_err(|e| VerifyError { step: "create topic", message: e.to_string() })?
    .map_err(fail("create topic"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(VerifyError { step: "create topic", message: format!("{name}: {code}") }),
        }
    }
    Ok(())
}

/// Produces `count` records `{"seq": i}` to `topic`: key `i % keys` (text), timestamp
/// `start_ms + i`, so event time advances one millisecond per sequence number.
pub fn produce(bootstrap: &str, topic: &str, count: u64, keys: u64, start_ms: i64) -> Result<(), VerifyError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .create()
        .map_err(fail("producer"))?;
    let (mut key, mut value) = (String::new(), String::new());
    for i in 0..count {
        use std::fmt::Write as _;
        key.clear();
        value.clear();
        let _ = write!(key, "{}", i % keys.max(1));
        let _ = write!(value, "{{\"seq\":{i}}}");
        let mut record = BaseRecord::to(topic).key(&key).payload(&value).timestamp(start_ms + i as i64);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(fail("produce")(e)),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).map_err(fail("flush"))
}

/// Partitions of `topic` whose last stable offset is below the high watermark: an open
/// transaction. Waits up to `grace` for them to close first.
pub fn open_transactions(bootstrap: &str, topic: &str, grace: Duration) -> Result<Vec<(i32, i64, i64)>, VerifyError> {
    let partitions = partition_count(bootstrap, topic)?;
    let started = Instant::now();
    loop {
        let mut open = Vec::new();
        for p in 0..partitions {
            let ends = ends_of(bootstrap, topic, p)?;
            if ends.last_stable_offset < ends.high_watermark {
                open.push((p, ends.last_stable_offset, ends.high_watermark));
            }
        }
        if open.is_empty() || started.elapsed() >= grace {
            return Ok(open);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A topic's partitions whose last stable offset stays below the high watermark, and the
/// transactions the coordinators list as open on the topic (what holds them back).
#[derive(Clone, Debug, Default)]
pub struct OpenTransactions {
    /// (partition, last stable offset, high watermark) of each partition behind.
    pub partitions: Vec<(i32, i64, i64)>,
    /// Transactions not ended that include a partition of the topic.
    pub transactions: Vec<TxnDescription>,
    /// Why the transactions could not be listed, if they could not.
    pub lookup_error: Option<String>,
}

impl OpenTransactions {
    /// Whether every partition can be read to its end and no transaction is open.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty() && self.transactions.is_empty()
    }
}

impl std::fmt::Display for OpenTransactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .partitions
            .iter()
            .map(|(p, lso, hw)| format!("partition {p}: last stable offset {lso} < high watermark {hw}"))
            .collect();
        parts.extend(self.transactions.iter().map(|t| format!("open {t}")));
        match &self.lookup_error {
            Some(e) => parts.push(format!("open transactions cannot be listed: {e}")),
            None if self.transactions.is_empty() && !self.partitions.is_empty() => parts.push(
                "the coordinator lists no open transaction on the topic: an ended transaction was never settled by the broker".into(),
            ),
            None => {}
        }
        if parts.is_empty() {
            return write!(f, "no open transaction");
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// The partitions of `topic` held back by a transaction and the open transactions that name
/// it (ListTransactions + DescribeTransactions). Waits up to `grace` for both to clear first.
pub fn open_transactions_named(bootstrap: &str, topic: &str, grace: Duration) -> Result<OpenTransactions, VerifyError> {
    let started = Instant::now();
    loop {
        let partitions = open_transactions(bootstrap, topic, Duration::ZERO)?;
        let (b, t) = (Cluster::plaintext(bootstrap), topic.to_owned());
        let (transactions, lookup_error) =
            match block_on(None, async move { txn_admin::open_transactions_on(&b, &t).await }) {
                Ok(Ok(open)) => (open, None),
                Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
        let open = OpenTransactions { partitions, transactions, lookup_error };
        if open.is_empty() || started.elapsed() >= grace {
            return Ok(open);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ends_of(
    bootstrap: &str,
    topic: &str,
    partition: i32,
) -> Result<crate::connectors::kafka::PartitionEnds, VerifyError> {
    partition_ends_blocking(None, &Cluster::plaintext(bootstrap), topic, partition)
        .map_err(|e| VerifyError { step: "partition ends", message: e.to_string() })
}

fn partition_count(bootstrap: &str, topic: &str) -> Result<i32, VerifyError> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().map_err(fail("consumer"))?;
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).map_err(fail("metadata"))?;
    let n = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len());
    i32::try_from(n).map_err(|e| VerifyError { step: "metadata", message: e.to_string() })
}

/// Every committed record of `topic` (read_committed, from the start up to the last stable
/// offset of each partition), as (key, value) decoded from JSON (text keys stay text).
pub fn read_committed(bootstrap: &str, topic: &str) -> Result<Vec<(Value, Value)>, VerifyError> {
    Ok(read_committed_at(bootstrap, topic)?.into_iter().map(|r| (r.key, r.value)).collect())
}

/// One committed record and where it sits.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record in its partition.
    pub offset: i64,
    /// The key (text keys stay text; no key is `Null`).
    pub key: Value,
    /// The value decoded from JSON (`Null` when it is not JSON).
    pub value: Value,
}

/// Like [`read_committed`], keeping each record's partition and offset.
pub fn read_committed_at(bootstrap: &str, topic: &str) -> Result<Vec<Committed>, VerifyError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-verify")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(fail("consumer"))?;
    let partitions = partition_count(bootstrap, topic)?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).map_err(fail("assign"))?;
        ends.push(ends_of(bootstrap, topic, p)?.last_stable_offset);
    }
    consumer.assign(&tpl).map_err(fail("assign"))?;
    let mut done: Vec<bool> = ends.iter().map(|&e| e <= 0).collect();
    let mut out = Vec::new();
    let mut last_progress = Instant::now();
    while !done.iter().all(|d| *d) {
        if last_progress.elapsed() > TIMEOUT {
            return Err(VerifyError { step: "read", message: format!("no progress for {TIMEOUT:?}") });
        }
        let Some(next) = consumer.poll(Duration::from_millis(100)) else { continue };
        last_progress = Instant::now();
        let (partition, at) = match next {
            Ok(m) => {
                let key = match m.key() {
                    None => Value::Null,
                    Some(k) => Value::str(&String::from_utf8_lossy(k)),
                };
                let value = m.payload().and_then(|p| serde_json::from_slice(p).ok()).unwrap_or(Value::Null);
                out.push(Committed { partition: m.partition(), offset: m.offset(), key, value });
                (m.partition(), m.offset() + 1)
            }
            Err(KafkaError::PartitionEOF(p)) => {
                let at = consumer.position().ok().and_then(|t| match t.find_partition(topic, p)?.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
                (p, at.unwrap_or(0))
            }
            Err(e) => return Err(fail("read")(e)),
        };
        if let Some(i) = usize::try_from(partition).ok().filter(|&i| i < ends.len())
            && at >= ends[i]
        {
            done[i] = true;
        }
    }
    Ok(out)
}

/// Checks `topic`'s committed records: the integer at `field` (a dotted path into the value)
/// must cover `0..expected` exactly once.
pub fn check_topic(bootstrap: &str, topic: &str, field: &str, expected: u64) -> Result<VerifyReport, VerifyError> {
    let mut check = SequenceCheck::new(expected);
    for (_, value) in read_committed(bootstrap, topic)? {
        check.add(value.get_path(field).and_then(Value::as_i64));
    }
    Ok(check.report())
}

/// Produces `{"seq": i}` records at `rate` per second for `seconds`, each stamped with the
/// wall-clock time it was sent (for end-to-end latency). Returns how many were sent.
pub fn produce_live(bootstrap: &str, topic: &str, rate: u64, seconds: u64) -> Result<u64, VerifyError> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1")
        .create()
        .map_err(fail("producer"))?;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut value = String::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        while sent < due {
            use std::fmt::Write as _;
            value.clear();
            let _ = write!(value, "{{\"seq\":{sent}}}");
            let record = BaseRecord::<str, str>::to(topic).payload(&value).timestamp(now_ms());
            if producer.send(record).is_err() {
                producer.poll(Duration::from_millis(1));
                break;
            }
            sent += 1;
        }
        producer.poll(Duration::from_millis(1));
    }
    producer.flush(Duration::from_secs(60)).map_err(fail("flush"))?;
    Ok(sent)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads `topic` read_committed from its end for `seconds` and returns, per record, the delay
/// in milliseconds between its timestamp and the moment this consumer received it.
pub fn measure_latency(bootstrap: &str, topic: &str, seconds: u64) -> Result<Vec<i64>, VerifyError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-latency")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(fail("consumer"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partition_count(bootstrap, topic)? {
        tpl.add_partition_offset(topic, p, Offset::End).map_err(fail("assign"))?;
    }
    consumer.assign(&tpl).map_err(fail("assign"))?;
    let started = Instant::now();
    let mut delays = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50))
            && let Some(ts) = m.timestamp().to_millis()
        {
            delays.push(now_ms() - ts);
        }
    }
    Ok(delays)
}
