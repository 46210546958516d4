//! A job over several worker pods against the mock API server, answering as a real one does:
//! the first launch (headless Service, every worker pod with its index and the attempt's run
//! id), a relaunch after an operator restart that finds the Service and some pods already there
//! (adopted: 409 on create, then read back as this job's), a pod list that lags behind a create,
//! a 4xx refusing one worker pod mid-launch, and an old attempt's pods still terminating.

use std::sync::Arc;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use sluice_crds::stream_job::RecoveryStatus;
use sluice_crds::workers::WorkersStatus;
use sluice_crds::{Phase, StreamJob, StreamJobStatus};

use crate::build::test_job::job;
use crate::context::Context;
use crate::controller::reconcile;
use crate::controller_tests::{EVENTS, JOB, PODS, finalized, owned_child, pod_list, with_status};
use crate::fixtures::{ApiServerVerifier, FakeRuntime, store_with_checkpoint};

const CM: &str = "/api/v1/namespaces/ns/configmaps/demo-config";
const SVC: &str = "/api/v1/namespaces/ns/services/demo";

/// The test job with three workers.
fn three() -> StreamJob {
    let mut j = finalized(job());
    j.spec.workers = 3;
    j.spec.parallelism = 3;
    j
}

fn hash3() -> String {
    crate::build::spec_hash(&three().spec)
}

/// Worker `index` of `attempt` of the three-worker job, as the API server lists it.
fn worker_json(attempt: u32, index: u32, phase: &str, ready: bool) -> serde_json::Value {
    json!({
        "metadata": {
            "name": format!("demo-{attempt}-{index}"), "namespace": "ns",
            "labels": {"sluice.dev/job": "demo", "sluice.dev/attempt": attempt.to_string()},
            "annotations": {"sluice.dev/spec-hash": hash3(), "sluice.dev/workers": "3", "sluice.dev/job-uid": "uid-1"}
        },
        "status": {
            "phase": phase, "podIP": format!("10.0.{attempt}.{index}"),
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "runtime", "image": "x", "imageID": "", "ready": ready, "restartCount": 0,
                "state": if phase == "Failed" { json!({"terminated": {"exitCode": 1, "reason": "Error"}}) } else { json!({}) }}]
        }
    })
}

fn terminating(mut pod: serde_json::Value) -> serde_json::Value {
    pod["metadata"]["deletionTimestamp"] = json!(jiff::Timestamp::now().to_string());
    pod
}

fn status_of(attempt: u32, phase: Phase) -> StreamJobStatus {
    StreamJobStatus {
        phase,
        attempt,
        spec_hash: Some(hash3()),
        parallelism: Some(3),
        workers: Some(WorkersStatus { ready: 3, desired: 3 }),
        ..Default::default()
    }
}

/// Recovering from attempt `failed`, the backoff long over.
fn recovering(failed: u32) -> StreamJobStatus {
    let mut st = status_of(failed, Phase::Recovering);
    st.recovery = Some(RecoveryStatus {
        failed_attempt: failed,
        failed_at: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
        reason: Some("pod demo-1-2 exited with code 1".into()),
    });
    st
}

fn arg_after(args: &serde_json::Value, flag: &str) -> Option<String> {
    let a = args.as_array()?;
    let i = a.iter().position(|x| x == flag)?;
    a.get(i + 1).and_then(|v| v.as_str()).map(String::from)
}

/// The next request is the status write: returns what was written.
async fn expect_status(api: &mut ApiServerVerifier, j: &StreamJob) -> serde_json::Value {
    let status = api.expect(Method::PATCH, &format!("{JOB}/status?")).await;
    let s = status.body["status"].clone();
    status.reply(serde_json::to_value(j).expect("json"));
    s
}

#[tokio::test]
async fn first_launch_creates_the_headless_service_then_every_worker_with_its_index_and_one_attempt() {
    let (ctx, mut api) = Context::test(None, Arc::new(sluice_storage::memory::MemoryStore::new()));
    let j = three();
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    api.expect(Method::GET, CM).await.not_found();
    api.expect(Method::PATCH, CM).await.echo();
    api.expect(Method::GET, SVC).await.not_found();
    let svc = api.expect(Method::PATCH, SVC).await;
    let spec = &svc.body["spec"];
    assert_eq!((spec["clusterIP"].as_str(), spec["publishNotReadyAddresses"].as_bool()), (Some("None"), Some(true)));
    let ports: Vec<(&str, i64)> = spec["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or_default(), p["port"].as_i64().unwrap_or_default()))
        .collect();
    assert_eq!(ports, [("control", 9090), ("exchange", 7070), ("coordinator", 7071)]);
    let owner = &svc.body["metadata"]["ownerReferences"][0];
    assert_eq!((owner["kind"].as_str(), owner["uid"].as_str()), (Some("StreamJob"), Some("uid-1")));
    svc.echo();
    let peers = "demo-1-0.demo.ns.svc:7070,demo-1-1.demo.ns.svc:7070,demo-1-2.demo.ns.svc:7070";
    for index in 0..3 {
        let pod = api.expect(Method::POST, PODS).await;
        let name = format!("demo-1-{index}");
        assert_eq!(pod.body["metadata"]["name"], name.as_str());
        assert_eq!(pod.body["spec"]["hostname"], name.as_str());
        assert_eq!(pod.body["spec"]["subdomain"], "demo");
        let args = &pod.body["spec"]["containers"][0]["args"];
        assert_eq!(args[1], "worker");
        assert_eq!(arg_after(args, "--index"), Some(index.to_string()));
        assert_eq!(arg_after(args, "--attempt").as_deref(), Some("demo-1-uid1"));
        assert_eq!(arg_after(args, "--peers").as_deref(), Some(peers));
        assert_eq!(arg_after(args, "--coordinator").as_deref(), Some("demo-1-0.demo.ns.svc:7071"));
        assert!(args.as_array().expect("args").iter().any(|a| a == "--no-restore"), "{args}");
        assert_eq!(pod.body["metadata"]["annotations"]["sluice.dev/workers"], "3");
        pod.echo();
    }
    let s = expect_status(&mut api, &j).await;
    assert_eq!((s["phase"].as_str(), s["attempt"].as_u64()), (Some("Deploying"), Some(1)));
    assert_eq!(s["workers"], json!({"ready": 0, "desired": 3}));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "Deploying");
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn a_relaunch_after_an_operator_restart_adopts_the_service_and_pods_it_already_created() {
    // The previous operator created the Service and two pods of attempt 2, then died before it
    // wrote the status; the list this reconcile reads does not show them yet.
    let (ctx, mut api) = Context::test(None, store_with_checkpoint().await);
    let j = with_status(three(), recovering(1));
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    api.expect(Method::GET, CM).await.reply(owned_child("ConfigMap"));
    api.expect(Method::PATCH, CM).await.echo();
    api.expect(Method::GET, SVC).await.reply(owned_child("Service"));
    api.expect(Method::PATCH, SVC).await.echo();
    for index in 0..2 {
        let name = format!("demo-2-{index}");
        let create = api.expect(Method::POST, PODS).await;
        assert_eq!(create.body["metadata"]["name"], name.as_str());
        create.fail(409, "AlreadyExists", &format!("pods \"{name}\" already exists"));
        // Whose is it? This job's (its uid annotation): adopted, the launch goes on.
        api.expect(Method::GET, &format!("{PODS}/{name}")).await.reply(worker_json(2, index, "Pending", false));
    }
    let create = api.expect(Method::POST, PODS).await;
    assert_eq!(create.body["metadata"]["name"], "demo-2-2");
    create.echo();
    let s = expect_status(&mut api, &j).await;
    assert_eq!(
        (s["phase"].as_str(), s["attempt"].as_u64(), s["restarts"].as_u64()),
        (Some("Deploying"), Some(2), Some(1))
    );
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "Relaunched");
    task.await.expect("joins").expect("an adopted launch is no error");
    api.done().await;
}

#[tokio::test]
async fn a_pod_list_that_lags_behind_a_create_does_not_fail_the_attempt_but_a_pod_really_gone_does() {
    let runtime = FakeRuntime::default();
    let (ctx, mut api, fake) = Context::test_with(runtime, store_with_checkpoint().await);
    let j = with_status(three(), status_of(1, Phase::Deploying));
    // The list misses worker 1; read by name, it exists: the attempt goes on.
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS)
        .await
        .reply(pod_list(vec![worker_json(1, 0, "Running", true), worker_json(1, 2, "Running", true)]));
    api.expect(Method::GET, &format!("{PODS}/demo-1-1")).await.reply(worker_json(1, 1, "Running", true));
    let s = expect_status(&mut api, &j).await;
    assert_eq!(s["phase"], "Running", "{s}");
    assert_eq!(s["workers"], json!({"ready": 3, "desired": 3}));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "Running");
    task.await.expect("joins").expect("reconciles");
    api.done().await;
    assert_eq!(*fake.ips.lock().expect("lock"), ["10.0.1.0"], "the runtime is asked at worker 0");

    // Read by name it is gone too: the attempt failed, every other worker goes.
    let j = with_status(three(), status_of(1, Phase::Running));
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS)
        .await
        .reply(pod_list(vec![worker_json(1, 0, "Running", true), worker_json(1, 2, "Running", true)]));
    api.expect(Method::GET, &format!("{PODS}/demo-1-1")).await.not_found();
    for name in ["demo-1-0", "demo-1-2"] {
        let del = api.expect(Method::DELETE, &format!("{PODS}/{name}?")).await;
        del.reply(worker_json(1, 0, "Running", true));
    }
    let s = expect_status(&mut api, &j).await;
    assert_eq!((s["phase"].as_str(), s["recovery"]["failedAttempt"].as_u64()), (Some("Recovering"), Some(1)));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "PodDeleted");
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn a_worker_pod_refused_mid_launch_fails_the_attempt_and_its_created_workers_are_deleted() {
    let (ctx, mut api) = Context::test(None, Arc::new(sluice_storage::memory::MemoryStore::new()));
    let j = three();
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    api.expect(Method::GET, CM).await.not_found();
    api.expect(Method::PATCH, CM).await.echo();
    api.expect(Method::GET, SVC).await.not_found();
    api.expect(Method::PATCH, SVC).await.echo();
    api.expect(Method::POST, PODS).await.echo();
    let refused = "pods \"demo-1-1\" is forbidden: exceeded quota: compute, requested: cpu=1, limited: cpu=2";
    api.expect(Method::POST, PODS).await.fail(403, "Forbidden", refused);
    // No third pod: the attempt is over.
    let s = expect_status(&mut api, &j).await;
    assert_eq!((s["phase"].as_str(), s["recovery"]["failedAttempt"].as_u64()), (Some("Recovering"), Some(1)));
    assert!(s["error"].as_str().expect("error").contains("exceeded quota"), "{s}");
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "ChildRejected");
    task.await.expect("joins").expect("a refused launch is an outcome");
    api.done().await;

    // The next reconcile deletes the worker that was created before the refusal.
    let st: StreamJobStatus = serde_json::from_value(s).expect("status");
    let j = with_status(three(), st);
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![worker_json(1, 0, "Pending", false)]));
    api.expect(Method::GET, &format!("{PODS}/demo-1-1")).await.not_found();
    api.expect(Method::GET, &format!("{PODS}/demo-1-2")).await.not_found();
    api.expect(Method::DELETE, &format!("{PODS}/demo-1-0?")).await.reply(worker_json(1, 0, "Pending", false));
    let s = expect_status(&mut api, &j).await;
    assert_eq!(s["phase"], "Recovering");
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn pods_of_the_old_attempt_still_terminating_are_left_to_go_and_nothing_new_starts_before() {
    let (ctx, mut api) = Context::test(None, store_with_checkpoint().await);
    let j = with_status(three(), recovering(1));
    // Attempt 1's workers are terminating (deleted last reconcile): not deleted again, and
    // attempt 2 waits for them.
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx.clone()));
    let old: Vec<serde_json::Value> = (0..3).map(|i| terminating(worker_json(1, i, "Running", false))).collect();
    api.expect(Method::GET, PODS).await.reply(pod_list(old.clone()));
    let s = expect_status(&mut api, &j).await;
    assert_eq!((s["phase"].as_str(), s["attempt"].as_u64()), (Some("Recovering"), Some(1)));
    task.await.expect("joins").expect("reconciles");
    api.done().await;

    // Attempt 2 is there (its launch and status write happened) while one of attempt 1's pods
    // is still terminating: attempt 2 is left alone, the old pod is not deleted twice.
    let j = with_status(three(), status_of(2, Phase::Deploying));
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    let mut pods = vec![old[2].clone()];
    pods.extend((0..3).map(|i| worker_json(2, i, "Running", true)));
    api.expect(Method::GET, PODS).await.reply(pod_list(pods));
    let s = expect_status(&mut api, &j).await;
    assert_eq!((s["phase"].as_str(), s["attempt"].as_u64()), (Some("Running"), Some(2)));
    assert_eq!(s["workers"], json!({"ready": 3, "desired": 3}));
    assert_eq!(api.expect(Method::POST, EVENTS).await.body["reason"], "Running");
    task.await.expect("joins").expect("reconciles");
    api.done().await;
}

#[tokio::test]
async fn more_workers_than_any_node_has_subtasks_is_refused_naming_the_field_and_nothing_starts() {
    let (ctx, mut api) = Context::test(None, Arc::new(sluice_storage::memory::MemoryStore::new()));
    let mut j = three();
    j.spec.parallelism = 2;
    let task = tokio::spawn(reconcile(Arc::new(j.clone()), ctx));
    api.expect(Method::GET, PODS).await.reply(pod_list(vec![]));
    let s = expect_status(&mut api, &j).await;
    assert_eq!(s["phase"], "Failed", "{s}");
    let error = s["error"].as_str().expect("error");
    assert!(error.starts_with("spec.workers: 3 workers") && error.contains("largest node parallelism is 2"), "{error}");
    let event = api.expect(Method::POST, EVENTS).await;
    assert_eq!((event.body["type"].as_str(), event.body["reason"].as_str()), (Some("Warning"), Some("InvalidSpec")));
    event.echo();
    task.await.expect("joins").expect("an invalid spec is a status, not an error");
    api.done().await;
}
