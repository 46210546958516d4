//! The controller against kube's mock API server: the exact requests of first deploy,
//! recovery after a failed pod, a status update, and the finalizer.

use std::sync::Arc;

use http::Method;
use serde_json::json;
use sluice_crds::contract::control::{CheckpointInfo, JobState, JobStatus};
use sluice_crds::contract::manifest::CheckpointId;
use sluice_crds::{FINALIZER, Phase, StreamJob, StreamJobStatus};
use sluice_storage::memory::MemoryStore;

use crate::build::test_job::job;
use crate::context::Context;
use crate::controller::reconcile;
use crate::fixtures::store_with_checkpoint;

pub(crate) const PODS: &str = "/api/v1/namespaces/ns/pods";
pub(crate) const JOB: &str = "/apis/sluice.dev/v1alpha1/namespaces/ns/streamjobs/demo";
pub(crate) const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

pub(crate) fn finalized(mut j: StreamJob) -> StreamJob {
    j.metadata.finalizers = Some(vec![FINALIZER.into()]);
    j
}

pub(crate) fn hash() -> String {
    crate::build::spec_hash(&job().spec)
}

pub(crate) fn pod_json(attempt: u32, phase: &str, ready: bool) -> serde_json::Value {
    json!({
        "metadata": {
            "name": format!("demo-{attempt}-0"), "namespace": "ns",
            "labels": {"sluice.dev/job": "demo", "sluice.dev/attempt": attempt.to_string()},
            "annotations": {"sluice.dev/spec-hash": hash()}
        },
        "status": {
            "phase": phase, "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "runtime", "image": "x", "imageID": "", "ready": ready, "restartCount": 0,
                "state": if phase == "Failed" { json!({"terminated": {"exitCode": 1, "reason": "Error"}}) } else { json!({}) }}]
        }
    })
}

/// A child object of `kind` controlled by the test job (uid `uid-1`).
pub(crate) fn owned_child(kind: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "resourceVersion": "3", "uid": "child-1",
            "ownerReferences": [{"apiVersion": "sluice.dev/v1alpha1", "kind": "StreamJob", "name": "demo",
                "uid": "uid-1", "controller": true, "blockOwnerDeletion": true}]}
    })
}

pub(crate) fn pod_list(items: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

pub(crate) fn with_status(mut j: StreamJob, s: StreamJobStatus) -> StreamJob {
    j.status = Some(s);
    j
}

pub(crate) fn running_status(attempt: u32) -> StreamJobStatus {
    StreamJobStatus {
        phase: Phase::Running,
        attempt,
        spec_hash: Some(hash()),
        parallelism: Some(2),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_job_first_gets_the_finalizer() {
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let task = tokio::spawn(reconcile(Arc::new(job()), ctx));
    let patch = api.expect(Method::PATCH, JOB).await;
    assert!(patch.body.to_string().contains(FINALIZER), "{}", patch.body);
    patch.reply(serde_json::to_value(finalized(job())).expect("json"));
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn first_deploy_applies_config_service_pod_then_status_and_event() {
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let task = tokio::spawn(reconcile(Arc::new(finalized(job())), ctx));
    let list = api.expect(Method::GET, PODS).await;
    assert!(list.uri.contains("labelSelector=sluice.dev%2Fjob%3Ddemo"), "{}", list.uri);
    list.reply(pod_list(vec![]));
    // Nothing of the child's name exists yet (the controller reference is checked first).
    api.expect(Method::GET, "/api/v1/namespaces/ns/configmaps/demo-config").await.not_found();
    let cm = api.expect(Method::PATCH, "/api/v1/namespaces/ns/configmaps/demo-config?").await;
    assert!(cm.uri.contains("fieldManager=sluice-operator") && cm.uri.contains("force=true"), "{}", cm.uri);
    assert!(cm.body["data"]["job.yaml"].as_str().expect("job.yaml").contains("name: demo"));
    cm.echo();
    api.expect(Method::GET, "/api/v1/namespaces/ns/services/demo").await.not_found();
    api.expect(Method::PATCH, "/api/v1/namespaces/ns/services/demo?").await.echo();
    let pod = api.expect(Method::POST, PODS).await;
    assert_eq!(pod.body["metadata"]["name"], "demo-1-0");
    let args = pod.body["spec"]["containers"][0]["args"].clone();
    assert_eq!(
        args,
        json!([
            "sluice-runtime",
            "run",
            "/etc/sluice/job.yaml",
            "--no-restore",
            "--log-format",
            "json",
            "--control-addr",
            "0.0.0.0:9090",
            "--run-id",
            "demo-1-uid1"
        ])
    );
    pod.echo();
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    assert_eq!(status.body["status"]["phase"], "Deploying");
    assert_eq!(status.body["status"]["attempt"], 1);
    status.reply(serde_json::to_value(finalized(job())).expect("json"));
    let event = api.expect(Method::POST, EVENTS).await;
    assert_eq!(event.body["reason"], "Deploying");
    event.echo();
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn a_failed_pod_is_deleted_then_attempt_two_restores_the_latest_checkpoint() {
    // Reconcile 1: the pod of attempt 1 failed → delete it, status Recovering, Warning event.
    let (ctx, mut api) = Context::test(None, store_with_checkpoint().await);
    let j = with_status(finalized(job()), running_status(1));
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Failed", false)]));
    let del = api.expect(Method::DELETE, &format!("{PODS}/demo-1-0?")).await;
    del.reply(pod_json(1, "Failed", false));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    assert_eq!(status.body["status"]["phase"], "Recovering");
    assert_eq!(status.body["status"]["recovery"]["failedAttempt"], 1);
    let written: StreamJobStatus = serde_json::from_value(status.body["status"].clone()).expect("status");
    status.reply(serde_json::to_value(&j).expect("json"));
    let event = api.expect(Method::POST, EVENTS).await;
    assert_eq!(event.body["type"], "Warning");
    assert!(event.body["note"].as_str().expect("note").contains("exited with code 1"), "{}", event.body);
    event.echo();
    task.await.expect("joins").expect("reconciles");

    // Reconcile 2, after the backoff: no pods left → attempt 2 restores the latest checkpoint
    // (no --restore: the runtime applies the restore rule to its storage).
    let mut st = written;
    if let Some(r) = st.recovery.as_mut() {
        r.failed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
    }
    let j = with_status(finalized(job()), st);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    // The children exist from attempt 1 and are this job's: applied again.
    api.expect_children_reapplied(owned_child).await;
    let pod = api.expect(Method::POST, PODS).await;
    assert_eq!(pod.body["metadata"]["name"], "demo-2-0");
    let args: Vec<String> = serde_json::from_value(pod.body["spec"]["containers"][0]["args"].clone()).expect("args");
    assert!(!args.iter().any(|a| a == "--restore" || a == "--no-restore"), "{args:?}");
    assert!(args.ends_with(&["--run-id".to_string(), "demo-2-uid1".to_string()]));
    pod.echo();
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    assert_eq!(status.body["status"]["attempt"], 2);
    assert_eq!(status.body["status"]["restarts"], 1);
    assert_eq!(status.body["status"]["phase"], "Deploying");
    status.reply(serde_json::to_value(&j).expect("json"));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "Relaunched");
    task.await.expect("joins").expect("reconciles");
}

#[tokio::test]
async fn a_running_job_reports_the_runtimes_latest_checkpoint_in_status() {
    let runtime = JobStatus {
        version: 1,
        run_id: "demo-1".into(),
        state: JobState::Running,
        restored_from: None,
        latest: Some(CheckpointInfo {
            id: CheckpointId(12),
            path: "s3://bucket/demo/manifests/chk-00000000000000000012.json".into(),
            completed_at_ms: 1_700_000_000_000,
            size_bytes: 2048,
            duration_ms: 31,
        }),
        in_progress: None,
        completed: 12,
        failed: 0,
        consecutive_failures: 0,
        last_failure: None,
    };
    let (ctx, mut api) = Context::test(Some(runtime), store_with_checkpoint().await);
    let mut st = running_status(1);
    st.phase = Phase::Deploying;
    let j = with_status(finalized(job()), st);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let s = &status.body["status"];
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["checkpoints"]["latest"]["id"], 12);
    assert_eq!(s["checkpoints"]["latest"]["sizeBytes"], 2048);
    assert_eq!(s["checkpoints"]["latest"]["completedAt"], "2023-11-14T22:13:20Z");
    let ready =
        s["conditions"].as_array().expect("conditions").iter().find(|c| c["type"] == "Ready").expect("Ready").clone();
    assert_eq!(ready["status"], "True");
    let healthy = s["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "CheckpointHealthy")
        .expect("c")
        .clone();
    assert_eq!(healthy["status"], "True");
    status.reply(serde_json::to_value(&j).expect("json"));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "Running");
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn deleting_a_job_stops_its_pods_before_the_finalizer_goes() {
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let mut j = with_status(finalized(job()), running_status(1));
    j.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH));
    // Pods still there: they are deleted and the finalizer stays (the reconcile errors to retry).
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![pod_json(1, "Running", true)]));
    api.expect(Method::DELETE, &format!("{PODS}/demo-1-0?")).await.reply(pod_json(1, "Running", true));
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let deleting = status.body["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Progressing" && c["reason"] == "Deleting");
    assert!(deleting, "{}", status.body);
    status.reply(serde_json::to_value(&j).expect("json"));
    // The runtime does not answer: no final savepoint, and the Warning says so.
    let event = api.expect(Method::POST, EVENTS).await;
    assert_eq!(
        (event.body["type"].as_str(), event.body["reason"].as_str()),
        (Some("Warning"), Some("SavepointFailed"))
    );
    event.echo();
    let err = task.await.expect("joins").expect_err("waits for the pods");
    assert!(matches!(err, crate::Error::PodsTerminating(1)), "{err}");
    // Pods gone: the finalizer is removed.
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    let patch = api.expect(Method::PATCH, &format!("{JOB}?")).await;
    assert!(
        patch.body.to_string().contains("remove") || patch.body.to_string().contains("finalizers"),
        "{}",
        patch.body
    );
    let mut gone = j.clone();
    gone.metadata.finalizers = None;
    patch.reply(serde_json::to_value(&gone).expect("json"));
    task.await.expect("joins").expect("finalizer removed");
    api.done().await;
}

#[tokio::test]
async fn leader_election_creates_the_lease_when_there_is_none_and_respects_another_holder() {
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let lock = crate::leader::LeaseLock::new(
        ctx.client.clone(),
        "sluice-system",
        "sluice-operator",
        "me",
        std::time::Duration::from_secs(15),
    );
    let lock = Arc::new(lock);
    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/sluice-system/leases";
    let l = lock.clone();
    let task = tokio::spawn(async move { l.try_acquire_or_renew().await });
    let get = api.expect(Method::GET, &format!("{LEASE}/sluice-operator")).await;
    get.send_status(404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}));
    let create = api.expect(Method::POST, &format!("{LEASE}?")).await;
    assert_eq!(create.body["spec"]["holderIdentity"], "me");
    assert_eq!(create.body["spec"]["leaseDurationSeconds"], 15);
    create.echo();
    assert!(task.await.expect("joins").expect("no API error"), "holds the lease");

    let l = lock.clone();
    let task = tokio::spawn(async move { l.try_acquire_or_renew().await });
    let renewed_now = jiff::Timestamp::now().to_string();
    api.expect(Method::GET, &format!("{LEASE}/sluice-operator")).await.reply(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "sluice-operator", "namespace": "sluice-system", "resourceVersion": "5"},
        "spec": {"holderIdentity": "other", "leaseDurationSeconds": 15, "renewTime": renewed_now}
    }));
    assert!(!task.await.expect("joins").expect("no API error"), "another replica's valid lease is not taken");
}
