//! A dotted field path (`bid.price`), split once when an operator is built rather than at every
//! record: operators read the same few paths of millions of records.

use std::fmt;
use std::sync::Arc;

use super::{Lookup, Value};

/// Where each step of a [`FieldPath`] last found its field ([`FieldPath::get_remembered`]).
#[derive(Clone, Debug, Default)]
pub struct PathMemo(Box<[Lookup]>);

/// A field path, `a.b.c`: the field `c` of the map in field `b` of the map in field `a`. The
/// empty path is the value itself, as in [`Value::get_path`].
#[derive(Clone, PartialEq, Eq)]
pub struct FieldPath {
    text: Arc<str>,
    parts: Box<[Arc<str>]>,
}

impl FieldPath {
    /// The path `text`, split at its dots.
    pub fn new(text: &str) -> FieldPath {
        let parts = if text.is_empty() { Box::default() } else { text.split('.').map(Arc::from).collect() };
        FieldPath { text: Arc::from(text), parts }
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A memo for [`FieldPath::get_remembered`]: one [`Lookup`] per step.
    pub fn memo(&self) -> PathMemo {
        PathMemo(self.parts.iter().map(|_| Lookup::default()).collect())
    }

    /// The value at this path in `value`, as [`FieldPath::get`], remembering in `memo` (made
    /// by this path's [`FieldPath::memo`]) where each step found its field.
    #[inline]
    pub fn get_remembered<'v>(&self, value: &'v Value, memo: &PathMemo) -> Option<&'v Value> {
        let mut cur = value;
        for (part, lookup) in self.parts.iter().zip(memo.0.iter()) {
            match cur {
                Value::Map(m) => cur = m.get_remembered(part, lookup)?,
                _ => return None,
            }
        }
        Some(cur)
    }

    /// The path's field names, outermost first.
    pub fn parts(&self) -> &[Arc<str>] {
        &self.parts
    }

    /// The value at this path in `value`, if every step is a map with that field.
    #[inline]
    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut cur = value;
        for part in self.parts.iter() {
            match cur {
                Value::Map(m) => cur = m.get(part)?,
                _ => return None,
            }
        }
        Some(cur)
    }
}

impl fmt::Debug for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random paths over random nested maps answer as `Value::get_path`, which splits each
    /// time (an independent walk of the same definition).
    #[test]
    fn answers_as_get_path() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let names = ["a", "b", "ab", "", "c.d"];
        fn build(rng: &mut rand::rngs::StdRng, names: &[&str], depth: u32) -> Value {
            if depth == 0 || rng.random_bool(0.3) {
                return Value::Int(rng.random_range(0..5));
            }
            let n = rng.random_range(0..4);
            Value::map((0..n).map(|_| {
                let name = names[rng.random_range(0..names.len())];
                (name, build(rng, names, depth - 1))
            }))
        }
        for _ in 0..2000 {
            let v = build(&mut rng, &names, 3);
            let len = rng.random_range(0..4);
            let path: Vec<&str> = (0..len).map(|_| names[rng.random_range(0..names.len())]).collect();
            let text = path.join(".");
            assert_eq!(FieldPath::new(&text).get(&v), v.get_path(&text), "{text:?} in {v}");
        }
    }
}
