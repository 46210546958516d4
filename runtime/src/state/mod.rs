//! Keyed state: entries `(key, namespace) → value` grouped by key group, captured cheaply on the
//! task at a barrier and encoded into checksummed, immutable state files off the task.

pub mod capture;
pub mod file;
mod slots;
pub mod table;

use std::mem;

use crate::graph::key_groups::key_group;
use crate::value::Value;

pub use capture::{ChainFold, TableCapture};
pub use file::{StateFileError, decode_state_file};
pub use table::KeyedTable;

/// How much keyed state a snapshot must contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Every entry: a new base (first checkpoint of a run, savepoints, compaction).
    Full,
    /// Only the entries changed (and deleted) since the previous snapshot.
    Incremental,
}

/// One keyed-state entry. `namespace` separates several values under one key (e.g. a window's
/// start); `value` is `None` for a deletion (in incremental files).
#[derive(Clone, Debug, PartialEq)]
pub struct StateEntry {
    /// Key group of `key`.
    pub key_group: u32,
    /// The record key.
    pub key: Value,
    /// Sub-key within the key (window start, …); `Null` when unused.
    pub namespace: Value,
    /// The value, or `None` for a tombstone.
    pub value: Option<Value>,
}

/// State captured on the task at a barrier, turned into bytes later on another thread.
/// The capture must be cheap (a copy of the entries, or a swap of a change set).
pub trait KeyedSnapshot: Send + 'static {
    /// True when the capture holds only changes on top of the previous snapshot.
    fn is_delta(&self) -> bool;
    /// Writes every entry of the capture.
    fn write_to(self: Box<Self>, w: &mut StateWriter);
}

/// A capture that is a list of `(key, namespace, value or tombstone)` entries.
pub struct EntryList {
    /// The entries; `None` deletes the entry (deltas only).
    pub entries: Vec<(Value, Value, Option<Value>)>,
    /// Whether this is a delta.
    pub delta: bool,
}

impl KeyedSnapshot for EntryList {
    fn is_delta(&self) -> bool {
        self.delta
    }

    fn write_to(self: Box<Self>, w: &mut StateWriter) {
        for (k, ns, v) in &self.entries {
            w.put(k, ns, v.as_ref());
        }
    }
}

/// Accumulates entries, then produces a state file sorted by key group.
pub struct StateWriter {
    max_parallelism: u32,
    staging: Vec<u8>,
    index: Vec<(u32, usize, usize)>,
}

impl StateWriter {
    /// A writer for a job with `max_parallelism` key groups.
    pub fn new(max_parallelism: u32) -> StateWriter {
        StateWriter { max_parallelism, staging: Vec::new(), index: Vec::new() }
    }

    /// Adds an entry (or, with `None`, a tombstone).
    pub fn put(&mut self, key: &Value, namespace: &Value, value: Option<&Value>) {
        let group = key_group(key.stable_hash(), self.max_parallelism);
        let start = self.staging.len();
        key.encode(&mut self.staging);
        namespace.encode(&mut self.staging);
        match value {
            Some(v) => {
                self.staging.push(1);
                v.encode(&mut self.staging);
            }
            None => self.staging.push(0),
        }
        self.index.push((group, start, self.staging.len() - start));
    }

    /// Number of entries written so far.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no entry was written.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The encoded file, with the first and last key group it covers (`None` when empty).
    pub fn finish(mut self, delta: bool) -> (Vec<u8>, Option<(u32, u32)>) {
        self.index = sort_by_group(mem::take(&mut self.index), self.max_parallelism);
        let span = match (self.index.first(), self.index.last()) {
            (Some(f), Some(l)) => Some((f.0, l.0)),
            _ => None,
        };
        let bytes = file::encode(&self.staging, &self.index, delta);
        (bytes, span)
    }
}

/// Sorts entries by key group, keeping their order within a group (what a stable sort does), in
/// one counting pass: groups are `0..max_parallelism`.
fn sort_by_group(index: Vec<(u32, usize, usize)>, max_parallelism: u32) -> Vec<(u32, usize, usize)> {
    let groups = max_parallelism.max(1) as usize;
    let mut start = vec![0usize; groups + 1];
    for &(g, _, _) in &index {
        match start.get_mut(g as usize + 1) {
            Some(c) => *c += 1,
            None => {
                // Not a group of this job (cannot happen: `key_group` stays in range).
                let mut index = index;
                index.sort_by_key(|&(g, _, _)| g);
                return index;
            }
        }
    }
    for i in 1..=groups {
        start[i] += start[i - 1];
    }
    let mut out = vec![(0, 0, 0); index.len()];
    for e in index {
        let at = &mut start[e.0 as usize];
        out[*at] = e;
        *at += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    /// The counting sort gives what the stable sort the file format was written with gives, so
    /// state files are byte for byte the same.
    #[test]
    fn sorting_by_group_is_the_stable_sort() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for groups in [1u32, 2, 7, 128, 1000] {
            let index: Vec<(u32, usize, usize)> =
                (0..5000).map(|i| (rng.random_range(0..groups), i, rng.random_range(0..9))).collect();
            let mut stable = index.clone();
            stable.sort_by_key(|&(g, _, _)| g);
            assert_eq!(super::sort_by_group(index, groups), stable, "{groups} groups");
        }
    }
}
