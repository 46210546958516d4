//! The Kafka source: one topic, partitions dealt to subtasks by `partition % parallelism` (no
//! consumer-group rebalancing inside a job), positions in checkpointed list state (one element
//! per partition, `split` = partition, so a restore at another parallelism deals them the same
//! way), read_committed by default. Event time is the record timestamp; each partition keeps
//! its own watermark and the subtask's is the least over partitions that are not idle.
//!
//! Here: the subtask and its poll loop. Positions are in `position.rs`, where reading starts
//! (lookups, assignment, discovery) in `offsets.rs`, malformed records in `dead_letter.rs`.

mod dead_letter;
mod lag;
mod offsets;
mod position;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_crds::CheckpointId;
use sluice_crds::contract::kafka::{Isolation, KafkaSourceSpec, StartFrom};
use sluice_crds::contract::pipeline::ErrorPolicy;

use self::lag::LagContext;
use self::position::{Partition, PartitionPosition};
use super::codec::{decode_key, decode_value};
use super::producer::{TrackedProducer, client_config, flush};
use super::security::Cluster;
use crate::ops::rate::RateLimit;
use crate::ops::{OpContext, OpError, Source, SourcePoll};
use crate::record::{Batch, Record};

/// Upper bound for metadata and offset lookups.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a subtask with nothing to read waits before polling again.
const IDLE_POLL: Duration = Duration::from_millis(2);

/// One subtask of a Kafka source.
pub struct KafkaSource {
    spec: KafkaSourceSpec,
    cluster: Cluster,
    ctx: OpContext,
    policy: ErrorPolicy,
    consumer: Option<BaseConsumer<LagContext>>,
    parts: Vec<Partition>,
    /// Index into `parts` by partition number (`usize::MAX`: not this subtask's).
    slot_of: Vec<usize>,
    known_partitions: i32,
    last_discovery: Instant,
    /// Offsets to commit back to the consumer group when a checkpoint completes.
    group_commits: BTreeMap<u64, Vec<(i32, i64)>>,
    dead_letter: Option<TrackedProducer>,
    malformed: u64,
    out_of_orderness: i64,
    rate: Option<RateLimit>,
}

impl KafkaSource {
    /// A source subtask reading from `cluster` (built from the spec's bootstrap servers and
    /// properties); call [`Source::open`] before polling.
    pub fn new(spec: KafkaSourceSpec, cluster: Cluster, ctx: OpContext, policy: ErrorPolicy) -> KafkaSource {
        let rate = spec.rate_per_second.map(|r| RateLimit::new(r as f64 / f64::from(ctx.parallelism.max(1))));
        let out_of_orderness =
            spec.max_out_of_orderness.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        KafkaSource {
            spec,
            cluster,
            ctx,
            policy,
            consumer: None,
            parts: Vec::new(),
            slot_of: Vec::new(),
            known_partitions: 0,
            last_discovery: Instant::now(),
            group_commits: BTreeMap::new(),
            dead_letter: None,
            malformed: 0,
            out_of_orderness,
            rate,
        }
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> OpError {
        OpError::External { node: self.ctx.node.clone(), message: format!("{what} (topic {}): {e}", self.spec.topic) }
    }

    fn consumer(&self) -> Result<&BaseConsumer<LagContext>, OpError> {
        self.consumer.as_ref().ok_or_else(|| self.err("poll", "source not opened"))
    }

    fn is_mine(&self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.ctx.parallelism.max(1) == self.ctx.subtask)
    }

    fn owns(&self, partition: i32) -> bool {
        usize::try_from(partition).ok().and_then(|p| self.slot_of.get(p)).is_some_and(|&s| s != usize::MAX)
    }

    fn part_mut(&mut self, partition: i32) -> Option<&mut Partition> {
        let slot = *usize::try_from(partition).ok().and_then(|p| self.slot_of.get(p))?;
        self.parts.get_mut(slot)
    }

    /// `partition` has nothing more for now: it stops holding the watermark back, and with
    /// `stopAtEnd` it is done once the consumer's position reaches its end offset.
    fn reached_eof(&mut self, partition: i32) {
        let at = self.consumer.as_ref().and_then(|c| c.position().ok()).and_then(|tpl| {
            match tpl.find_partition(&self.spec.topic, partition)?.offset() {
                Offset::Offset(at) => Some(at),
                _ => None,
            }
        });
        if let Some(part) = self.part_mut(partition) {
            part.reached_eof(at);
        }
    }

    fn commit_to_group(&mut self, checkpoint: CheckpointId) {
        let Some(offsets) = self.group_commits.remove(&checkpoint.0) else { return };
        self.group_commits = self.group_commits.split_off(&checkpoint.0);
        let (Some(consumer), Some(_)) = (&self.consumer, &self.spec.group_id) else { return };
        let mut tpl = TopicPartitionList::new();
        for (p, next) in offsets {
            if tpl.add_partition_offset(&self.spec.topic, p, Offset::Offset(next)).is_err() {
                return;
            }
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(node = %self.ctx.node, error = %e, "committing offsets to the consumer group failed (lag monitoring only)");
        }
    }
}

impl Source for KafkaSource {
    fn open(&mut self, restored: Option<Vec<serde_json::Value>>) -> Result<(), OpError> {
        let mut config = client_config(&self.spec.bootstrap_servers, &self.spec.properties);
        if !self.spec.properties.contains_key("fetch.wait.max.ms") {
            // librdkafka's 500 ms is latency on brokers that hold a fetch for its full wait.
            config.set("fetch.wait.max.ms", "50");
        }
        if !self.spec.properties.contains_key("statistics.interval.ms") {
            config.set("statistics.interval.ms", lag::STATISTICS_INTERVAL_MS);
        }
        let group = self.spec.group_id.clone().unwrap_or_else(|| format!("sluice-{}-{}", self.ctx.job, self.ctx.node));
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set(
                "isolation.level",
                match self.spec.isolation {
                    Isolation::ReadCommitted => "read_committed",
                    Isolation::ReadUncommitted => "read_uncommitted",
                },
            );
        let context = LagContext::new(&self.spec.topic, self.spec.isolation == Isolation::ReadCommitted);
        self.consumer = Some(config.create_with_context(context).map_err(|e| self.err("create consumer", e))?);
        self.known_partitions = self.partition_count()?;
        let mine: Vec<i32> = (0..self.known_partitions).filter(|&p| self.is_mine(p)).collect();
        let positions = match restored {
            None => self.fresh_positions(mine, self.spec.start_from)?,
            Some(state) => {
                let mut positions: Vec<PartitionPosition> = state
                    .into_iter()
                    .map(|v| {
                        serde_json::from_value(v).map_err(|e| OpError::Restore {
                            node: self.ctx.node.clone(),
                            message: format!("Kafka partition position: {e}"),
                        })
                    })
                    .collect::<Result<_, _>>()?;
                // Partitions created after the checkpoint: from the earliest offset.
                let new: Vec<i32> = mine.into_iter().filter(|p| !positions.iter().any(|pos| pos.split == *p)).collect();
                positions.extend(self.fresh_positions(new, StartFrom::Earliest)?);
                positions
            }
        };
        if let Some(foreign) = positions.iter().find(|p| !self.is_mine(p.split)) {
            return Err(OpError::Restore {
                node: self.ctx.node.clone(),
                message: format!(
                    "partition {} was restored to subtask {}, which does not own it",
                    foreign.split, self.ctx.subtask
                ),
            });
        }
        self.assign(positions)?;
        self.last_discovery = Instant::now();
        if let Some(r) = self.rate.as_mut() {
            r.restart();
        }
        Ok(())
    }

    fn poll(&mut self, out: &mut Batch, max: usize) -> Result<SourcePoll, OpError> {
        if self.last_discovery.elapsed() >= self.spec.partition_discovery_interval && !self.spec.stop_at_end {
            self.discover()?;
        }
        let max = match self.rate.as_ref().map(|r| r.budget(max)) {
            None => max,
            Some(Ok(n)) => n,
            Some(Err(wait)) => return Ok(SourcePoll::Idle(wait)),
        };
        let mut produced = 0;
        while produced < max {
            let consumer = self.consumer()?;
            let Some(next) = consumer.poll(Duration::ZERO) else { break };
            match next {
                Ok(m) => {
                    let (partition, offset) = (m.partition(), m.offset());
                    let ts = m.timestamp().to_millis().unwrap_or(0);
                    let decoded =
                        decode_key(m.key()).and_then(|key| Ok((key, decode_value(m.payload(), self.spec.format)?)));
                    let raw = match &decoded {
                        Ok(_) => None,
                        Err(_) => Some((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec))),
                    };
                    let Some(part) = self.part_mut(partition) else { continue };
                    if !part.advance(offset, ts) {
                        continue;
                    }
                    match decoded {
                        Ok((key, value)) => {
                            out.push(Record { key, ts, value });
                            produced += 1;
                        }
                        Err(message) => {
                            let (key, payload) = raw.unwrap_or_default();
                            self.malformed(partition, offset, key, payload, message.to_string())?;
                        }
                    }
                }
                Err(KafkaError::PartitionEOF(partition)) => self.reached_eof(partition),
                Err(e) => {
                    tracing::warn!(node = %self.ctx.node, error = %e, "Kafka consumer error (librdkafka retries)")
                }
            }
        }
        if produced > 0 {
            if let Some(r) = self.rate.as_mut() {
                r.emitted(produced);
            }
            return Ok(SourcePoll::Data);
        }
        if self.spec.stop_at_end && self.parts.iter().all(|p| p.done) {
            tracing::debug!(node = %self.ctx.node, subtask = self.ctx.subtask, parts = ?self.parts, "reached the end offsets");
            return Ok(SourcePoll::Finished);
        }
        Ok(SourcePoll::Idle(IDLE_POLL))
    }

    fn watermark(&self) -> i64 {
        // A partition that has not delivered yet holds the watermark back (its first records may
        // be older than what the others delivered); idle and finished partitions do not.
        let active = self.parts.iter().filter(|p| !p.idle && !p.done).map(|p| p.pos.max_ts).min();
        let least = active.or_else(|| self.parts.iter().map(|p| p.pos.max_ts).max()).unwrap_or(i64::MIN);
        if least == i64::MIN { i64::MIN } else { least.saturating_sub(self.out_of_orderness) }
    }

    fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<Vec<serde_json::Value>, OpError> {
        if let Some(p) = &self.dead_letter {
            let topic = self.spec.dead_letter_topic.clone().unwrap_or_default();
            flush(&self.ctx.node, p, &topic)?;
        }
        if self.spec.group_id.is_some() {
            self.group_commits.insert(checkpoint.0, self.parts.iter().map(|p| (p.pos.split, p.pos.next)).collect());
        }
        self.parts.iter().map(|p| serde_json::to_value(p.pos).map_err(|e| self.err("snapshot", e))).collect()
    }

    fn malformed_count(&self) -> u64 {
        self.malformed
    }

    fn report_lag(&self, report: &mut dyn FnMut(&str, i32, i64)) {
        let Some(consumer) = &self.consumer else { return };
        for p in &self.parts {
            if let Some(end) = consumer.context().end(p.pos.split) {
                report(&self.spec.topic, p.pos.split, lag::lag(end, p.pos.next));
            }
        }
    }

    fn checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OpError> {
        self.commit_to_group(checkpoint);
        Ok(())
    }
}
