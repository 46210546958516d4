//! The controller against a mock API server that answers as a real one does when things go
//! wrong: a child the API server refuses (PodSecurity 403, 422 Invalid), a child name taken by
//! someone else's object (the controller reference is checked before applying), a pod create
//! answered 409, a stale watched object and a status write answered 409.

use std::sync::Arc;

use http::Method;
use serde_json::json;
use sluice_crds::contract::control::{SavepointState as RuntimeState, SavepointStatus};
use sluice_crds::savepoints::{SavepointInfo, SavepointState, SavepointTrigger, SavepointsStatus};
use sluice_crds::{ANNOTATION_SAVEPOINT, StreamJob, StreamJobStatus};
use sluice_storage::memory::MemoryStore;

use crate::build::test_job::job;
use crate::context::Context;
use crate::controller::reconcile;
use crate::controller_tests::{
    EVENTS, JOB, PODS, finalized, owned_child, pod_json, pod_list, running_status, with_status,
};
use crate::fixtures::{ApiServerVerifier, FakeRuntime, store_with_checkpoint};

const CM: &str = "/api/v1/namespaces/ns/configmaps/demo-config";
const SVC: &str = "/api/v1/namespaces/ns/services/demo";

fn condition(status: &serde_json::Value, t: &str) -> serde_json::Value {
    status["conditions"].as_array().expect("conditions").iter().find(|c| c["type"] == t).cloned().expect("condition")
}

/// The status of a launch that could not happen, and its Warning event.
async fn expect_rejected_launch(api: &mut ApiServerVerifier, reason: &str, says: &str) -> serde_json::Value {
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let s = status.body["status"].clone();
    assert_eq!((s["phase"].as_str(), s["attempt"].as_u64()), (Some("Recovering"), Some(1)), "{s}");
    assert!(s["error"].as_str().expect("error").contains(says), "{s}");
    assert_eq!(s["recovery"]["failedAttempt"], 1, "{s}");
    let degraded = condition(&s, "Degraded");
    assert_eq!((degraded["status"].as_str(), degraded["reason"].as_str()), (Some("True"), Some(reason)));
    status.reply(serde_json::to_value(finalized(job())).expect("json"));
    let event = api.expect(Method::POST, EVENTS).await;
    assert_eq!((event.body["type"].as_str(), event.body["reason"].as_str()), (Some("Warning"), Some(reason)));
    assert!(event.body["note"].as_str().expect("note").contains(says), "{}", event.body);
    event.echo();
    s
}

#[tokio::test]
async fn a_pod_the_api_server_refuses_is_reported_in_status_and_as_a_warning_then_retried_with_backoff() {
    let refusals = [
        (
            403,
            "Forbidden",
            "pods \"demo-1-0\" is forbidden: violates PodSecurity \"restricted:latest\": seccompProfile",
        ),
        (422, "Invalid", "Pod \"demo-1-0\" is invalid: spec.nodeSelector: Invalid value: \"gpu=true\""),
    ];
    // A long backoff, so the second reconcile surely falls inside it.
    let mut slow = finalized(job());
    slow.spec.restart_strategy =
        Some(serde_json::from_value(json!({"backoff": {"initial": "10m", "max": "20m"}})).expect("strategy"));
    for (code, reason, message) in refusals {
        let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
        let task = tokio::spawn(reconcile(Arc::new(slow.clone()), ctx.clone()));
        api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
        api.expect(Method::GET, CM).await.not_found();
        api.expect(Method::PATCH, CM).await.echo();
        api.expect(Method::GET, SVC).await.not_found();
        api.expect(Method::PATCH, SVC).await.echo();
        api.expect(Method::POST, PODS).await.fail(code, reason, message);
        let written = expect_rejected_launch(&mut api, "ChildRejected", message).await;
        task.await.expect("joins").expect("a refused launch is reported, not an error");
        api.done().await;

        // The next reconcile waits for the restart backoff: no second create at once.
        let st: StreamJobStatus = serde_json::from_value(written).expect("status");
        let task = tokio::spawn(reconcile(Arc::new(with_status(slow.clone(), st)), ctx));
        api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
        let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
        assert_eq!(condition(&status.body["status"], "Progressing")["reason"], "BackoffWaiting", "{code}");
        status.reply(serde_json::to_value(finalized(job())).expect("json"));
        task.await.expect("joins").expect("reconciles");
        api.done().await;
    }
}

#[tokio::test]
async fn a_service_of_the_jobs_name_owned_by_someone_else_is_never_taken_over() {
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let task = tokio::spawn(reconcile(Arc::new(finalized(job())), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    api.expect(Method::GET, CM).await.not_found();
    api.expect(Method::PATCH, CM).await.echo();
    api.expect(Method::GET, SVC).await.reply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "svc-9", "resourceVersion": "4",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "demo-db", "uid": "sts-1",
                "controller": true}]},
        "spec": {"selector": {"app": "demo-db"}}
    }));
    // No apply of the Service and no pod: the conflict is reported instead.
    expect_rejected_launch(&mut api, "NameConflict", "controlled by StatefulSet demo-db").await;
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn a_pod_create_answered_409_is_ours_only_when_this_job_controls_the_pod() {
    for (controller, adopted) in [("uid-1", true), ("another-job", false)] {
        let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
        let task = tokio::spawn(reconcile(Arc::new(finalized(job())), ctx));
        api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
        api.expect_children_reapplied(owned_child).await;
        api.expect(Method::POST, PODS).await.fail(409, "AlreadyExists", "pods \"demo-1-0\" already exists");
        let mut existing = pod_json(1, "Pending", false);
        existing["metadata"]["annotations"][sluice_crds::ANNOTATION_JOB_UID] = json!(controller);
        api.expect(Method::GET, &format!("{PODS}/demo-1-0")).await.reply(existing);
        if adopted {
            let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
            assert_eq!(status.body["status"]["phase"], "Deploying");
            status.reply(serde_json::to_value(finalized(job())).expect("json"));
            assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "Deploying");
        } else {
            expect_rejected_launch(&mut api, "NameConflict", "belongs to another StreamJob object").await;
        }
        task.await.expect("joins").expect("reconciles");
        api.done().await;
    }
}

fn trigger(state: SavepointState, request_id: Option<&str>) -> StreamJobStatus {
    let mut st = running_status(1);
    st.savepoints = Some(SavepointsStatus {
        observed_annotation: Some("42".into()),
        last: Some(SavepointInfo {
            value: "42".into(),
            trigger: SavepointTrigger::Annotation,
            state,
            path: Some("s3://bucket/demo/savepoints/sp-uid1-1700000000000".into()),
            request_id: request_id.map(str::to_string),
            ..SavepointInfo::default()
        }),
        ..SavepointsStatus::default()
    });
    st
}

fn annotated(status: StreamJobStatus, resource_version: &str) -> StreamJob {
    let mut j = with_status(finalized(job()), status);
    j.metadata.annotations = Some([(ANNOTATION_SAVEPOINT.to_string(), "42".to_string())].into_iter().collect());
    j.metadata.resource_version = Some(resource_version.into());
    j
}

#[tokio::test]
async fn a_stale_watched_object_is_read_again_and_a_conflicting_status_write_overwrites_nothing() {
    let fake = FakeRuntime {
        status: Some(crate::controller_identity_tests::running_runtime()),
        savepoint: Some(SavepointStatus {
            version: 1,
            id: "sp-demo-1-0".into(),
            state: RuntimeState::Pending,
            location: None,
            error: None,
        }),
        ..FakeRuntime::default()
    };
    let (ctx, mut api, runtime) = Context::test_with(fake, store_with_checkpoint().await);
    // The watch cache still has the status from before the trigger was sent (Pending)...
    let stale = annotated(trigger(SavepointState::Pending, None), "5");
    // ...while the API server has the one written after it (InProgress, with its request id).
    let current = annotated(trigger(SavepointState::InProgress, Some("sp-demo-1-0")), "7");
    let task = tokio::spawn(reconcile(Arc::new(stale), ctx.clone()));
    api.expect(Method::GET, JOB).await.reply(serde_json::to_value(&current).expect("json"));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    // The status write is conditional on the version it was planned from; someone wrote since.
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    assert_eq!(status.body["metadata"]["resourceVersion"], "7", "{}", status.body);
    status.fail(
        409,
        "Conflict",
        "Operation cannot be fulfilled on streamjobs.sluice.dev \"demo\": the object has been modified; \
         please apply your changes to the latest version and try again",
    );
    let err = task.await.expect("joins").expect_err("the write lost");
    assert!(matches!(&err, crate::Error::WriteStatus { .. }) && err.is_retryable(), "{err}");
    api.done().await;
    // The savepoint was followed, never triggered a second time.
    assert_eq!(runtime.savepoint_calls(), vec!["GET /v1/savepoints/sp-demo-1-0".to_string()]);

    // A watched copy at the version this operator wrote last is planned from as it is.
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let mut st = running_status(1);
    st.phase = sluice_crds::Phase::Deploying;
    let j = with_status(finalized(job()), st);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", false)]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let mut written = j.clone();
    written.metadata.resource_version = Some("8".into());
    written.status = Some(serde_json::from_value(status.body["status"].clone()).expect("status"));
    status.reply(serde_json::to_value(&written).expect("json"));
    task.await.expect("joins").expect("reconciles");
    let task = tokio::spawn(reconcile(Arc::new(written), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", false)]));
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn a_pod_already_gone_on_delete_is_fine_and_throttling_or_server_errors_are_retried() {
    // DELETE answered 404 (the pod went by itself): the recovery goes on to write its status.
    let (ctx, mut api) = Context::test(None, store_with_checkpoint().await);
    let j = with_status(finalized(job()), running_status(1));
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Failed", false)]));
    api.expect(Method::DELETE, &format!("{PODS}/demo-1-0?")).await.not_found();
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    assert_eq!(status.body["status"]["phase"], "Recovering");
    status.reply(serde_json::to_value(&j).expect("json"));
    api.expect(Method::POST, EVENTS).await.echo();
    task.await.expect("joins").expect("a 404 on delete is no error");
    api.done().await;

    // 429 and 5xx: the reconcile fails, to be retried soon; a 4xx refusal is not retried soon.
    for (code, reason, retried) in
        [(429, "TooManyRequests", true), (500, "InternalError", true), (403, "Forbidden", false)]
    {
        let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
        api.expect(Method::GET, PODS).await.fail(code, reason, "try later");
        let err = task.await.expect("joins").expect_err("the list failed");
        assert_eq!(err.is_retryable(), retried, "{code}: {err}");
        let soon = err.requeue_after() <= std::time::Duration::from_secs(10);
        assert_eq!(soon, retried, "{code}");
    }
    api.done().await;
}
