//! Where a subtask is in each of its partitions: the checkpointed position and the live state
//! the poll loop advances per record.

use serde::{Deserialize, Serialize};

/// Checkpointed position of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PartitionPosition {
    /// The partition (named `split` so restores deal partitions by `split % parallelism`).
    pub(super) split: i32,
    /// Next offset to read.
    pub(super) next: i64,
    /// With `stopAtEnd`: the offset to stop at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) end: Option<i64>,
    /// Largest event time read from the partition before `next` (`i64::MIN`: none yet), so a
    /// restored partition's watermark resumes where it was instead of starting over. Absent in
    /// checkpoints of older runtimes (then it starts over: never late, only later to fire).
    #[serde(default = "no_time", rename = "maxTs", skip_serializing_if = "is_no_time")]
    pub(super) max_ts: i64,
}

fn no_time() -> i64 {
    i64::MIN
}

fn is_no_time(ts: &i64) -> bool {
    *ts == i64::MIN
}

/// Live state of one assigned partition.
#[derive(Clone, Copy, Debug)]
pub(super) struct Partition {
    pub(super) pos: PartitionPosition,
    /// Read to the end of what is there for now (it does not hold the watermark back).
    pub(super) idle: bool,
    /// Read to its end offset (`stopAtEnd`): nothing more is taken from it.
    pub(super) done: bool,
}

impl Partition {
    /// A partition assigned at `pos`.
    pub(super) fn new(pos: PartitionPosition) -> Partition {
        let done = pos.end.is_some_and(|end| pos.next >= end);
        Partition { pos, idle: false, done }
    }

    /// Takes the record at `offset` with event time `ts` into the position; `false` when it is
    /// not to be emitted (the partition is done, or the record lies at or past its end).
    #[inline]
    pub(super) fn advance(&mut self, offset: i64, ts: i64) -> bool {
        if self.done {
            return false;
        }
        if self.pos.end.is_some_and(|end| offset >= end) {
            self.done = true;
            return false;
        }
        self.pos.next = offset + 1;
        self.idle = false;
        self.pos.max_ts = self.pos.max_ts.max(ts);
        if self.pos.end.is_some_and(|end| self.pos.next >= end) {
            self.done = true;
        }
        true
    }

    /// The partition has nothing more for now; `at` is the consumer's position in it (control
    /// records, such as transaction markers, move it past the last record).
    pub(super) fn reached_eof(&mut self, at: Option<i64>) {
        self.idle = true;
        if let (Some(end), Some(at)) = (self.pos.end, at) {
            self.pos.next = self.pos.next.max(at.min(end));
            if at >= end {
                self.done = true;
            }
        }
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

    /// With `stopAtEnd`, records before the end are taken, the one at the end is not, and the
    /// partition is done as soon as its position reaches the end; an end-of-partition moves the
    /// position up to (never past) the end.
    #[test]
    fn a_bounded_partition_takes_records_up_to_its_end_and_is_done_there() {
        let pos = PartitionPosition { split: 0, next: 7, end: Some(10), max_ts: i64::MIN };
        let mut p = Partition::new(pos);
        assert!(!p.done);
        assert!(p.advance(8, 50) && !p.done && p.pos.next == 9 && p.pos.max_ts == 50);
        assert!(p.advance(9, 40), "an older record does not lower the partition's time");
        assert!(p.done && p.pos.next == 10 && p.pos.max_ts == 50);
        assert!(!p.advance(10, 60) && p.pos.next == 10, "nothing past the end");
        let mut q = Partition::new(pos);
        assert!(!q.advance(12, 1) && q.done && q.pos.next == 7, "a record past the end ends it unread");
        let mut r = Partition::new(pos);
        r.reached_eof(Some(13));
        assert!(r.idle && r.done && r.pos.next == 10, "a transaction marker at the end finishes it");
        let mut open = Partition::new(PartitionPosition { end: None, ..pos });
        open.reached_eof(Some(13));
        assert!(open.idle && !open.done && open.pos.next == 7, "an unbounded partition only goes idle");
        assert!(open.advance(7, 1) && !open.idle);
        assert!(Partition::new(PartitionPosition { next: 10, ..pos }).done, "restored at its end");
    }
}
