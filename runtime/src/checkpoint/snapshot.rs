//! The asynchronous part of a checkpoint: encode captured state and write it to the store,
//! off the processing task.

use async_trait::async_trait;
use bytes::Bytes;
use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{StateFile, TaskState};

use crate::engine::capture::CaptureWriter;
pub use crate::engine::capture::NodeCapture;
use crate::fault::{self, Faults};
use crate::storage::layout::state_key;
use crate::storage::{self, SharedStore};

/// The [`CaptureWriter`] a job's tasks get: writes state files to the job's checkpoint store.
pub struct StoreCaptureWriter {
    /// Checkpoint storage.
    pub store: SharedStore,
    /// This run's id (names the state files).
    pub run_id: String,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Fault plan.
    pub faults: Faults,
}

#[async_trait]
impl CaptureWriter for StoreCaptureWriter {
    async fn write(
        &self,
        checkpoint: CheckpointId,
        subtask: u32,
        captures: Vec<NodeCapture>,
    ) -> Result<Vec<TaskState>, storage::Error> {
        write_task_snapshot(
            &self.store,
            checkpoint,
            subtask,
            &self.run_id,
            self.max_parallelism,
            captures,
            &self.faults,
        )
        .await
    }
}

/// Encodes and uploads every capture of a task; returns the task's entries for the manifest.
pub async fn write_task_snapshot(
    store: &SharedStore,
    checkpoint: CheckpointId,
    subtask: u32,
    run_id: &str,
    max_parallelism: u32,
    captures: Vec<NodeCapture>,
    faults: &Faults,
) -> Result<Vec<TaskState>, storage::Error> {
    let mut states = Vec::with_capacity(captures.len());
    for capture in captures {
        let NodeCapture { node, parallelism, snapshot, base } = capture;
        let mut files = Vec::new();
        if let Some(keyed) = snapshot.keyed {
            let delta = keyed.is_delta();
            if delta {
                files = base;
            }
            let encoded = tokio::task::spawn_blocking(move || keyed.encode(max_parallelism))
                .await
                .map_err(|e| storage::Error::Config(format!("snapshot encoder panicked: {e}")))?;
            if let Some((bytes, Some((first, last)))) = encoded {
                let key = state_key(checkpoint, &node, subtask, run_id);
                let crc = crc32c::crc32c(&bytes);
                let size = bytes.len() as u64;
                let bytes = Bytes::from(bytes);
                if faults.due("snapshot.mid_write") {
                    let _ = store.put(&key, bytes.slice(..bytes.len() / 2)).await;
                    fault::crash("snapshot.mid_write");
                }
                store.put(&key, bytes).await?;
                files.push(StateFile {
                    path: key,
                    size_bytes: size,
                    crc32c: crc,
                    key_group_start: first,
                    key_group_end: last,
                    delta,
                });
            }
        }
        states.push(TaskState {
            node,
            subtask,
            parallelism,
            files,
            operator_state: snapshot.operator_state,
            committables: snapshot.committables,
        });
    }
    Ok(states)
}
