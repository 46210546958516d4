//! The records of a data frame: `count:varint · count × (key:Value · ts:zigzag varint ·
//! value:Value)`, each `Value` in the binary encoding of `value.rs` (the same bytes
//! `Value::encode` writes), encoded and decoded in one pass.
//!
//! Encoding reserves once per batch and writes varints a word at a time. Decoding allocates what
//! the records own and nothing else: one `Vec` for the batch, and per string, list or map its
//! `Arc`. Map keys are interned per decoder (a small direct-mapped cache of recent keys): records
//! of one shape repeat their field names, and a repeated name costs a comparison and a reference
//! count instead of an allocation. A decoder belongs to one receiving channel, so the records it
//! makes are dropped on the thread that decoded them.

use std::sync::Arc;

use super::frame::FrameError;
use crate::record::Record;
use crate::value::{Fields, Schema, Value};

/// Lists and maps nest at most this deep in a frame (serde_json's limit, so any value read from
/// JSON fits): deeper input is refused, not recursed into (a frame is outside input, and
/// recursion uses the stack).
pub const MAX_DEPTH: u32 = 128;

/// Map keys longer than this are not interned.
const INTERN_MAX: usize = 48;
/// Slots of the key cache (a power of two).
const INTERN_SLOTS: usize = 256;

/// Every record takes at least three bytes (two values, a timestamp).
const MIN_RECORD: usize = 3;

#[inline]
fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends an unsigned LEB128 varint (the encoding of `value::write_varint`).
#[inline]
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let mut buf = [0u8; 10];
    let mut v = v;
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    out.extend_from_slice(&buf[..=i]);
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_value(out: &mut Vec<u8>, v: &Value, depth: u32) -> Result<(), FrameError> {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => out.push(if *b { 2 } else { 1 }),
        Value::Int(i) => {
            out.push(3);
            put_varint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(5);
            put_bytes(out, s.as_bytes());
        }
        Value::List(l) => {
            if depth >= MAX_DEPTH {
                return Err(FrameError::TooDeep);
            }
            out.push(6);
            put_varint(out, l.len() as u64);
            for v in l.iter() {
                put_value(out, v, depth + 1)?;
            }
        }
        Value::Map(m) => {
            if depth >= MAX_DEPTH {
                return Err(FrameError::TooDeep);
            }
            out.push(7);
            put_varint(out, m.len() as u64);
            for (k, v) in m.iter() {
                put_bytes(out, k.as_bytes());
                put_value(out, v, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Appends the records part of a data frame for `batch`; refuses values nested deeper than
/// [`MAX_DEPTH`] (what is appended then is to be cut off by the caller).
pub fn encode_batch(out: &mut Vec<u8>, batch: &[Record]) -> Result<(), FrameError> {
    // Small records take about 12 bytes; more is reserved as the values need it.
    out.reserve(10 + batch.len() * 16);
    put_varint(out, batch.len() as u64);
    for r in batch {
        put_value(out, &r.key, 0)?;
        put_varint(out, zigzag(r.ts));
        put_value(out, &r.value, 0)?;
    }
    Ok(())
}

fn malformed(what: impl Into<String>) -> FrameError {
    FrameError::Malformed(what.into())
}

#[inline]
fn get_u8(input: &mut &[u8]) -> Result<u8, FrameError> {
    let (&b, rest) = input.split_first().ok_or_else(|| malformed("unexpected end of data"))?;
    *input = rest;
    Ok(b)
}

/// Reads an unsigned LEB128 varint (one-byte values on a fast path).
#[inline]
pub fn get_varint(input: &mut &[u8]) -> Result<u64, FrameError> {
    match input.first() {
        Some(&b) if b < 0x80 => {
            *input = &input[1..];
            Ok(u64::from(b))
        }
        _ => get_varint_slow(input),
    }
}

fn get_varint_slow(input: &mut &[u8]) -> Result<u64, FrameError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = get_u8(input)?;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(malformed("varint too long"))
}

/// A length that the rest of the input can hold (each counted item takes at least a byte).
#[inline]
fn get_len(input: &mut &[u8]) -> Result<usize, FrameError> {
    let n = get_varint(input)?;
    if n > input.len() as u64 {
        return Err(malformed(format!("length {n} exceeds the {} bytes left", input.len())));
    }
    Ok(n as usize)
}

#[inline]
fn get_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], FrameError> {
    let n = get_len(input)?;
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

#[inline]
fn utf8(b: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(b).map_err(|e| malformed(e.to_string()))
}

/// Decodes the records part of data frames; keeps the map keys it interned and the map shapes
/// it saw, so that the maps of one shape share their names (`value::Schema`).
pub struct BatchDecoder {
    keys: Vec<Option<Arc<str>>>,
    shapes: Vec<Option<Schema>>,
}

/// Map shapes a decoder keeps, by field count and first name.
const SHAPE_SLOTS: usize = 64;

impl Default for BatchDecoder {
    fn default() -> BatchDecoder {
        BatchDecoder { keys: vec![None; INTERN_SLOTS], shapes: vec![None; SHAPE_SLOTS] }
    }
}

/// FNV-1a over a short key, folded to a slot.
#[inline]
fn slot(b: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &x in b {
        h = (h ^ u32::from(x)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as usize & (INTERN_SLOTS - 1)
}

impl BatchDecoder {
    /// Decodes a batch from the whole of `input` (the records part of a data frame).
    pub fn decode_batch(&mut self, mut input: &[u8]) -> Result<Vec<Record>, FrameError> {
        let n = get_varint(&mut input)?;
        // A count that cannot fit is garbage, not a reason to allocate.
        if n > (input.len() / MIN_RECORD) as u64 {
            return Err(malformed(format!("{n} records cannot fit in {} bytes", input.len())));
        }
        let mut batch = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let key = self.value(&mut input, 0)?;
            let ts = unzigzag(get_varint(&mut input)?);
            let value = self.value(&mut input, 0)?;
            batch.push(Record { key, ts, value });
        }
        if !input.is_empty() {
            return Err(FrameError::Trailing(input.len()));
        }
        Ok(batch)
    }

    fn value(&mut self, input: &mut &[u8], depth: u32) -> Result<Value, FrameError> {
        Ok(match get_u8(input)? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(unzigzag(get_varint(input)?)),
            4 => {
                let (head, tail) = input.split_first_chunk::<8>().ok_or_else(|| malformed("unexpected end of data"))?;
                *input = tail;
                Value::Float(f64::from_le_bytes(*head))
            }
            5 => Value::Str(Arc::from(utf8(get_bytes(input)?)?)),
            6 => {
                let n = self.nested(input, depth)?;
                let mut l = Vec::with_capacity(n);
                for _ in 0..n {
                    l.push(self.value(input, depth + 1)?);
                }
                Value::List(Arc::new(l))
            }
            7 => {
                let n = self.nested(input, depth)?;
                Value::Map(Arc::new(self.map(input, n, depth)?))
            }
            t => return Err(malformed(format!("unknown value tag {t}"))),
        })
    }

    /// The element count of a list or map at `depth`.
    fn nested(&self, input: &mut &[u8], depth: u32) -> Result<usize, FrameError> {
        if depth >= MAX_DEPTH {
            return Err(malformed(format!("values nested deeper than {MAX_DEPTH}")));
        }
        get_len(input)
    }

    /// A map of `n` fields. While its names are those of the shape last seen with its field
    /// count and first name, they are only compared; a map of a new shape gets its names
    /// interned and, when they are in order (as every encoder writes them), becomes the shape.
    fn map(&mut self, input: &mut &[u8], n: usize, depth: u32) -> Result<Fields, FrameError> {
        if n == 0 {
            return Ok(Fields::new());
        }
        let mut values = Vec::with_capacity(n);
        let first = get_bytes(input)?;
        let at = (slot(first) ^ n) & (SHAPE_SLOTS - 1);
        let seen = self.shapes[at].take().filter(|s| s.len() == n && s.names()[0].as_bytes() == first);
        let mut names: Option<Vec<Arc<str>>> = None;
        let mut name = first;
        for i in 0..n {
            if i > 0 {
                name = get_bytes(input)?;
            }
            match (&mut names, &seen) {
                (None, Some(s)) if s.names()[i].as_bytes() == name => {}
                (None, _) => {
                    let mut own = seen.as_ref().map_or_else(|| Vec::with_capacity(n), |s| s.names()[..i].to_vec());
                    own.push(self.key(name)?);
                    names = Some(own);
                }
                (Some(own), _) => own.push(self.key(name)?),
            }
            values.push(self.value(input, depth + 1)?);
        }
        Ok(match (names, seen) {
            (None, Some(s)) => {
                let fields = Fields::from_schema(&s, values);
                self.shapes[at] = Some(s);
                fields
            }
            (Some(own), seen) => match Schema::from_sorted(own) {
                Ok(s) => {
                    let fields = Fields::from_schema(&s, values);
                    self.shapes[at] = Some(s);
                    fields
                }
                Err(own) => {
                    self.shapes[at] = seen;
                    // Out of order or repeated: sorted, the last of a name kept, as inserts do.
                    own.into_iter().zip(values).collect()
                }
            },
            (None, None) => Fields::new(),
        })
    }

    fn key(&mut self, b: &[u8]) -> Result<Arc<str>, FrameError> {
        if b.len() > INTERN_MAX {
            return Ok(Arc::from(utf8(b)?));
        }
        let at = slot(b);
        if let Some(k) = &self.keys[at]
            && k.as_bytes() == b
        {
            return Ok(k.clone());
        }
        let k: Arc<str> = Arc::from(utf8(b)?);
        self.keys[at] = Some(k.clone());
        Ok(k)
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
