//! The keyed-state table every keyed operator keeps its state in: entries `(key, namespace) →
//! value` (the namespace tells several values of one key apart, e.g. a window's start), with the
//! change tracking that incremental checkpoints need and a capture that costs the task next to
//! nothing.
//!
//! # Change tracking: generation tags
//! Every entry carries the *epoch* (checkpoint generation) it last changed in. The first change
//! of an entry in an epoch also records its `(key, namespace)` in a change list, so a delta
//! knows what to write without scanning; deletions go to a removal list (tombstones). When more
//! than half of the entries changed, the change list stops growing and the delta scans the
//! entries for the epoch's tag instead (cheaper than a list as big as the table). When the
//! epoch's removals and changes outnumber the entries left (a watermark that purged most
//! windows), both lists go and the next capture writes every entry: a new base, smaller than
//! the delta would have been.
//!
//! # Capture: copy-on-write handoff, encoding off the task
//! A capture does not copy entries. The entries live in one hash map; at a capture the task
//! moves that map into an `Arc` (moving the map's header, not its contents), hands a reference
//! to the capture along with the change and removal lists (moved, not copied) and goes on with
//! the table *frozen*: the shared map is read-only, and writes go to a small overlay — the first
//! write of an entry copies that one entry into the overlay (copy-on-write per entry), a removal
//! leaves a marker there. The capture is encoded on another thread (see
//! [`crate::checkpoint::snapshot`]), which reads the frozen map as of the barrier and drops its
//! reference when done; the task's next write notices (a reference-count load) and folds the
//! overlay back into the map, which it owns again. So the task copies only the entries it writes
//! while an encoding runs (a few percent of them even when every key changes every second), and
//! never in one pause. Had a capture come while the previous one is still being encoded (rare:
//! the encoder is far faster than the checkpoint interval), the task copies the map once.
//!
//! Why not the alternatives: copying the changed entries at the barrier (what the operators did
//! before) stalls the task in proportion to the change set (every key, with 2 M keys changing
//! every second); copy-on-write of whole shards degenerates into copying every shard, as the
//! task touches all of them right after a barrier while the encoder still holds them; a
//! persistent map (HAMT) makes every lookup on the record path slower. Here the record path
//! pays one branch (frozen or not) while no encoding runs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem;
use std::sync::Arc;

use super::capture::{CaptureKind, TableCapture};
pub(super) use super::slots::Slots;
use super::{SnapshotMode, StateEntry};
use crate::value::Value;

/// A hasher for [`Value`] keys: `Value::hash` already writes a well-mixed stable hash, so this
/// passes it through instead of hashing it again.
#[derive(Default, Clone, Copy)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map keyed by [`Value`] with the pass-through hasher.
pub type ValueMap<V> = HashMap<Value, V, BuildHasherDefault<PassThroughHasher>>;

/// A value with the epoch it last changed in.
#[derive(Clone, Debug)]
pub(super) struct Tagged {
    pub(super) value: Value,
    pub(super) epoch: u64,
}

/// The entries, by key then namespace.
pub(super) type Entries = ValueMap<Slots<Tagged>>;

/// Writes made while the entries are shared with a capture, by key: `None` deletes.
type Overlay = ValueMap<Slots<Option<Tagged>>>;

enum Store {
    /// The task owns the entries.
    Owned(Entries),
    /// A capture shares the entries; changes since go to the overlay.
    Frozen { base: Arc<Entries>, overlay: Overlay },
}

/// What changed in the current epoch.
#[derive(Default)]
struct Changes {
    epoch: u64,
    /// `(key, namespace)` of entries changed in this epoch, each once (until `overflow`).
    changed: Vec<(Value, Value)>,
    /// More than half of the entries changed: a delta scans for the epoch's tag instead.
    overflow: bool,
    /// `(key, namespace)` removed in this epoch.
    removed: Vec<(Value, Value)>,
    /// The epoch's changes and removals outnumber the entries: the next capture writes every
    /// entry (a new base, smaller than the delta), and the lists are no longer kept.
    full: bool,
}

impl Changes {
    #[inline]
    fn note(&mut self, key: &Value, ns: &Value, len: usize) {
        if !self.overflow {
            self.push((key.clone(), ns.clone()), len);
        }
    }

    #[inline]
    fn push(&mut self, id: (Value, Value), len: usize) {
        self.changed.push(id);
        if self.changed.len() > 1024 && self.changed.len() * 2 > len {
            self.overflow = true;
            self.changed = Vec::new();
        }
    }

    /// Records a removal, or gives up the lists for a full capture once the tombstones and
    /// changes outnumber the `len` entries left. Without this, a watermark that purges most of
    /// a table (the windows of a bounded input's end, a day's windows) kept a tombstone per
    /// purged entry, then a copy of each in the snapshot: two thirds of q5's peak memory.
    #[inline]
    fn remove(&mut self, id: (Value, Value), len: usize) {
        if self.full {
            return;
        }
        self.removed.push(id);
        let changed = if self.overflow { len / 2 } else { self.changed.len() };
        if self.removed.len() > 1024 && self.removed.len() + changed > len {
            self.full = true;
            self.overflow = true;
            self.changed = Vec::new();
            self.removed = Vec::new();
        }
    }
}

/// Keyed state with change tracking and cheap captures; see the module docs.
pub struct KeyedTable {
    store: Store,
    changes: Changes,
    len: usize,
}

impl Default for KeyedTable {
    fn default() -> Self {
        KeyedTable::new()
    }
}

impl KeyedTable {
    /// An empty table.
    pub fn new() -> KeyedTable {
        KeyedTable {
            store: Store::Owned(Entries::default()),
            changes: Changes { epoch: 1, ..Changes::default() },
            len: 0,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether this epoch's deltas will scan by tag (more than half of the entries changed).
    pub fn is_overflowed(&self) -> bool {
        self.changes.overflow
    }

    /// Whether the next capture writes every entry whatever the mode asked (the epoch's
    /// removals and changes outnumber the entries left).
    pub fn wants_full(&self) -> bool {
        self.changes.full
    }

    /// Whether a capture still shares the entries (writes go to the overlay).
    pub fn is_frozen(&self) -> bool {
        matches!(self.store, Store::Frozen { .. })
    }

    /// Loads restored entries (tombstones are skipped); they count as unchanged.
    pub fn restore(&mut self, entries: impl IntoIterator<Item = StateEntry>) {
        for e in entries {
            if let Some(value) = e.value {
                self.put(e.key, e.namespace, Tagged { value, epoch: 0 });
            }
        }
    }

    /// The value of `(key, ns)`.
    #[inline]
    pub fn get(&self, key: &Value, ns: &Value) -> Option<&Value> {
        match &self.store {
            Store::Owned(base) => base.get(key)?.find(ns).map(|t| &t.value),
            Store::Frozen { base, overlay } => {
                if let Some(o) = overlay.get(key).and_then(|s| s.find(ns)) {
                    return o.as_ref().map(|t| &t.value);
                }
                base.get(key)?.find(ns).map(|t| &t.value)
            }
        }
    }

    /// The value of `(key, ns)` to change in place; the entry counts as changed.
    #[inline]
    pub fn get_mut(&mut self, key: &Value, ns: &Value) -> Option<&mut Value> {
        self.settle();
        let KeyedTable { store, changes, len } = self;
        let tagged = match store {
            Store::Owned(base) => base.get_mut(key)?.find_mut(ns)?,
            Store::Frozen { base, overlay } => frozen_entry(base, overlay, key, ns)?,
        };
        if tagged.epoch != changes.epoch {
            tagged.epoch = changes.epoch;
            changes.note(key, ns, *len);
        }
        Some(&mut tagged.value)
    }

    /// Sets `(key, ns)` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: Value, ns: Value, value: Value) -> Option<Value> {
        self.settle();
        let epoch = self.changes.epoch;
        let id = (!self.changes.overflow).then(|| (key.clone(), ns.clone()));
        let old = self.put(key, ns, Tagged { value, epoch });
        if let Some(id) = id
            && old.as_ref().is_none_or(|t| t.epoch != epoch)
        {
            self.changes.push(id, self.len);
        }
        old.map(|t| t.value)
    }

    /// Removes `(key, ns)`; returns its value. The removal is part of the next delta.
    pub fn remove(&mut self, key: &Value, ns: &Value) -> Option<Value> {
        self.settle();
        let gone = match &mut self.store {
            Store::Owned(base) => {
                let slots = base.get_mut(key)?;
                let (gone, empty) = slots.take(ns);
                if empty {
                    base.remove(key);
                }
                gone
            }
            Store::Frozen { base, overlay } => {
                let in_base = base.get(key).and_then(|s| s.find(ns));
                match (overlay.get_mut(key), in_base) {
                    (Some(slots), Some(_)) => match slots.find_mut(ns) {
                        Some(o) => o.take(),
                        None => {
                            slots.put(ns.clone(), None);
                            in_base.cloned()
                        }
                    },
                    (Some(slots), None) => {
                        let (gone, empty) = slots.take(ns);
                        if empty {
                            overlay.remove(key);
                        }
                        gone.flatten()
                    }
                    (None, Some(t)) => {
                        overlay.insert(key.clone(), Slots::new(ns.clone(), None));
                        Some(t.clone())
                    }
                    (None, None) => None,
                }
            }
        }?;
        self.len -= 1;
        if !self.changes.full {
            self.changes.remove((key.clone(), ns.clone()), self.len);
        }
        Some(gone.value)
    }

    /// The namespaces of `key` with their values, in no particular order.
    pub fn namespaces<'a>(&'a self, key: &Value) -> impl Iterator<Item = (&'a Value, &'a Value)> + 'a {
        let (base, overlay) = match &self.store {
            Store::Owned(base) => (base.get(key), None),
            Store::Frozen { base, overlay } => (base.get(key), overlay.get(key)),
        };
        let shadowed = move |ns: &Value| overlay.is_some_and(|o| o.find(ns).is_some());
        let from_base = base.into_iter().flat_map(Slots::iter).filter(move |(n, _)| !shadowed(n));
        let from_overlay =
            overlay.into_iter().flat_map(Slots::iter).filter_map(|(n, t)| t.as_ref().map(|t| (n, &t.value)));
        from_base.map(|(n, t)| (n, &t.value)).chain(from_overlay)
    }

    /// Every entry as `(key, namespace, value)`, in no particular order.
    pub fn entries(&self) -> Vec<(&Value, &Value, &Value)> {
        let mut out = Vec::with_capacity(self.len);
        let keys: Vec<&Value> = match &self.store {
            Store::Owned(base) => base.keys().collect(),
            Store::Frozen { base, overlay } => {
                base.keys().chain(overlay.keys().filter(|k| !base.contains_key(*k))).collect()
            }
        };
        for k in keys {
            out.extend(self.namespaces(k).map(|(n, v)| (k, n, v)));
        }
        out
    }

    /// Captures the table for a checkpoint: everything (`Full`) or the changes and removals of
    /// the epoch that ends now (`Incremental`). Cheap: see the module docs. A new epoch starts.
    pub fn capture(&mut self, mode: SnapshotMode) -> TableCapture {
        self.settle();
        let entries = match mem::replace(&mut self.store, Store::Owned(Entries::default())) {
            Store::Owned(base) => Arc::new(base),
            Store::Frozen { base, overlay } => {
                // The previous capture is still being encoded: copy the entries once.
                tracing::debug!(entries = self.len, "capture while the previous one is encoded: copying the table");
                let mut copy = Arc::unwrap_or_clone(base);
                apply_overlay(&mut copy, overlay);
                Arc::new(copy)
            }
        };
        self.store = Store::Frozen { base: entries.clone(), overlay: Overlay::default() };
        let next = Changes { epoch: self.changes.epoch + 1, ..Changes::default() };
        let changes = mem::replace(&mut self.changes, next);
        let kind = match mode {
            _ if changes.full => CaptureKind::Full,
            SnapshotMode::Full => CaptureKind::Full,
            SnapshotMode::Incremental => {
                CaptureKind::Delta { changed: (!changes.overflow).then_some(changes.changed), removed: changes.removed }
            }
        };
        TableCapture::new(entries, self.len, changes.epoch, kind)
    }

    /// Takes the entries back once no capture shares them.
    #[inline]
    fn settle(&mut self) {
        if let Store::Frozen { base, .. } = &self.store
            && Arc::strong_count(base) == 1
        {
            self.thaw();
        }
    }

    #[cold]
    fn thaw(&mut self) {
        let Store::Frozen { base, overlay } = mem::replace(&mut self.store, Store::Owned(Entries::default())) else {
            return;
        };
        match Arc::try_unwrap(base) {
            Ok(mut entries) => {
                apply_overlay(&mut entries, overlay);
                self.store = Store::Owned(entries);
            }
            Err(base) => self.store = Store::Frozen { base, overlay },
        }
    }

    /// Sets an entry without change tracking; keeps `len`.
    fn put(&mut self, key: Value, ns: Value, tagged: Tagged) -> Option<Tagged> {
        let old = match &mut self.store {
            Store::Owned(base) => match base.get_mut(&key) {
                Some(slots) => slots.put(ns, tagged),
                None => {
                    base.insert(key, Slots::new(ns, tagged));
                    None
                }
            },
            Store::Frozen { base, overlay } => {
                let in_base = base.get(&key).and_then(|s| s.find(&ns)).cloned();
                match overlay.get_mut(&key) {
                    Some(slots) => match slots.find_mut(&ns) {
                        Some(o) => o.replace(tagged),
                        None => {
                            slots.put(ns, Some(tagged));
                            in_base
                        }
                    },
                    None => {
                        overlay.insert(key, Slots::new(ns, Some(tagged)));
                        in_base
                    }
                }
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }
}

/// The entry `(key, ns)` of a frozen table, copied into the overlay for writing.
fn frozen_entry<'a>(base: &Entries, overlay: &'a mut Overlay, key: &Value, ns: &Value) -> Option<&'a mut Tagged> {
    if overlay.get(key).and_then(|s| s.find(ns)).is_none() {
        let copy = Some(base.get(key)?.find(ns)?.clone());
        match overlay.get_mut(key) {
            Some(slots) => {
                slots.put(ns.clone(), copy);
            }
            None => {
                overlay.insert(key.clone(), Slots::new(ns.clone(), copy));
            }
        }
    }
    overlay.get_mut(key)?.find_mut(ns)?.as_mut()
}

/// Folds the overlay's writes into the entries.
fn apply_overlay(entries: &mut Entries, overlay: Overlay) {
    for (key, slots) in overlay {
        match slots {
            Slots::Plain(o) => apply_one(entries, key, Value::Null, o),
            Slots::Many(list) => {
                for (ns, o) in list {
                    apply_one(entries, key.clone(), ns, o);
                }
            }
        }
    }
}

fn apply_one(entries: &mut Entries, key: Value, ns: Value, o: Option<Tagged>) {
    match o {
        Some(t) => match entries.get_mut(&key) {
            Some(slots) => {
                slots.put(ns, t);
            }
            None => {
                entries.insert(key, Slots::new(ns, t));
            }
        },
        None => {
            if let Some(slots) = entries.get_mut(&key)
                && slots.take(&ns).1
            {
                entries.remove(&key);
            }
        }
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
