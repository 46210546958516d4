//! The fields of a map value: `(name, value)` pairs in one vector, sorted by name, names unique.
//!
//! Records are small maps (a Nexmark bid has 7 fields, a window result 4–8) that are built once,
//! read a few times and dropped. A sorted vector holds them in one allocation, is built by
//! appending when the names come in order (generators, projections, decoders all give them in
//! order), is searched without pointer chasing and is dropped with one free. It answers as the
//! `BTreeMap<Arc<str>, Value>` it replaces did: the same order, the last of duplicate names wins.

use std::fmt;
use std::sync::Arc;

use super::Value;

/// A map's fields, sorted by name (byte order), each name once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields {
    entries: Vec<(Arc<str>, Value)>,
}

/// Whether two names are equal: lengths, then first bytes, then the rest (most names a lookup
/// passes differ in one of the first two, without a call to `memcmp`).
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// Beyond this many fields a lookup searches by halves; below, a scan is faster.
const SCAN: usize = 8;

impl Fields {
    /// No fields.
    pub fn new() -> Fields {
        Fields { entries: Vec::new() }
    }

    /// No fields, with room for `n`.
    pub fn with_capacity(n: usize) -> Fields {
        Fields { entries: Vec::with_capacity(n) }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        if self.entries.len() <= SCAN {
            for (i, (k, _)) in self.entries.iter().enumerate() {
                match (**k).cmp(name) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Ok(i),
                    std::cmp::Ordering::Greater => return Err(i),
                }
            }
            return Err(self.entries.len());
        }
        self.entries.binary_search_by(|(k, _)| (**k).cmp(name))
    }

    /// The value of field `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Value> {
        if self.entries.len() <= SCAN {
            // Equality, not order: names of other lengths are passed without reading them.
            return self.entries.iter().find(|(k, _)| same_name(k, name)).map(|(_, v)| v);
        }
        self.position(name).ok().map(|i| &self.entries[i].1)
    }

    /// Whether there is a field `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets field `name`; returns its previous value. Appends when `name` sorts after every
    /// field already there (the common case: fields given in order).
    #[inline]
    pub fn insert(&mut self, name: Arc<str>, value: Value) -> Option<Value> {
        if self.entries.last().is_none_or(|(last, _)| **last < *name) {
            self.entries.push((name, value));
            return None;
        }
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (name, value));
                None
            }
        }
    }

    /// Appends field `name`, which sorts after every field already there (builders that give
    /// their names in order and each once: checked in debug builds only).
    #[inline]
    pub fn push_ordered(&mut self, name: Arc<str>, value: Value) {
        debug_assert!(self.entries.last().is_none_or(|(last, _)| **last < *name), "{name:?} out of order");
        self.entries.push((name, value));
    }

    /// Removes field `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.position(name).ok().map(|i| self.entries.remove(i).1)
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Arc<str>, &Value)> + DoubleEndedIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The names in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Arc<str>> + DoubleEndedIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in name order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + DoubleEndedIterator {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl FromIterator<(Arc<str>, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, Value)>>(iter: I) -> Fields {
        let mut entries: Vec<(Arc<str>, Value)> = iter.into_iter().collect();
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            // Stable, so equal names keep their order, and the last of them is the one kept.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
        }
        Fields { entries }
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a Arc<str>, &'a Value);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (Arc<str>, Value)>, fn(&'a (Arc<str>, Value)) -> Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl IntoIterator for Fields {
    type Item = (Arc<str>, Value);
    type IntoIter = std::vec::IntoIter<(Arc<str>, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};

    use super::*;

    /// Random inserts, removals and lookups, against the `BTreeMap` it replaces.
    #[test]
    fn answers_as_a_btree_map_does() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let names: Vec<Arc<str>> = (0..24).map(|i| Arc::from(format!("f{}", i * 7 % 24).as_str())).collect();
        for round in 0..300 {
            let (mut ours, mut reference) = (Fields::new(), BTreeMap::new());
            let width = if round % 2 == 0 { 6 } else { 24 };
            for step in 0..60 {
                let name = names[rng.random_range(0..width)].clone();
                match rng.random_range(0..4) {
                    0 => assert_eq!(ours.remove(&name), reference.remove(&name)),
                    1 => assert_eq!(ours.get(&name), reference.get(&name)),
                    _ => assert_eq!(
                        ours.insert(name.clone(), Value::Int(step)),
                        reference.insert(name, Value::Int(step))
                    ),
                }
                assert!(ours.iter().eq(reference.iter()), "round {round} step {step}");
                assert_eq!(ours.len(), reference.len());
            }
            // Collected from pairs in any order, duplicates included: the last one wins.
            let pairs: Vec<(Arc<str>, Value)> = (0..rng.random_range(0..30))
                .map(|i| (names[rng.random_range(0..width)].clone(), Value::Int(i)))
                .collect();
            let collected: Fields = pairs.iter().cloned().collect();
            let reference: BTreeMap<_, _> = pairs.into_iter().collect();
            assert!(collected.iter().eq(reference.iter()), "round {round}");
        }
    }
}
