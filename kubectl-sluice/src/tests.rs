//! The commands against the mock API server: every request is asserted (method, path, body),
//! and answered as a real API server would, 409s and 404s and stale reads included.

use clap::Parser;
use http::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::mock::{ApiServer, JOB, PODS, job, pods, running, session};
use crate::{Cli, Error};

pub(crate) type Ran = JoinHandle<(Result<(), Error>, String)>;

/// Runs `kubectl sluice ARGS…` against the mock server; the task yields the result and stdout.
pub(crate) fn run(args: &[&str]) -> (Ran, ApiServer) {
    let cli = Cli::try_parse_from(std::iter::once("kubectl-sluice").chain(args.iter().copied())).expect("parses");
    let (session, api) = session();
    let task = tokio::spawn(async move {
        let mut out = Vec::new();
        let result = session.run(&cli.command, &mut out).await;
        (result, String::from_utf8(out).expect("utf-8"))
    });
    (task, api)
}

fn with_savepoint(mut j: Value, annotation: &str, savepoints: Value) -> Value {
    j["metadata"]["annotations"] = json!({"sluice.dev/savepoint": annotation});
    j["status"]["savepoints"] = savepoints;
    j
}

fn last(value: &str, state: &str, extra: Value) -> Value {
    let mut l = json!({"value": value, "trigger": "Annotation", "state": state, "startedAt": "2026-12-01T06:00:01Z"});
    l.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    l
}

/// The PATCH of the savepoint request: the annotation set to the nonce, conditional on the
/// version read, as a merge patch by field manager `kubectl-sluice`.
async fn expect_annotation_patch(api: &mut ApiServer, rv: &str, reply: &Value) {
    let patch = api.expect(Method::PATCH, JOB).await;
    assert!(patch.uri.contains("fieldManager=kubectl-sluice"), "{}", patch.uri);
    assert_eq!(patch.content_type.as_deref(), Some("application/merge-patch+json"));
    assert_eq!(
        patch.body,
        json!({"metadata": {"annotations": {"sluice.dev/savepoint": "n-1"}, "resourceVersion": rv}})
    );
    patch.reply(reply);
}

#[tokio::test(start_paused = true)]
async fn savepoint_sets_the_annotation_to_a_fresh_nonce_and_wait_follows_that_nonce_to_its_location() {
    let (task, mut api) = run(&["savepoint", "demo", "--wait"]);
    // The job as it stands: an earlier savepoint, of value n-0, completed.
    let earlier = json!({"observedAnnotation": "n-0", "last": last("n-0", "Completed", json!({"path": "s3://bucket/demo/savepoints/sp-old"}))});
    api.get_job(&with_savepoint(job(5, running(1)), "n-0", earlier.clone())).await;
    expect_annotation_patch(&mut api, "5", &with_savepoint(job(6, running(1)), "n-1", earlier.clone())).await;
    // A stale read (a lagging API server cache): still the old savepoint. Not ours: keep waiting.
    api.get_job(&with_savepoint(job(5, running(1)), "n-0", earlier)).await;
    // The operator took the new value: Pending, then InProgress.
    let ours = |state: &str, extra: Value| json!({"observedAnnotation": "n-1", "last": last("n-1", state, extra)});
    let path = "s3://bucket/demo/savepoints/sp-uid1-1764568801000";
    api.get_job(&with_savepoint(job(7, running(1)), "n-1", ours("Pending", json!({"path": path})))).await;
    api.get_job(&with_savepoint(
        job(8, running(1)),
        "n-1",
        ours("InProgress", json!({"path": path, "requestId": "sp-1"})),
    ))
    .await;
    let done = ours("Completed", json!({"path": path, "completedAt": "2026-12-01T06:00:09Z"}));
    api.get_job(&with_savepoint(job(9, running(1)), "n-1", done)).await;
    let (result, out) = task.await.expect("joins");
    result.expect("the savepoint completed");
    assert_eq!(
        out,
        format!(
            "streamjob.sluice.dev/demo savepoint requested (sluice.dev/savepoint=n-1)\n\
             savepoint n-1 completed; its location:\n{path}\n"
        )
    );
    api.done().await;
}

#[tokio::test(start_paused = true)]
async fn savepoint_wait_fails_with_the_operators_reason_when_the_status_reports_it_failed() {
    let (task, mut api) = run(&["savepoint", "demo", "--wait"]);
    api.get_job(&job(5, running(1))).await;
    expect_annotation_patch(&mut api, "5", &with_savepoint(job(6, running(1)), "n-1", Value::Null)).await;
    let failed = json!({"observedAnnotation": "n-1", "last": last("n-1", "Failed", json!({
        "path": "s3://bucket/demo/savepoints/sp-uid1-1", "error": "checkpoint storage unreachable: connection refused"
    }))});
    api.get_job(&with_savepoint(job(7, running(1)), "n-1", failed)).await;
    let (result, _) = task.await.expect("joins");
    let err = result.expect_err("the savepoint failed");
    assert!(matches!(err, Error::SavepointFailed { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "savepoint n-1 of streamjob demo failed: checkpoint storage unreachable: connection refused"
    );
    api.done().await;
}

#[tokio::test(start_paused = true)]
async fn savepoint_on_a_job_not_running_warns_and_wait_gives_up_at_its_timeout_or_when_superseded() {
    // Not running: said at once; the operator has not acted by the timeout (2 reads at 2s, 4s).
    let (task, mut api) = run(&["savepoint", "demo", "--wait", "--timeout", "5s"]);
    let suspended = json!({"phase": "Suspended", "attempt": 1});
    api.get_job(&job(5, suspended.clone())).await;
    expect_annotation_patch(&mut api, "5", &with_savepoint(job(6, suspended.clone()), "n-1", Value::Null)).await;
    api.get_job(&with_savepoint(job(6, suspended.clone()), "n-1", Value::Null)).await;
    api.get_job(&with_savepoint(job(6, suspended.clone()), "n-1", Value::Null)).await;
    let (result, out) = task.await.expect("joins");
    assert!(out.contains("note: the job is Suspended, not Running"), "{out}");
    let err = result.expect_err("timed out").to_string();
    assert_eq!(
        err,
        "timed out after 5s waiting for savepoint n-1 of streamjob demo (last seen: not yet picked up by the operator)"
    );
    api.done().await;

    // Someone else set another value before the operator acted on ours.
    let (task, mut api) = run(&["savepoint", "demo", "--wait"]);
    api.get_job(&job(5, running(1))).await;
    expect_annotation_patch(&mut api, "5", &with_savepoint(job(6, running(1)), "n-1", Value::Null)).await;
    // One read showing another value may be stale; two in a row are not.
    api.get_job(&with_savepoint(job(7, running(1)), "manual-7", Value::Null)).await;
    api.get_job(&with_savepoint(job(8, running(1)), "manual-7", Value::Null)).await;
    let err = task.await.expect("joins").0.expect_err("superseded");
    assert!(matches!(err, Error::SavepointSuperseded { ref by, .. } if by == "manual-7"), "{err:?}");
    api.done().await;
}

#[tokio::test]
async fn savepoint_without_wait_only_sets_the_annotation() {
    let (task, mut api) = run(&["savepoint", "demo"]);
    api.get_job(&job(5, running(1))).await;
    expect_annotation_patch(&mut api, "5", &with_savepoint(job(6, running(1)), "n-1", Value::Null)).await;
    let (result, out) = task.await.expect("joins");
    result.expect("requested");
    assert_eq!(out, "streamjob.sluice.dev/demo savepoint requested (sluice.dev/savepoint=n-1)\n");
    api.done().await;

    // Someone's value the operator has not acted on yet (it is busy with manual-2): said so.
    let (task, mut api) = run(&["savepoint", "demo"]);
    let busy = json!({"observedAnnotation": "manual-2", "last": last("manual-2", "InProgress", json!({}))});
    api.get_job(&with_savepoint(job(5, running(1)), "manual-3", busy.clone())).await;
    expect_annotation_patch(&mut api, "5", &with_savepoint(job(6, running(1)), "n-1", busy)).await;
    let (result, out) = task.await.expect("joins");
    result.expect("requested");
    assert!(
        out.ends_with("note: this replaces the value \"manual-3\", which the operator had not acted on yet: one savepoint is taken, for n-1\n"),
        "{out}"
    );
    api.done().await;
}

fn with_state(mut j: Value, state: &str) -> Value {
    j["spec"]["state"] = json!(state);
    j
}

#[tokio::test]
async fn suspend_patches_exactly_spec_state_and_a_409_conflict_is_read_again_and_retried() {
    let (task, mut api) = run(&["suspend", "demo"]);
    api.get_job(&job(5, running(1))).await;
    let first = api.expect(Method::PATCH, JOB).await;
    assert!(first.uri.contains("fieldManager=kubectl-sluice"), "{}", first.uri);
    assert_eq!(first.content_type.as_deref(), Some("application/merge-patch+json"));
    assert_eq!(first.body, json!({"spec": {"state": "suspended"}, "metadata": {"resourceVersion": "5"}}));
    // Someone changed the job between the read and the write.
    first.conflict();
    api.get_job(&job(7, running(1))).await;
    let second = api.expect(Method::PATCH, JOB).await;
    assert_eq!(second.body, json!({"spec": {"state": "suspended"}, "metadata": {"resourceVersion": "7"}}));
    second.reply(&with_state(job(8, running(1)), "suspended"));
    let (result, out) = task.await.expect("joins");
    result.expect("suspended");
    assert!(out.starts_with("streamjob.sluice.dev/demo suspended: the operator stops it with a savepoint"), "{out}");
    api.done().await;

    // The conflicting writer had suspended it already: read again, nothing left to write.
    let (task, mut api) = run(&["suspend", "demo"]);
    api.get_job(&job(5, running(1))).await;
    api.expect(Method::PATCH, JOB).await.conflict();
    api.get_job(&with_state(job(6, json!({"phase": "Suspending", "attempt": 1})), "suspended")).await;
    let (result, out) = task.await.expect("joins");
    result.expect("already suspended is no error");
    assert_eq!(out, "streamjob.sluice.dev/demo is already suspended (phase Suspending)\n");
    api.done().await;
}

#[tokio::test]
async fn a_job_that_keeps_changing_gives_up_after_a_bounded_number_of_conflicts() {
    let (task, mut api) = run(&["resume", "demo"]);
    for rv in 0..crate::job::MAX_WRITE_ATTEMPTS {
        api.get_job(&with_state(job(10 + rv, json!({"phase": "Suspended", "attempt": 1})), "suspended")).await;
        api.expect(Method::PATCH, JOB).await.conflict();
    }
    let err = task.await.expect("joins").0.expect_err("gave up");
    assert!(matches!(err, Error::Conflicts { attempts: 5, .. }) && err.is_retryable(), "{err:?}");
    api.done().await;
}

#[tokio::test]
async fn resume_patches_spec_state_running_and_names_the_savepoint_it_resumes_from() {
    let (task, mut api) = run(&["resume", "demo"]);
    let suspended =
        json!({"phase": "Suspended", "attempt": 2, "resumeFrom": "s3://bucket/demo/savepoints/stop-demo-2-uid1"});
    api.get_job(&with_state(job(5, suspended.clone()), "suspended")).await;
    let patch = api.expect(Method::PATCH, JOB).await;
    assert_eq!(patch.body, json!({"spec": {"state": "running"}, "metadata": {"resourceVersion": "5"}}));
    patch.reply(&job(6, suspended));
    let (result, out) = task.await.expect("joins");
    result.expect("resumed");
    assert_eq!(out, "streamjob.sluice.dev/demo resumed from s3://bucket/demo/savepoints/stop-demo-2-uid1\n");
    api.done().await;

    // A job that is not suspended: nothing written.
    let (task, mut api) = run(&["resume", "demo"]);
    api.get_job(&job(5, running(1))).await;
    let (result, out) = task.await.expect("joins");
    result.expect("no error");
    assert_eq!(out, "streamjob.sluice.dev/demo is not suspended (spec.state is running, phase Running)\n");
    api.done().await;
}

#[tokio::test]
async fn a_missing_job_says_so_plainly_for_every_command() {
    for args in [
        vec!["savepoint", "demo", "--wait"],
        vec!["suspend", "demo"],
        vec!["resume", "demo"],
        vec!["status", "demo"],
        vec!["checkpoints", "demo", "-o", "json"],
        vec!["logs", "demo", "-f"],
    ] {
        let (task, mut api) = run(&args);
        api.expect(Method::GET, JOB).await.not_found();
        let (result, out) = task.await.expect("joins");
        let err = result.expect_err("not found");
        assert_eq!(err.to_string(), "streamjob demo not found in namespace ns", "{args:?}");
        assert!(!err.is_retryable());
        assert_eq!(out, "", "{args:?}");
        api.done().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_deleted_while_waiting_for_its_savepoint_is_reported_as_gone() {
    let (task, mut api) = run(&["savepoint", "demo", "--wait"]);
    api.get_job(&job(5, running(1))).await;
    expect_annotation_patch(&mut api, "5", &with_savepoint(job(6, running(1)), "n-1", Value::Null)).await;
    api.expect(Method::GET, JOB).await.not_found();
    let err = task.await.expect("joins").0.expect_err("gone");
    assert_eq!(err.to_string(), "streamjob demo in namespace ns was deleted while waiting for savepoint n-1");
    api.done().await;
}

/// A job mid-life: attempt 3, a checkpoint 12 s old, a savepoint 5 min old, three conditions.
pub(crate) fn busy_job() -> Value {
    let savepoint = json!({"value": "n-0", "trigger": "Annotation", "state": "Completed",
        "path": "s3://bucket/demo/savepoints/sp-uid1-1", "startedAt": "2026-12-01T05:54:50Z", "completedAt": "2026-12-01T05:55:00Z"});
    job(
        9,
        json!({
            "phase": "Running", "attempt": 3, "restarts": 2, "parallelism": 2,
            "checkpoints": {"latest": {"id": 17, "path": "s3://bucket/demo/manifests/chk-17.json",
                "completedAt": "2026-12-01T05:59:48Z", "sizeBytes": 4096, "durationMs": 40}},
            "savepoints": {"observedAnnotation": "n-0", "last": savepoint, "history": [savepoint]},
            "restoredFrom": "s3://bucket/demo/manifests/chk-12.json",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Running", "message": "attempt 3 is running",
                    "lastTransitionTime": "2026-12-01T05:57:00Z"},
                {"type": "CheckpointHealthy", "status": "True", "reason": "CheckpointCompleted", "message": "",
                    "lastTransitionTime": "2026-12-01T05:58:00Z"},
                {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "",
                    "lastTransitionTime": "2026-11-29T06:00:00Z"}
            ]
        }),
    )
}

pub(crate) async fn expect_pods_of_attempt_3(api: &mut ApiServer, list: &Value) {
    let seen = api.expect(Method::GET, PODS).await;
    assert_eq!(seen.uri, format!("{PODS}?&labelSelector=sluice.dev%2Fjob%3Ddemo%2Csluice.dev%2Fattempt%3D3"));
    seen.reply(list);
}

#[tokio::test]
async fn status_shows_phase_attempt_workers_checkpoint_age_savepoint_and_conditions() {
    let (task, mut api) = run(&["status", "demo"]);
    api.get_job(&busy_job()).await;
    expect_pods_of_attempt_3(&mut api, &pods(&[("demo-3-0", true)])).await;
    let (result, out) = task.await.expect("joins");
    result.expect("shown");
    let want = "\
Name:            demo
Namespace:       ns
Phase:           Running
Desired state:   running
Attempt:         3 (restarts after failures: 2)
Workers:         1/1 ready
Parallelism:     2
Last checkpoint: 17 12s ago  s3://bucket/demo/manifests/chk-17.json
Last savepoint:  Completed (annotation n-0) 5m ago  s3://bucket/demo/savepoints/sp-uid1-1
Restored from:   s3://bucket/demo/manifests/chk-12.json
Conditions:
  TYPE                STATUS   REASON                AGE   MESSAGE
  Ready               True     Running               3m    attempt 3 is running
  CheckpointHealthy   True     CheckpointCompleted   2m
  Degraded            False    AsExpected            2d
";
    assert_eq!(out, want, "\n{out}");
    api.done().await;
}

#[tokio::test]
async fn status_as_json_carries_the_same_facts_and_forbidden_pods_read_as_unknown() {
    let (task, mut api) = run(&["status", "demo", "-o", "json"]);
    api.get_job(&busy_job()).await;
    api.expect(Method::GET, PODS).await.fail(
        403,
        "Forbidden",
        "pods is forbidden: User \"dev\" cannot list resource \"pods\"",
    );
    let (result, out) = task.await.expect("joins");
    result.expect("shown");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (v["phase"].as_str(), v["attempt"].as_u64(), v["restarts"].as_u64()),
        (Some("Running"), Some(3), Some(2))
    );
    assert_eq!(v["workers"], json!({"desired": 1, "ready": null}));
    assert_eq!(v["lastCheckpoint"]["id"], 17);
    assert_eq!(v["lastCheckpoint"]["ageSeconds"], 12);
    assert_eq!(v["lastSavepoint"]["state"], "Completed");
    assert_eq!(v["lastSavepoint"]["path"], "s3://bucket/demo/savepoints/sp-uid1-1");
    let types: Vec<&str> =
        v["conditions"].as_array().expect("conditions").iter().filter_map(|c| c["type"].as_str()).collect();
    assert_eq!(types, ["Ready", "CheckpointHealthy", "Degraded"]);
    assert_eq!(v["conditions"][0]["ageSeconds"], 180);
    api.done().await;

    // YAML says the same.
    let (task, mut api) = run(&["status", "demo", "-o", "yaml"]);
    api.get_job(&busy_job()).await;
    expect_pods_of_attempt_3(&mut api, &pods(&[("demo-3-0", false)])).await;
    let (result, out) = task.await.expect("joins");
    result.expect("shown");
    let y: Value = serde_yaml::from_str(&out).expect("YAML");
    assert_eq!(y["workers"], json!({"desired": 1, "ready": 0}));
    assert_eq!(y["phase"], "Running");
}

#[tokio::test]
async fn a_job_deleted_between_the_read_and_the_write_is_not_found_and_not_retried() {
    let (task, mut api) = run(&["suspend", "demo"]);
    api.get_job(&job(5, running(1))).await;
    api.expect(Method::PATCH, JOB).await.not_found();
    let err = task.await.expect("joins").0.expect_err("gone");
    assert_eq!(err.to_string(), "streamjob demo not found in namespace ns");
    api.done().await;
}
