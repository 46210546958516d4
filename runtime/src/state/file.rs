//! The state file format: a header, entries sorted by key group, and a footer with the entry
//! count and a CRC-32C over everything before it. The manifest also records size and the CRC-32C
//! of the whole file, so a truncated, corrupted or swapped file is detected before a single entry
//! is trusted.
//!
//! ```text
//! "SLST" version:u8 flags:u8 reserved:u16
//! entry*: group:u32le key:Value namespace:Value present:u8 [value:Value]
//! count:u64le crc32c:u32be "TSLS"        (version 2; version 1 stored the CRC little-endian)
//! ```
//!
//! Why big-endian: CRC-32C is a reflected CRC, and a message followed by its own CRC stored
//! little-endian always has the same CRC (the "residue"). Version 1 files therefore all had one
//! and the same whole-file CRC-32C (the residue run through `"TSLS"`), so the manifest's per-file
//! checksum told files apart by size only. Stored big-endian, the footer CRC no longer cancels
//! out and the whole-file CRC depends on every byte. Version 1 files are still read.

use super::StateEntry;
use crate::graph::KeyGroupRange;
use crate::value::Value;

const MAGIC: &[u8; 4] = b"SLST";
const END_MAGIC: &[u8; 4] = b"TSLS";
/// Version written (see the module docs); [`VERSION_LE_CRC`] files are still read.
const VERSION: u8 = 2;
/// The first version, whose footer CRC is little-endian.
const VERSION_LE_CRC: u8 = 1;
const FLAG_DELTA: u8 = 1;
const HEADER: usize = 8;
const FOOTER: usize = 16;

/// Why a state file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Size differs from the manifest's record (truncated or overwritten).
    #[error("state file {path} is {actual} bytes, the manifest says {expected}")]
    Size {
        /// File path.
        path: String,
        /// Size from the manifest.
        expected: u64,
        /// Size read.
        actual: u64,
    },
    /// Checksum differs from the manifest's record or the footer.
    #[error("state file {path} fails its checksum (expected {expected:08x}, got {actual:08x})")]
    Checksum {
        /// File path.
        path: String,
        /// Expected CRC-32C.
        expected: u32,
        /// Computed CRC-32C.
        actual: u32,
    },
    /// Structure is broken (bad magic, bad entry).
    #[error("state file {path} is malformed: {reason}")]
    Malformed {
        /// File path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The file of `entries` (`count` of them), given in key-group order.
pub(super) fn encode<'a>(
    entries: impl Iterator<Item = (u32, &'a Value, &'a Value, Option<&'a Value>)>,
    count: usize,
    delta: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + FOOTER + count * 16);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(if delta { FLAG_DELTA } else { 0 });
    out.extend_from_slice(&[0, 0]);
    for (group, key, namespace, value) in entries {
        out.extend_from_slice(&group.to_le_bytes());
        key.encode(&mut out);
        namespace.encode(&mut out);
        match value {
            Some(v) => {
                out.push(1);
                v.encode(&mut out);
            }
            None => out.push(0),
        }
    }
    out.extend_from_slice(&(count as u64).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(END_MAGIC);
    out
}

/// Verifies a state file against the size and CRC the manifest recorded, then decodes the
/// entries whose key group is in `range`.
pub fn decode_state_file(
    path: &str,
    bytes: &[u8],
    expected_size: u64,
    expected_crc: u32,
    range: KeyGroupRange,
) -> Result<Vec<StateEntry>, StateFileError> {
    let malformed = |reason: &str| StateFileError::Malformed { path: path.to_string(), reason: reason.to_string() };
    if bytes.len() as u64 != expected_size {
        return Err(StateFileError::Size {
            path: path.to_string(),
            expected: expected_size,
            actual: bytes.len() as u64,
        });
    }
    let actual = crc32c::crc32c(bytes);
    if actual != expected_crc {
        return Err(StateFileError::Checksum { path: path.to_string(), expected: expected_crc, actual });
    }
    if bytes.len() < HEADER + FOOTER || &bytes[..4] != MAGIC || &bytes[bytes.len() - 4..] != END_MAGIC {
        return Err(malformed("bad magic"));
    }
    let version = bytes[4];
    if version != VERSION && version != VERSION_LE_CRC {
        return Err(malformed(&format!("unsupported version {version}")));
    }
    let footer = &bytes[bytes.len() - FOOTER..];
    let mut count_bytes = [0u8; 8];
    count_bytes.copy_from_slice(&footer[..8]);
    let count = u64::from_le_bytes(count_bytes);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&footer[8..12]);
    let footer_crc =
        if version == VERSION_LE_CRC { u32::from_le_bytes(crc_bytes) } else { u32::from_be_bytes(crc_bytes) };
    let inner_crc = crc32c::crc32c(&bytes[..bytes.len() - 8]);
    if footer_crc != inner_crc {
        return Err(StateFileError::Checksum { path: path.to_string(), expected: footer_crc, actual: inner_crc });
    }
    let mut input = &bytes[HEADER..bytes.len() - FOOTER];
    let mut out = Vec::new();
    for _ in 0..count {
        if input.len() < 4 {
            return Err(malformed("entry count exceeds data"));
        }
        let group = u32::from_le_bytes([input[0], input[1], input[2], input[3]]);
        input = &input[4..];
        let key = Value::decode(&mut input).map_err(|e| malformed(&e.0))?;
        let namespace = Value::decode(&mut input).map_err(|e| malformed(&e.0))?;
        let present = *input.first().ok_or_else(|| malformed("missing presence byte"))?;
        input = &input[1..];
        let value = if present == 1 { Some(Value::decode(&mut input).map_err(|e| malformed(&e.0))?) } else { None };
        if range.contains(group) {
            out.push(StateEntry { key_group: group, key, namespace, value });
        }
    }
    if !input.is_empty() {
        return Err(malformed("trailing bytes after the last entry"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateWriter;

    fn sample() -> (Vec<u8>, u32) {
        let mut w = StateWriter::new(128);
        for i in 0..1000 {
            w.put(&Value::Int(i), &Value::Null, Some(&Value::Int(i * 2)));
        }
        w.put(&Value::Int(5000), &Value::Int(1), None);
        let (bytes, _) = w.finish(false);
        let crc = crc32c::crc32c(&bytes);
        (bytes, crc)
    }

    #[test]
    fn round_trip_keeps_every_entry_and_filters_by_range() {
        let (bytes, crc) = sample();
        let all = decode_state_file("f", &bytes, bytes.len() as u64, crc, KeyGroupRange { start: 0, end: 127 })
            .expect("decodes");
        assert_eq!(all.len(), 1001);
        assert!(all.windows(2).all(|w| w[0].key_group <= w[1].key_group), "sorted by key group");
        let half = KeyGroupRange::for_subtask(0, 2, 128);
        let part = decode_state_file("f", &bytes, bytes.len() as u64, crc, half).expect("decodes");
        assert!(part.iter().all(|e| half.contains(e.key_group)));
        assert!(!part.is_empty() && part.len() < all.len());
    }

    /// Files of different content have different whole-file checksums (version 1 files all had
    /// the CRC residue), and a file whose manifest CRC is another file's is refused.
    #[test]
    fn whole_file_checksums_tell_files_apart() {
        let crcs: std::collections::HashSet<u32> = (0..200i64)
            .map(|n| {
                let mut w = StateWriter::new(128);
                for i in 0..=n {
                    w.put(&Value::Int(i), &Value::Int(n), Some(&Value::Int(i ^ n)));
                }
                crc32c::crc32c(&w.finish(false).0)
            })
            .collect();
        assert_eq!(crcs.len(), 200, "every file has a checksum of its own");
        // Two well-formed files of the same size (fixed-width values) but different content.
        let floats = |offset: f64| {
            let mut w = StateWriter::new(128);
            for i in 0..100 {
                w.put(&Value::Int(i), &Value::Null, Some(&Value::Float(i as f64 + offset)));
            }
            w.finish(false).0
        };
        let (a, b) = (floats(0.0), floats(0.5));
        assert_eq!(a.len(), b.len());
        let range = KeyGroupRange { start: 0, end: 127 };
        assert!(decode_state_file("b", &b, b.len() as u64, crc32c::crc32c(&b), range).is_ok(), "b is well-formed");
        assert!(
            matches!(
                decode_state_file("b", &b, b.len() as u64, crc32c::crc32c(&a), range),
                Err(StateFileError::Checksum { .. })
            ),
            "a's checksum does not vouch for b"
        );
    }

    #[test]
    fn version_1_files_with_a_little_endian_footer_crc_still_decode() {
        let (mut bytes, _) = sample();
        bytes[4] = VERSION_LE_CRC;
        let footer = bytes.len() - 8;
        let inner = crc32c::crc32c(&bytes[..footer]);
        bytes[footer..footer + 4].copy_from_slice(&inner.to_le_bytes());
        let crc = crc32c::crc32c(&bytes);
        let all = decode_state_file("v1", &bytes, bytes.len() as u64, crc, KeyGroupRange { start: 0, end: 127 });
        assert_eq!(all.expect("a version 1 file decodes").len(), 1001);
    }

    #[test]
    fn any_flipped_bit_or_truncation_is_detected() {
        let (bytes, crc) = sample();
        let range = KeyGroupRange { start: 0, end: 127 };
        for pos in [0, 9, bytes.len() / 2, bytes.len() - 5] {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x10;
            assert!(decode_state_file("f", &bad, bad.len() as u64, crc, range).is_err(), "flip at {pos}");
        }
        let cut = &bytes[..bytes.len() - 3];
        assert!(matches!(
            decode_state_file("f", cut, bytes.len() as u64, crc, range),
            Err(StateFileError::Size { .. })
        ));
    }
}
