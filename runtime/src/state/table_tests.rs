//! The table against an independent model: a plain `BTreeMap`, snapshotted whole at every
//! capture. Random inserts, updates, removals and captures (full and incremental) over many
//! epochs, with encodings that lag behind (the table stays frozen meanwhile) and recoveries;
//! each capture, encoded into a real state file and folded onto its base and earlier deltas,
//! must restore exactly the model as of that capture.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::graph::KeyGroupRange;
use crate::state::{ChainFold, KeyedSnapshot, decode_state_file};

const MAX_P: u32 = 32;
const KEYS: i64 = 3000;

/// The model's key: `(key, namespace)`, namespace `None` for `Value::Null`.
type Id = (i64, Option<i64>);
type Model = BTreeMap<Id, i64>;

fn key(id: Id) -> (Value, Value) {
    (Value::Int(id.0), id.1.map_or(Value::Null, Value::Int))
}

fn id_of(k: &Value, ns: &Value) -> Id {
    (k.as_i64().expect("int key"), ns.as_i64())
}

fn encode(capture: TableCapture) -> (bool, Vec<StateEntry>) {
    let capture = Box::new(capture);
    let delta = capture.is_delta();
    let Some((bytes, _)) = capture.encode(MAX_P) else { return (delta, Vec::new()) };
    let range = KeyGroupRange { start: 0, end: MAX_P - 1 };
    let entries = decode_state_file("t", &bytes, bytes.len() as u64, crc32c::crc32c(&bytes), range).expect("decodes");
    (delta, entries)
}

fn model_of(entries: impl IntoIterator<Item = StateEntry>) -> Model {
    let mut m = Model::new();
    for e in entries {
        let v = e.value.and_then(|v| v.as_i64()).expect("restored entries have int values");
        assert!(m.insert(id_of(&e.key, &e.namespace), v).is_none(), "entry restored twice");
    }
    m
}

fn table_model(t: &KeyedTable) -> Model {
    let m: Model = t.entries().into_iter().map(|(k, n, v)| (id_of(k, n), v.as_i64().expect("int value"))).collect();
    assert_eq!(m.len(), t.len(), "len agrees with the entries");
    m
}

/// Fails with the first differences between `got` and `want` (the maps are large).
fn assert_same(got: &Model, want: &Model, what: &str) {
    let mut diff: Vec<String> = want
        .iter()
        .filter(|(id, v)| got.get(id) != Some(v))
        .map(|(id, v)| format!("{id:?}: {:?} instead of {v}", got.get(id)))
        .chain(got.iter().filter(|(id, _)| !want.contains_key(id)).map(|(id, v)| format!("{id:?}: {v} extra")))
        .collect();
    diff.truncate(5);
    assert!(diff.is_empty(), "{what}: {} vs {} entries; first differences: {}", got.len(), want.len(), diff.join(", "));
}

/// One captured checkpoint: the model as of the barrier and, once encoded, its file.
struct Checkpoint {
    expected: Model,
    file: Option<(bool, Vec<StateEntry>)>,
}

/// Folds the chain that ends at checkpoint `i` (from its latest full snapshot).
fn restore_at(chain: &[Checkpoint], i: usize) -> Vec<StateEntry> {
    let base = (0..=i).rev().find(|&j| chain[j].file.as_ref().is_some_and(|(delta, _)| !delta)).expect("a base");
    let mut fold = ChainFold::new();
    for c in &chain[base..=i] {
        fold.apply(c.file.clone().expect("encoded").1);
    }
    fold.into_entries().collect()
}

/// One random change to both the table and the model.
fn mutate(rng: &mut StdRng, t: &mut KeyedTable, m: &mut Model, hot: i64) {
    let id: Id = (rng.random_range(0..hot), if rng.random_bool(0.7) { None } else { Some(rng.random_range(0..4)) });
    let (k, ns) = key(id);
    match rng.random_range(0..10) {
        0..=3 => {
            let v = rng.random_range(0..1000);
            assert_eq!(t.insert(k, ns, Value::Int(v)).and_then(|v| v.as_i64()), m.insert(id, v));
        }
        4..=6 => match (t.get_mut(&k, &ns), m.get_mut(&id)) {
            (Some(Value::Int(a)), Some(b)) => {
                *a += 1;
                *b += 1;
            }
            (None, None) => {}
            (got, want) => panic!("get_mut {id:?}: {got:?} vs {want:?}"),
        },
        7..=8 => assert_eq!(t.remove(&k, &ns).and_then(|v| v.as_i64()), m.remove(&id), "remove {id:?}"),
        _ => {
            assert_eq!(t.get(&k, &ns).and_then(Value::as_i64), m.get(&id).copied(), "get {id:?}");
            let mut got: Vec<Id> = t.namespaces(&k).map(|(n, _)| id_of(&k, n)).collect();
            got.sort_unstable();
            let want: Vec<Id> = m.range((id.0, None)..=(id.0, Some(i64::MAX))).map(|(i, _)| *i).collect();
            assert_eq!(got, want, "namespaces of {}", id.0);
        }
    }
}

/// How often the paths worth testing were taken.
#[derive(Default)]
struct Seen {
    overflowed: u32,
    frozen_writes: u32,
    capture_while_frozen: u32,
    recoveries: u32,
    /// Incremental captures that wrote a new base instead (the purge epochs).
    went_full: u32,
}

fn run(seed: u64, seen: &mut Seen) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = KeyedTable::new();
    let mut m = Model::new();
    let mut chain: Vec<Checkpoint> = Vec::new();
    let mut pending: Vec<(usize, TableCapture)> = Vec::new();
    // The chain's deltas may only follow a capture of this table (a recovery starts a new one).
    let mut can_delta = false;
    for _epoch in 0..40 {
        // Some epochs touch a few keys, some most of them (the change list overflows).
        let (ops, hot) = match rng.random_range(0..5) {
            0 => (rng.random_range(0..20), KEYS),
            1 => (rng.random_range(2000..6000), KEYS),
            2 => {
                // A purge (a watermark that closes most windows): removals outnumber what is
                // left, so the capture becomes a new base.
                let keep = rng.random_range(0.0..0.6);
                let gone: Vec<Id> = m.keys().copied().filter(|_| !rng.random_bool(keep)).collect();
                for id in gone {
                    let (k, ns) = key(id);
                    assert_eq!(t.remove(&k, &ns).and_then(|v| v.as_i64()), m.remove(&id), "purge {id:?}");
                }
                (rng.random_range(0..200), KEYS)
            }
            _ => (rng.random_range(0..800), rng.random_range(1..KEYS)),
        };
        for _ in 0..ops {
            seen.frozen_writes += u32::from(t.is_frozen());
            mutate(&mut rng, &mut t, &mut m, hot);
            // The encoder finishes captures at random moments (in any order).
            if !pending.is_empty() && rng.random_bool(0.01) {
                let (i, c) = pending.swap_remove(rng.random_range(0..pending.len()));
                chain[i].file = Some(encode(c));
            }
        }
        assert_same(&table_model(&t), &m, &format!("seed {seed}: the table"));
        seen.overflowed += u32::from(t.is_overflowed());
        seen.went_full += u32::from(t.wants_full() && can_delta);
        seen.capture_while_frozen += u32::from(!pending.is_empty());
        let mode = if can_delta && rng.random_bool(0.8) { SnapshotMode::Incremental } else { SnapshotMode::Full };
        pending.push((chain.len(), t.capture(mode)));
        chain.push(Checkpoint { expected: m.clone(), file: None });
        can_delta = true;
        if rng.random_bool(0.5) {
            let (i, c) = pending.swap_remove(rng.random_range(0..pending.len()));
            chain[i].file = Some(encode(c));
        }
        if rng.random_bool(0.05) {
            // A recovery from the newest checkpoint whose files are all written.
            for (i, c) in pending.drain(..) {
                chain[i].file = Some(encode(c));
            }
            let last = chain.len() - 1;
            t = KeyedTable::new();
            t.restore(restore_at(&chain, last));
            m = chain[last].expected.clone();
            assert_same(&table_model(&t), &m, &format!("seed {seed}: restored table"));
            can_delta = false;
            seen.recoveries += 1;
        }
    }
    for (i, c) in pending.drain(..) {
        chain[i].file = Some(encode(c));
    }
    for i in 0..chain.len() {
        if !can_delta_into(&chain, i) {
            continue;
        }
        assert_same(&model_of(restore_at(&chain, i)), &chain[i].expected, &format!("seed {seed}: checkpoint {i}"));
    }
}

/// Whether checkpoint `i` restores on its own chain (a recovery restarted with a full one).
fn can_delta_into(chain: &[Checkpoint], i: usize) -> bool {
    chain[..=i].iter().any(|c| c.file.as_ref().is_some_and(|(delta, _)| !delta))
}

#[test]
fn base_and_deltas_restore_the_model_at_every_checkpoint() {
    let mut seen = Seen::default();
    for seed in 0..16 {
        run(seed, &mut seen);
    }
    assert!(seen.overflowed > 10 && seen.frozen_writes > 1000 && seen.capture_while_frozen > 10 && seen.recoveries > 3);
    assert!(seen.went_full > 10, "purges made {} new bases", seen.went_full);
}

#[test]
fn writes_while_a_capture_is_encoded_wait_for_the_next_checkpoint() {
    let mut t = KeyedTable::new();
    for k in 0..10 {
        t.insert(Value::Int(k), Value::Null, Value::Int(k));
    }
    let full = t.capture(SnapshotMode::Full);
    assert!(t.is_frozen(), "the capture shares the entries");
    *t.get_mut(&Value::Int(1), &Value::Null).expect("present") = Value::Int(100);
    t.remove(&Value::Int(2), &Value::Null);
    t.insert(Value::Int(20), Value::Int(5), Value::Int(20));
    let (_, entries) = encode(full);
    let base = model_of(entries);
    assert_eq!(base.len(), 10);
    assert_eq!(base.get(&(1, None)), Some(&1), "the capture holds the value as of the barrier");
    assert!(base.contains_key(&(2, None)));
    // The encoder is done: the next write takes the entries back.
    t.insert(Value::Int(3), Value::Null, Value::Int(3));
    assert!(!t.is_frozen());
    let (delta, entries) = encode(t.capture(SnapshotMode::Incremental));
    assert!(delta);
    let mut got: Vec<(Id, Option<i64>)> =
        entries.iter().map(|e| (id_of(&e.key, &e.namespace), e.value.as_ref().and_then(Value::as_i64))).collect();
    got.sort_unstable();
    assert_eq!(got, vec![((1, None), Some(100)), ((2, None), None), ((3, None), Some(3)), ((20, Some(5)), Some(20))]);
}
