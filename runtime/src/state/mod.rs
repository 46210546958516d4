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

/// An encoded state file with the first and last key group it covers (`None` when empty).
pub type EncodedFile = (Vec<u8>, Option<(u32, u32)>);

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

    /// The capture as a state file for `max_parallelism` key groups, with the first and last
    /// group it covers; `None` when it has no entry. By default through a [`StateWriter`].
    fn encode(self: Box<Self>, max_parallelism: u32) -> Option<EncodedFile> {
        let delta = self.is_delta();
        let mut w = StateWriter::new(max_parallelism);
        self.write_to(&mut w);
        (!w.is_empty()).then(|| w.finish(delta))
    }
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
/// An entry is kept as its values (reference-counted handles, cheap to take) with its key
/// group; [`StateWriter::finish`] orders them by group with a counting sort (stable: in the
/// order they came within a group) and encodes them once, straight into the file. Encoding into
/// a buffer per group and then copying the buffers into the file held the encoded state twice,
/// the largest transient of a checkpoint of large values (whole records in a top-N or a
/// deduplication).
pub struct StateWriter {
    groups: u32,
    entries: Vec<(u32, Value, Value, Option<Value>)>,
}

impl StateWriter {
    /// A writer for a job with `max_parallelism` key groups.
    pub fn new(max_parallelism: u32) -> StateWriter {
        StateWriter { groups: max_parallelism.max(1), entries: Vec::new() }
    }

    /// Makes room for `more` entries at once.
    pub fn reserve(&mut self, more: usize) {
        self.entries.reserve_exact(more);
    }

    /// Adds an entry (or, with `None`, a tombstone).
    pub fn put(&mut self, key: &Value, namespace: &Value, value: Option<&Value>) {
        let group = key_group(key.stable_hash(), self.groups);
        self.entries.push((group, key.clone(), namespace.clone(), value.cloned()));
    }

    /// Number of entries written so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry was written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The encoded file, with the first and last key group it covers (`None` when empty).
    pub fn finish(self, delta: bool) -> EncodedFile {
        encode_by_group(&self.entries, self.groups, delta, |(g, k, ns, v)| (*g, k, ns, v.as_ref()))
    }
}

/// One entry as the file writes it: `(key group, key, namespace, value or tombstone)`.
pub(crate) type EntryView<'a> = (u32, &'a Value, &'a Value, Option<&'a Value>);

/// Encodes `entries` into a state file ordered by key group (a counting sort, stable: in the
/// order they come within a group), with the first and last group; `view` gives an entry's
/// group and parts.
pub(crate) fn encode_by_group<'a, E>(
    entries: &'a [E],
    groups: u32,
    delta: bool,
    view: impl Fn(&'a E) -> EntryView<'a>,
) -> EncodedFile {
    let groups = groups.max(1) as usize;
    let group = |e: &'a E| (view(e).0 as usize).min(groups - 1);
    // Where each group starts, then every entry's place.
    let mut starts = vec![0u32; groups + 1];
    for e in entries {
        starts[group(e) + 1] += 1;
    }
    for g in 0..groups {
        starts[g + 1] += starts[g];
    }
    let mut order = vec![0u32; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        let at = &mut starts[group(e)];
        order[*at as usize] = i as u32;
        *at += 1;
    }
    let first = order.first().map(|&i| view(&entries[i as usize]).0);
    let last = order.last().map(|&i| view(&entries[i as usize]).0);
    let bytes = file::encode(order.iter().map(|&i| view(&entries[i as usize])), entries.len(), delta);
    (bytes, first.zip(last))
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
