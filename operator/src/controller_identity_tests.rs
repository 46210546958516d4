//! Run and savepoint identity against kube's mock API server: a StreamJob deleted and
//! recreated under the same name with the same storage never takes its predecessor's
//! savepoint for its own (issue 14, item 1).

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use sluice_crds::contract::control::{JobState, JobStatus, StopResponse};
use sluice_crds::contract::manifest::{CheckpointId, MANIFEST_VERSION, Manifest, SnapshotKind};
use sluice_crds::stream_job::DesiredState;
use sluice_crds::{StreamJob, StreamJobStatus};

use crate::build::test_job::job;
use crate::context::Context;
use crate::controller::reconcile;
use crate::controller_tests::{EVENTS, JOB, PODS, finalized, pod_json, pod_list, running_status, with_status};
use crate::fixtures::{FakeRuntime, store_with_checkpoint};

/// Where the runtime of attempt 1 of the test object (uid `uid-1`) writes its stop savepoint.
const OURS: &str = "s3://bucket/demo/savepoints/stop-demo-1-uid1";

fn savepoint_manifest() -> Bytes {
    Bytes::from(
        Manifest {
            version: MANIFEST_VERSION,
            job: "demo".into(),
            checkpoint_id: CheckpointId(3),
            kind: SnapshotKind::Savepoint,
            triggered_at_ms: 1_600_000_000_000,
            completed_at_ms: 1_600_000_000_100,
            max_parallelism: 128,
            tasks: vec![],
            run_id: None,
            records: None,
        }
        .encode(),
    )
}

/// A runtime of attempt 1 (run id `demo-1-uid1`) that is running, one checkpoint completed.
pub(crate) fn running_runtime() -> JobStatus {
    JobStatus {
        version: 1,
        run_id: "demo-1-uid1".into(),
        state: JobState::Running,
        restored_from: None,
        latest: None,
        in_progress: None,
        completed: 1,
        failed: 0,
        consecutive_failures: 0,
        last_failure: None,
    }
}

fn suspended(status: StreamJobStatus) -> StreamJob {
    let mut j = with_status(finalized(job()), status);
    j.spec.state = DesiredState::Suspended;
    j
}

#[tokio::test]
async fn a_recreated_job_stops_with_its_own_savepoint_instead_of_restoring_its_predecessors() {
    // The storage of a deleted `demo` holds the stop savepoint of its attempt 1, under the
    // name an operator without object ids gave it, and under a run id of the old object.
    let store = store_with_checkpoint().await;
    for dir in ["savepoints/stop-demo-1", "savepoints/stop-demo-1-0ld0b1ec"] {
        store.put(&format!("{dir}/_manifest.json"), savepoint_manifest()).await.expect("put");
    }
    let fake = FakeRuntime {
        status: Some(running_runtime()),
        stop: Some(StopResponse {
            version: 1,
            stopped: sluice_crds::contract::control::StopKind::Savepoint,
            savepoint: Some(OURS.into()),
        }),
        ..FakeRuntime::default()
    };
    let (ctx, mut api, runtime) = Context::test_with(fake, store);

    // Reconcile 1: suspend of the new object's attempt 1 → the flow names this object's run.
    let j = suspended(running_status(1));
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let op = status.body["status"]["operation"].clone();
    assert_eq!((op["step"].as_str(), op["savepointPath"].as_str()), (Some("Savepoint"), Some(OURS)), "{op}");
    let written: StreamJobStatus = serde_json::from_value(status.body["status"].clone()).expect("status");
    status.reply(serde_json::to_value(&j).expect("json"));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "StoppingWithSavepoint");
    task.await.expect("joins").expect("reconciles");
    api.done().await;

    // Reconcile 2: nothing at this object's path yet → the runtime is asked to stop with a
    // savepoint; the predecessor's savepoint is never taken as complete.
    let j = suspended(written);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let s = status.body["status"].clone();
    assert_eq!(s["operation"]["savepointPath"], OURS, "{s}");
    assert_eq!(s["savepoints"]["last"]["path"], OURS, "{s}");
    status.reply(serde_json::to_value(&j).expect("json"));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "SavepointCompleted");
    task.await.expect("joins").expect("reconciles");
    assert_eq!(runtime.savepoint_calls(), vec!["POST /v1/stop".to_string()]);
}
