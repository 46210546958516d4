//! The job document: the file the operator mounts into runtime pods and `sluice-runtime run` reads.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::field_errors::{FieldError, ValidationError};
use super::pipeline::Pipeline;

/// Version of the job document written by this crate.
pub const JOB_CONFIG_VERSION: u32 = 1;

/// A complete job: its name, its dataflow graph and how it checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobConfig {
    /// Format version of this document.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Name of the job: a DNS label (`[a-z0-9-]`, at most 63 characters).
    pub name: String,
    /// Periodic checkpoints; without this block the job takes none (and sinks commit at the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpointing: Option<Checkpointing>,
    /// The dataflow graph.
    pub pipeline: Pipeline,
}

fn default_version() -> u32 {
    JOB_CONFIG_VERSION
}

/// How and where a job checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpointing {
    /// Time between checkpoint triggers, e.g. `1s`.
    #[serde(with = "humantime_serde", default = "default_interval")]
    #[schemars(with = "String")]
    pub interval: Duration,
    /// A checkpoint not complete after this long is aborted.
    #[serde(with = "humantime_serde", default = "default_timeout")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Least time between the end of one checkpoint and the trigger of the next.
    #[serde(with = "humantime_serde", default)]
    #[schemars(with = "String")]
    pub min_pause: Duration,
    /// Checkpoints in flight at once.
    #[serde(default = "one")]
    pub max_concurrent: u32,
    /// Consecutive failed checkpoints tolerated before the job fails.
    #[serde(default = "default_tolerable")]
    pub tolerable_failures: u32,
    /// Completed checkpoints kept; older ones are garbage-collected.
    #[serde(default = "default_retained")]
    pub retained: u32,
    /// Where checkpoints live.
    pub storage: StorageSpec,
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_timeout() -> Duration {
    Duration::from_secs(600)
}
fn one() -> u32 {
    1
}
fn default_tolerable() -> u32 {
    3
}
fn default_retained() -> u32 {
    3
}

/// Checkpoint storage location. Credentials never appear here: they come from the environment
/// or from files in `credentialsDir` (a mounted Kubernetes Secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSpec {
    /// `file:///absolute/dir` or `s3://bucket/prefix`.
    pub uri: String,
    /// S3 endpoint URL for S3-compatible servers (MinIO), e.g. `http://minio:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// S3 region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style S3 addressing (default true, as MinIO needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Directory holding `accessKeyId` and `secretAccessKey` files (a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<String>,
}

impl JobConfig {
    /// The YAML text of this document.
    pub fn to_yaml(&self) -> String {
        // Serializing plain data structs to YAML cannot fail.
        serde_yaml::to_string(self).unwrap_or_default()
    }
}
