//! The job page through the operator, served on a real socket, against a mock API server that
//! answers as a real one does (pods of several attempts, a job that is gone, a suspend that
//! takes a few reads) and a stand-in runtime on loopback that records what it was asked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{JobPages, router};
use crate::build::test_job::job;
use crate::fixtures::ApiServerVerifier;
use crate::runtime_client::HttpRuntime;

const PODS: &str = "/api/v1/namespaces/ns/pods?";
const JOB: &str = "/apis/sluice.dev/v1alpha1/namespaces/ns/streamjobs/demo";

/// A stand-in runtime: answers `/` with HTML and the API paths with JSON, and records paths.
async fn fake_runtime() -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |uri: http::Uri| {
        let record = record.clone();
        async move {
            record.lock().expect("lock").push(uri.path().to_string());
            match uri.path() {
                "/" => {
                    ([(http::header::CONTENT_TYPE, "text/html; charset=utf-8")], "<html>job page</html>".to_string())
                }
                p => ([(http::header::CONTENT_TYPE, "application/json")], json!({ "path": p }).to_string()),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, seen)
}

/// The operator's job-page routes on a loopback port, over the mock API server.
async fn serve(runtime_port: u16, tweak: impl FnOnce(&mut JobPages)) -> (std::net::SocketAddr, ApiServerVerifier) {
    let (client, api) = ApiServerVerifier::client();
    let runtime = HttpRuntime::new(Duration::from_secs(2), Duration::from_secs(2)).with_port(runtime_port);
    let mut pages = JobPages {
        client,
        runtime: Arc::new(runtime),
        namespace: None,
        poll: Duration::from_millis(5),
        stop_timeout: Duration::from_secs(5),
        read_only: false,
    };
    tweak(&mut pages);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router(pages)).await });
    (addr, api)
}

/// One HTTP/1.1 exchange: (status, headers and body as text).
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: impl Into<String>,
    body: Option<(&str, &str)>,
) -> (u16, String) {
    let path: String = path.into();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let (ct, text) = body.unwrap_or(("", ""));
    let ct = if ct.is_empty() { String::new() } else { format!("Content-Type: {ct}\r\n") };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{text}",
        text.len()
    );
    s.write_all(head.as_bytes()).await.expect("writes");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("reads");
    let code = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out)
}

fn body_json(answer: &str) -> serde_json::Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

fn pod(attempt: u32, phase: &str, ip: &str) -> serde_json::Value {
    json!({
        "metadata": {"name": format!("demo-{attempt}-0"), "namespace": "ns",
            "labels": {"sluice.dev/job": "demo", "sluice.dev/attempt": attempt.to_string()}},
        "status": {"phase": phase, "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn pods(items: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

/// The test job as JSON with `status` and `spec.state` set.
fn job_json(state: &str, status: serde_json::Value) -> serde_json::Value {
    let mut j = serde_json::to_value(job()).expect("json");
    j["spec"]["state"] = json!(state);
    j["status"] = status;
    j
}

fn running() -> serde_json::Value {
    job_json("running", json!({"phase": "Running", "attempt": 2}))
}

#[tokio::test]
async fn the_page_of_a_job_of_several_workers_comes_from_worker_zero() {
    let (port, seen) = fake_runtime().await;
    let (addr, mut api) = serve(port, |_| {}).await;
    let request = tokio::spawn(call(addr, "GET", "/jobs/ns/demo/v1/job", None));
    // Worker 1 is listed first and runs on an address nobody serves: it serves no page.
    let mut member = pod(2, "Running", "10.255.0.3");
    member["metadata"]["name"] = json!("demo-2-1");
    api.expect(Method::GET, PODS).await.reply(pods(vec![member, pod(2, "Running", "127.0.0.1")]));
    let (code, answer) = request.await.expect("joins");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(*seen.lock().expect("lock"), ["/v1/job"]);
    api.done().await;
}

#[tokio::test]
async fn reads_go_to_the_running_pod_of_the_current_attempt_and_come_back_as_they_were() {
    let (port, seen) = fake_runtime().await;
    let (addr, mut api) = serve(port, |_| {}).await;
    for (path, upstream) in [
        ("/jobs/ns/demo/", "/"),
        ("/jobs/ns/demo/v1/job", "/v1/job"),
        ("/jobs/ns/demo/v1/checkpoints/history", "/v1/checkpoints/history"),
    ] {
        let request = tokio::spawn(call(addr, "GET", path, None));
        // Attempt 1 failed on an address nobody serves; attempt 2 runs on loopback; a pod of
        // attempt 2 being deleted is skipped.
        let mut leaving = pod(2, "Running", "10.255.0.1");
        leaving["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
        let list = api.expect(Method::GET, PODS).await;
        assert!(list.uri.contains("labelSelector=sluice.dev%2Fjob%3Ddemo"), "{}", list.uri);
        list.reply(pods(vec![pod(1, "Failed", "10.255.0.2"), leaving, pod(2, "Running", "127.0.0.1")]));
        let (code, answer) = request.await.expect("joins");
        assert_eq!(code, 200, "{answer}");
        if upstream == "/" {
            assert!(answer.contains("text/html") && answer.ends_with("<html>job page</html>"), "{answer}");
        } else {
            assert_eq!(body_json(&answer)["path"], upstream, "{answer}");
        }
        assert!(answer.to_ascii_lowercase().contains("cache-control: no-store"), "{answer}");
    }
    assert_eq!(*seen.lock().expect("lock"), ["/", "/v1/job", "/v1/checkpoints/history"]);
    api.done().await;
}

#[tokio::test]
async fn the_page_path_without_a_slash_redirects_so_its_relative_urls_resolve_under_the_job() {
    let (addr, mut api) = serve(1, |_| {}).await;
    let (code, answer) = call(addr, "GET", "/jobs/ns/demo", None).await;
    assert_eq!(code, 308, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("location: /jobs/ns/demo/\r\n"), "{answer}");
    api.done().await;
}

#[tokio::test]
async fn a_job_without_a_running_pod_or_without_an_object_is_named_in_the_refusal() {
    let (addr, mut api) = serve(1, |_| {}).await;
    let request = tokio::spawn(call(addr, "GET", "/jobs/ns/demo/v1/job", None));
    api.expect(Method::GET, PODS).await.reply(pods(vec![pod(3, "Pending", "")]));
    api.expect(Method::GET, JOB).await.reply(job_json("suspended", json!({"phase": "Suspended", "attempt": 3})));
    let (code, answer) = request.await.expect("joins");
    assert_eq!(code, 503, "{answer}");
    assert_eq!(body_json(&answer)["error"], "streamjob ns/demo has no running runtime pod (phase Suspended)");

    let request = tokio::spawn(call(addr, "GET", "/jobs/ns/demo/", None));
    api.expect(Method::GET, PODS).await.reply(pods(vec![]));
    api.expect(Method::GET, JOB).await.not_found();
    let (code, answer) = request.await.expect("joins");
    assert_eq!(code, 404, "{answer}");
    assert_eq!(body_json(&answer)["error"], "streamjob demo not found in namespace ns");
    api.done().await;
}

#[tokio::test]
async fn a_runtime_that_does_not_answer_is_a_bad_gateway_naming_the_job() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("addr").port();
    let (addr, mut api) = serve(port, |_| {}).await;
    let request = tokio::spawn(call(addr, "GET", "/jobs/ns/demo/v1/job", None));
    api.expect(Method::GET, PODS).await.reply(pods(vec![pod(1, "Running", "127.0.0.1")]));
    let (code, answer) = request.await.expect("joins");
    assert_eq!(code, 502, "{answer}");
    assert!(body_json(&answer)["error"].as_str().expect("error").starts_with("streamjob ns/demo: runtime at"));
    api.done().await;
}

#[tokio::test]
async fn the_savepoint_button_sets_the_annotation_and_follows_it_in_status() {
    let (addr, mut api) = serve(1, |_| {}).await;
    let request = tokio::spawn(call(addr, "POST", "/jobs/ns/demo/v1/savepoints", Some(("application/json", "{}"))));
    api.expect(Method::GET, JOB).await.reply(running());
    let patch = api.expect(Method::PATCH, JOB).await;
    assert!(patch.uri.contains("fieldManager=sluice-job-page"), "{}", patch.uri);
    let nonce = patch.body["metadata"]["annotations"]["sluice.dev/savepoint"].as_str().expect("nonce").to_string();
    assert_eq!(patch.body, json!({"metadata": {"annotations": {"sluice.dev/savepoint": nonce}}}));
    patch.reply(running());
    let (code, answer) = request.await.expect("joins");
    assert_eq!(code, 202, "{answer}");
    assert_eq!(body_json(&answer), json!({"version": 1, "id": nonce, "state": "pending"}));

    let last = |state: &str, extra: serde_json::Value| {
        let mut l = json!({"value": nonce, "trigger": "Annotation", "state": state});
        l.as_object_mut().expect("object").extend(extra.as_object().cloned().unwrap_or_default());
        job_json(
            "running",
            json!({"phase": "Running", "attempt": 2, "savepoints": {"observedAnnotation": nonce, "last": l}}),
        )
    };
    let path = format!("/jobs/ns/demo/v1/savepoints/{nonce}");
    let answers = [
        (last("InProgress", json!({"requestId": "sp-1"})), json!({"version": 1, "id": nonce, "state": "pending"})),
        (
            last("Completed", json!({"path": "s3://bucket/demo/savepoints/sp-1"})),
            json!({"version": 1, "id": nonce, "state": "completed", "location": "s3://bucket/demo/savepoints/sp-1"}),
        ),
        (
            last("Failed", json!({"error": "the runtime does not answer"})),
            json!({"version": 1, "id": nonce, "state": "failed", "error": "the runtime does not answer"}),
        ),
    ];
    for (status, want) in answers {
        let request = tokio::spawn(call(addr, "GET", path.clone(), None));
        api.expect(Method::GET, JOB).await.reply(status);
        let (code, answer) = request.await.expect("joins");
        assert_eq!((code, body_json(&answer)), (200, want));
    }
    // Another value took the annotation before the operator acted on this one.
    let request = tokio::spawn(call(addr, "GET", path.clone(), None));
    let mut other = running();
    other["metadata"]["annotations"] = json!({"sluice.dev/savepoint": "manual-9"});
    api.expect(Method::GET, JOB).await.reply(other);
    let (_, answer) = request.await.expect("joins");
    let answer = body_json(&answer);
    assert_eq!(answer["state"], "failed");
    assert_eq!(answer["error"], "superseded: the sluice.dev/savepoint annotation now holds \"manual-9\"");
    api.done().await;
}

#[tokio::test]
async fn bad_savepoint_and_stop_requests_are_refused_before_the_job_is_touched() {
    let (addr, mut api) = serve(1, |_| {}).await;
    let cases = [
        ("/jobs/ns/demo/v1/savepoints", ("text/plain", "{}"), 415, "Content-Type: application/json"),
        ("/jobs/ns/demo/v1/savepoints", ("application/json", r#"{"location":"s3://x/y"}"#), 400, "location:"),
        ("/jobs/ns/demo/v1/savepoints", ("application/json", r#"{"where":1}"#), 400, "unknown field `where`"),
        ("/jobs/ns/demo/v1/stop", ("application/json", r#"{"savepoint":false}"#), 400, "savepoint:"),
    ];
    for (path, body, want, says) in cases {
        let (code, answer) = call(addr, "POST", path, Some(body)).await;
        assert_eq!(code, want, "{answer}");
        assert!(body_json(&answer)["error"].as_str().expect("error").contains(says), "{answer}");
    }
    api.done().await;

    // Not running: nothing is written.
    let request = tokio::spawn(call(addr, "POST", "/jobs/ns/demo/v1/savepoints", Some(("application/json", "{}"))));
    api.expect(Method::GET, JOB).await.reply(job_json("running", json!({"phase": "Recovering", "attempt": 2})));
    let (code, answer) = request.await.expect("joins");
    assert_eq!(
        (code, body_json(&answer)["error"].as_str()),
        (409, Some("streamjob ns/demo is Recovering, not Running"))
    );
    let request =
        tokio::spawn(call(addr, "POST", "/jobs/ns/demo/v1/stop", Some(("application/json", r#"{"savepoint":true}"#))));
    api.expect(Method::GET, JOB).await.reply(job_json("suspended", json!({"phase": "Suspending", "attempt": 2})));
    let (code, answer) = request.await.expect("joins");
    assert_eq!((code, body_json(&answer)["error"].as_str()), (409, Some("streamjob ns/demo is already suspended")));
    api.done().await;
}

#[tokio::test]
async fn a_read_only_page_or_a_job_of_another_namespace_is_refused_without_an_api_call() {
    let (addr, mut api) = serve(1, |p| {
        p.read_only = true;
        p.namespace = Some("ns".into());
    })
    .await;
    for path in ["/jobs/ns/demo/v1/savepoints", "/jobs/ns/demo/v1/stop"] {
        let (code, answer) = call(addr, "POST", path, Some(("application/json", r#"{"savepoint":true}"#))).await;
        assert_eq!(code, 403, "{answer}");
    }
    let (code, answer) = call(addr, "GET", "/jobs/other/demo/v1/job", None).await;
    assert_eq!(code, 404, "{answer}");
    assert!(body_json(&answer)["error"].as_str().expect("error").contains("namespace ns only"), "{answer}");
    api.done().await;
}

#[tokio::test]
async fn the_stop_button_suspends_the_job_and_answers_with_the_savepoint_it_resumes_from() {
    let (addr, mut api) = serve(1, |_| {}).await;
    let body = Some(("application/json", r#"{"savepoint":true}"#));
    let request = tokio::spawn(call(addr, "POST", "/jobs/ns/demo/v1/stop", body));
    let before = json!({"phase": "Running", "attempt": 2, "resumeFrom": "s3://bucket/demo/savepoints/stop-old"});
    api.expect(Method::GET, JOB).await.reply(job_json("running", before.clone()));
    let patch = api.expect(Method::PATCH, JOB).await;
    assert_eq!(patch.body, json!({"spec": {"state": "suspended"}}));
    patch.reply(job_json("suspended", before.clone()));
    // The operator has not acted yet, then it stops the job.
    api.expect(Method::GET, JOB).await.reply(job_json("suspended", before));
    api.expect(Method::GET, JOB).await.reply(job_json("suspended", json!({"phase": "Suspending", "attempt": 2})));
    let done = json!({"phase": "Suspended", "attempt": 2, "resumeFrom": "s3://bucket/demo/savepoints/stop-demo-2"});
    api.expect(Method::GET, JOB).await.reply(job_json("suspended", done));
    let (code, answer) = request.await.expect("joins");
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        body_json(&answer),
        json!({"version": 1, "stopped": "savepoint", "savepoint": "s3://bucket/demo/savepoints/stop-demo-2"})
    );
    api.done().await;

    // Resumed by someone else while waiting: said, not waited out.
    let request = tokio::spawn(call(addr, "POST", "/jobs/ns/demo/v1/stop", body));
    api.expect(Method::GET, JOB).await.reply(running());
    api.expect(Method::PATCH, JOB).await.reply(running());
    api.expect(Method::GET, JOB).await.reply(running());
    let (code, answer) = request.await.expect("joins");
    assert_eq!(
        (code, body_json(&answer)["error"].as_str()),
        (409, Some("streamjob ns/demo was resumed while stopping"))
    );
    api.done().await;
}
