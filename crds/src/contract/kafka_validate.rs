//! Validation of the Kafka node blocks.

use super::field_errors::Errors;
use super::job_config::JobConfig;
use std::collections::BTreeMap;

use super::kafka::{DeliveryGuarantee, KafkaSinkSpec, KafkaSourceSpec, StartFrom};
use super::kafka_security;
use super::pipeline::{ErrorPolicy, NodeKind};

/// Checks a `kafkaSource` block at path `at`.
pub(crate) fn source(k: &KafkaSourceSpec, policy: ErrorPolicy, at: &str, errs: &mut Errors) {
    common(&k.bootstrap_servers, &k.topic, at, errs);
    properties(&k.properties, at, errs);
    if k.start_from == StartFrom::Timestamp && k.start_timestamp_ms.is_none() {
        errs.add(format!("{at}.startTimestampMs"), "required with startFrom: timestamp");
    }
    if k.start_from == StartFrom::GroupOffsets && k.group_id.is_none() {
        errs.add(format!("{at}.groupId"), "required with startFrom: groupOffsets");
    }
    match (policy, &k.dead_letter_topic) {
        (ErrorPolicy::DeadLetter, None) => {
            errs.add(format!("{at}.deadLetterTopic"), "required with pipeline errorPolicy: deadLetter")
        }
        (ErrorPolicy::DeadLetter, Some(t)) if t == &k.topic => {
            errs.add(format!("{at}.deadLetterTopic"), "must differ from the topic read")
        }
        (ErrorPolicy::Fail | ErrorPolicy::Skip, Some(_)) => {
            errs.add(format!("{at}.deadLetterTopic"), "only used with pipeline errorPolicy: deadLetter")
        }
        _ => {}
    }
}

/// Checks a `kafkaSink` block at path `at`.
pub(crate) fn sink(k: &KafkaSinkSpec, at: &str, errs: &mut Errors) {
    common(&k.bootstrap_servers, &k.topic, at, errs);
    properties(&k.properties, at, errs);
    if let Some(p) = &k.transactional_id_prefix
        && (p.is_empty() || p.len() > 200)
    {
        errs.add(format!("{at}.transactionalIdPrefix"), "must have 1 to 200 characters");
    }
}

/// The security properties must be ones Sluice's own Kafka client can honour, and `${env:NAME}`
/// references well formed (they resolve in the runtime's environment, not here).
fn properties(properties: &BTreeMap<String, String>, at: &str, errs: &mut Errors) {
    for (key, value) in properties {
        if let Err(m) = kafka_security::env_reference(value) {
            errs.add(format!("{at}.properties[{key:?}]"), m);
        }
    }
    if let Err(e) = kafka_security::parse(properties) {
        errs.add(format!("{at}.properties[{:?}]", e.property), e.message);
    }
}

fn common(bootstrap: &str, topic: &str, at: &str, errs: &mut Errors) {
    if bootstrap
        .split(',')
        .any(|h| h.trim().rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()))
    {
        errs.add(format!("{at}.bootstrapServers"), format!("{bootstrap:?} is not a list of host:port"));
    }
    let legal = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-';
    if topic.is_empty() || topic.len() > 249 || !topic.bytes().all(legal) {
        errs.add(format!("{at}.topic"), "must be 1 to 249 characters of a-z, A-Z, 0-9, '.', '_', '-'");
    }
}

/// An exactly-once sink's transactions must outlive a checkpoint cycle plus a restart, or the
/// broker aborts pre-committed data before recovery can commit it.
pub(crate) fn transaction_timeouts(config: &JobConfig, errs: &mut Errors) {
    let Some(c) = &config.checkpointing else { return };
    for (i, node) in config.pipeline.nodes.iter().enumerate() {
        let Some(NodeKind::KafkaSink(k)) = node.kind() else { continue };
        if k.semantic != DeliveryGuarantee::ExactlyOnce {
            continue;
        }
        let required = c.interval + c.timeout + k.expected_restart_time;
        if k.transaction_timeout <= required {
            errs.add(
                format!("pipeline.nodes[{i}].kafkaSink.transactionTimeout"),
                format!(
                    "transaction.timeout.ms = {} must exceed checkpointing.interval + checkpointing.timeout + expectedRestartTime = {} ms",
                    k.transaction_timeout.as_millis(),
                    required.as_millis()
                ),
            );
        }
    }
}
