//! A mock API server for the commands' tests (tower-test, as the operator's fixtures): the
//! test answers each request as a real API server would — the object, 404 NotFound, 409
//! Conflict, a stale read — after asserting its method, path and body.

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use crate::Session;

/// Path of the test job.
pub const JOB: &str = "/apis/sluice.dev/v1alpha1/namespaces/ns/streamjobs/demo";
/// Path of the namespace's pods.
pub const PODS: &str = "/api/v1/namespaces/ns/pods";

/// A session over the mock server (namespace `ns`, nonce `n-1`, "now" fixed), and its handle.
pub fn session() -> (Session, ApiServer) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "ns");
    let now = "2026-12-01T06:00:00Z".parse().expect("time");
    (Session { client, namespace: "ns".into(), now, nonce: "n-1".into() }, ApiServer(handle))
}

/// Answers the plugin's requests.
pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// One request the plugin sent.
pub struct Seen {
    /// Path and query.
    pub uri: String,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Parsed JSON body (Null when empty).
    pub body: Value,
    send: SendResponse<Response<Body>>,
}

impl Seen {
    /// Answers 200 with `json`.
    pub fn reply(self, json: &Value) {
        self.send.send_response(Response::new(Body::from(serde_json::to_vec(json).expect("json"))));
    }

    /// Answers 200 with plain text (a log).
    pub fn reply_text(self, text: &str) {
        self.send.send_response(Response::new(Body::from(text.as_bytes().to_vec())));
    }

    /// Answers with the `Status` a real API server sends for `code`.
    pub fn fail(self, code: u16, reason: &str, message: &str) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code
        });
        let body = Body::from(serde_json::to_vec(&status).expect("json"));
        self.send.send_response(Response::builder().status(code).body(body).expect("response"));
    }

    /// 404 for the test job, as the API server words it.
    pub fn not_found(self) {
        self.fail(404, "NotFound", "streamjobs.sluice.dev \"demo\" not found");
    }

    /// 409 for a write carrying an old `resourceVersion`.
    pub fn conflict(self) {
        self.fail(
            409,
            "Conflict",
            "Operation cannot be fulfilled on streamjobs.sluice.dev \"demo\": the object has been modified; \
             please apply your changes to the latest version and try again",
        );
    }
}

impl ApiServer {
    /// The next request; asserts its method and that its URI starts with `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Seen {
        let (request, send) = self.0.next_request().await.expect("the plugin sent no further request");
        let uri = request.uri().to_string();
        assert_eq!(request.method(), method, "unexpected method for {uri}");
        assert!(uri.starts_with(path), "expected {method} {path}…, got {uri}");
        let content_type =
            request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        Seen { uri, content_type, body, send }
    }

    /// The next request is a GET of the test job; answers `job`.
    pub async fn get_job(&mut self, job: &Value) {
        let seen = self.expect(Method::GET, JOB).await;
        assert_eq!(seen.uri, JOB, "a plain GET");
        seen.reply(job);
    }

    /// Asserts the plugin sends nothing more.
    pub async fn done(&mut self) {
        let next = tokio::time::timeout(std::time::Duration::from_millis(50), self.0.next_request()).await;
        assert!(
            matches!(next, Err(_) | Ok(None)),
            "unexpected extra request: {:?}",
            next.ok().flatten().map(|(r, _)| r.uri().to_string())
        );
    }
}

/// The test job `ns/demo` at `resourceVersion` `rv`, with `status`.
pub fn job(rv: u32, status: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "StreamJob",
        "metadata": {"name": "demo", "namespace": "ns", "uid": "uid-1", "generation": 1, "resourceVersion": rv.to_string()},
        "spec": {
            "image": "sluice-runtime:dev",
            "parallelism": 2,
            "upgradeMode": "savepoint",
            "checkpointing": {"interval": "5s", "storage": {"uri": "s3://bucket/demo"}},
            "pipeline": {
                "nodes": [{"id": "numbers", "generator": {}}, {"id": "print", "stdout": {}}],
                "edges": [{"from": "numbers", "to": "print"}]
            }
        },
        "status": status
    })
}

/// A running job's status at `attempt`.
pub fn running(attempt: u32) -> Value {
    json!({"phase": "Running", "attempt": attempt, "restarts": attempt - 1, "parallelism": 2})
}

/// A pod list of runtime pods `(name, ready)`.
pub fn pods(items: &[(&str, bool)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(name, ready)| {
            json!({
                "metadata": {"name": name, "namespace": "ns"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if *ready { "True" } else { "False" }}]}
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": items})
}
