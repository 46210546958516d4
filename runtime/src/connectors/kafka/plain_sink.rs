//! The Kafka sink without transactions: `at-least-once` (idempotent producer, flushed at every
//! barrier so a completed checkpoint never covers unacknowledged records) and `none` (no flush).

use sluice_crds::CheckpointId;
use sluice_crds::contract::kafka::{DeliveryGuarantee, KafkaSinkSpec};

use super::producer::{Encoder, TrackedProducer, client_config, create_producer, flush};
use crate::ops::{OpError, OpSnapshot, Operator, SnapshotMode};
use crate::record::Batch;

/// One subtask of an at-least-once or fire-and-forget Kafka sink.
pub struct KafkaPlainSink {
    node: String,
    topic: String,
    flush_at_barrier: bool,
    producer: TrackedProducer,
    encoder: Encoder,
}

impl KafkaPlainSink {
    /// Connects a producer for node `node`.
    pub fn new(node: &str, spec: &KafkaSinkSpec) -> Result<KafkaPlainSink, OpError> {
        let mut config = client_config(&spec.bootstrap_servers, &spec.properties);
        let at_least_once = spec.semantic == DeliveryGuarantee::AtLeastOnce;
        config.set("enable.idempotence", if at_least_once { "true" } else { "false" });
        if !spec.properties.contains_key("linger.ms") {
            config.set("linger.ms", "5");
        }
        Ok(KafkaPlainSink {
            node: node.into(),
            topic: spec.topic.clone(),
            flush_at_barrier: at_least_once,
            producer: create_producer(node, &config)?,
            encoder: Encoder::default(),
        })
    }
}

impl Operator for KafkaPlainSink {
    fn process(&mut self, batch: Batch, _out: &mut Batch) -> Result<(), OpError> {
        self.encoder.send_batch(&self.node, &self.producer, &self.topic, &batch)
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId, _mode: SnapshotMode) -> Result<OpSnapshot, OpError> {
        if self.flush_at_barrier {
            flush(&self.node, &self.producer, &self.topic)?;
        }
        Ok(OpSnapshot::default())
    }

    fn finish(&mut self, _out: &mut Batch) -> Result<(), OpError> {
        flush(&self.node, &self.producer, &self.topic)
    }
}
