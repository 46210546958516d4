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
//! | GET | [`JOB`] | — | [`JobView`](super::job_view::JobView): the job graph with live figures per node |
//! | GET | [`UI`] (and `/`) | — | the job page (HTML) |
//! | GET | [`HISTORY`] | — | [`History`]: the last [`HISTORY_LEN`] checkpoints and savepoints of this run, newest first |
//! | POST | [`SAVEPOINTS`] | [`SavepointRequest`] | 202 [`SavepointStatus`] (state `pending`); 409 while a stop is in progress |
//! | GET | `/v1/savepoints/{id}` ([`savepoint_path`]) | — | [`SavepointStatus`] |
//! | POST | [`STOP`] | [`StopRequest`] | 200 [`StopResponse`] once stopped (the process then exits 0); 409 when another stop is in progress ([`ErrorResponse::stop_in_progress`]) or the job no longer runs |
//!
//! POST bodies must be sent with `Content-Type: application/json` (415 otherwise) and be a JSON
//! object of the request type: malformed JSON, a field of the wrong type or an unknown field is
//! 400 naming the problem. An unknown path is 404, a known path with another method 405, a
//! savepoint `location` this build cannot write (not `file:///…`, `/…` or `s3://bucket/…`) 400
//! before anything starts. Every such error is an [`ErrorResponse`].
//!
//! After the job ended (finished, failed or cancelled) the endpoint keeps serving for a short
//! linger (`sluice-runtime run --control-linger`, 2 s by default), so a client that polls sees
//! the final state before the process exits (not after SIGTERM/SIGINT, which also end a linger).
//!
//! The client commands (`sluice-runtime status | checkpoints | savepoint | stop | cancel`) exit
//! 0 when the request did what was asked, [`EXIT_FAILURE`] (1) when nothing answers at the
//! address, the runtime refused the request (e.g. 409) or a savepoint failed, and
//! [`EXIT_USAGE`] (2) for a bad command line.
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
/// The run's recent checkpoints and savepoints ([`History`]).
pub const HISTORY: &str = "/v1/checkpoints/history";
/// The job graph with live figures ([`super::job_view::JobView`]).
pub const JOB: &str = "/v1/job";
/// The job page, an HTML page that shows [`JOB`] and [`HISTORY`] (also served at `/`).
pub const UI: &str = "/ui";
/// How many checkpoints, and how many savepoints, [`History`] keeps.
pub const HISTORY_LEN: usize = 20;

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

/// Body of `POST /v1/savepoints` (unknown fields are refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// Body of `POST /v1/stop` (unknown fields are refused).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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

/// How a checkpoint of [`History`] ended (or that it has not yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckpointOutcome {
    /// Triggered, not complete yet.
    InProgress,
    /// Its manifest is published.
    Completed,
    /// Declined by a task, timed out, or its manifest could not be published; `error` says why.
    Failed,
    /// Given up without a fault: subsumed by a newer checkpoint, or the job was cancelled.
    Aborted,
}

/// What a checkpoint of [`History`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckpointKind {
    /// A periodic checkpoint.
    Checkpoint,
    /// The barrier of a savepoint (`POST /v1/savepoints`).
    Savepoint,
    /// The barrier of a stop with savepoint.
    StopSavepoint,
    /// The last checkpoint after every source finished.
    Final,
}

/// One checkpoint of [`History`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointRecord {
    /// Checkpoint id.
    pub id: CheckpointId,
    /// Periodic, savepoint, stop-with-savepoint or final.
    pub kind: CheckpointKind,
    /// In progress, completed, failed or aborted.
    pub status: CheckpointOutcome,
    /// Trigger time, milliseconds since the epoch.
    pub triggered_at_ms: u64,
    /// Trigger-to-end time in milliseconds, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Bytes of state its manifest references (completed ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// URI of its manifest (completed ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why it failed or was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One savepoint of [`History`]: its [`SavepointStatus`] and its timing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavepointRecord {
    /// Savepoint id (as in `/v1/savepoints/{id}`).
    pub id: String,
    /// Pending, completed or failed.
    pub state: SavepointState,
    /// Directory URI of the savepoint, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was asked for, milliseconds since the epoch.
    pub requested_at_ms: u64,
    /// Request-to-end time in milliseconds, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// Response of `GET /v1/checkpoints/history`: this run's last [`HISTORY_LEN`] checkpoints and
/// last [`HISTORY_LEN`] savepoints, newest first (kept in memory; a restart starts empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// The `--run-id` of the process.
    pub run_id: String,
    /// Recent checkpoints, newest first.
    #[serde(default)]
    pub checkpoints: Vec<CheckpointRecord>,
    /// Recent savepoints (including stop-with-savepoint), newest first.
    #[serde(default)]
    pub savepoints: Vec<SavepointRecord>,
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
#[path = "control_tests.rs"]
mod tests;
