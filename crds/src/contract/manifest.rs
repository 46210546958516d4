//! The checkpoint manifest: the one object whose existence makes a checkpoint complete. This is
//! the document only (serde and its checksummed encoding); where manifests and state files live
//! is the storage layout (`sluice_storage::layout`), which also reads and publishes them.
//!
//! The encoded manifest is JSON followed by a trailer line `#crc32c=<hex>` over the JSON bytes,
//! so a torn or corrupted manifest is detected and never trusted.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Version of the manifest format written by this crate.
pub const MANIFEST_VERSION: u32 = 1;

/// Identifier of a checkpoint; strictly increasing within a job, across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckpointId(pub u64);

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl CheckpointId {
    /// The id after this one.
    pub fn next(self) -> CheckpointId {
        CheckpointId(self.0 + 1)
    }
}

/// Whether a snapshot is a periodic checkpoint or a user-owned savepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotKind {
    /// Periodic; owned and garbage-collected by the job.
    Checkpoint,
    /// On request; self-contained, never garbage-collected by the job.
    Savepoint,
}

/// A completed checkpoint or savepoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// Job name.
    pub job: String,
    /// Checkpoint id.
    pub checkpoint_id: CheckpointId,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Wall-clock trigger time, milliseconds since the epoch.
    pub triggered_at_ms: u64,
    /// Wall-clock completion time, milliseconds since the epoch.
    pub completed_at_ms: u64,
    /// Number of key groups the keyed state is split into.
    pub max_parallelism: u32,
    /// Per-subtask state, one entry per (node, subtask).
    pub tasks: Vec<TaskState>,
    /// The run that wrote it (`sluice-runtime run --run-id`; the operator's run ids carry the
    /// StreamJob's uid), so a savepoint can be told apart from one of an earlier object or
    /// attempt of the same name. Absent in manifests of older runtimes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Records the job's sources had emitted up to this checkpoint's barriers, counted from the
    /// job's first start and carried over every restore (a restored run replays from the
    /// checkpoint's positions, so nothing is counted twice). Absent in manifests of older
    /// runtimes and of runs restored from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
}

/// The state one subtask of one node contributed to a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskState {
    /// Node id.
    pub node: String,
    /// Subtask index.
    pub subtask: u32,
    /// Parallelism of the node when the checkpoint was taken.
    pub parallelism: u32,
    /// Keyed-state files (relative to the storage root), covering this subtask's key groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<StateFile>,
    /// Operator list state (e.g. source split positions), redistributed on rescale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_state: Vec<serde_json::Value>,
    /// Sink transactions pre-committed at this checkpoint (and earlier, not yet committed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committables: Vec<serde_json::Value>,
}

/// One immutable keyed-state file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateFile {
    /// Path relative to the storage root.
    pub path: String,
    /// Exact size in bytes.
    pub size_bytes: u64,
    /// CRC-32C of the whole file.
    pub crc32c: u32,
    /// First key group in the file.
    pub key_group_start: u32,
    /// Last key group in the file (inclusive).
    pub key_group_end: u32,
    /// True for a file of changes on top of earlier files (incremental), false for a full base.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The trailer line is missing (torn write).
    #[error("manifest has no checksum trailer (truncated?)")]
    MissingTrailer,
    /// The checksum does not match the content.
    #[error("manifest checksum mismatch: trailer says {expected:08x}, content has {actual:08x}")]
    Checksum {
        /// Checksum in the trailer.
        expected: u32,
        /// Checksum of the content.
        actual: u32,
    },
    /// The JSON does not parse.
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer Sluice.
    #[error("manifest version {0} is not supported (this build reads {MANIFEST_VERSION})")]
    Version(u32),
}

impl Manifest {
    /// Encodes as JSON plus a checksum trailer.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys always serializes.
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(format!("\n#crc32c={crc:08x}\n").as_bytes());
        out
    }

    /// Decodes and verifies a manifest written by [`Manifest::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = serde_json::from_slice(verified_body(bytes)?)?;
        if manifest.version > MANIFEST_VERSION {
            return Err(ManifestError::Version(manifest.version));
        }
        Ok(manifest)
    }

    /// Total bytes of the state files this manifest references.
    pub fn state_bytes(&self) -> u64 {
        self.tasks.iter().flat_map(|t| &t.files).map(|f| f.size_bytes).sum()
    }

    /// Every state file referenced, for garbage collection.
    pub fn referenced_files(&self) -> impl Iterator<Item = &StateFile> {
        self.tasks.iter().flat_map(|t| &t.files)
    }
}

/// The JSON body of an encoded manifest, once its checksum trailer is verified.
fn verified_body(bytes: &[u8]) -> Result<&[u8], ManifestError> {
    let text = bytes.strip_suffix(b"\n").ok_or(ManifestError::MissingTrailer)?;
    let pos = text.iter().rposition(|&b| b == b'\n').ok_or(ManifestError::MissingTrailer)?;
    let (body, trailer) = (&text[..pos], &text[pos + 1..]);
    let hex = trailer.strip_prefix(b"#crc32c=").ok_or(ManifestError::MissingTrailer)?;
    let expected = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or(ManifestError::MissingTrailer)?;
    let actual = crc32c::crc32c(body);
    if expected != actual {
        return Err(ManifestError::Checksum { expected, actual });
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            job: "demo".into(),
            checkpoint_id: CheckpointId(7),
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: 1,
            completed_at_ms: 2,
            max_parallelism: 128,
            tasks: vec![TaskState {
                node: "sum".into(),
                subtask: 0,
                parallelism: 1,
                files: vec![StateFile {
                    path: "state/chk-7/sum-0.state".into(),
                    size_bytes: 10,
                    crc32c: 5,
                    key_group_start: 0,
                    key_group_end: 127,
                    delta: false,
                }],
                operator_state: vec![],
                committables: vec![serde_json::json!({"temp": "a", "final": "b"})],
            }],
            run_id: None,
            records: None,
        }
    }

    #[test]
    fn manifest_round_trips_through_its_encoding() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()).expect("decodes"), m);
    }

    #[test]
    fn flipped_byte_in_manifest_is_detected() {
        let mut bytes = sample().encode();
        bytes[20] ^= 0x01;
        assert!(matches!(Manifest::decode(&bytes), Err(ManifestError::Checksum { .. })));
    }

    #[test]
    fn the_run_id_round_trips_and_is_optional() {
        let mut m = sample();
        m.run_id = Some("demo-1-0f3c9a7e".into());
        let bytes = m.encode();
        assert!(String::from_utf8_lossy(&bytes).contains("\"runId\": \"demo-1-0f3c9a7e\""));
        assert_eq!(Manifest::decode(&bytes).expect("decodes"), m);
        // Written by an older runtime: no key, decodes as `None`.
        assert!(!String::from_utf8_lossy(&sample().encode()).contains("runId"));
        assert_eq!(Manifest::decode(&sample().encode()).expect("decodes").run_id, None);
    }

    #[test]
    fn truncated_manifest_is_detected() {
        let bytes = sample().encode();
        assert!(Manifest::decode(&bytes[..bytes.len() / 2]).is_err());
    }
}
