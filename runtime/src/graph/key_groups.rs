//! Key groups: the unit keyed state is split into, so a job can restore at another parallelism.
//! A key's group is the high 32 bits of `stable_hash(key)` scaled into `0..maxParallelism`
//! (multiply-shift range reduction: uniform, stable, no division on the per-record path);
//! subtask `i` of `p` owns a contiguous range of groups (the same arithmetic as Flink's
//! `KeyGroupRangeAssignment`).

use serde::{Deserialize, Serialize};

/// An inclusive range of key groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    /// First group.
    pub start: u32,
    /// Last group (inclusive).
    pub end: u32,
}

impl KeyGroupRange {
    /// The groups owned by `subtask` of `parallelism` when there are `max_parallelism` groups.
    pub fn for_subtask(subtask: u32, parallelism: u32, max_parallelism: u32) -> KeyGroupRange {
        let (i, p, m) = (u64::from(subtask), u64::from(parallelism.max(1)), u64::from(max_parallelism));
        let start = (i * m).div_ceil(p);
        let end = ((i + 1) * m - 1) / p;
        KeyGroupRange { start: start as u32, end: end as u32 }
    }

    /// Whether `group` is in the range.
    pub fn contains(&self, group: u32) -> bool {
        self.start <= group && group <= self.end
    }

    /// Whether two ranges share a group.
    pub fn overlaps(&self, other: &KeyGroupRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// The key group of a key hash. Part of the checkpoint format: never change it.
#[inline]
pub fn key_group(hash: u64, max_parallelism: u32) -> u32 {
    (((hash >> 32) * u64::from(max_parallelism.max(1))) >> 32) as u32
}

/// The subtask (of `parallelism`) that owns `group`.
#[inline]
pub fn subtask_for_group(group: u32, parallelism: u32, max_parallelism: u32) -> u32 {
    (u64::from(group) * u64::from(parallelism) / u64::from(max_parallelism.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_are_pinned_and_in_range() {
        assert_eq!(key_group(0, 128), 0);
        assert_eq!(key_group(u64::MAX, 128), 127);
        assert_eq!(key_group(0x8000_0000_0000_0000, 128), 64);
        for h in [1u64, 7, 1 << 40, u64::MAX / 3] {
            assert!(key_group(crate::value::mix64(h), 1000) < 1000);
        }
    }

    #[test]
    fn ranges_partition_the_groups_and_agree_with_the_owner_function() {
        for m in [1u32, 7, 128, 1000] {
            for p in 1..=m.min(13) {
                let mut next = 0;
                for i in 0..p {
                    let r = KeyGroupRange::for_subtask(i, p, m);
                    assert_eq!(r.start, next, "m={m} p={p} i={i}");
                    for g in r.start..=r.end {
                        assert_eq!(subtask_for_group(g, p, m), i);
                    }
                    next = r.end + 1;
                }
                assert_eq!(next, m);
            }
        }
    }
}
