//! The runtime's control endpoint: what the operator asks a running `sluice-runtime` over HTTP.
//!
//! The runtime serves these on `--control-addr` (port [`CONTROL_PORT`] in pods). Every response
//! body is JSON with a `version` field ([`CONTROL_VERSION`]); errors are [`ErrorResponse`] with a
//! 4xx/5xx status. Field names are camelCase.
//!
//! | method | path | request | response |
//! |---|---|---|---|
//! | GET | [`HEALTHZ`] | — | 200 while the process serves requests |
//! | GET | [`READYZ`] | — | 200 once the job restored its state and runs; 503 before |
//! | GET | [`METRICS`] | — | Prometheus text (`sluice_runtime_*`) |
//! | GET | [`CHECKPOINTS`] | — | [`JobStatus`] |
//! | POST | [`SAVEPOINTS`] | [`SavepointRequest`] | 202 [`SavepointStatus`] (state `pending`) |
//! | GET | `/v1/savepoints/{id}` ([`savepoint_path`]) | — | [`SavepointStatus`] |
//! | POST | [`STOP`] | [`StopRequest`] | 200 [`StopResponse`] once stopped (the process then exits 0) |

use serde::{Deserialize, Serialize};

use super::manifest::CheckpointId;

/// Version of the control documents written by this crate.
pub const CONTROL_VERSION: u32 = 1;
/// Port of the control endpoint in runtime pods.
pub const CONTROL_PORT: u16 = 9090;
/// Liveness: the process serves requests.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: state restored and the job running.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// Job state and checkpoint progress ([`JobStatus`]).
pub const CHECKPOINTS: &str = "/v1/checkpoints";
/// Trigger a savepoint ([`SavepointRequest`]).
pub const SAVEPOINTS: &str = "/v1/savepoints";
/// Stop the job, optionally with a final savepoint ([`StopRequest`]).
pub const STOP: &str = "/v1/stop";

/// Path of one savepoint's status.
pub fn savepoint_path(id: &str) -> String {
    format!("{SAVEPOINTS}/{id}")
}

fn version() -> u32 {
    CONTROL_VERSION
}

/// What the job as a whole is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobState {
    /// Restoring state or processing records.
    Running,
    /// Every source is exhausted and the final checkpoint committed; the process exits 0.
    Finished,
    /// The job failed (e.g. more consecutive checkpoint failures than tolerated); the process
    /// exits non-zero right after.
    Failed,
}

/// A completed checkpoint, as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointInfo {
    /// Checkpoint id.
    pub id: CheckpointId,
    /// URI of its manifest (`<storage uri>/manifests/chk-<id:020>.json`).
    pub path: String,
    /// Completion time, milliseconds since the epoch.
    pub completed_at_ms: u64,
    /// Bytes of state the checkpoint references.
    pub size_bytes: u64,
    /// Trigger-to-completion time in milliseconds.
    pub duration_ms: u64,
}

/// Response of `GET /v1/checkpoints`: the job's state and checkpoint progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// The `--run-id` the process was started with.
    pub run_id: String,
    /// Running, finished or failed.
    pub state: JobState,
    /// The checkpoint or savepoint the run restored from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// Newest completed checkpoint (including ones from earlier runs of the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<CheckpointInfo>,
    /// Checkpoint currently in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<CheckpointId>,
    /// Checkpoints completed by this run.
    #[serde(default)]
    pub completed: u64,
    /// Checkpoints failed or aborted by this run.
    #[serde(default)]
    pub failed: u64,
    /// Failures since the last completed checkpoint (compared with `tolerableFailures`).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Message of the last checkpoint failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

/// Body of `POST /v1/savepoints`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavepointRequest {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// Directory URI for the savepoint; `<storage uri>/savepoints/<id>/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// Progress of a savepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SavepointState {
    /// Triggered, not complete yet.
    Pending,
    /// Complete; `location` holds a self-contained savepoint.
    Completed,
    /// Failed; `error` says why.
    Failed,
}

/// Response of `POST /v1/savepoints` and `GET /v1/savepoints/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavepointStatus {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// Savepoint id (opaque string; used in the status path).
    pub id: String,
    /// Pending, completed or failed.
    pub state: SavepointState,
    /// Directory URI of the savepoint (holds `_manifest.json`), usable as `--restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /v1/stop`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRequest {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// Take a final savepoint before stopping (sinks commit it; sources stop at the barrier).
    #[serde(default)]
    pub savepoint: bool,
}

/// Response of `POST /v1/stop`, sent when the job has stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopResponse {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// The final savepoint's directory URI, when one was requested and taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint: Option<String>,
}

/// Body of every 4xx/5xx response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// What went wrong.
    pub error: String,
}

/// Exit status of a runtime that stopped because pre-committed output could not be committed
/// (a transaction the broker already aborted): records of a completed checkpoint are lost. The
/// operator reports it as the `DataLossRisk` condition instead of restarting blindly.
pub const EXIT_DATA_LOSS: u8 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_status_wire_format_is_camel_case_with_version() {
        let s = JobStatus {
            version: CONTROL_VERSION,
            run_id: "demo-2".into(),
            state: JobState::Running,
            restored_from: None,
            latest: Some(CheckpointInfo {
                id: CheckpointId(4),
                path: "s3://b/demo/manifests/chk-00000000000000000004.json".into(),
                completed_at_ms: 1,
                size_bytes: 2,
                duration_ms: 3,
            }),
            in_progress: Some(CheckpointId(5)),
            completed: 4,
            failed: 0,
            consecutive_failures: 0,
            last_failure: None,
        };
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(v["version"], 1);
        assert_eq!(v["runId"], "demo-2");
        assert_eq!(v["state"], "running");
        assert_eq!(v["latest"]["completedAtMs"], 1);
        assert_eq!(v["inProgress"], 5);
        assert_eq!(serde_json::from_value::<JobStatus>(v).expect("parses back"), s);
    }

    #[test]
    fn requests_default_their_version() {
        let r: StopRequest = serde_json::from_str(r#"{"savepoint": true}"#).expect("parses");
        assert_eq!(r, StopRequest { version: CONTROL_VERSION, savepoint: true });
        assert_eq!(savepoint_path("sp-1"), "/v1/savepoints/sp-1");
    }
}
