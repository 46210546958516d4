//! `spec.workers`: how many worker pods one attempt of a job runs on, what makes sense for a
//! pipeline, and how many of them are ready (`status.workers`).
//!
//! The runtime places subtask `i` of every node on worker `i % workers` (its
//! `job::workers::placement`), so a worker whose index is at least the largest parallelism of
//! any node would run no subtask at all: it accepts such a worker, but it is a pod doing nothing.
//! The operator refuses that spec, naming `spec.workers`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::StreamJobSpec;

/// Most worker pods per attempt (the CRD's bound on `spec.workers`): every pair of workers keeps
/// a TCP connection, so an attempt of `N` workers holds `N·(N−1)/2` of them.
pub const MAX_WORKERS: u32 = 1024;

/// Worker pods of the current attempt, as `kubectl get sj` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkersStatus {
    /// Worker pods of the current attempt that are running and ready.
    pub ready: u32,
    /// Worker pods the current attempt runs on (`spec.workers` when it was launched).
    pub desired: u32,
}

/// A `spec.workers` the job's pipeline cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "spec.workers: {workers} workers for a pipeline whose largest node parallelism is {largest}: subtask i of \
     every node runs on worker i % workers, so workers {largest} and above would run nothing; \
     set spec.workers to at most {largest} or raise spec.parallelism"
)]
pub struct TooManyWorkers {
    /// `spec.workers`.
    pub workers: u32,
    /// The largest parallelism of any node (its own, else `spec.parallelism`).
    pub largest: u32,
}

/// The largest number of subtasks of any node of `spec`'s pipeline, as the runtime will run it:
/// a node's own parallelism, else `spec.parallelism` (which the operator writes into the job
/// document as the pipeline's default).
pub fn largest_parallelism(spec: &StreamJobSpec) -> u32 {
    spec.pipeline.nodes.iter().map(|n| n.parallelism.unwrap_or(spec.parallelism)).max().unwrap_or(spec.parallelism)
}

/// Checks `spec.workers` against the pipeline: more workers than the largest node parallelism
/// would leave some of them without a subtask.
pub fn check_workers(spec: &StreamJobSpec) -> Result<(), TooManyWorkers> {
    let largest = largest_parallelism(spec);
    if spec.workers > largest {
        return Err(TooManyWorkers { workers: spec.workers, largest });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(parallelism: u32, workers: u32, node_parallelism: Option<u32>) -> StreamJobSpec {
        let mut s: StreamJobSpec = serde_json::from_value(serde_json::json!({
            "image": "i",
            "parallelism": parallelism,
            "workers": workers,
            "pipeline": {
                "nodes": [{"id": "numbers", "generator": {}}, {"id": "print", "stdout": {}}],
                "edges": [{"from": "numbers", "to": "print"}]
            }
        }))
        .expect("spec parses");
        s.pipeline.nodes[1].parallelism = node_parallelism;
        s
    }

    #[test]
    fn workers_up_to_the_largest_node_parallelism_are_accepted() {
        assert_eq!(check_workers(&spec(1, 1, None)), Ok(()));
        assert_eq!(check_workers(&spec(4, 4, None)), Ok(()));
        assert_eq!(check_workers(&spec(1, 3, Some(3))), Ok(()), "a node of its own parallelism counts");
    }

    #[test]
    fn more_workers_than_subtasks_are_refused_naming_the_field() {
        let e = check_workers(&spec(2, 3, None)).expect_err("refused");
        assert_eq!(e, TooManyWorkers { workers: 3, largest: 2 });
        let message = e.to_string();
        assert!(message.starts_with("spec.workers: 3 workers"), "{message}");
        assert!(check_workers(&spec(4, 5, Some(1))).is_err(), "a smaller node does not raise the bound");
    }
}
