//! What of a record value a job reads: the fields its operators select, found once from the job
//! document (`nodes::reads` walks the graph). A source that can make fields on demand (the
//! Nexmark source) makes only these, and leaves every other field `null`: projection pushdown,
//! as a query planner pushes a query's columns into its scans.
//!
//! The answer must never miss a field something could observe: anything not understood reads
//! the whole value.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The part of a value that is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reads {
    /// All of it.
    Whole,
    /// These fields of it, each with the part of it read (nothing at all when empty).
    Fields(BTreeMap<Arc<str>, Reads>),
}

impl Reads {
    /// Nothing of the value.
    pub fn nothing() -> Reads {
        Reads::Fields(BTreeMap::new())
    }

    /// The field at `path` (outermost first), whole; the whole value for the empty path.
    pub fn path<S: AsRef<str>>(path: &[S]) -> Reads {
        path.iter()
            .rev()
            .fold(Reads::Whole, |below, name| Reads::Fields(BTreeMap::from([(Arc::from(name.as_ref()), below)])))
    }

    /// Adds what `other` reads.
    pub fn add(&mut self, other: Reads) {
        match (&mut *self, other) {
            (Reads::Whole, _) => {}
            (_, Reads::Whole) => *self = Reads::Whole,
            (Reads::Fields(mine), Reads::Fields(theirs)) => {
                for (name, below) in theirs {
                    match mine.get_mut(&name) {
                        Some(m) => m.add(below),
                        None => {
                            mine.insert(name, below);
                        }
                    }
                }
            }
        }
    }

    /// The part of field `name` read, `None` when the field is not read at all.
    pub fn field(&self, name: &str) -> Option<&Reads> {
        match self {
            Reads::Whole => Some(&Reads::Whole),
            Reads::Fields(f) => f.get(name),
        }
    }

    /// True when field `name` is read, in part or whole.
    pub fn reads(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// True when the whole value is read.
    pub fn is_whole(&self) -> bool {
        matches!(self, Reads::Whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_paths_keeps_the_widest_read() {
        let mut r = Reads::nothing();
        assert!(!r.reads("bid"));
        r.add(Reads::path(&["bid", "price"]));
        r.add(Reads::path(&["bid", "auction"]));
        r.add(Reads::path(&["event_type"]));
        let bid = r.field("bid").expect("bid");
        assert!(bid.reads("price") && bid.reads("auction") && !bid.reads("extra") && !bid.is_whole());
        r.add(Reads::path(&["bid"]));
        assert!(r.field("bid").is_some_and(Reads::is_whole) && !r.reads("person"));
        r.add(Reads::path(&["bid", "url"]));
        assert!(r.field("bid").is_some_and(Reads::is_whole));
        r.add(Reads::path::<&str>(&[]));
        assert!(r.is_whole() && r.field("anything").is_some_and(Reads::is_whole));
    }
}
