//! The controller against kube's mock API server for savepoints: the `sluice.dev/savepoint`
//! annotation trigger and the status it writes, reconcile by reconcile (record → ask the
//! runtime → follow to completion), and a trigger on a job that is not running.

use std::sync::Arc;

use http::Method;
use sluice_crds::contract::control::{JobState, JobStatus, SavepointState, SavepointStatus};
use sluice_crds::savepoints::SavepointsStatus;
use sluice_crds::stream_job::DesiredState;
use sluice_crds::{ANNOTATION_SAVEPOINT, StreamJob, StreamJobStatus};

use crate::build::test_job::job;
use crate::context::Context;
use crate::controller::reconcile;
use crate::controller_tests::{EVENTS, JOB, PODS, finalized, pod_json, pod_list, running_status, with_status};
use crate::fixtures::{FakeRuntime, store_with_checkpoint};

fn runtime_running() -> JobStatus {
    JobStatus {
        version: 1,
        run_id: "demo-1".into(),
        state: JobState::Running,
        restored_from: None,
        latest: None,
        in_progress: None,
        completed: 3,
        failed: 0,
        consecutive_failures: 0,
        last_failure: None,
    }
}

fn annotated(value: &str, status: StreamJobStatus) -> StreamJob {
    let mut j = with_status(finalized(job()), status);
    j.metadata.annotations = Some([(ANNOTATION_SAVEPOINT.to_string(), value.to_string())].into_iter().collect());
    j
}

fn seen(value: &str) -> StreamJobStatus {
    let mut st = running_status(1);
    st.savepoints = Some(SavepointsStatus { observed_annotation: Some(value.into()), ..Default::default() });
    st
}

fn condition(status: &serde_json::Value, t: &str) -> serde_json::Value {
    status["conditions"].as_array().expect("conditions").iter().find(|c| c["type"] == t).cloned().expect("condition")
}

fn answer(state: SavepointState, location: Option<String>) -> SavepointStatus {
    SavepointStatus { version: 1, id: "sp-demo-1-0".into(), state, location, error: None }
}

#[tokio::test]
async fn savepoint_annotation_triggers_one_request_and_status_follows_it_to_completion() {
    // Reconcile 1: a new annotation value → status records it Pending with its path; the
    // runtime is not asked yet (the trigger is persisted first).
    let fake = FakeRuntime {
        status: Some(runtime_running()),
        savepoint: Some(answer(SavepointState::Pending, None)),
        ..FakeRuntime::default()
    };
    let (ctx, mut api, runtime) = Context::test_with(fake, store_with_checkpoint().await);
    let j = annotated("42", seen("41"));
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let s = status.body["status"].clone();
    assert_eq!(s["savepoints"]["observedAnnotation"], "42");
    assert_eq!(s["savepoints"]["last"]["value"], "42");
    assert_eq!(s["savepoints"]["last"]["trigger"], "Annotation");
    assert_eq!(s["savepoints"]["last"]["state"], "Pending");
    assert!(s["savepoints"]["last"]["startedAt"].is_string(), "{s}");
    let path = s["savepoints"]["last"]["path"].as_str().expect("path").to_string();
    assert!(path.starts_with("s3://bucket/demo/savepoints/sp-"), "{path}");
    assert_eq!(condition(&s, "SavepointInProgress")["status"], "True");
    status.reply(serde_json::to_value(&j).expect("json"));
    let event = api.expect(Method::POST, EVENTS).await;
    assert_eq!(event.body["reason"], "SavepointTriggered");
    event.echo();
    task.await.expect("joins").expect("reconciles");
    api.done().await;
    assert!(runtime.savepoint_calls().is_empty(), "{:?}", runtime.savepoint_calls());

    // Reconcile 2: the persisted Pending trigger → one POST /v1/savepoints into that path;
    // status InProgress with the runtime's request id.
    let written: StreamJobStatus = serde_json::from_value(s).expect("status");
    let j = annotated("42", written);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let s = status.body["status"].clone();
    assert_eq!(s["savepoints"]["last"]["state"], "InProgress");
    assert_eq!(s["savepoints"]["last"]["requestId"], "sp-demo-1-0");
    status.reply(serde_json::to_value(&j).expect("json"));
    task.await.expect("joins").expect("reconciles");
    api.done().await;
    assert_eq!(runtime.savepoint_calls(), vec![format!("POST /v1/savepoints {path}")]);

    // Reconcile 3: the runtime reports it complete → Completed, in history, condition False.
    let fake = FakeRuntime {
        status: Some(runtime_running()),
        savepoint: Some(answer(SavepointState::Completed, Some(path.clone()))),
        ..FakeRuntime::default()
    };
    let (ctx, mut api, runtime) = Context::test_with(fake, store_with_checkpoint().await);
    let written: StreamJobStatus = serde_json::from_value(s).expect("status");
    let j = annotated("42", written);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let s = status.body["status"].clone();
    assert_eq!(s["savepoints"]["last"]["state"], "Completed");
    assert_eq!(s["savepoints"]["last"]["path"], path.as_str());
    assert!(s["savepoints"]["last"]["completedAt"].is_string(), "{s}");
    assert_eq!(s["savepoints"]["history"][0]["path"], path.as_str());
    assert_eq!(condition(&s, "SavepointInProgress")["status"], "False");
    status.reply(serde_json::to_value(&j).expect("json"));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "SavepointCompleted");
    task.await.expect("joins").expect("reconciles");
    assert_eq!(runtime.savepoint_calls(), vec!["GET /v1/savepoints/sp-demo-1-0".to_string()]);

    // Reconcile 4: the same value again triggers nothing and writes nothing.
    let written: StreamJobStatus = serde_json::from_value(s).expect("status");
    let j = annotated("42", written);
    let task = tokio::spawn(reconcile(Arc::new(j), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    task.await.expect("joins").expect("reconciles");
    api.done().await;
    assert_eq!(runtime.savepoint_calls().len(), 1, "no new request");
}

#[tokio::test]
async fn savepoint_annotation_on_a_suspended_job_fails_in_status_and_as_a_warning_event() {
    let (ctx, mut api, runtime) = Context::test_with(FakeRuntime::default(), store_with_checkpoint().await);
    let mut st = seen("1");
    st.phase = sluice_crds::Phase::Suspended;
    let mut j = annotated("2", st);
    j.spec.state = DesiredState::Suspended;
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let last = status.body["status"]["savepoints"]["last"].clone();
    assert_eq!((last["value"].as_str(), last["state"].as_str()), (Some("2"), Some("Failed")));
    assert!(last["error"].as_str().expect("error").contains("not running"), "{last}");
    status.reply(serde_json::to_value(&j).expect("json"));
    let event = api.expect(Method::POST, EVENTS).await;
    assert_eq!(
        (event.body["type"].as_str(), event.body["reason"].as_str()),
        (Some("Warning"), Some("SavepointFailed"))
    );
    event.echo();
    task.await.expect("joins").expect("reconciles");
    api.done().await;
    assert!(runtime.savepoint_calls().is_empty());
}
