//! Rollback through the controller against kube's mock API server: once status says the job
//! rolled back from the StreamJob's (failed) spec, the relaunch is built from the last stable
//! spec — pods, their spec hash and the status that records it.

use std::sync::Arc;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::stream_job::{RecoveryStatus, StableSpec};
use sluice_crds::{Phase, StreamJobStatus};

use crate::build::test_job::job;
use crate::context::Context;
use crate::controller::reconcile;
use crate::controller_tests::{EVENTS, JOB, PODS, finalized, owned_child, pod_list, with_status};
use crate::fixtures::store_with_checkpoint;

#[tokio::test]
async fn a_rolled_back_job_relaunches_its_last_stable_spec() {
    let (ctx, mut api) = Context::test(None, store_with_checkpoint().await);
    let stable = job().spec;
    let stable_hash = crate::build::spec_hash(&stable);
    // The spec that failed: another image, rollback asked for.
    let mut failed = finalized(job());
    failed.spec.image = "sluice-runtime:broken".into();
    failed.spec.rollback_on_failed_upgrade = Some(true);
    let failed_hash = crate::build::spec_hash(&failed.spec);
    assert_ne!(failed_hash, stable_hash);
    let status = StreamJobStatus {
        phase: Phase::Recovering,
        attempt: 2,
        spec_hash: Some(failed_hash.clone()),
        recovery: Some(RecoveryStatus {
            failed_attempt: 2,
            failed_at: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
            reason: Some("exited with code 1".into()),
        }),
        last_stable_spec: Some(StableSpec {
            hash: stable_hash.clone(),
            spec: serde_json::to_string(&stable).expect("json"),
        }),
        rolled_back_from: Some(failed_hash.clone()),
        ..Default::default()
    };
    let j = with_status(failed, status);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    api.expect_children_reapplied(owned_child).await;
    let pod = api.expect(Method::POST, PODS).await;
    assert_eq!(pod.body["metadata"]["name"], "demo-3-0");
    assert_eq!(pod.body["metadata"]["annotations"]["sluice.dev/spec-hash"], stable_hash.as_str());
    assert_eq!(pod.body["spec"]["containers"][0]["image"], "sluice-runtime:dev", "the stable spec's image");
    pod.echo();
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    assert_eq!(status.body["status"]["specHash"], stable_hash.as_str());
    assert_eq!(status.body["status"]["rolledBackFrom"], failed_hash.as_str());
    status.reply(serde_json::to_value(&j).expect("json"));
    api.expect(Method::POST, EVENTS).await.echo();
    task.await.expect("joins").expect("reconciles");
}
