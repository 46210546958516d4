//! The asynchronous part of a checkpoint: encode captured state and write it to the store,
//! off the processing task.

use bytes::Bytes;
use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{StateFile, TaskState};

use crate::fault::{self, Faults};
use crate::ops::OpSnapshot;
use crate::state::StateWriter;
use crate::storage::layout::state_key;
use crate::storage::{self, SharedStore};

/// One node's capture, with where it ran.
pub struct NodeCapture {
    /// Node id.
    pub node: String,
    /// Node parallelism.
    pub parallelism: u32,
    /// What the node's operator captured.
    pub snapshot: OpSnapshot,
    /// Files a delta builds on (the node's confirmed chain); empty for a full snapshot.
    pub base: Vec<StateFile>,
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
            let encoded = tokio::task::spawn_blocking(move || {
                let mut w = StateWriter::new(max_parallelism);
                keyed.write_to(&mut w);
                if w.is_empty() { None } else { Some(w.finish(delta)) }
            })
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
