//! Consumer lag of a Kafka source subtask: librdkafka's statistics (every
//! [`STATISTICS_INTERVAL_MS`], delivered by the consumer's own `poll`) give each partition's
//! end — the last stable offset under read_committed, the high watermark otherwise — and the lag
//! is that end minus the source's position. No request of its own, nothing per record.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::Statistics;

/// How often librdkafka emits statistics unless the job's `properties` say otherwise.
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// The consumer's context: keeps the partition ends of the source's topic from the statistics.
#[derive(Debug)]
pub struct LagContext {
    topic: String,
    read_committed: bool,
    ends: Mutex<BTreeMap<i32, i64>>,
}

impl LagContext {
    /// A context for a consumer of `topic`.
    pub fn new(topic: &str, read_committed: bool) -> LagContext {
        LagContext { topic: topic.to_string(), read_committed, ends: Mutex::default() }
    }

    /// The last known end offset of `partition`.
    pub fn end(&self, partition: i32) -> Option<i64> {
        self.ends.lock().unwrap_or_else(|p| p.into_inner()).get(&partition).copied()
    }

    /// Records partition ends as `(partition, high watermark, last stable offset)`.
    fn record(&self, partitions: impl Iterator<Item = (i32, i64, i64)>) {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        for (partition, hi, ls) in partitions {
            // librdkafka reports -1 for the internal "unassigned" partition and for unknown ends.
            let end = if self.read_committed { ls } else { hi };
            if partition >= 0 && end >= 0 {
                ends.insert(partition, end);
            }
        }
    }
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        if let Some(topic) = statistics.topics.get(&self.topic) {
            self.record(topic.partitions.iter().map(|(&id, p)| (id, p.hi_offset, p.ls_offset)));
        }
    }
}

impl ConsumerContext for LagContext {}

/// Records between `position` (the next offset to read) and `end`; never negative.
pub fn lag(end: i64, position: i64) -> i64 {
    end.saturating_sub(position).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_follow_the_isolation_level_and_skip_unknown_partitions() {
        let parts = [(0, 100, 90), (1, 7, 7), (-1, 5, 5), (2, -1, -1)];
        let committed = LagContext::new("t", true);
        committed.record(parts.into_iter());
        assert_eq!((committed.end(0), committed.end(1), committed.end(-1)), (Some(90), Some(7), None));
        assert_eq!(committed.end(2), None, "an unknown end is not recorded");
        let uncommitted = LagContext::new("t", false);
        uncommitted.record(parts.into_iter());
        assert_eq!(uncommitted.end(0), Some(100));
        uncommitted.record([(0, 120, 110)].into_iter());
        assert_eq!(uncommitted.end(0), Some(120), "the latest report wins");
        assert_eq!(lag(90, 40), 50);
        assert_eq!(lag(90, 95), 0, "a position past a stale end is no lag");
    }
}
