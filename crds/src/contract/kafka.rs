//! The Kafka node blocks of a pipeline: `kafkaSource` and `kafkaSink`.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a fresh job (one with no checkpoint for this source) starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StartFrom {
    /// The first offset still on the broker.
    #[default]
    Earliest,
    /// The end of each partition: only records produced after the start.
    Latest,
    /// The first record whose timestamp is at or after `startTimestampMs`.
    Timestamp,
    /// The offsets committed by `groupId` (earliest where the group has none).
    GroupOffsets,
}

/// Which records a source reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Isolation {
    /// Only committed transactional records (what exactly-once pipelines need).
    #[default]
    ReadCommitted,
    /// Everything written, including open and aborted transactions.
    ReadUncommitted,
}

/// How a record's bytes become a value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RecordFormat {
    /// UTF-8 JSON; a record that does not parse follows the pipeline's error policy.
    #[default]
    Json,
    /// UTF-8 text, as a string value.
    String,
}

/// Reads one topic. Partitions are dealt to subtasks (`partition % parallelism`, no consumer-group
/// rebalancing); offsets live in checkpointed state, so a restore replays exactly from the
/// checkpoint. The record key (UTF-8) becomes the record's key, its timestamp the event time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// `host:port[,host:port…]` of the brokers.
    pub bootstrap_servers: String,
    /// The topic to read.
    pub topic: String,
    /// Start position of a job without a checkpoint.
    #[serde(default)]
    pub start_from: StartFrom,
    /// With `startFrom: timestamp`: epoch milliseconds to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp_ms: Option<i64>,
    /// Consumer group: offsets are committed to it after each completed checkpoint, for lag
    /// monitoring only (the checkpoint is the source of truth). No commits when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// Transaction isolation of the reads.
    #[serde(default)]
    pub isolation: Isolation,
    /// How record values are decoded.
    #[serde(default)]
    pub format: RecordFormat,
    /// How far event time may go backwards within a partition; each partition's watermark trails
    /// its largest timestamp by this, and the subtask's watermark is the least over its partitions.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub max_out_of_orderness: Option<Duration>,
    /// How often to look for new partitions of the topic.
    #[serde(default = "default_discovery", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub partition_discovery_interval: Duration,
    /// With `errorPolicy: deadLetter`: the topic malformed records are copied to (raw bytes, with
    /// headers naming the source topic, partition, offset and the error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// Throttle: at most this many records per second over the whole source (all subtasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u64>,
    /// Read each partition only up to the end offset it had when the job first assigned it
    /// (kept in the checkpoint), then finish: a bounded job (backfills, tests, verification).
    #[serde(default)]
    pub stop_at_end: bool,
    /// Extra librdkafka consumer properties (security settings …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

fn default_discovery() -> Duration {
    Duration::from_secs(10)
}

/// Delivery guarantee of a Kafka sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryGuarantee {
    /// Kafka transactions, committed when the checkpoint completes.
    #[default]
    ExactlyOnce,
    /// Idempotent producer, flushed at every checkpoint: duplicates possible after a failure.
    AtLeastOnce,
    /// Fire and forget: no flush at checkpoints.
    None,
}

/// Writes to one topic. Record keys (as JSON, strings unquoted) become message keys; values are
/// written as JSON. With `exactly-once`, every checkpoint's records are one Kafka transaction
/// per subtask, committed only when the checkpoint completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSinkSpec {
    /// `host:port[,host:port…]` of the brokers.
    pub bootstrap_servers: String,
    /// The topic to write.
    pub topic: String,
    /// Delivery guarantee.
    #[serde(default)]
    pub semantic: DeliveryGuarantee,
    /// `transaction.timeout.ms` of the transactional producers. Must exceed checkpoint interval +
    /// checkpoint timeout + `expectedRestartTime`, and must not exceed the broker's
    /// `transaction.max.timeout.ms` (both checked at start-up).
    #[serde(default = "default_txn_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub transaction_timeout: Duration,
    /// How long a crashed job may take to come back (part of the timeout check above).
    #[serde(default = "default_restart_time", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub expected_restart_time: Duration,
    /// Prefix of the transactional ids (default `sluice-<job>-<node>`); must be unique per job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactional_id_prefix: Option<String>,
    /// Extra librdkafka producer properties (security settings, `linger.ms` …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

fn default_txn_timeout() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_restart_time() -> Duration {
    Duration::from_secs(60)
}
