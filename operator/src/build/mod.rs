//! Pure builders of the job's child objects. No client: given the StreamJob (and the plan's
//! decisions) they return the object to apply.

pub mod config_map;
pub mod labels;
pub mod pod;
pub mod service;
pub mod workers;

use serde::Serialize;
use sluice_crds::StreamJobSpec;

/// Hash of the spec fields runtime pods are built from; a change means the attempt must be
/// replaced (through `upgradeMode`). `state`, `savepointTriggerNonce`, `restartStrategy`,
/// `upgradeMode` and the savepoint settings (`savepointHistory`, `savepointDisposal`,
/// `savepointOnDeletion`, `lastStateFallback`) are left out: changing them does not restart
/// the job.
pub fn spec_hash(spec: &StreamJobSpec) -> String {
    #[derive(Serialize)]
    struct PodRelevant<'a> {
        image: &'a str,
        image_pull_policy: Option<&'static str>,
        service_account: &'a Option<String>,
        parallelism: u32,
        workers: u32,
        resources: &'a Option<k8s_openapi::api::core::v1::ResourceRequirements>,
        pod_template: &'a Option<k8s_openapi::api::core::v1::PodTemplateSpec>,
        pipeline: &'a sluice_crds::contract::pipeline::Pipeline,
        checkpointing: &'a Option<sluice_crds::checkpointing::CheckpointingSpec>,
        restart_nonce: Option<i64>,
        allow_fallback: bool,
        allow_non_restored_state: bool,
    }
    let relevant = PodRelevant {
        image: &spec.image,
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str()),
        service_account: &spec.service_account,
        parallelism: spec.parallelism,
        workers: spec.workers,
        resources: &spec.resources,
        pod_template: &spec.pod_template,
        pipeline: &spec.pipeline,
        checkpointing: &spec.checkpointing,
        restart_nonce: spec.restart_nonce,
        allow_fallback: spec.allow_fallback.unwrap_or(false),
        allow_non_restored_state: spec.allow_non_restored_state.unwrap_or(false),
    };
    // Plain data serializes; serde_json keeps struct field order, so the text is stable.
    let text = serde_json::to_vec(&relevant).unwrap_or_default();
    format!("{:016x}", fnv1a64(&text))
}

/// FNV-1a, 64 bits: stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
pub(crate) mod test_job {
    //! A StreamJob for builder and planner tests.
    use sluice_crds::StreamJob;

    /// `demo` in namespace `ns`, a generator into stdout, S3 checkpointing with a Secret.
    pub fn job() -> StreamJob {
        let mut job: StreamJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "StreamJob",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "uid-1", "generation": 1},
            "spec": {
                "image": "sluice-runtime:dev",
                "parallelism": 2,
                "upgradeMode": "last-state",
                "checkpointing": {"interval": "5s", "storage": {"uri": "s3://bucket/demo", "credentialsSecret": "minio"}},
                "pipeline": {
                    "nodes": [{"id": "numbers", "generator": {}}, {"id": "print", "stdout": {}}],
                    "edges": [{"from": "numbers", "to": "print"}]
                }
            }
        }))
        .expect("test job parses");
        job.status = None;
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_hash_ignores_state_and_changes_with_the_image_or_restart_nonce() {
        let job = test_job::job();
        let base = spec_hash(&job.spec);
        let mut s = job.spec.clone();
        s.state = sluice_crds::stream_job::DesiredState::Suspended;
        s.savepoint_trigger_nonce = Some(3);
        assert_eq!(spec_hash(&s), base);
        s.restart_nonce = Some(1);
        assert_ne!(spec_hash(&s), base);
        let mut s = job.spec.clone();
        s.image = "other".into();
        assert_ne!(spec_hash(&s), base);
    }
}
