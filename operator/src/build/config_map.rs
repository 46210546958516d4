//! The ConfigMap holding the job document (`job.yaml`) the runtime reads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sluice_crds::StreamJob;
use sluice_crds::contract::job_config::{JOB_CONFIG_VERSION, JobConfig};

use super::labels;

/// Key of the job document in the ConfigMap (and its file name in the pod).
pub const JOB_FILE: &str = "job.yaml";
/// Where the ConfigMap is mounted in runtime pods.
pub const CONFIG_DIR: &str = "/etc/sluice";

/// The runtime's job document for this StreamJob: `spec.parallelism` becomes the pipeline's
/// default parallelism, the checkpointing block gets its defaults and the credentials directory.
pub fn job_config(job: &StreamJob) -> JobConfig {
    let mut pipeline = job.spec.pipeline.clone();
    pipeline.parallelism = Some(job.spec.parallelism);
    JobConfig {
        version: JOB_CONFIG_VERSION,
        name: job.name_any(),
        checkpointing: job.spec.checkpointing.as_ref().map(|c| c.to_job_config()),
        pipeline,
    }
}

/// The job's ConfigMap.
pub fn config_map(job: &StreamJob) -> ConfigMap {
    let name = job.name_any();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(labels::config_map_name(&name)),
            namespace: job.namespace(),
            labels: Some(labels::common(&name)),
            owner_references: job.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(JOB_FILE.to_string(), job_config(job).to_yaml())])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_job::job;

    #[test]
    fn job_document_round_trips_and_points_credentials_at_the_mount() {
        let cm = config_map(&job());
        let text = &cm.data.as_ref().expect("data")[JOB_FILE];
        let parsed = JobConfig::from_yaml(text).expect("the runtime can read what the operator writes");
        assert_eq!(parsed.name, "demo");
        assert_eq!(parsed.pipeline.parallelism, Some(2));
        let storage = parsed.checkpointing.expect("checkpointing").storage;
        assert_eq!(storage.credentials_dir.as_deref(), Some(sluice_crds::checkpointing::CREDENTIALS_MOUNT_DIR));
        assert_eq!(cm.metadata.owner_references.expect("owned")[0].kind, "StreamJob");
    }
}
