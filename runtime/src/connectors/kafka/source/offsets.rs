//! Where a subtask starts reading: topic metadata and offset lookups, assigning partitions to
//! the consumer, and discovering partitions added to the topic while the job runs.

use std::time::Instant;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use sluice_crds::contract::kafka::StartFrom;

use super::position::{Partition, PartitionPosition};
use super::{KafkaSource, LOOKUP_TIMEOUT};
use crate::connectors::kafka::io::partition_ends_blocking;
use crate::ops::OpError;

impl KafkaSource {
    pub(super) fn partition_count(&self) -> Result<i32, OpError> {
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
    pub(super) fn end_offset(&self, partition: i32) -> Result<i64, OpError> {
        match partition_ends_blocking(self.ctx.io.as_ref(), &self.cluster, &self.spec.topic, partition) {
            Ok(ends) => Ok(ends.high_watermark),
            _ => self
                .consumer()?
                .fetch_watermarks(&self.spec.topic, partition, LOOKUP_TIMEOUT)
                .map(|(_, high)| high)
                .map_err(|e| self.err("read end offsets", e)),
        }
    }

    /// Concrete start offsets for partitions this job has never read.
    pub(super) fn start_offsets(&self, partitions: &[i32], from: StartFrom) -> Result<Vec<i64>, OpError> {
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
    pub(super) fn assign(&mut self, positions: Vec<PartitionPosition>) -> Result<(), OpError> {
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
            self.parts.push(Partition::new(pos));
        }
        Ok(())
    }

    /// Positions for partitions `partitions` read for the first time, from `from`.
    pub(super) fn fresh_positions(
        &self,
        partitions: Vec<i32>,
        from: StartFrom,
    ) -> Result<Vec<PartitionPosition>, OpError> {
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
    pub(super) fn discover(&mut self) -> Result<(), OpError> {
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
}
