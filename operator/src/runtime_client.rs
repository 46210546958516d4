//! The only module that knows the runtime's URLs: calls a runtime pod's control endpoint.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sluice_crds::contract::control::{
    CHECKPOINTS, CONTROL_PORT, CONTROL_VERSION, JobStatus, SAVEPOINTS, STOP, SavepointRequest, SavepointStatus,
    StopRequest, StopResponse, savepoint_path,
};

/// A failed call to a runtime.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No answer in time, or the connection failed (retryable).
    #[error("runtime at {addr} unreachable: {message}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The runtime answered with an error status.
    #[error("runtime at {addr} answered {status}: {body}")]
    Status {
        /// host:port.
        addr: String,
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// The answer is not the documented JSON (a version mismatch: not retryable).
    #[error("runtime at {addr} sent an unreadable answer: {message}")]
    Decode {
        /// host:port.
        addr: String,
        /// Parse error.
        message: String,
    },
}

impl Error {
    /// True when the runtime answered 404 (e.g. a savepoint id it does not know).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Status { status: 404, .. })
    }
}

/// What the operator asks a runtime.
#[async_trait]
pub trait RuntimeApi: Send + Sync {
    /// `GET /v1/checkpoints` on the pod at `pod_ip`.
    async fn job_status(&self, pod_ip: &str) -> Result<JobStatus, Error>;
    /// `POST /v1/savepoints` with `location`: triggers a savepoint, returns its id.
    async fn trigger_savepoint(&self, pod_ip: &str, location: &str) -> Result<SavepointStatus, Error>;
    /// `GET /v1/savepoints/{id}`.
    async fn savepoint_status(&self, pod_ip: &str, id: &str) -> Result<SavepointStatus, Error>;
    /// `POST /v1/stop {savepoint: true}`: resolves once the job stopped; returns the savepoint URI.
    async fn stop_with_savepoint(&self, pod_ip: &str) -> Result<StopResponse, Error>;
}

/// A runtime's answer, passed on as it came ([`HttpRuntime::fetch`]).
#[derive(Debug)]
pub struct Fetched {
    /// HTTP status.
    pub status: http::StatusCode,
    /// `Content-Type`, when the runtime sent one.
    pub content_type: Option<http::HeaderValue>,
    /// The body.
    pub body: Bytes,
}

/// Plain HTTP/1 client of the control endpoint.
pub struct HttpRuntime {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: std::time::Duration,
    stop_timeout: std::time::Duration,
    port: u16,
}

impl HttpRuntime {
    /// A client whose calls give up after `timeout` (a stop-with-savepoint after `stop_timeout`).
    pub fn new(timeout: std::time::Duration, stop_timeout: std::time::Duration) -> Self {
        HttpRuntime {
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout,
            stop_timeout,
            port: CONTROL_PORT,
        }
    }

    /// The same client talking to `port` instead of the runtime's control port (tests).
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    fn addr(&self, pod_ip: &str) -> String {
        if pod_ip.contains(':') { format!("[{pod_ip}]:{}", self.port) } else { format!("{pod_ip}:{}", self.port) }
    }

    /// `GET path` on the pod at `pod_ip`, whatever the answer's status: its status, content
    /// type and body (at most `limit` bytes; a longer body is an error). The job page's proxy.
    pub async fn fetch(&self, pod_ip: &str, path: &str, limit: usize) -> Result<Fetched, Error> {
        let addr = self.addr(pod_ip);
        let unreachable = |message: String| Error::Unreachable { addr: addr.clone(), message };
        let request = http::Request::builder()
            .method(http::Method::GET)
            .uri(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(e.to_string()))?;
        let call = async {
            let resp = self.client.request(request).await.map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let content_type = resp.headers().get(http::header::CONTENT_TYPE).cloned();
            let body = http_body_util::Limited::new(resp.into_body(), limit)
                .collect()
                .await
                .map_err(|e| unreachable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, Error>(Fetched { status, content_type, body })
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| unreachable("timed out".into()))?
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        pod_ip: &str,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: std::time::Duration,
    ) -> Result<T, Error> {
        let addr = self.addr(pod_ip);
        let unreachable = |message: String| Error::Unreachable { addr: addr.clone(), message };
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| unreachable(e.to_string()))?;
        let call = async {
            let resp = self.client.request(request).await.map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let body = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) =
            tokio::time::timeout(timeout, call).await.map_err(|_| unreachable("timed out".into()))??;
        if !status.is_success() {
            return Err(Error::Status {
                addr,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::Decode { addr, message: e.to_string() })
    }
}

fn json<T: serde::Serialize>(v: &T) -> Option<Vec<u8>> {
    // Plain control documents always serialize.
    Some(serde_json::to_vec(v).unwrap_or_default())
}

#[async_trait]
impl RuntimeApi for HttpRuntime {
    async fn job_status(&self, pod_ip: &str) -> Result<JobStatus, Error> {
        self.call(pod_ip, http::Method::GET, CHECKPOINTS, None, self.timeout).await
    }

    async fn trigger_savepoint(&self, pod_ip: &str, location: &str) -> Result<SavepointStatus, Error> {
        let req = SavepointRequest { version: CONTROL_VERSION, location: Some(location.to_string()) };
        self.call(pod_ip, http::Method::POST, SAVEPOINTS, json(&req), self.timeout).await
    }

    async fn savepoint_status(&self, pod_ip: &str, id: &str) -> Result<SavepointStatus, Error> {
        self.call(pod_ip, http::Method::GET, &savepoint_path(id), None, self.timeout).await
    }

    async fn stop_with_savepoint(&self, pod_ip: &str) -> Result<StopResponse, Error> {
        let req = StopRequest { version: CONTROL_VERSION, savepoint: true };
        self.call(pod_ip, http::Method::POST, STOP, json(&req), self.stop_timeout).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Json;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use sluice_crds::contract::control::{JobState, SavepointState};

    use super::*;

    #[tokio::test]
    async fn triggers_follows_and_stops_with_a_savepoint() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("addr").port();
        let app = axum::Router::new()
            .route(
                SAVEPOINTS,
                post(|Json(req): Json<SavepointRequest>| async move {
                    let loc = req.location.unwrap_or_default();
                    (
                        axum::http::StatusCode::ACCEPTED,
                        Json(serde_json::json!({"version": 1, "id": format!("sp-{loc}"), "state": "pending"})),
                    )
                }),
            )
            .route(
                &format!("{SAVEPOINTS}/{{id}}"),
                get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
                    if id == "sp-x" {
                        Json(serde_json::json!({"id": id, "state": "completed", "location": "s3://b/j/savepoints/x"}))
                            .into_response()
                    } else {
                        (axum::http::StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no savepoint"})))
                            .into_response()
                    }
                }),
            )
            .route(
                STOP,
                post(|Json(req): Json<StopRequest>| async move {
                    assert!(req.savepoint);
                    Json(serde_json::json!({"savepoint": "s3://b/j/savepoints/stop-j-1"}))
                }),
            );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = HttpRuntime { port, ..HttpRuntime::new(Duration::from_secs(2), Duration::from_secs(2)) };
        let t = client.trigger_savepoint("127.0.0.1", "x").await.expect("triggers");
        assert_eq!((t.id.as_str(), t.state), ("sp-x", SavepointState::Pending));
        let s = client.savepoint_status("127.0.0.1", "sp-x").await.expect("status");
        assert_eq!(s.location.as_deref(), Some("s3://b/j/savepoints/x"));
        let missing = client.savepoint_status("127.0.0.1", "sp-y").await.expect_err("unknown id");
        assert!(missing.is_not_found(), "{missing}");
        let stop = client.stop_with_savepoint("127.0.0.1").await.expect("stops");
        assert_eq!(stop.savepoint.as_deref(), Some("s3://b/j/savepoints/stop-j-1"));
        server.abort();
    }

    #[tokio::test]
    async fn reads_the_job_status_from_a_control_endpoint_and_reports_a_dead_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("addr").port();
        let app = axum::Router::new().route(
            CHECKPOINTS,
            get(|| async {
                Json(serde_json::json!({"version": 1, "runId": "demo-1", "state": "running", "completed": 3}))
            }),
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = HttpRuntime { port, ..HttpRuntime::new(Duration::from_secs(2), Duration::from_secs(2)) };
        let status = client.job_status("127.0.0.1").await.expect("answers");
        assert_eq!((status.state, status.completed, status.run_id.as_str()), (JobState::Running, 3, "demo-1"));
        server.abort();
        let _ = server.await;
        let err = client.job_status("127.0.0.1").await.expect_err("nobody listens");
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    }
}
