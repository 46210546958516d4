//! The two ends of an incremental checkpoint chain: a [`TableCapture`] (what a
//! [`KeyedTable`](super::KeyedTable) hands over at a barrier, encoded off the task) and a
//! [`ChainFold`] (a base and its deltas, folded back into the entries they restore).

use std::collections::HashMap;
use std::sync::Arc;

use super::table::Entries;
use super::{EncodedFile, EntryView, KeyedSnapshot, StateEntry, StateWriter, encode_by_group};
use crate::graph::key_groups::key_group;
use crate::value::Value;

/// What a capture holds besides the shared entries.
pub(super) enum CaptureKind {
    /// Every entry.
    Full,
    /// The epoch's changes: the listed entries (`None`: those tagged with the epoch) and the
    /// removals (tombstones, unless the entry is back).
    Delta { changed: Option<Vec<(Value, Value)>>, removed: Vec<(Value, Value)> },
}

/// A table's state at a barrier: shares the table's entries (frozen until this is dropped) and
/// writes them, or the epoch's changes, when encoded.
pub struct TableCapture {
    entries: Arc<Entries>,
    /// How many entries the table holds (all namespaces).
    len: usize,
    epoch: u64,
    kind: CaptureKind,
}

impl TableCapture {
    pub(super) fn new(entries: Arc<Entries>, len: usize, epoch: u64, kind: CaptureKind) -> TableCapture {
        TableCapture { entries, len, epoch, kind }
    }

    /// At least as many as the entries and tombstones [`TableCapture::for_each`] gives.
    fn most(&self) -> usize {
        match &self.kind {
            CaptureKind::Full => self.len,
            CaptureKind::Delta { changed: Some(list), removed } => list.len() + removed.len(),
            CaptureKind::Delta { changed: None, removed } => self.len + removed.len(),
        }
    }

    /// Calls `f` with every `(key, namespace, value or tombstone)` the capture writes.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a Value, &'a Value, Option<&'a Value>)) {
        let entries = &*self.entries;
        let all = entries.iter().flat_map(|(k, s)| s.iter().map(move |(n, t)| (k, n, t)));
        match &self.kind {
            CaptureKind::Full => all.for_each(|(k, n, t)| f(k, n, Some(&t.value))),
            CaptureKind::Delta { changed, removed } => {
                match changed {
                    Some(list) => {
                        for (k, n) in list {
                            if let Some(t) = entries.get(k).and_then(|s| s.find(n)) {
                                f(k, n, Some(&t.value));
                            }
                        }
                    }
                    None => all.filter(|(_, _, t)| t.epoch == self.epoch).for_each(|(k, n, t)| f(k, n, Some(&t.value))),
                }
                for (k, n) in removed {
                    if entries.get(k).and_then(|s| s.find(n)).is_none() {
                        f(k, n, None);
                    }
                }
            }
        }
    }
}

impl KeyedSnapshot for TableCapture {
    fn is_delta(&self) -> bool {
        matches!(self.kind, CaptureKind::Delta { .. })
    }

    fn write_to(self: Box<Self>, w: &mut StateWriter) {
        // The writer takes the entries' handles, sized once (grown by doubling, they would
        // hold up to twice the table's handles); the table goes before they are encoded (the
        // task writes through its overlay until then).
        w.reserve(self.most());
        self.for_each(|k, n, v| w.put(k, n, v));
    }

    /// Encodes from references into the shared entries: 32 bytes per entry to order them by
    /// key group, where a [`StateWriter`]'s handles took 60 (with 1.5 M windows, q5's largest
    /// transient).
    fn encode(self: Box<Self>, max_parallelism: u32) -> Option<EncodedFile> {
        let groups = max_parallelism.max(1);
        let mut views: Vec<EntryView<'_>> = Vec::with_capacity(self.most());
        self.for_each(|k, n, v| views.push((key_group(k.stable_hash(), groups), k, n, v)));
        if views.is_empty() {
            return None;
        }
        Some(encode_by_group(&views, groups, self.is_delta(), |v| *v))
    }
}

/// Folds the entries of a base file and its deltas, applied in order, into the entries they
/// restore: a later entry replaces an earlier one of the same `(key, namespace)`, a tombstone
/// removes it.
#[derive(Debug, Default)]
pub struct ChainFold {
    entries: HashMap<(Value, Value), StateEntry>,
}

impl ChainFold {
    /// An empty fold.
    pub fn new() -> ChainFold {
        ChainFold::default()
    }

    /// Applies the entries of the next file of the chain.
    pub fn apply(&mut self, entries: impl IntoIterator<Item = StateEntry>) {
        for e in entries {
            let id = (e.key.clone(), e.namespace.clone());
            if e.value.is_some() {
                self.entries.insert(id, e);
            } else {
                self.entries.remove(&id);
            }
        }
    }

    /// The restored entries, in no particular order.
    pub fn into_entries(self) -> impl Iterator<Item = StateEntry> {
        self.entries.into_values()
    }
}
