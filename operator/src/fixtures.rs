//! Test fixtures: a [`Context`] over kube's mock API server (tower-test), and a verifier that
//! answers the operator's requests one by one, asserting each method and path.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, Response};
use kube::client::Body;
use std::sync::Mutex;

use sluice_crds::contract::control::{JobStatus, SavepointStatus, StopResponse};
use sluice_crds::contract::manifest::{CheckpointId, MANIFEST_VERSION, Manifest, SnapshotKind};
use sluice_storage::layout::manifest_key;
use sluice_storage::memory::MemoryStore;
use sluice_storage::{ObjectStore, SharedStore};
use tower_test::mock::{self, Handle, SendResponse};

use crate::config::Config;
use crate::context::Context;
use crate::metrics::Metrics;
use crate::runtime_client::{self, RuntimeApi};
use crate::store::FixedStore;

/// A runtime whose control endpoint returns fixed answers (or none), recording every call.
#[derive(Default)]
pub struct FakeRuntime {
    /// Answer of `GET /v1/checkpoints`.
    pub status: Option<JobStatus>,
    /// Answer of `POST /v1/savepoints` and `GET /v1/savepoints/{id}`.
    pub savepoint: Option<SavepointStatus>,
    /// Answer of `POST /v1/stop`.
    pub stop: Option<StopResponse>,
    /// Calls seen, as `METHOD path [body]`.
    pub calls: Mutex<Vec<String>>,
    /// The pod IP of each call, in order.
    pub ips: Mutex<Vec<String>>,
}

impl FakeRuntime {
    fn answer<T: Clone>(&self, call: String, pod_ip: &str, v: &Option<T>) -> Result<T, runtime_client::Error> {
        self.calls.lock().expect("lock").push(call);
        self.ips.lock().expect("lock").push(pod_ip.to_string());
        v.clone().ok_or_else(|| runtime_client::Error::Unreachable { addr: pod_ip.into(), message: "fake".into() })
    }

    /// The calls seen so far, except status polls.
    pub fn savepoint_calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").iter().filter(|c| !c.contains("/v1/checkpoints")).cloned().collect()
    }
}

#[async_trait]
impl RuntimeApi for FakeRuntime {
    async fn job_status(&self, pod_ip: &str) -> Result<JobStatus, runtime_client::Error> {
        self.answer("GET /v1/checkpoints".into(), pod_ip, &self.status)
    }

    async fn trigger_savepoint(&self, pod_ip: &str, location: &str) -> Result<SavepointStatus, runtime_client::Error> {
        self.answer(format!("POST /v1/savepoints {location}"), pod_ip, &self.savepoint)
    }

    async fn savepoint_status(&self, pod_ip: &str, id: &str) -> Result<SavepointStatus, runtime_client::Error> {
        self.answer(format!("GET /v1/savepoints/{id}"), pod_ip, &self.savepoint)
    }

    async fn stop_with_savepoint(&self, pod_ip: &str) -> Result<StopResponse, runtime_client::Error> {
        self.answer("POST /v1/stop".into(), pod_ip, &self.stop)
    }
}

/// Answers the operator's API requests in a test.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

/// One request the operator sent.
pub struct Seen {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// Parsed JSON body (Null when empty).
    pub body: serde_json::Value,
    send: SendResponse<Response<Body>>,
}

impl Seen {
    /// Answers with `json` and status 200.
    pub fn reply(self, json: serde_json::Value) {
        self.send.send_response(
            Response::builder().body(Body::from(serde_json::to_vec(&json).expect("json"))).expect("response"),
        );
    }

    /// Answers with an HTTP error status and a `Status` body.
    pub fn send_status(self, code: u16, json: serde_json::Value) {
        self.send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&json).expect("json")))
                .expect("response"),
        );
    }

    /// Answers with the request's own body (what an apply or create would return).
    pub fn echo(self) {
        let body = self.body.clone();
        self.reply(body);
    }

    /// Answers with the `Status` a real API server sends for `code`.
    pub fn fail(self, code: u16, reason: &str, message: &str) {
        self.send_status(code, status_body(code, reason, message));
    }

    /// Answers 404 NotFound (a GET of an object that does not exist).
    pub fn not_found(self) {
        self.fail(404, "NotFound", "not found");
    }

    /// Never answers (a watch that stays open): the response is kept until `held` is dropped.
    pub fn hold(self, held: &mut Vec<SendResponse<Response<Body>>>) {
        held.push(self.send);
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }
}

/// A `metav1.Status` failure body, as the API server writes it.
pub fn status_body(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    })
}

impl ApiServerVerifier {
    /// A client whose requests this verifier sees and answers.
    pub fn client() -> (kube::Client, ApiServerVerifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (kube::Client::new(service, "default"), ApiServerVerifier(handle))
    }

    /// The next request; asserts its method and that its URI starts with `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Seen {
        let seen = self.next().await.expect("the operator sent no further request");
        assert_eq!(seen.method, method, "unexpected method for {}", seen.uri);
        assert!(seen.uri.starts_with(path), "expected {method} {path}…, got {}", seen.uri);
        seen
    }

    /// The ConfigMap and Service of a relaunch, found as this job's (`owned`, a JSON child of
    /// the given kind) and applied again.
    pub async fn expect_children_reapplied(&mut self, owned: impl Fn(&str) -> serde_json::Value) {
        self.expect(Method::GET, "/api/v1/namespaces/ns/configmaps/demo-config").await.reply(owned("ConfigMap"));
        self.expect(Method::PATCH, "/api/v1/namespaces/ns/configmaps/demo-config?").await.echo();
        self.expect(Method::GET, "/api/v1/namespaces/ns/services/demo").await.reply(owned("Service"));
        self.expect(Method::PATCH, "/api/v1/namespaces/ns/services/demo?").await.echo();
    }

    /// The next request, whatever it is (`None` once the client is gone).
    pub async fn next(&mut self) -> Option<Seen> {
        let (request, send) = self.0.next_request().await?;
        let uri = request.uri().to_string();
        let method = request.method().clone();
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body =
            if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        Some(Seen { method, uri, body, send })
    }

    /// Asserts the operator sends nothing more.
    pub async fn done(&mut self) {
        let next = tokio::time::timeout(std::time::Duration::from_millis(50), self.0.next_request()).await;
        assert!(
            matches!(next, Err(_) | Ok(None)),
            "unexpected extra request: {:?}",
            next.ok().flatten().map(|(r, _)| r.uri().to_string())
        );
    }
}

/// A store holding one completed checkpoint, id 7.
pub async fn store_with_checkpoint() -> SharedStore {
    let mem = MemoryStore::new();
    let m = Manifest {
        version: MANIFEST_VERSION,
        job: "demo".into(),
        checkpoint_id: CheckpointId(7),
        kind: SnapshotKind::Checkpoint,
        triggered_at_ms: 1_700_000_000_000,
        completed_at_ms: 1_700_000_000_040,
        max_parallelism: 128,
        tasks: vec![],
        run_id: None,
        records: None,
    };
    mem.put(&manifest_key(CheckpointId(7)), Bytes::from(m.encode())).await.expect("put");
    Arc::new(mem)
}

impl Context {
    /// A context over the mock API server, with the given runtime answer and store.
    pub fn test(runtime: Option<JobStatus>, store: SharedStore) -> (Arc<Context>, ApiServerVerifier) {
        let (ctx, api, _) = Context::test_with(FakeRuntime { status: runtime, ..FakeRuntime::default() }, store);
        (ctx, api)
    }

    /// A context over the mock API server with a fake runtime the test can inspect.
    pub fn test_with(runtime: FakeRuntime, store: SharedStore) -> (Arc<Context>, ApiServerVerifier, Arc<FakeRuntime>) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let runtime = Arc::new(runtime);
        let ctx = Context::new(
            client,
            Config::test(),
            Arc::new(Metrics::default()),
            runtime.clone(),
            Arc::new(FixedStore(store)),
            Arc::new(crate::health::Health::default()),
        );
        (Arc::new(ctx), ApiServerVerifier(handle), runtime)
    }
}
