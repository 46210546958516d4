//! The contract of Sluice: the `StreamJob` custom resource, the job document the runtime runs,
//! and the checkpoint manifest both sides read. Serde types and pure functions only — no I/O.

pub mod checkpointing;
pub mod conditions;
pub mod contract;
pub mod restart;
pub mod savepoint_progress;
pub mod savepoints;
pub mod stream_job;
pub mod workers;

/// API group of every Sluice custom resource.
pub const GROUP: &str = "sluice.dev";
/// API version served by this crate.
pub const VERSION: &str = "v1alpha1";
/// Finalizer the operator puts on every StreamJob so it stops the job's pods before the
/// object goes away.
pub const FINALIZER: &str = "sluice.dev/cleanup";
/// Annotation on a StreamJob: any new value triggers one savepoint.
pub const ANNOTATION_SAVEPOINT: &str = "sluice.dev/savepoint";
/// Pod label: name of the StreamJob a pod belongs to.
pub const LABEL_JOB: &str = "sluice.dev/job";
/// Pod label: attempt number of the pod (a decimal integer).
pub const LABEL_ATTEMPT: &str = "sluice.dev/attempt";
/// Name of the runtime container in the pods the operator creates (a `podTemplate` container of
/// this name is merged into it; `kubectl sluice logs` reads its log by default).
pub const CONTAINER_RUNTIME: &str = "runtime";
/// Annotation on pods: hash of the spec fields the pod was built from (detects spec changes).
pub const ANNOTATION_SPEC_HASH: &str = "sluice.dev/spec-hash";
/// Annotation on pods: the restore point the attempt started from (`--restore` argument).
pub const ANNOTATION_RESTORED_FROM: &str = "sluice.dev/restored-from";

/// Annotation on pods: `metadata.uid` of the StreamJob the pod belongs to. Runtime pods carry
/// no owner reference (garbage collection, `--cascade=foreground` included, must never kill a
/// runtime before the operator's final savepoint); this and [`LABEL_JOB`] say whose they are.
pub const ANNOTATION_JOB_UID: &str = "sluice.dev/job-uid";
/// Annotation on pods: the `--run-id` of the attempt (`<job>-<attempt>-<object id>`).
pub const ANNOTATION_RUN_ID: &str = "sluice.dev/run-id";
/// Annotation on pods of a job of several workers: how many worker pods their attempt has
/// (absent: one).
pub const ANNOTATION_WORKERS: &str = "sluice.dev/workers";

pub use contract::job_config::{JobConfig, ValidationError};
pub use contract::manifest::{CheckpointId, Manifest};
pub use stream_job::{Phase, StreamJob, StreamJobSpec, StreamJobStatus};
