//! The only module that knows the runtime's URLs: calls a runtime pod's control endpoint.

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sluice_crds::contract::control::{CHECKPOINTS, CONTROL_PORT, JobStatus};

/// A failed call to a runtime.
#[derive(Debug, thiserror::Error)]
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

/// What the operator asks a runtime.
#[async_trait]
pub trait RuntimeApi: Send + Sync {
    /// `GET /v1/checkpoints` on the pod at `pod_ip`.
    async fn job_status(&self, pod_ip: &str) -> Result<JobStatus, Error>;
}

/// Plain HTTP/1 client of the control endpoint.
pub struct HttpRuntime {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: std::time::Duration,
    port: u16,
}

impl HttpRuntime {
    /// A client whose calls give up after `timeout`.
    pub fn new(timeout: std::time::Duration) -> Self {
        HttpRuntime { client: Client::builder(TokioExecutor::new()).build_http(), timeout, port: CONTROL_PORT }
    }
}

#[async_trait]
impl RuntimeApi for HttpRuntime {
    async fn job_status(&self, pod_ip: &str) -> Result<JobStatus, Error> {
        let addr =
            if pod_ip.contains(':') { format!("[{pod_ip}]:{}", self.port) } else { format!("{pod_ip}:{}", self.port) };
        let unreachable = |message: String| Error::Unreachable { addr: addr.clone(), message };
        let uri: http::Uri = format!("http://{addr}{CHECKPOINTS}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| unreachable(e.to_string()))?;
        let call = async {
            let resp = self.client.get(uri).await.map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let body = resp.into_body().collect().await.map_err(|e| unreachable(e.to_string()))?.to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) =
            tokio::time::timeout(self.timeout, call).await.map_err(|_| unreachable("timed out".into()))??;
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

#[cfg(test)]
mod tests {
    use axum::Json;
    use axum::routing::get;
    use sluice_crds::contract::control::JobState;

    use super::*;

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
        let client = HttpRuntime { port, ..HttpRuntime::new(std::time::Duration::from_secs(2)) };
        let status = client.job_status("127.0.0.1").await.expect("answers");
        assert_eq!((status.state, status.completed, status.run_id.as_str()), (JobState::Running, 3, "demo-1"));
        server.abort();
        let _ = server.await;
        let err = client.job_status("127.0.0.1").await.expect_err("nobody listens");
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    }
}
