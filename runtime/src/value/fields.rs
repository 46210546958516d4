//! The fields of a map value: names sorted, each once, and their values in the same order.
//!
//! Records are small maps (a Nexmark bid has 7 fields, a window result 4–8) that are built once,
//! read a few times and dropped, and most of them have one of a few shapes. The names of a shape
//! (a [`Schema`]) are made once, by whatever builds that shape (the Nexmark source, a map
//! literal, a window's results), and shared by every map of it: a record then costs one count
//! change for its names instead of one per name, and its values are a plain vector. Maps built
//! field by field (decoders, the CEL interpreter) own their names, appended when they come in
//! order. Either way it answers as the `BTreeMap<Arc<str>, Value>` it replaces did: the same
//! order, the last of duplicate names wins.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use super::Value;

/// The sorted, distinct names of a map shape, shared by the maps built with it.
#[derive(Clone, PartialEq, Eq)]
pub struct Schema(Arc<[Arc<str>]>);

impl Schema {
    /// The shape with `names`, sorted and each kept once.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Schema {
        let mut v: Vec<Arc<str>> = names.into_iter().map(|n| Arc::from(n.as_ref())).collect();
        v.sort();
        v.dedup();
        Schema(v.into())
    }

    /// The shape with `names` as they are if they are sorted and distinct; else `names` back.
    pub fn from_sorted(names: Vec<Arc<str>>) -> Result<Schema, Vec<Arc<str>>> {
        if names.windows(2).all(|w| w[0] < w[1]) { Ok(Schema(names.into())) } else { Err(names) }
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the shape has no names.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where `name` is in the order (the index of its value in a map of this shape).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|n| **n == *name)
    }

    /// The names in order.
    pub fn names(&self) -> &[Arc<str>] {
        &self.0
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Where one name was last found, for a reader that looks it up in many maps of one shape
/// ([`Fields::get_remembered`]): a map of that shape then costs a pointer compare. It holds the
/// shape it remembers, so no other shape can be made at its address while it does. Each
/// operator instance has its own (it is not shared between threads).
#[derive(Default)]
pub struct Lookup {
    /// The shape's address and the name's index in it.
    at: Cell<(usize, usize)>,
    /// The shape at `at`, kept alive.
    shape: Cell<Option<Schema>>,
}

impl Clone for Lookup {
    /// A lookup that remembers nothing yet.
    fn clone(&self) -> Lookup {
        Lookup::default()
    }
}

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lookup")
    }
}

#[derive(Clone)]
enum Names {
    Shared(Schema),
    Own(Vec<Arc<str>>),
}

/// A map's fields, sorted by name (byte order), each name once.
#[derive(Clone)]
pub struct Fields {
    names: Names,
    values: Vec<Value>,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields::new()
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        self.names() == other.names() && self.values == other.values
    }
}

impl Eq for Fields {}

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
        Fields { names: Names::Own(Vec::new()), values: Vec::new() }
    }

    /// No fields, with room for `n`.
    pub fn with_capacity(n: usize) -> Fields {
        Fields { names: Names::Own(Vec::with_capacity(n)), values: Vec::with_capacity(n) }
    }

    /// The map of shape `schema` with `values`, one per name in the schema's order (a value
    /// vector of another length is cut or padded with nulls; builders give the right one).
    #[inline]
    pub fn from_schema(schema: &Schema, mut values: Vec<Value>) -> Fields {
        debug_assert_eq!(values.len(), schema.len(), "{schema:?}");
        values.resize(schema.len(), Value::Null);
        Fields { names: Names::Shared(schema.clone()), values }
    }

    #[inline]
    fn names(&self) -> &[Arc<str>] {
        match &self.names {
            Names::Shared(s) => &s.0,
            Names::Own(v) => v,
        }
    }

    /// The names to change: a shared shape's are copied first (the map leaves its shape).
    fn names_mut(&mut self) -> &mut Vec<Arc<str>> {
        if let Names::Shared(s) = &self.names {
            self.names = Names::Own(s.0.to_vec());
        }
        match &mut self.names {
            Names::Own(v) => v,
            Names::Shared(_) => unreachable!("made own above"),
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        let names = self.names();
        if names.len() <= SCAN {
            for (i, k) in names.iter().enumerate() {
                match (**k).cmp(name) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => return Ok(i),
                    std::cmp::Ordering::Greater => return Err(i),
                }
            }
            return Err(names.len());
        }
        names.binary_search_by(|k| (**k).cmp(name))
    }

    /// The value of field `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Value> {
        let names = self.names();
        let i = if names.len() <= SCAN {
            // Equality, not order: names of other lengths are passed without reading them.
            names.iter().position(|k| same_name(k, name))?
        } else {
            self.position(name).ok()?
        };
        self.values.get(i)
    }

    /// The value of field `name`, to change (the map keeps its shape).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value> {
        let i = self.position(name).ok()?;
        self.values.get_mut(i)
    }

    /// The value of field `name`, as [`Fields::get`], remembering where it was in `memo` (give
    /// the same `memo` for the same `name` only).
    #[inline]
    pub fn get_remembered(&self, name: &str, memo: &Lookup) -> Option<&Value> {
        let Names::Shared(s) = &self.names else { return self.get(name) };
        let id = Arc::as_ptr(&s.0) as *const Arc<str> as usize;
        let (at, i) = memo.at.get();
        if at == id {
            return self.values.get(i);
        }
        let i = self.position(name).ok()?;
        memo.shape.set(Some(s.clone()));
        memo.at.set((id, i));
        self.values.get(i)
    }

    /// Whether there is a field `name`.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Sets field `name`; returns its previous value. Appends when `name` sorts after every
    /// field already there (the common case: fields given in order). Changing the value of a
    /// field keeps a shared shape; adding a field leaves it.
    #[inline]
    pub fn insert(&mut self, name: Arc<str>, value: Value) -> Option<Value> {
        if self.names().last().is_none_or(|last| **last < *name) {
            self.names_mut().push(name);
            self.values.push(value);
            return None;
        }
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.values[i], value)),
            Err(i) => {
                self.names_mut().insert(i, name);
                self.values.insert(i, value);
                None
            }
        }
    }

    /// Removes field `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.position(name).ok()?;
        self.names_mut().remove(i);
        Some(self.values.remove(i))
    }

    /// The fields in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Arc<str>, &Value)> + DoubleEndedIterator {
        self.names().iter().zip(self.values.iter())
    }

    /// The names in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Arc<str>> + DoubleEndedIterator {
        self.names().iter()
    }

    /// The values in name order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value> + DoubleEndedIterator {
        self.values.iter()
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
        let (names, values) = entries.into_iter().unzip();
        Fields { names: Names::Own(names), values }
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a Arc<str>, &'a Value);
    type IntoIter = std::iter::Zip<std::slice::Iter<'a, Arc<str>>, std::slice::Iter<'a, Value>>;

    fn into_iter(self) -> Self::IntoIter {
        self.names().iter().zip(self.values.iter())
    }
}

impl IntoIterator for Fields {
    type Item = (Arc<str>, Value);
    type IntoIter = std::iter::Zip<std::vec::IntoIter<Arc<str>>, std::vec::IntoIter<Value>>;

    fn into_iter(self) -> Self::IntoIter {
        let names = match self.names {
            Names::Shared(s) => s.0.to_vec(),
            Names::Own(v) => v,
        };
        names.into_iter().zip(self.values)
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
            let width = if round % 2 == 0 { 6 } else { 24 };
            // Every other round starts from a map of a shared shape (`from_schema`), which the
            // changes below must leave without touching the other maps of that shape.
            let (mut ours, mut reference, shape) = if round % 4 < 2 {
                (Fields::new(), BTreeMap::new(), None)
            } else {
                let schema =
                    Schema::new((0..rng.random_range(0..10)).map(|_| names[rng.random_range(0..width)].clone()));
                let values: Vec<Value> = (0..schema.len()).map(|i| Value::Int(100 + i as i64)).collect();
                let reference: BTreeMap<Arc<str>, Value> =
                    schema.names().iter().cloned().zip(values.iter().cloned()).collect();
                let sibling = Fields::from_schema(&schema, values.clone());
                (Fields::from_schema(&schema, values), reference.clone(), Some((sibling, reference)))
            };
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
                assert!(ours.keys().eq(reference.keys()) && ours.values().eq(reference.values()));
                assert_eq!(ours.len(), reference.len());
            }
            if let Some((sibling, before)) = shape {
                assert!(sibling.iter().eq(before.iter()), "round {round}: a change reached another map of the shape");
            }
            assert!(ours.clone().into_iter().eq(reference.clone().into_iter()), "round {round}");
            // Collected from pairs in any order, duplicates included: the last one wins.
            let pairs: Vec<(Arc<str>, Value)> = (0..rng.random_range(0..30))
                .map(|i| (names[rng.random_range(0..width)].clone(), Value::Int(i)))
                .collect();
            let collected: Fields = pairs.iter().cloned().collect();
            let reference: BTreeMap<_, _> = pairs.into_iter().collect();
            assert!(collected.iter().eq(reference.iter()), "round {round}");
        }
    }

    /// Remembered lookups answer as plain ones over maps of many shapes, shared and own, met in
    /// any order, with shapes dropped and new ones made while a lookup remembers (the shape it
    /// holds keeps its address from being reused: teeth, a lookup holding only the address
    /// answers from a dropped shape's positions).
    #[test]
    fn a_remembered_lookup_answers_as_a_plain_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let names: Vec<Arc<str>> = ["a", "b", "bb", "c", "d", "e", "f", "g", "h", "i"].map(Arc::from).to_vec();
        let memos: Vec<Lookup> = names.iter().map(|_| Lookup::default()).collect();
        for _ in 0..2000 {
            // A shape made now and dropped after this round, so later ones may take its place.
            let schema = Schema::new(names.iter().filter(|_| rng.random_bool(0.5)).cloned());
            let values = |base: i64| (0..schema.len()).map(|i| Value::Int(base + i as i64)).collect::<Vec<_>>();
            let maps = [
                Fields::from_schema(&schema, values(0)),
                Fields::from_schema(&schema, values(100)),
                schema.names().iter().cloned().zip(values(200)).collect::<Fields>(),
            ];
            for _ in 0..10 {
                let m = &maps[rng.random_range(0..maps.len())];
                let k = rng.random_range(0..names.len());
                assert_eq!(m.get_remembered(&names[k], &memos[k]), m.get(&names[k]), "{:?} {}", schema, names[k]);
            }
        }
    }
}
