//! The namespaces of one key in a [`KeyedTable`](super::KeyedTable): the entry without a
//! namespace (every keyed aggregate) inline, with no namespace stored, or a list (windows).
//!
//! The inline case is what the record path of a keyed aggregate touches: keeping it the size
//! of a value and its tag makes the table's buckets 56 bytes (key, value, epoch), as small as a
//! plain map's, where storing a `Null` namespace beside every value cost a third more memory
//! traffic per lookup.

use std::mem;

use crate::value::Value;

/// Up to how many namespaces a key's vector grows by exactly one (then by doubling).
const EXACT_UP_TO: usize = 8;

/// The namespace of an entry without one.
pub(super) static NO_NAMESPACE: Value = Value::Null;

/// The namespaces of one key.
#[derive(Clone, Debug)]
pub(super) enum Slots<T> {
    /// Only the entry without a namespace.
    Plain(T),
    /// Entries with namespaces (possibly also one without).
    Many(Vec<(Value, T)>),
}

impl<T> Slots<T> {
    /// Slots holding one entry.
    pub(super) fn new(ns: Value, t: T) -> Slots<T> {
        match ns {
            Value::Null => Slots::Plain(t),
            ns => Slots::Many(vec![(ns, t)]),
        }
    }

    /// Every `(namespace, entry)`.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Value, &T)> {
        let (plain, many) = match self {
            Slots::Plain(t) => (Some((&NO_NAMESPACE, t)), &[][..]),
            Slots::Many(v) => (None, v.as_slice()),
        };
        plain.into_iter().chain(many.iter().map(|(n, t)| (n, t)))
    }

    /// The entry of `ns`, to change.
    #[inline]
    pub(super) fn find_mut(&mut self, ns: &Value) -> Option<&mut T> {
        match self {
            Slots::Plain(t) => matches!(ns, Value::Null).then_some(t),
            Slots::Many(v) => v.iter_mut().find(|(n, _)| same_namespace(n, ns)).map(|(_, t)| t),
        }
    }

    /// The entry of `ns`.
    #[inline]
    pub(super) fn find(&self, ns: &Value) -> Option<&T> {
        match self {
            Slots::Plain(t) => matches!(ns, Value::Null).then_some(t),
            Slots::Many(v) => v.iter().find(|(n, _)| same_namespace(n, ns)).map(|(_, t)| t),
        }
    }

    /// Sets `ns` to `t`; returns the entry it replaced.
    pub(super) fn put(&mut self, ns: Value, t: T) -> Option<T> {
        if let Some(old) = self.find_mut(&ns) {
            return Some(mem::replace(old, t));
        }
        match self {
            Slots::Plain(_) => {
                let Slots::Plain(first) = mem::replace(self, Slots::Many(Vec::new())) else {
                    unreachable!("matched Plain above")
                };
                *self = Slots::Many(vec![(Value::Null, first), (ns, t)]);
            }
            Slots::Many(v) => {
                // A key holds a few namespaces (a sliding window's `size / slide`): grown one
                // at a time up to a few, a vector of them holds no unused room (doubling would
                // leave 3 of 8 slots empty at 5 windows).
                if v.len() == v.capacity() && v.len() < EXACT_UP_TO {
                    v.reserve_exact(1);
                }
                v.push((ns, t));
            }
        }
        None
    }

    /// Removes `ns`; returns its entry and whether the key has no namespace left.
    pub(super) fn take(&mut self, ns: &Value) -> (Option<T>, bool) {
        match self {
            Slots::Plain(_) if matches!(ns, Value::Null) => {
                let Slots::Plain(t) = mem::replace(self, Slots::Many(Vec::new())) else {
                    unreachable!("matched Plain above")
                };
                (Some(t), true)
            }
            Slots::Plain(_) => (None, false),
            Slots::Many(v) => {
                let gone = v.iter().position(|(n, _)| same_namespace(n, ns)).map(|i| v.swap_remove(i).1);
                (gone, v.is_empty())
            }
        }
    }
}

/// `a == b`, with the common cases (no namespace, a window start) inline.
#[inline]
fn same_namespace(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_without_namespace_is_as_small_as_a_plain_maps() {
        // Key, value and epoch: what a map of `Value -> (Value, u64)` would hold per bucket.
        assert_eq!(size_of::<(Value, Slots<super::super::table::Tagged>)>(), 56);
        let mut s = Slots::new(Value::Null, 1);
        assert!(matches!(s, Slots::Plain(1)));
        assert_eq!(s.put(Value::Int(5), 2), None);
        assert_eq!(s.put(Value::Null, 3), Some(1));
        assert_eq!(
            s.iter().map(|(n, t)| (n.clone(), *t)).collect::<Vec<_>>(),
            vec![(Value::Null, 3), (Value::Int(5), 2)]
        );
        assert_eq!(s.take(&Value::Null), (Some(3), false));
        assert_eq!(s.take(&Value::Int(5)), (Some(2), true));
    }
}
