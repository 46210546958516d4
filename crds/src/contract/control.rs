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
//! | POST | [`SAVEPOINTS`] | [`SavepointRequest`] | 202 [`SavepointStatus`] (state `pending`); 409 while a stop is in progress |
//! | GET | `/v1/savepoints/{id}` ([`savepoint_path`]) | — | [`SavepointStatus`] |
//! | POST | [`STOP`] | [`StopRequest`] | 200 [`StopResponse`] once stopped (the process then exits 0); 409 when another stop is in progress ([`ErrorResponse::stop_in_progress`]) or the job no longer runs |
//!
//! POST bodies must be sent with `Content-Type: application/json` (415 otherwise).
//!
//! Exit status of `sluice-runtime run`: 0 when the job finished, stopped with a savepoint or was
//! cancelled (`POST /v1/stop {"savepoint": false}`, or SIGTERM/SIGINT); [`EXIT_FAILURE`] (1)
//! when it failed; [`EXIT_USAGE`] (2) for a bad command line; [`EXIT_DATA_LOSS`] (3);
//! [`EXIT_STOP_TIMEOUT`] (4); [`EXIT_INVALID_JOB`] (65) when the job document is invalid (before
//! anything ran); 128 + the signal number on a second signal.

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
    /// The job was cancelled (stop without savepoint, or SIGTERM); the process exits 0. Output
    /// resumes from the latest completed checkpoint on the next start.
    Cancelled,
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

/// How a job is being (or was) stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopKind {
    /// Stop with a final savepoint: every sink commits, sources stop at the barrier.
    #[default]
    Savepoint,
    /// Cancel: open transactions are aborted, the next start resumes from the latest checkpoint.
    Cancel,
}

impl StopKind {
    /// The kind a [`StopRequest`] asks for.
    pub fn of(savepoint: bool) -> StopKind {
        if savepoint { StopKind::Savepoint } else { StopKind::Cancel }
    }
}

impl std::fmt::Display for StopKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopKind::Savepoint => "stop with savepoint",
            StopKind::Cancel => "cancel",
        })
    }
}

/// Response of `POST /v1/stop`, sent when the job has stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopResponse {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// How the job stopped: `savepoint` or `cancel`.
    #[serde(default)]
    pub stopped: StopKind,
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
    /// On a 409: the stop already in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_in_progress: Option<StopKind>,
}

/// Exit status of a run that failed (a new attempt from the latest checkpoint may succeed, or
/// fail the same way on bad input records).
pub const EXIT_FAILURE: u8 = 1;

/// Exit status of a command line that does not parse (clap's own status for usage errors).
pub const EXIT_USAGE: u8 = 2;

/// Exit status of `sluice-runtime run` or `validate` when the job document is invalid (any
/// field, an expression that does not compile, a missing input path, a node this build lacks):
/// nothing ran, and no attempt can succeed until the document changes. 65 is `EX_DATAERR`
/// of BSD's sysexits.h ("the input data was incorrect"), clear of the small codes above.
pub const EXIT_INVALID_JOB: u8 = 65;

/// Exit status of a runtime that stopped because pre-committed output could not be committed
/// (a transaction the broker already aborted): records of a completed checkpoint are lost. The
/// operator reports it as the `DataLossRisk` condition instead of restarting blindly.
pub const EXIT_DATA_LOSS: u8 = 3;

/// Why a runtime exited with [`EXIT_DATA_LOSS`]: the first word of its termination message
/// (`DataLossRisk(<kind>): <error>`), so the operator can say which decision a person faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataLossKind {
    /// A completed checkpoint's pre-committed output could not be committed (e.g. the broker
    /// aborted the transaction): its records are lost unless restored from elsewhere.
    UncommittableTransaction,
    /// Restore refused: the only usable checkpoint is older than one whose sinks may have
    /// committed (restoring it would duplicate output), or the location lost its manifests.
    RestoreRefused,
}

impl DataLossKind {
    /// The tag in the termination message.
    pub fn as_str(self) -> &'static str {
        match self {
            DataLossKind::UncommittableTransaction => "UncommittableTransaction",
            DataLossKind::RestoreRefused => "RestoreRefused",
        }
    }

    /// The termination message a runtime writes for `error`.
    pub fn termination_message(self, error: &str) -> String {
        format!("DataLossRisk({}): {error}", self.as_str())
    }

    /// The kind a termination message names; a bare `DataLossRisk:` (runtimes before the tag)
    /// or an unknown tag counts as an uncommittable transaction.
    pub fn of_message(message: &str) -> DataLossKind {
        let tag = message.trim_start().strip_prefix("DataLossRisk(").and_then(|rest| rest.split_once(')')).map(|t| t.0);
        match tag {
            Some("RestoreRefused") => DataLossKind::RestoreRefused,
            _ => DataLossKind::UncommittableTransaction,
        }
    }
}

/// Exit status of a runtime that got SIGTERM or SIGINT and could not cancel the job within
/// [`STOP_GRACE_SECS`]: it exits anyway; open transactions are left for the next run's recovery.
pub const EXIT_STOP_TIMEOUT: u8 = 4;

/// Seconds a runtime gives a graceful cancel after SIGTERM/SIGINT before it exits anyway (keep
/// the pod's `terminationGracePeriodSeconds` above it).
pub const STOP_GRACE_SECS: u64 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_loss_kind_survives_the_termination_message() {
        for kind in [DataLossKind::UncommittableTransaction, DataLossKind::RestoreRefused] {
            assert_eq!(DataLossKind::of_message(&kind.termination_message("checkpoint 7 (x)")), kind);
        }
        assert_eq!(DataLossKind::of_message("DataLossRisk: t of 9"), DataLossKind::UncommittableTransaction);
        assert_eq!(DataLossKind::of_message("DataLossRisk(Else): x"), DataLossKind::UncommittableTransaction);
    }

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

    #[test]
    fn stop_documents_name_the_kind() {
        let r = StopResponse { version: CONTROL_VERSION, stopped: StopKind::Cancel, savepoint: None };
        assert_eq!(
            serde_json::to_value(&r).expect("serializes"),
            serde_json::json!({"version": 1, "stopped": "cancel"})
        );
        let old: StopResponse = serde_json::from_str(r#"{"savepoint": "file:///sp"}"#).expect("parses");
        assert_eq!(old.stopped, StopKind::Savepoint, "a response without the field is a savepoint stop");
        let e = ErrorResponse { version: 1, error: "busy".into(), stop_in_progress: Some(StopKind::Savepoint) };
        assert_eq!(serde_json::to_value(&e).expect("serializes")["stopInProgress"], "savepoint");
    }
}
