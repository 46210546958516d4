//! What the Kafka sinks share: a librdkafka producer whose delivery reports are tracked
//! without locks on the success path, and the batch-writing loop.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};

use super::codec::{encode_key, encode_value};
use crate::ops::OpError;
use crate::record::Batch;

/// Upper bound for one blocking producer call (flush, transaction commands).
pub const PRODUCER_TIMEOUT: Duration = Duration::from_secs(60);

/// Delivery bookkeeping of one producer: the first error, and the first delivered
/// (partition, offset) since the last [`DeliveryTracker::reset`].
#[derive(Debug)]
pub struct DeliveryTracker {
    failed: AtomicBool,
    error: Mutex<Option<String>>,
    first_partition: AtomicI32,
    first_offset: AtomicI64,
}

impl Default for DeliveryTracker {
    fn default() -> Self {
        DeliveryTracker {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            first_partition: AtomicI32::new(-1),
            first_offset: AtomicI64::new(-1),
        }
    }
}

impl DeliveryTracker {
    /// Forgets the first delivery (start of a transaction).
    pub fn reset(&self) {
        self.first_offset.store(-1, Ordering::SeqCst);
        self.first_partition.store(-1, Ordering::SeqCst);
    }

    /// The first (partition, offset) delivered since the last reset.
    pub fn first_delivery(&self) -> Option<(i32, i64)> {
        let p = self.first_partition.load(Ordering::SeqCst);
        let o = self.first_offset.load(Ordering::SeqCst);
        (p >= 0 && o >= 0).then_some((p, o))
    }

    /// Forgets delivery errors: only after an abort, which discarded the data they concern.
    fn forget_errors(&self) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.failed.store(false, Ordering::Release);
    }

    /// The first delivery error seen, if any (it stays set: the producer's data is suspect).
    pub fn error(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                use rdkafka::Message as _;
                if self.first_partition.load(Ordering::Relaxed) < 0
                    && self
                        .first_partition
                        .compare_exchange(-1, m.partition(), Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                {
                    self.first_offset.store(m.offset(), Ordering::SeqCst);
                }
            }
            Err((e, _)) => {
                let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert_with(|| e.to_string());
                self.failed.store(true, Ordering::Release);
            }
        }
    }
}

/// A producer with tracked deliveries.
pub type TrackedProducer = BaseProducer<DeliveryTracker>;

/// A client config from the bootstrap list and the user's extra properties.
pub fn client_config(bootstrap: &str, properties: &BTreeMap<String, String>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

/// Creates a producer from `config`.
pub fn create_producer(node: &str, config: &ClientConfig) -> Result<TrackedProducer, OpError> {
    config
        .create_with_context(DeliveryTracker::default())
        .map_err(|e| OpError::External { node: node.into(), message: format!("create Kafka producer: {e}") })
}

/// Reusable buffers for encoding records.
#[derive(Default)]
pub struct Encoder {
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Encoder {
    /// Sends every record of `batch` to `topic`, waiting for queue space when librdkafka's
    /// queue is full.
    pub fn send_batch(
        &mut self,
        node: &str,
        producer: &TrackedProducer,
        topic: &str,
        batch: &Batch,
    ) -> Result<(), OpError> {
        for r in batch {
            let has_key = encode_key(&r.key, &mut self.key);
            encode_value(&r.value, &mut self.value).map_err(|e| OpError::Serialize {
                node: node.into(),
                what: "a record",
                message: e.to_string(),
            })?;
            let mut record = BaseRecord::to(topic).payload(&self.value[..]);
            if has_key {
                record = record.key(&self.key[..]);
            }
            if r.ts > 0 {
                record = record.timestamp(r.ts);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        return Err(OpError::External {
                            node: node.into(),
                            message: format!("produce to {topic}: {e}"),
                        });
                    }
                }
            }
        }
        producer.poll(Duration::ZERO);
        if let Some(e) = producer.context().error() {
            return Err(OpError::External { node: node.into(), message: format!("delivery to {topic} failed: {e}") });
        }
        Ok(())
    }
}

/// Aborts the producer's open transaction. librdkafka's abort purges the records still queued
/// and then waits until every outstanding delivery report is served — which a `BaseProducer`
/// only does while polled, so an abort with records outstanding would time out ("the event
/// queue must be polled … prior to calling abort"). Purge the queue and serve the reports
/// first. Records already in flight are *not* purged: their produce requests are answered
/// before the abort is sent, so none can reach a partition after its abort marker (a late
/// one would open a transaction there that nothing ever ends).
pub fn abort_transaction(producer: &TrackedProducer) -> KafkaResult<()> {
    producer.purge(PurgeConfig::default().queue());
    let deadline = std::time::Instant::now() + PRODUCER_TIMEOUT;
    while producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
    producer.abort_transaction(PRODUCER_TIMEOUT)?;
    producer.context().forget_errors();
    Ok(())
}

/// Waits until every sent record is acknowledged; fails on any delivery error.
pub fn flush(node: &str, producer: &TrackedProducer, topic: &str) -> Result<(), OpError> {
    // rdkafka's `flush` sleeps in 100 ms polls between checks; serve delivery reports in
    // 1 ms polls instead, so a barrier waits for the acknowledgements, not for the timer.
    let deadline = std::time::Instant::now() + PRODUCER_TIMEOUT;
    while producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
    producer
        .flush(PRODUCER_TIMEOUT)
        .map_err(|e| OpError::External { node: node.into(), message: format!("flush to {topic}: {e}") })?;
    match producer.context().error() {
        Some(e) => Err(OpError::External { node: node.into(), message: format!("delivery to {topic} failed: {e}") }),
        None => Ok(()),
    }
}
