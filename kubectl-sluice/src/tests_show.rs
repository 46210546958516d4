//! `checkpoints` and `logs` against the mock API server.

use http::Method;
use serde_json::{Value, json};

use crate::mock::{JOB, PODS, job, pods, running};
use crate::tests::{busy_job, expect_pods_of_attempt_3, run};

#[tokio::test]
async fn checkpoints_lists_what_the_status_holds_and_where_the_rest_is() {
    let (task, mut api) = run(&["checkpoints", "demo"]);
    api.get_job(&busy_job()).await;
    let (result, out) = task.await.expect("joins");
    result.expect("shown");
    let want = "\
KIND         ID               STATE       AGE   PATH
checkpoint   17               Completed   12s   s3://bucket/demo/manifests/chk-17.json
savepoint    annotation n-0   Completed   5m    s3://bucket/demo/savepoints/sp-uid1-1
The status keeps only the latest checkpoint. Every retained checkpoint is under s3://bucket/demo
(manifests/chk-<id>.json, savepoints under savepoints/)
and the running job lists its last 20: kubectl -n ns exec demo-3-0 -c runtime -- sluice-runtime checkpoints
";
    assert_eq!(out, want, "\n{out}");
    api.done().await;

    let (task, mut api) = run(&["checkpoints", "demo", "-o", "json"]);
    api.get_job(&busy_job()).await;
    let (result, out) = task.await.expect("joins");
    result.expect("shown");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["storage"], "s3://bucket/demo");
    assert_eq!(v["latestCheckpoint"]["path"], "s3://bucket/demo/manifests/chk-17.json");
    assert_eq!(v["lastSavepoint"], Value::Null, "the last savepoint is the history's first: listed once");
    assert_eq!(v["savepointHistory"].as_array().map(Vec::len), Some(1));
    api.done().await;
}

#[tokio::test]
async fn checkpoints_of_a_job_with_none_says_so_and_where_to_look() {
    let (task, mut api) = run(&["checkpoints", "demo"]);
    api.get_job(&job(3, json!({"phase": "Deploying", "attempt": 1}))).await;
    let (result, out) = task.await.expect("joins");
    result.expect("shown");
    assert!(out.starts_with("streamjob demo has no completed checkpoint or savepoint in its status yet\n"), "{out}");
    assert!(out.contains("under s3://bucket/demo"), "{out}");
    api.done().await;

    let mut stateless = job(3, running(1));
    stateless["spec"].as_object_mut().expect("spec").remove("checkpointing");
    stateless["spec"]["upgradeMode"] = json!("stateless");
    let (task, mut api) = run(&["checkpoints", "demo"]);
    api.get_job(&stateless).await;
    let (result, out) = task.await.expect("joins");
    result.expect("shown");
    assert_eq!(out, "streamjob demo has checkpointing off (spec.checkpointing is not set): it keeps no checkpoints\n");
    api.done().await;
}

#[tokio::test]
async fn logs_finds_the_current_attempts_runtime_pods_by_the_operators_labels_and_streams_them() {
    let (task, mut api) = run(&["logs", "demo", "-f", "--tail", "10"]);
    api.get_job(&busy_job()).await;
    expect_pods_of_attempt_3(&mut api, &pods(&[("demo-3-0", true)])).await;
    let log = api.expect(Method::GET, &format!("{PODS}/demo-3-0/log?")).await;
    for q in ["container=runtime", "follow=true", "tailLines=10"] {
        assert!(log.uri.contains(q), "{q} in {}", log.uri);
    }
    log.reply_text("checkpoint 17 completed\ncheckpoint 18 completed\n");
    // Following the job: its pods ended because it finished.
    api.get_job(&job(4, json!({"phase": "Finished", "attempt": 3}))).await;
    let (result, out) = task.await.expect("joins");
    result.expect("streamed");
    assert_eq!(out, "checkpoint 17 completed\ncheckpoint 18 completed\n--- streamjob demo is Finished\n");
    api.done().await;
}

#[tokio::test]
async fn logs_follow_the_job_into_its_next_attempt_once_its_pods_started() {
    let (task, mut api) = run(&["logs", "demo", "-f", "--tail", "5", "--poll-interval", "1ms"]);
    api.get_job(&busy_job()).await;
    expect_pods_of_attempt_3(&mut api, &pods(&[("demo-3-0", true)])).await;
    api.expect(Method::GET, &format!("{PODS}/demo-3-0/log?")).await.reply_text("attempt 3 says hello\n");
    // The pod died: the operator is recovering, then launches attempt 4, whose pod is pending
    // first (no log to read yet), then runs.
    api.get_job(&job(5, json!({"phase": "Recovering", "attempt": 3}))).await;
    let failed = json!({"phase": "Deploying", "attempt": 4, "error": "pod demo-3-0 exited with code 137"});
    api.get_job(&job(6, failed.clone())).await;
    let attempt_4 = |phase: &str| {
        let mut list = pods(&[("demo-4-0", false)]);
        list["items"][0]["status"]["phase"] = json!(phase);
        list
    };
    let seen = api.expect(Method::GET, PODS).await;
    assert!(seen.uri.ends_with("sluice.dev%2Fattempt%3D4"), "{}", seen.uri);
    seen.reply(&attempt_4("Pending"));
    api.get_job(&job(7, failed)).await;
    api.expect(Method::GET, PODS).await.reply(&attempt_4("Running"));
    let log = api.expect(Method::GET, &format!("{PODS}/demo-4-0/log?")).await;
    assert!(log.uri.contains("follow=true") && !log.uri.contains("tailLines"), "from its first line: {}", log.uri);
    log.reply_text("attempt 4 restored checkpoint 17\n");
    api.get_job(&job(8, json!({"phase": "Failed", "attempt": 4}))).await;
    let (result, out) = task.await.expect("joins");
    result.expect("streamed");
    let want = "attempt 3 says hello
--- attempt 4 of streamjob demo (Deploying) after: pod demo-3-0 exited with code 137
attempt 4 restored checkpoint 17
--- streamjob demo is Failed
";
    assert_eq!(out, want);
    api.done().await;
}

#[tokio::test]
async fn logs_of_several_workers_are_prefixed_with_their_pod_and_another_container_can_be_chosen() {
    let (task, mut api) = run(&["logs", "demo", "-c", "sidecar"]);
    api.get_job(&busy_job()).await;
    expect_pods_of_attempt_3(&mut api, &pods(&[("demo-3-1", true), ("demo-3-0", true)])).await;
    for pod in ["demo-3-0", "demo-3-1"] {
        let log = api.expect(Method::GET, &format!("{PODS}/{pod}/log?")).await;
        assert!(log.uri.contains("container=sidecar") && !log.uri.contains("follow"), "{}", log.uri);
        log.reply_text(&format!("hello from {pod}\n"));
    }
    let (result, out) = task.await.expect("joins");
    result.expect("streamed");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["[demo-3-0] hello from demo-3-0", "[demo-3-1] hello from demo-3-1"]);
    api.done().await;
}

#[tokio::test]
async fn logs_of_a_job_without_pods_names_its_phase() {
    let (task, mut api) = run(&["logs", "demo"]);
    api.get_job(&job(4, json!({"phase": "Suspended", "attempt": 2}))).await;
    let seen = api.expect(Method::GET, PODS).await;
    seen.reply(&pods(&[]));
    let err = task.await.expect("joins").0.expect_err("no pods");
    assert_eq!(err.to_string(), "streamjob demo in namespace ns has no runtime pod of attempt 2 (phase Suspended)");
    assert_eq!(JOB, "/apis/sluice.dev/v1alpha1/namespaces/ns/streamjobs/demo");
    api.done().await;
}
