//! The Kafka source: one topic, partitions dealt to subtasks by `partition % parallelism` (no
//! consumer-group rebalancing inside a job), positions in checkpointed list state (one element
//! per partition, `split` = partition, so a restore at another parallelism deals them the same
//! way), read_committed by default. Event time is the record timestamp; each partition keeps
//! its own watermark and the subtask's is the least over partitions that are not idle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use sluice_crds::CheckpointId;
use sluice_crds::contract::kafka::{Isolation, KafkaSourceSpec, StartFrom};
use sluice_crds::contract::pipeline::ErrorPolicy;

use super::codec::{decode_key, decode_value};
use super::io::partition_ends_blocking;
use super::producer::{TrackedProducer, client_config, create_producer, flush};
use crate::ops::rate::RateLimit;
use crate::ops::{OpContext, OpError, Source, SourcePoll};
use crate::record::{Batch, Record};

/// Upper bound for metadata and offset lookups.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a subtask with nothing to read waits before polling again.
const IDLE_POLL: Duration = Duration::from_millis(2);

/// Checkpointed position of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PartitionPosition {
    /// The partition (named `split` so restores deal partitions by `split % parallelism`).
    split: i32,
    /// Next offset to read.
    next: i64,
    /// With `stopAtEnd`: the offset to stop at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<i64>,
    /// Largest event time read from the partition before `next` (`i64::MIN`: none yet), so a
    /// restored partition's watermark resumes where it was instead of starting over. Absent in
    /// checkpoints of older runtimes (then it starts over: never late, only later to fire).
    #[serde(default = "no_time", rename = "maxTs", skip_serializing_if = "is_no_time")]
    max_ts: i64,
}

fn no_time() -> i64 {
    i64::MIN
}

fn is_no_time(ts: &i64) -> bool {
    *ts == i64::MIN
}

/// Live state of one assigned partition.
#[derive(Clone, Copy, Debug)]
struct Partition {
    pos: PartitionPosition,
    idle: bool,
    done: bool,
}

/// One subtask of a Kafka source.
pub struct KafkaSource {
    spec: KafkaSourceSpec,
    ctx: OpContext,
    policy: ErrorPolicy,
    consumer: Option<BaseConsumer>,
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
    /// A source subtask; call [`Source::open`] before polling.
    pub fn new(spec: KafkaSourceSpec, ctx: OpContext, policy: ErrorPolicy) -> KafkaSource {
        let rate = spec.rate_per_second.map(|r| RateLimit::new(r as f64 / f64::from(ctx.parallelism.max(1))));
        let out_of_orderness =
            spec.max_out_of_orderness.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        KafkaSource {
            spec,
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

    fn consumer(&self) -> Result<&BaseConsumer, OpError> {
        self.consumer.as_ref().ok_or_else(|| self.err("poll", "source not opened"))
    }

    fn is_mine(&self, partition: i32) -> bool {
        u32::try_from(partition).is_ok_and(|p| p % self.ctx.parallelism.max(1) == self.ctx.subtask)
    }

    fn partition_count(&self) -> Result<i32, OpError> {
        let metadata = self
            .consumer()?
            .fetch_metadata(Some(&self.spec.topic), LOOKUP_TIMEOUT)
            .map_err(|e| self.err("read metadata", e))?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.spec.topic)
            .ok_or_else(|| self.err("read metadata", "topic not found"))?;
        if let Some(e) = topic.error() {
            return Err(self.err("read metadata", format!("{e:?}")));
        }
        Ok(i32::try_from(topic.partitions().len()).unwrap_or(i32::MAX))
    }

    /// The high watermark of `partition`, from a Fetch answer (the test broker's ListOffsets
    /// answers the last batch's base offset + 1 for "latest"); ListOffsets when that fails.
    fn end_offset(&self, partition: i32) -> Result<i64, OpError> {
        match partition_ends_blocking(self.ctx.io.as_ref(), &self.spec.bootstrap_servers, &self.spec.topic, partition) {
            Ok(ends) => Ok(ends.high_watermark),
            _ => self
                .consumer()?
                .fetch_watermarks(&self.spec.topic, partition, LOOKUP_TIMEOUT)
                .map(|(_, high)| high)
                .map_err(|e| self.err("read end offsets", e)),
        }
    }

    /// Concrete start offsets for partitions this job has never read.
    fn start_offsets(&self, partitions: &[i32], from: StartFrom) -> Result<Vec<i64>, OpError> {
        let consumer = self.consumer()?;
        let topic = self.spec.topic.as_str();
        let watermarks =
            |p: i32| consumer.fetch_watermarks(topic, p, LOOKUP_TIMEOUT).map_err(|e| self.err("read offsets", e));
        let looked_up = |tpl: TopicPartitionList, fallback: &dyn Fn(i32) -> Result<i64, OpError>| {
            partitions
                .iter()
                .map(|&p| match tpl.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) if o >= 0 => Ok(o),
                    _ => fallback(p),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        match from {
            StartFrom::Earliest => partitions.iter().map(|&p| watermarks(p).map(|(low, _)| low)).collect(),
            StartFrom::Latest => partitions.iter().map(|&p| self.end_offset(p)).collect(),
            StartFrom::Timestamp => {
                let ts = self.spec.start_timestamp_ms.unwrap_or(0);
                let mut tpl = TopicPartitionList::new();
                for &p in partitions {
                    tpl.add_partition_offset(topic, p, Offset::Offset(ts)).map_err(|e| self.err("start offsets", e))?;
                }
                let found =
                    consumer.offsets_for_times(tpl, LOOKUP_TIMEOUT).map_err(|e| self.err("offsets for time", e))?;
                // No record at or after the timestamp: start at the end.
                looked_up(found, &|p| self.end_offset(p))
            }
            StartFrom::GroupOffsets => {
                let mut tpl = TopicPartitionList::new();
                for &p in partitions {
                    tpl.add_partition(topic, p);
                }
                let found =
                    consumer.committed_offsets(tpl, LOOKUP_TIMEOUT).map_err(|e| self.err("group offsets", e))?;
                looked_up(found, &|p| watermarks(p).map(|(low, _)| low))
            }
        }
    }

    /// Starts reading `positions` (new to this subtask).
    fn assign(&mut self, positions: Vec<PartitionPosition>) -> Result<(), OpError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for pos in &positions {
            tpl.add_partition_offset(&self.spec.topic, pos.split, Offset::Offset(pos.next))
                .map_err(|e| self.err("assign", e))?;
        }
        self.consumer()?.incremental_assign(&tpl).map_err(|e| self.err("assign", e))?;
        for pos in positions {
            let p = usize::try_from(pos.split).map_err(|e| self.err("assign", e))?;
            if self.slot_of.len() <= p {
                self.slot_of.resize(p + 1, usize::MAX);
            }
            self.slot_of[p] = self.parts.len();
            let done = pos.end.is_some_and(|end| pos.next >= end);
            self.parts.push(Partition { pos, idle: false, done });
        }
        Ok(())
    }

    /// Positions for partitions `partitions` read for the first time, from `from`.
    fn fresh_positions(&self, partitions: Vec<i32>, from: StartFrom) -> Result<Vec<PartitionPosition>, OpError> {
        let starts = self.start_offsets(&partitions, from)?;
        partitions
            .into_iter()
            .zip(starts)
            .map(|(p, next)| {
                let end = if self.spec.stop_at_end { Some(self.end_offset(p)?) } else { None };
                Ok(PartitionPosition { split: p, next, end, max_ts: i64::MIN })
            })
            .collect()
    }

    /// Picks up partitions added to the topic since the last look (read from the earliest offset).
    fn discover(&mut self) -> Result<(), OpError> {
        self.last_discovery = Instant::now();
        let count = self.partition_count()?;
        if count <= self.known_partitions {
            return Ok(());
        }
        let new: Vec<i32> = (self.known_partitions..count).filter(|&p| self.is_mine(p) && !self.owns(p)).collect();
        self.known_partitions = count;
        if !new.is_empty() {
            tracing::info!(node = %self.ctx.node, subtask = self.ctx.subtask, partitions = ?new, "new partitions");
            let positions = self.fresh_positions(new, StartFrom::Earliest)?;
            self.assign(positions)?;
        }
        Ok(())
    }

    fn owns(&self, partition: i32) -> bool {
        usize::try_from(partition).ok().and_then(|p| self.slot_of.get(p)).is_some_and(|&s| s != usize::MAX)
    }

    fn part_mut(&mut self, partition: i32) -> Option<&mut Partition> {
        let slot = *usize::try_from(partition).ok().and_then(|p| self.slot_of.get(p))?;
        self.parts.get_mut(slot)
    }

    /// A record that does not decode: fail, skip, or copy it to the dead-letter topic.
    fn malformed(
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
        self.consumer = Some(config.create().map_err(|e| self.err("create consumer", e))?);
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
                    if part.done {
                        continue;
                    }
                    if part.pos.end.is_some_and(|end| offset >= end) {
                        part.done = true;
                        continue;
                    }
                    part.pos.next = offset + 1;
                    part.idle = false;
                    part.pos.max_ts = part.pos.max_ts.max(ts);
                    if part.pos.end.is_some_and(|end| part.pos.next >= end) {
                        part.done = true;
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
                Err(KafkaError::PartitionEOF(partition)) => {
                    // Control records (transaction markers) end a partition without a message:
                    // the consumer's position says how far it really got.
                    let at = consumer.position().ok().and_then(|tpl| {
                        match tpl.find_partition(&self.spec.topic, partition)?.offset() {
                            Offset::Offset(at) => Some(at),
                            _ => None,
                        }
                    });
                    let Some(part) = self.part_mut(partition) else { continue };
                    part.idle = true;
                    if let (Some(end), Some(at)) = (part.pos.end, at) {
                        part.pos.next = part.pos.next.max(at.min(end));
                        if at >= end {
                            part.done = true;
                        }
                    }
                }

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

    fn checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OpError> {
        self.commit_to_group(checkpoint);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitions_event_time_is_checkpointed_and_older_checkpoints_still_restore() {
        let pos = PartitionPosition { split: 2, next: 40, end: None, max_ts: 1_700 };
        let json = serde_json::to_value(pos).expect("json");
        assert_eq!(json, serde_json::json!({"split": 2, "next": 40, "maxTs": 1_700}));
        assert_eq!(serde_json::from_value::<PartitionPosition>(json).expect("decodes"), pos);
        let older: PartitionPosition =
            serde_json::from_value(serde_json::json!({"split": 2, "next": 40})).expect("decodes");
        assert_eq!(older.max_ts, i64::MIN, "no time yet: the watermark starts over");
        let fresh = PartitionPosition { max_ts: i64::MIN, ..pos };
        assert_eq!(serde_json::to_value(fresh).expect("json"), serde_json::json!({"split": 2, "next": 40}));
    }
}
