//! Keyed state: entries `(key, namespace) → value` grouped by key group, captured cheaply on the
//! task at a barrier and encoded into checksummed, immutable state files off the task.

pub mod capture;
pub mod file;
mod slots;
pub mod table;

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
///
/// Each entry is encoded straight into the buffer of its key group, after the group number the
/// file gives every entry, so the file is those buffers one after another: entries in group
/// order, in the order they came within a group (a stable sort), with no index to sort.
pub struct StateWriter {
    groups: Vec<Vec<u8>>,
    entries: usize,
}

impl StateWriter {
    /// A writer for a job with `max_parallelism` key groups.
    pub fn new(max_parallelism: u32) -> StateWriter {
        StateWriter { groups: vec![Vec::new(); max_parallelism.max(1) as usize], entries: 0 }
    }

    /// Adds an entry (or, with `None`, a tombstone).
    pub fn put(&mut self, key: &Value, namespace: &Value, value: Option<&Value>) {
        let group = key_group(key.stable_hash(), self.groups.len() as u32);
        let at = group as usize;
        if at >= self.groups.len() {
            // Not a group of this job (cannot happen: `key_group` stays in range).
            self.groups.resize(at + 1, Vec::new());
        }
        let out = &mut self.groups[at];
        out.extend_from_slice(&group.to_le_bytes());
        key.encode(out);
        namespace.encode(out);
        match value {
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
            None => out.push(0),
        }
        self.entries += 1;
    }

    /// Number of entries written so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no entry was written.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The encoded file, with the first and last key group it covers (`None` when empty).
    pub fn finish(self, delta: bool) -> (Vec<u8>, Option<(u32, u32)>) {
        let used = |g: &(usize, &Vec<u8>)| !g.1.is_empty();
        let first = self.groups.iter().enumerate().find(used).map(|(g, _)| g as u32);
        let last = self.groups.iter().enumerate().rev().find(used).map(|(g, _)| g as u32);
        let bytes = file::encode(self.groups, self.entries, delta);
        (bytes, first.zip(last))
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    type Entry = (Value, Value, Option<Value>);

    /// The file a writer makes is the one the format describes, written here independently:
    /// entries stably sorted by key group, each as `group, key, namespace, 1 value | 0`.
    #[test]
    fn the_file_is_the_entries_stably_sorted_by_group() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for groups in [1u32, 2, 7, 128] {
            let entries: Vec<Entry> = (0..3000)
                .map(|i| {
                    let key = if i % 3 == 0 {
                        Value::str(&format!("k{}", rng.random_range(0..50)))
                    } else {
                        Value::Int(rng.random_range(0..400))
                    };
                    let value = rng.random_bool(0.8).then_some(Value::Int(i));
                    (key, Value::Int(rng.random_range(0..3)), value)
                })
                .collect();
            let mut w = StateWriter::new(groups);
            for (k, ns, v) in &entries {
                w.put(k, ns, v.as_ref());
            }
            let (bytes, span) = w.finish(true);
            let mut sorted: Vec<(u32, &Entry)> =
                entries.iter().map(|e| (key_group(e.0.stable_hash(), groups), e)).collect();
            sorted.sort_by_key(|(g, _)| *g);
            let mut body = Vec::new();
            for (g, (k, ns, v)) in &sorted {
                body.extend_from_slice(&g.to_le_bytes());
                k.encode(&mut body);
                ns.encode(&mut body);
                match v {
                    Some(v) => {
                        body.push(1);
                        v.encode(&mut body);
                    }
                    None => body.push(0),
                }
            }
            assert_eq!(&bytes[..4], b"SLST");
            assert_eq!(bytes[4..6], [2, 1], "version 2, delta");
            assert!(bytes[8..8 + body.len()] == body[..], "{groups} groups: entries differ");
            assert_eq!(bytes[8 + body.len()..8 + body.len() + 8], (entries.len() as u64).to_le_bytes());
            assert_eq!(bytes.len(), 8 + body.len() + 16);
            assert_eq!(span, Some((sorted[0].0, sorted[sorted.len() - 1].0)));
        }
    }
}
