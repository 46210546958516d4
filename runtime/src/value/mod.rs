//! The dynamic value a record carries: JSON-like, cheap to clone (strings, lists and maps are
//! reference-counted), with a stable hash for key groups and a compact binary codec for state.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

mod fields;
mod path;

pub use fields::{Fields, Lookup, Schema};
pub use path::{FieldPath, PathMemo};

/// A record's key or value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(Arc<str>),
    /// An ordered list.
    List(Arc<Vec<Value>>),
    /// A map with string keys, ordered by key.
    Map(Arc<Fields>),
}

impl PartialEq for Value {
    #[inline]
    fn eq(&self, other: &Value) -> bool {
        if let (Value::Int(a), Value::Int(b)) = (self, other) {
            return a == b;
        }
        self.eq_slow(other)
    }
}

impl Value {
    fn eq_slow(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let h = match self {
            Value::Int(i) => mix64(*i as u64),
            _ => self.stable_hash(),
        };
        state.write_u64(h);
    }
}

/// The 64-bit finalizer of MurmurHash3: a fast, well-mixed, stable hash of an integer.
#[inline]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Value {
    /// A hash that never changes across runs, versions or machines: it decides key groups,
    /// so a restored job must compute exactly what the job that wrote the checkpoint did.
    #[inline]
    pub fn stable_hash(&self) -> u64 {
        match self {
            Value::Null => 0x5bd1_e995_5bd1_e995,
            Value::Bool(b) => mix64(0x9e37_79b9_7f4a_7c15 ^ u64::from(*b)),
            Value::Int(i) => mix64(*i as u64),
            Value::Float(f) => mix64(f.to_bits() ^ 0x2545_f491_4f6c_dd1d),
            Value::Str(s) => xxhash_rust::xxh3::xxh3_64(s.as_bytes()),
            Value::List(_) | Value::Map(_) => {
                let mut buf = Vec::with_capacity(64);
                self.encode(&mut buf);
                xxhash_rust::xxh3::xxh3_64(&buf)
            }
        }
    }

    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    /// A map value from `(name, value)` pairs.
    pub fn map<'a>(fields: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Map(Arc::new(fields.into_iter().map(|(k, v)| (Arc::from(k), v)).collect()))
    }

    /// The value at a dotted path (`user.id`) inside nested maps; the value itself for `""`.
    pub fn get_path(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self);
        }
        let mut cur = self;
        for part in path.split('.') {
            match cur {
                Value::Map(m) => cur = m.get(part)?,
                _ => return None,
            }
        }
        Some(cur)
    }

    /// The value as an integer, if it is one (or a float with no fraction).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Appends the binary encoding of this value (used in state files).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Bool(b) => out.push(if *b { 2 } else { 1 }),
            Value::Int(i) => {
                out.push(3);
                write_varint(out, zigzag(*i));
            }
            Value::Float(f) => {
                out.push(4);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Str(s) => {
                out.push(5);
                write_bytes(out, s.as_bytes());
            }
            Value::List(l) => {
                out.push(6);
                write_varint(out, l.len() as u64);
                for v in l.iter() {
                    v.encode(out);
                }
            }
            Value::Map(m) => {
                out.push(7);
                write_varint(out, m.len() as u64);
                for (k, v) in m.iter() {
                    write_bytes(out, k.as_bytes());
                    v.encode(out);
                }
            }
        }
    }

    /// Decodes one value from the front of `input`, advancing it.
    pub fn decode(input: &mut &[u8]) -> Result<Value, DecodeError> {
        let tag = take(input, 1)?[0];
        Ok(match tag {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(unzigzag(read_varint(input)?)),
            4 => {
                let b = take(input, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Float(f64::from_le_bytes(a))
            }
            5 => Value::Str(Arc::from(read_str(input)?)),
            6 => {
                let n = read_len(input)?;
                let mut l = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    l.push(Value::decode(input)?);
                }
                Value::List(Arc::new(l))
            }
            7 => {
                let n = read_len(input)?;
                let mut m = Fields::with_capacity(n.min(1024));
                for _ in 0..n {
                    let k: Arc<str> = Arc::from(read_str(input)?);
                    m.insert(k, Value::decode(input)?);
                }
                Value::Map(Arc::new(m))
            }
            t => return Err(DecodeError(format!("unknown value tag {t}"))),
        })
    }
}

/// A state file or value encoding that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed encoding: {0}")]
pub struct DecodeError(pub String);

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends an unsigned LEB128 varint.
pub fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint.
pub fn read_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = take(input, 1)?[0];
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError("varint too long".into()))
}

fn read_len(input: &mut &[u8]) -> Result<usize, DecodeError> {
    let n = read_varint(input)?;
    if n > input.len() as u64 {
        return Err(DecodeError(format!("length {n} exceeds the {} bytes left", input.len())));
    }
    Ok(n as usize)
}

/// Appends a length-prefixed byte string.
pub fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads a length-prefixed byte string.
pub fn read_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let n = read_len(input)?;
    take(input, n)
}

fn read_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, DecodeError> {
    std::str::from_utf8(read_bytes(input)?).map_err(|e| DecodeError(e.to_string()))
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError("unexpected end of data".into()));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l.iter() {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m.iter() {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map(Value::Int).unwrap_or(Value::Float(u as f64)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut l = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            l.push(v);
        }
        Ok(Value::List(Arc::new(l)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Fields::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            m.insert(Arc::from(k.as_str()), v);
        }
        Ok(Value::Map(Arc::new(m)))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<unprintable>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        Value::map([
            ("a", Value::Int(-5)),
            ("b", Value::Float(1.5)),
            ("c", Value::List(Arc::new(vec![Value::Null, Value::Bool(true), Value::str("x")]))),
        ])
    }

    #[test]
    fn binary_codec_round_trips_every_variant() {
        let v = sample();
        let mut buf = Vec::new();
        v.encode(&mut buf);
        let mut input = &buf[..];
        assert_eq!(Value::decode(&mut input).expect("decodes"), v);
        assert!(input.is_empty());
    }

    #[test]
    fn truncated_encoding_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        for cut in 0..buf.len() {
            let mut input = &buf[..cut];
            assert!(Value::decode(&mut input).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn stable_hash_is_pinned() {
        // Key groups depend on these numbers: changing them breaks every existing checkpoint.
        assert_eq!(Value::Int(42).stable_hash(), mix64(42));
        assert_eq!(Value::str("user-1").stable_hash(), xxhash_rust::xxh3::xxh3_64(b"user-1"));
        assert_eq!(mix64(1), 0xb456_bcfc_34c2_cb2c);
    }

    #[test]
    fn json_round_trip_and_paths() {
        let v: Value = serde_json::from_str(r#"{"user":{"id":7},"n":2.5}"#).expect("json");
        assert_eq!(v.get_path("user.id"), Some(&Value::Int(7)));
        assert_eq!(v.get_path("user.nope"), None);
        assert_eq!(serde_json::to_string(&v).expect("ser"), r#"{"n":2.5,"user":{"id":7}}"#);
    }
}
