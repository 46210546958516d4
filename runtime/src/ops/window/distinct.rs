//! The accumulator of `countDistinct`: the distinct values seen, exactly, as a map
//! `{"chunks": [[v, …], …]}` of lists of at most [`CHUNK`] values, every value ordered by stable
//! hash across the chunks (values of equal hash in the order they came).
//!
//! A new value costs a search over the chunks and one within a chunk, and moves at most a
//! chunk's values, however many the window holds (one sorted list moved half of them at every
//! new value, so a day of a million bidders took quadratic time). After a checkpoint took the
//! state, the first change copies the list of chunks and the chunk it changes, not every value.
//!
//! Checkpoints of the earlier layout (one list of values ordered by hash) still restore: such a
//! list is read as it is and becomes chunks at its first new value.

use std::sync::Arc;

use crate::value::{Fields, Value};

/// The most values in one chunk; a chunk that grows past it is split in two.
pub(super) const CHUNK: usize = 256;

const NAME: &str = "chunks";

/// No value yet.
pub(super) fn empty() -> Value {
    wrap(Vec::new())
}

fn wrap(chunks: Vec<Value>) -> Value {
    let mut fields = Fields::with_capacity(1);
    fields.insert(Arc::from(NAME), Value::List(Arc::new(chunks)));
    Value::Map(Arc::new(fields))
}

/// The chunks of `acc`: `None` for the earlier layout (one list) or another shape.
fn chunks(acc: &Value) -> Option<&Arc<Vec<Value>>> {
    match acc {
        Value::Map(m) if m.len() == 1 => match m.get(NAME) {
            Some(Value::List(chunks)) => Some(chunks),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `acc` is an accumulator of either layout (checked on restore).
pub(super) fn fits(acc: &Value) -> bool {
    match acc {
        Value::List(_) => true,
        _ => chunks(acc).is_some_and(|c| c.iter().all(|chunk| matches!(chunk, Value::List(_)))),
    }
}

/// The values of `acc`, in order.
pub(super) fn values(acc: &Value) -> Vec<&Value> {
    match (acc, chunks(acc)) {
        (Value::List(l), _) => l.iter().collect(),
        (_, Some(chunks)) => chunks.iter().flat_map(list).collect(),
        _ => Vec::new(),
    }
}

/// How many distinct values `acc` holds.
pub(super) fn count(acc: &Value) -> i64 {
    let n = match (acc, chunks(acc)) {
        (Value::List(l), _) => l.len(),
        (_, Some(chunks)) => chunks.iter().map(|c| list(c).len()).sum(),
        _ => 0,
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn list(v: &Value) -> &[Value] {
    match v {
        Value::List(l) => l,
        _ => &[],
    }
}

/// Adds `v` to `acc` unless it is there.
pub(super) fn insert(acc: &mut Value, v: &Value) {
    if let Value::List(flat) = acc {
        // The earlier layout: cut into chunks first.
        let chunks = flat.chunks(CHUNK).map(|c| Value::List(Arc::new(c.to_vec()))).collect();
        *acc = wrap(chunks);
    }
    let Value::Map(m) = acc else { return };
    let Some(Value::List(chunks)) = Arc::make_mut(m).get_mut(NAME) else { return };
    let h = v.stable_hash();
    // The first chunk whose last value's hash is not below `h` (the last chunk if none is).
    let last_hash = |c: &Value| list(c).last().map_or(u64::MAX, Value::stable_hash);
    let c = chunks.partition_point(|c| last_hash(c) < h).min(chunks.len().saturating_sub(1));
    let at = chunks.get(c).map_or(0, |chunk| list(chunk).partition_point(|x| x.stable_hash() < h));
    // Values of hash `h` run from (c, at), maybe on into the chunks after.
    let run = chunks[c..].iter().enumerate().flat_map(|(k, chunk)| {
        let from = if k == 0 { at } else { 0 };
        list(chunk).get(from..).unwrap_or_default()
    });
    if run.take_while(|x| x.stable_hash() == h).any(|x| x == v) {
        return;
    }
    let chunks = Arc::make_mut(chunks);
    if chunks.is_empty() {
        chunks.push(Value::List(Arc::new(Vec::with_capacity(CHUNK))));
    }
    let Value::List(chunk) = &mut chunks[c] else { return };
    let chunk = Arc::make_mut(chunk);
    chunk.insert(at, v.clone());
    if chunk.len() > CHUNK {
        let upper = chunk.split_off(chunk.len() / 2);
        chunks.insert(c + 1, Value::List(Arc::new(upper)));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::test_seq::Seq;

    /// Every chunk holds 1..=CHUNK values and the values are in hash order across chunks.
    fn well_formed(acc: &Value) {
        let chunks = chunks(acc).expect("the chunked layout");
        assert!(chunks.iter().all(|c| (1..=CHUNK).contains(&list(c).len())), "chunk sizes");
        let hashes: Vec<u64> = values(acc).iter().map(|v| v.stable_hash()).collect();
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]), "hash order");
    }

    /// Against a `HashSet` (the reference): random values of mixed types, many repeated, some
    /// added again after a snapshot shared the state; count and members agree throughout.
    #[test]
    fn agrees_with_a_set_over_random_inserts() {
        let mut seq = Seq(11);
        for round in 0..20 {
            let range = [10, 300, 5_000][round % 3];
            let mut acc = empty();
            let mut reference = HashSet::new();
            let mut snapshots = Vec::new();
            for i in 0..4_000 {
                let n = seq.next() % range;
                let v = match n % 3 {
                    0 => Value::Int(n as i64),
                    1 => Value::str(&format!("s{n}")),
                    _ => Value::List(Arc::new(vec![Value::Int(n as i64)])),
                };
                insert(&mut acc, &v);
                reference.insert(v);
                if i % 997 == 0 {
                    // A checkpoint holds the state; later changes must not reach it.
                    snapshots.push((acc.clone(), reference.len() as i64));
                }
            }
            well_formed(&acc);
            assert_eq!(count(&acc), reference.len() as i64, "round {round}");
            let got: HashSet<Value> = values(&acc).into_iter().cloned().collect();
            assert_eq!(got, reference, "round {round}");
            for (snap, n) in snapshots {
                assert_eq!(count(&snap), n, "a snapshot changed after it was taken");
            }
        }
    }

    /// Many chunks survive the checkpoint codec and keep growing after; a session merge (every
    /// value of one accumulator into another, as `merge_one` does) gives the union.
    #[test]
    fn chunks_restore_from_their_encoding_and_merge_into_the_union() {
        let mut seq = Seq(5);
        let (mut a, mut b) = (empty(), empty());
        let (mut ra, mut rb) = (HashSet::new(), HashSet::new());
        for _ in 0..3_000 {
            let (va, vb) = (Value::Int((seq.next() % 2_000) as i64), Value::Int((seq.next() % 2_000) as i64));
            insert(&mut a, &va);
            insert(&mut b, &vb);
            ra.insert(va);
            rb.insert(vb);
        }
        assert!(chunks(&a).is_some_and(|c| c.len() > 2), "several chunks");
        let mut buf = Vec::new();
        a.encode(&mut buf);
        let mut restored = Value::decode(&mut buf.as_slice()).expect("decode");
        assert!(fits(&restored));
        assert_eq!(count(&restored), ra.len() as i64);
        for v in values(&b) {
            insert(&mut restored, v);
        }
        well_formed(&restored);
        let union: HashSet<Value> = ra.union(&rb).cloned().collect();
        assert_eq!(count(&restored), union.len() as i64);
        assert_eq!(values(&restored).into_iter().cloned().collect::<HashSet<_>>(), union);
    }

    #[test]
    fn an_earlier_single_list_restores_and_grows_into_chunks() {
        let mut flat: Vec<Value> = (0..600).map(Value::Int).collect();
        flat.sort_by_key(Value::stable_hash);
        let mut acc = Value::List(Arc::new(flat));
        assert!(fits(&acc));
        assert_eq!(count(&acc), 600);
        insert(&mut acc, &Value::Int(5));
        assert_eq!(count(&acc), 600, "a value already there");
        insert(&mut acc, &Value::Int(600));
        assert_eq!(count(&acc), 601);
        well_formed(&acc);
        assert!(fits(&acc) && !fits(&Value::Int(3)));
    }
}
