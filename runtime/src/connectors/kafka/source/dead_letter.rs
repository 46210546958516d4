//! A record that does not decode: the job's error policy fails the source, skips the record, or
//! copies it (with where it came from and why) to the dead-letter topic.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use sluice_crds::contract::pipeline::ErrorPolicy;

use super::KafkaSource;
use crate::connectors::kafka::producer::{client_config, create_producer};
use crate::ops::OpError;

impl KafkaSource {
    /// A record that does not decode: fail, skip, or copy it to the dead-letter topic.
    pub(super) fn malformed(
        &mut self,
        partition: i32,
        offset: i64,
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        message: String,
    ) -> Result<(), OpError> {
        let location = format!("{}/{partition}@{offset}", self.spec.topic);
        if !self.policy.skips() {
            return Err(OpError::Malformed { node: self.ctx.node.clone(), location, message });
        }
        self.malformed += 1;
        tracing::debug!(node = %self.ctx.node, %location, %message, "malformed record skipped");
        if self.policy == ErrorPolicy::DeadLetter
            && let Some(topic) = self.spec.dead_letter_topic.clone()
        {
            let producer = match self.dead_letter.take() {
                Some(p) => p,
                None => {
                    let mut config = client_config(&self.spec.bootstrap_servers, &self.spec.properties);
                    config.set("enable.idempotence", "true");
                    create_producer(&self.ctx.node, &config)?
                }
            };
            let headers = OwnedHeaders::new()
                .insert(Header { key: "sluice.source.topic", value: Some(self.spec.topic.as_bytes()) })
                .insert(Header { key: "sluice.source.partition", value: Some(partition.to_string().as_bytes()) })
                .insert(Header { key: "sluice.source.offset", value: Some(offset.to_string().as_bytes()) })
                .insert(Header { key: "sluice.error", value: Some(message.as_bytes()) });
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic).headers(headers);
            if let Some(k) = &key {
                record = record.key(&k[..]);
            }
            if let Some(v) = &payload {
                record = record.payload(&v[..]);
            }
            let sent = producer.send(record).map_err(|(e, _)| self.err("dead-letter produce", e));
            producer.poll(Duration::ZERO);
            self.dead_letter = Some(producer);
            sent?;
        }
        Ok(())
    }
}
