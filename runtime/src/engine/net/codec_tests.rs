//! The batch codec against a reference written apart from it: the encoding spelled out byte by
//! byte from the format (`value.rs`'s tags, LEB128, zigzag), on random batches full of edge
//! cases. The codec must write exactly the reference's bytes (so also `Value::encode`'s: the
//! wire and the state files agree) and read them back to equal records.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::engine::net::frame::FrameError;

/// The reference encoder: each rule of the format as plainly as it can be written.
mod reference {
    use super::*;

    pub fn uleb(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(low);
                return;
            }
            out.push(low | 0x80);
        }
    }

    pub fn signed(out: &mut Vec<u8>, i: i64) {
        // Zigzag: 0, -1, 1, -2, 2 … become 0, 1, 2, 3, 4 …
        let z = if i >= 0 { (i as u64) * 2 } else { (!(i as u64)) * 2 + 1 };
        uleb(out, z);
    }

    pub fn value(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::Null => out.push(0),
            Value::Bool(false) => out.push(1),
            Value::Bool(true) => out.push(2),
            Value::Int(i) => {
                out.push(3);
                signed(out, *i);
            }
            Value::Float(f) => {
                out.push(4);
                out.extend(f.to_bits().to_le_bytes());
            }
            Value::Str(s) => {
                out.push(5);
                uleb(out, s.len() as u64);
                out.extend(s.bytes());
            }
            Value::List(l) => {
                out.push(6);
                uleb(out, l.len() as u64);
                l.iter().for_each(|x| value(out, x));
            }
            Value::Map(m) => {
                out.push(7);
                uleb(out, m.len() as u64);
                for (k, x) in m.iter() {
                    uleb(out, k.len() as u64);
                    out.extend(k.bytes());
                    value(out, x);
                }
            }
        }
    }

    pub fn batch(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        uleb(&mut out, records.len() as u64);
        for r in records {
            value(&mut out, &r.key);
            signed(&mut out, r.ts);
            value(&mut out, &r.value);
        }
        out
    }
}

fn pick<T: Copy>(rng: &mut StdRng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

fn int(rng: &mut StdRng) -> i64 {
    match rng.random_range(0..6) {
        0 => pick(rng, &[0, -1, 1, 63, -64, 64, -65, 127, 128, i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1]),
        1 => rng.random_range(-300..300),
        2 => 1 << rng.random_range(0..63),
        3 => -(1 << rng.random_range(0..63)),
        _ => rng.random(),
    }
}

fn text(rng: &mut StdRng) -> String {
    match rng.random_range(0..5) {
        0 => String::new(),
        1 => "x".repeat(rng.random_range(100..300)),
        2 => (0..rng.random_range(1..12)).map(|_| pick(rng, &['a', 'é', '€', '😀', '\0', 'Z'])).collect(),
        _ => format!("s{}", rng.random_range(0..50)),
    }
}

/// Map keys: few names repeated (the interning's case), many distinct ones (its cache's
/// collisions), empty, long (not interned), and lookalikes of equal length.
fn key(rng: &mut StdRng) -> Arc<str> {
    let k = match rng.random_range(0..6) {
        0 => pick(rng, &["price", "bidder", "url", "", "dateTime"]).to_string(),
        1 => format!("k{}", rng.random_range(0..5000)),
        2 => "long-field-name-".repeat(rng.random_range(3..6)),
        3 => pick(rng, &["ab", "ba", "aa", "bb"]).to_string(),
        _ => text(rng),
    };
    Arc::from(k.as_str())
}

fn value(rng: &mut StdRng, depth: u32) -> Value {
    let kinds = if depth > 3 { 6 } else { 9 };
    match rng.random_range(0..kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 | 3 => Value::Int(int(rng)),
        4 => {
            let any = rng.random();
            Value::Float(pick(rng, &[0.0, -0.0, 1.5, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE, any]))
        }
        5 => Value::str(&text(rng)),
        6 => Value::List(Arc::new((0..rng.random_range(0..5)).map(|_| value(rng, depth + 1)).collect())),
        _ => {
            let m: Fields = (0..rng.random_range(0..8)).map(|_| (key(rng), value(rng, depth + 1))).collect();
            Value::Map(Arc::new(m))
        }
    }
}

fn batch(rng: &mut StdRng) -> Vec<Record> {
    (0..rng.random_range(0..200)).map(|_| Record { key: value(rng, 0), ts: int(rng), value: value(rng, 0) }).collect()
}

#[test]
fn the_codec_writes_the_reference_bytes_and_reads_them_back() {
    let seed: u64 = rand::rng().random();
    let mut rng = StdRng::seed_from_u64(seed);
    // One decoder for every batch, as a receiving channel has: interned keys carry over.
    let mut decoder = BatchDecoder::default();
    for round in 0..300 {
        let records = batch(&mut rng);
        let expected = reference::batch(&records);
        let mut got = vec![0xAB]; // the codec appends: what is there stays
        encode_batch(&mut got, &records).expect("encodes");
        assert_eq!(got[0], 0xAB);
        assert!(got[1..] == expected[..], "seed {seed} round {round}: encodings differ");
        let back = decoder.decode_batch(&expected).expect("decodes");
        assert!(back == records, "seed {seed} round {round}: decoded records differ");
        // And the state encoding of every value is the same bytes.
        for r in &records {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            r.value.encode(&mut a);
            reference::value(&mut b, &r.value);
            assert!(a == b, "seed {seed}: Value::encode and the reference differ on {:?}", r.value);
        }
    }
}

#[test]
fn interned_keys_are_never_mixed_up() {
    // More distinct keys than the cache has slots, each one twice in a row and again later:
    // a slot taken by another key must miss, not answer with the other key.
    let keys: Vec<String> = (0..2000).map(|i| format!("f{i}")).collect();
    let records: Vec<Record> = keys
        .iter()
        .chain(keys.iter().rev())
        .map(|k| Record {
            key: Value::Null,
            ts: 0,
            value: Value::map([(k.as_str(), Value::Int(1)), ("z", Value::Null)]),
        })
        .collect();
    let mut decoder = BatchDecoder::default();
    let bytes = reference::batch(&records);
    for _ in 0..2 {
        assert!(decoder.decode_batch(&bytes).expect("decodes") == records);
    }
}

fn nested(depth: u32) -> Value {
    (0..depth)
        .fold(Value::Int(1), |v, i| if i % 2 == 0 { Value::List(Arc::new(vec![v])) } else { Value::map([("n", v)]) })
}

#[test]
fn nesting_is_bounded_both_ways() {
    let ok = vec![Record { key: Value::Null, ts: -1, value: nested(MAX_DEPTH) }];
    let mut buf = Vec::new();
    encode_batch(&mut buf, &ok).expect("as deep as allowed");
    assert!(BatchDecoder::default().decode_batch(&buf).expect("decodes") == ok);
    let deep = vec![Record { key: Value::Null, ts: -1, value: nested(MAX_DEPTH + 1) }];
    assert_eq!(encode_batch(&mut Vec::new(), &deep), Err(FrameError::TooDeep));
    // Hostile input nesting a million lists is an error, not a stack overflow.
    let mut hostile = vec![1, 0, 0];
    for _ in 0..1_000_000 {
        hostile.extend([6, 1]);
    }
    hostile.push(0);
    assert!(matches!(BatchDecoder::default().decode_batch(&hostile), Err(FrameError::Malformed(_))));
}

#[test]
fn every_cut_and_every_extra_byte_is_an_error() {
    let mut rng = StdRng::seed_from_u64(11);
    let records: Vec<Record> =
        (0..30).map(|_| Record { key: value(&mut rng, 0), ts: int(&mut rng), value: value(&mut rng, 0) }).collect();
    let bytes = reference::batch(&records);
    let mut decoder = BatchDecoder::default();
    for cut in 0..bytes.len() {
        assert!(decoder.decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decoder.decode_batch(&longer).err(), Some(FrameError::Trailing(1)));
    // Invalid UTF-8 in a string and in a map key.
    for bad in [vec![1, 0, 0, 5, 1, 0xff], vec![1, 0, 0, 7, 1, 1, 0xff, 0]] {
        let r = decoder.decode_batch(&bad);
        assert!(matches!(r, Err(FrameError::Malformed(_))), "{bad:?}: {r:?}");
    }
}

/// Maps of a few shapes that often share their field count and first name (`{a, b}` and
/// `{a, c}`): the decoder's shapes must answer only for the names they have.
#[test]
fn map_shapes_are_never_mixed_up() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut decoder = BatchDecoder::default();
    for round in 0..200 {
        let records: Vec<Record> = (0..50)
            .map(|_| {
                let m: Fields = (0..rng.random_range(0..4))
                    .map(|_| {
                        (Arc::from(pick(&mut rng, &["a", "b", "c", "d", "ab"])), Value::Int(rng.random_range(0..3)))
                    })
                    .collect();
                Record { key: Value::Null, ts: 0, value: Value::Map(Arc::new(m)) }
            })
            .collect();
        let back = decoder.decode_batch(&reference::batch(&records)).expect("decodes");
        assert!(back == records, "round {round}");
    }
    // Names out of order and repeated (no encoder of ours writes them): sorted, the last of a
    // name kept, as a map built by inserts would have them.
    let bytes = [1, 0, 0, 7, 3, 1, b'b', 3, 2, 1, b'a', 3, 4, 1, b'b', 3, 6];
    let back = decoder.decode_batch(&bytes).expect("decodes");
    assert_eq!(back[0].value, Value::map([("a", Value::Int(2)), ("b", Value::Int(3))]));
}
