//! The StreamJob's `checkpointing` block: the operator-facing version of
//! [`crate::contract::job_config::Checkpointing`], with the storage credentials named by Secret.

use kube::KubeSchema;
use kube::core::Duration;
use serde::{Deserialize, Serialize};

use crate::contract::job_config::{Checkpointing, StorageSpec};

/// Periodic barrier checkpoints and where they are stored. Present means checkpointing is on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.interval) || duration(self.interval) >= duration('10ms')")
        .message("spec.checkpointing.interval must be at least 10ms"),
    validation = Rule::new("!has(self.timeout) || duration(self.timeout) >= duration('10ms')")
        .message("spec.checkpointing.timeout must be at least 10ms"),
    validation = Rule::new("!has(self.minPause) || duration(self.minPause) >= duration('0s')")
        .message("spec.checkpointing.minPause must not be negative"),
    validation = Rule::new("!has(self.interval) || !has(self.timeout) || duration(self.timeout) >= duration(self.interval)")
        .message("spec.checkpointing.timeout must be at least spec.checkpointing.interval")
)]
pub struct CheckpointingSpec {
    /// Time between checkpoint triggers, as a Go duration (`10s`, `1m30s`). Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub interval: Option<Duration>,
    /// A checkpoint not complete after this long is aborted. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub timeout: Option<Duration>,
    /// Least time between the end of one checkpoint and the trigger of the next. Default `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub min_pause: Option<Duration>,
    /// Checkpoints in flight at once. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub max_concurrent: Option<u32>,
    /// Consecutive failed checkpoints tolerated before the runtime fails the attempt. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub tolerable_failures: Option<u32>,
    /// Completed checkpoints kept; older ones are garbage-collected. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub retained: Option<u32>,
    /// Where checkpoints live. Required: checkpointing without storage has nowhere to write.
    pub storage: CheckpointStorage,
}

/// Checkpoint storage: an S3 bucket (or a shared file system) and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("self.uri.startsWith('s3://') || self.uri.startsWith('file:///')")
        .message("spec.checkpointing.storage.uri must be s3://bucket/prefix or file:///absolute/dir"),
    validation = Rule::new("!has(self.credentialsSecret) || self.uri.startsWith('s3://')")
        .message("spec.checkpointing.storage.credentialsSecret only applies to s3:// storage"),
    validation = Rule::new("!has(self.endpoint) || self.endpoint.startsWith('http://') || self.endpoint.startsWith('https://')")
        .message("spec.checkpointing.storage.endpoint must be an http:// or https:// URL")
)]
pub struct CheckpointStorage {
    /// `s3://bucket/prefix` (one prefix per job) or `file:///absolute/dir` (a shared volume).
    #[schemars(length(min = 1, max = 1024))]
    pub uri: String,
    /// S3 endpoint for S3-compatible servers such as MinIO, e.g. `http://minio:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub endpoint: Option<String>,
    /// S3 region. Default `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub region: Option<String>,
    /// Path-style S3 addressing. Default true (MinIO needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Name of a Secret in the job's namespace with keys `accessKeyId` and `secretAccessKey`;
    /// mounted read-only into the runtime pods and read by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
}

/// Where the operator mounts the credentials Secret inside runtime pods.
pub const CREDENTIALS_MOUNT_DIR: &str = "/etc/sluice/storage-credentials";

impl CheckpointingSpec {
    /// The runtime's checkpointing block: defaults filled in, the credentials Secret replaced by
    /// the directory it is mounted at.
    pub fn to_job_config(&self) -> Checkpointing {
        let d = |v: Option<Duration>, default: std::time::Duration| v.map(Into::into).unwrap_or(default);
        Checkpointing {
            interval: d(self.interval, std::time::Duration::from_secs(10)),
            timeout: d(self.timeout, std::time::Duration::from_secs(600)),
            min_pause: d(self.min_pause, std::time::Duration::ZERO),
            max_concurrent: self.max_concurrent.unwrap_or(1),
            tolerable_failures: self.tolerable_failures.unwrap_or(3),
            retained: self.retained.unwrap_or(3),
            storage: self.storage.to_job_config(),
        }
    }
}

impl CheckpointStorage {
    /// The runtime's storage block; credentials point at [`CREDENTIALS_MOUNT_DIR`] when a Secret is named.
    pub fn to_job_config(&self) -> StorageSpec {
        StorageSpec {
            uri: self.uri.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            path_style: self.path_style,
            credentials_dir: self.credentials_secret.as_ref().map(|_| CREDENTIALS_MOUNT_DIR.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpointing_defaults_match_the_runtime_defaults() {
        let spec: CheckpointingSpec =
            serde_json::from_value(serde_json::json!({"storage": {"uri": "s3://b/p", "credentialsSecret": "s"}}))
                .expect("parses");
        let c = spec.to_job_config();
        assert_eq!(c.interval, std::time::Duration::from_secs(10));
        assert_eq!(c.retained, 3);
        assert_eq!(c.storage.credentials_dir.as_deref(), Some(CREDENTIALS_MOUNT_DIR));
    }

    #[test]
    fn go_durations_convert_to_the_runtime_block() {
        let spec: CheckpointingSpec = serde_json::from_value(
            serde_json::json!({"interval": "1m30s", "minPause": "250ms", "storage": {"uri": "file:///c"}}),
        )
        .expect("parses");
        let c = spec.to_job_config();
        assert_eq!(c.interval, std::time::Duration::from_secs(90));
        assert_eq!(c.min_pause, std::time::Duration::from_millis(250));
        assert_eq!(c.storage.credentials_dir, None);
    }
}
