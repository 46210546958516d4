//! The completion note: the newest checkpoint this job ever completed, kept beside the
//! manifests (`sinks/completed-through.json`).
//!
//! Sinks commit a checkpoint's transactions only after its manifest is published, and the
//! manifest is the only record that the commit happened. Remove the newest manifest (a person
//! tidying up, a bad lifecycle rule, a partial restore of the bucket) and the next run would
//! restore the one before it and commit the replayed records a second time, silently. The note
//! closes that gap: it is written after the manifest is published and before any task hears of
//! the completion, so a sink can only have committed checkpoint N when the note says N or more.
//! A restore that finds a note newer than every manifest treats that checkpoint as skipped with
//! an unknown manifest, so the fallback rule ([`super::fallback`]) refuses unless allowed.
//!
//! The note only ever moves forward. If writing it fails, the checkpoint still completes (the
//! manifest is published; refusing to commit would not make anything safer) and a warning says
//! that this checkpoint's removal would not be noticed.

use bytes::Bytes;
use sluice_crds::CheckpointId;

use crate::storage::{self, ObjectStore};

/// Where the note lives in the checkpoint store. Under `sinks/`, so that a location that has
/// the note but no manifest is refused as one whose sinks may have committed.
pub const NOTE_KEY: &str = crate::storage::layout::COMPLETION_NOTE;

/// Serializes this process's note updates (concurrent publishes must not move it backwards).
static NOTE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The newest checkpoint the note records; `None` when there is no note. An unreadable note is
/// reported, not guessed at.
pub async fn read(store: &dyn ObjectStore) -> Result<Option<CheckpointId>, NoteError> {
    let bytes = match store.get(NOTE_KEY).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(NoteError::Storage(e)),
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| NoteError::Unreadable(format!("not JSON: {e}")))?;
    value
        .get("checkpoint")
        .and_then(serde_json::Value::as_u64)
        .map(|id| Some(CheckpointId(id)))
        .ok_or_else(|| NoteError::Unreadable("no numeric field `checkpoint`".into()))
}

/// Records that checkpoint `id` completed, unless the note already names a newer one.
pub async fn record(store: &dyn ObjectStore, id: CheckpointId) -> Result<(), NoteError> {
    let _serial = NOTE_LOCK.lock().await;
    if let Ok(Some(current)) = read(store).await
        && current >= id
    {
        return Ok(());
    }
    let body = serde_json::json!({ "checkpoint": id.0 }).to_string();
    store.put(NOTE_KEY, Bytes::from(body)).await.map_err(NoteError::Storage)
}

/// Why the note could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// The store failed.
    #[error("completion note {NOTE_KEY}: {0}")]
    Storage(storage::Error),
    /// The note is there but does not say which checkpoint.
    #[error("completion note {NOTE_KEY} is unreadable: {0}")]
    Unreadable(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;

    #[tokio::test]
    async fn the_note_only_moves_forward() {
        let store = MemoryStore::new();
        assert_eq!(read(&store).await.expect("read"), None, "no note yet");
        record(&store, CheckpointId(7)).await.expect("record 7");
        record(&store, CheckpointId(5)).await.expect("record 5");
        assert_eq!(
            read(&store).await.expect("read"),
            Some(CheckpointId(7)),
            "an older completion does not move it back"
        );
        record(&store, CheckpointId(9)).await.expect("record 9");
        assert_eq!(read(&store).await.expect("read"), Some(CheckpointId(9)));
    }

    #[tokio::test]
    async fn an_unreadable_note_is_an_error_naming_it() {
        let store = MemoryStore::new();
        store.put(NOTE_KEY, Bytes::from_static(b"{\"id\": 3}")).await.expect("put");
        let err = read(&store).await.expect_err("unreadable");
        assert!(err.to_string().contains(NOTE_KEY) && err.to_string().contains("checkpoint"), "{err}");
    }
}
