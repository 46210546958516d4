//! A small HTTP/1 client of the control endpoint, for `sluice-runtime status | checkpoints |
//! savepoint | stop | cancel` and the tests.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sluice_crds::contract::control::{
    CHECKPOINTS, CONTROL_VERSION, ErrorResponse, HISTORY, History, JobStatus, SAVEPOINTS, STOP, SavepointRequest,
    SavepointStatus, StopKind, StopRequest, StopResponse, savepoint_path,
};

/// Why a call did not give the document asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error("no sluice-runtime answers at {addr} ({message}); is `sluice-runtime run --control-addr {addr}` running?")]
    Unreachable {
        /// host:port.
        addr: String,
        /// What failed.
        message: String,
    },
    /// No complete answer in time.
    #[error("the runtime at {addr} did not answer within {} s", timeout.as_secs_f64())]
    Timeout {
        /// host:port.
        addr: String,
        /// How long the call waited.
        timeout: Duration,
    },
    /// The runtime answered with an error status.
    #[error("the runtime at {addr} refused: {error} (HTTP {status})")]
    Refused {
        /// host:port.
        addr: String,
        /// HTTP status.
        status: u16,
        /// Its [`ErrorResponse::error`], or the raw body when it is not one.
        error: String,
        /// On a 409: the stop in progress.
        stop_in_progress: Option<StopKind>,
    },
    /// The answer is not the documented JSON (another version of the runtime?).
    #[error("the runtime at {addr} sent an unreadable answer: {message}")]
    Decode {
        /// host:port.
        addr: String,
        /// Parse error.
        message: String,
    },
}

/// A raw answer: status, `Content-Type`, body.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body as text.
    pub body: String,
}

/// The client of one runtime's control endpoint.
pub struct ControlClient {
    addr: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

/// The message of an error and its causes, each once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

impl ControlClient {
    /// A client of the endpoint at `addr` (`host:port`, `http://` optional) whose calls give up
    /// after `timeout`.
    pub fn new(addr: &str, timeout: Duration) -> ControlClient {
        let addr = addr.trim_start_matches("http://").trim_end_matches('/').to_string();
        ControlClient { addr, client: Client::builder(TokioExecutor::new()).build_http(), timeout }
    }

    /// The address (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `method path` with `headers` and `body`; any status is an answer.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ClientError> {
        let addr = self.addr.clone();
        let unreachable = |message: String| ClientError::Unreachable { addr: addr.clone(), message };
        let mut request = http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request =
            request.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| unreachable(chain(&e)))?;
        let call = async {
            let resp = self.client.request(request).await.map_err(|e| unreachable(chain(&e)))?;
            let status = resp.status().as_u16();
            let content_type =
                resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = resp.into_body().collect().await.map_err(|e| unreachable(chain(&e)))?.to_bytes();
            Ok(RawResponse { status, content_type, body: String::from_utf8_lossy(&body).into_owned() })
        };
        let timeout = self.timeout;
        tokio::time::timeout(timeout, call).await.map_err(|_| ClientError::Timeout { addr: addr.clone(), timeout })?
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let headers = match body {
            Some(_) => vec![("content-type".to_string(), "application/json".to_string())],
            None => Vec::new(),
        };
        let resp = self.raw(method, path, &headers, body).await?;
        if !(200..300).contains(&resp.status) {
            let (error, stop_in_progress) = match serde_json::from_str::<ErrorResponse>(&resp.body) {
                Ok(e) => (e.error, e.stop_in_progress),
                Err(_) => (resp.body.trim().to_string(), None),
            };
            return Err(ClientError::Refused { addr: self.addr.clone(), status: resp.status, error, stop_in_progress });
        }
        serde_json::from_str(&resp.body)
            .map_err(|e| ClientError::Decode { addr: self.addr.clone(), message: e.to_string() })
    }

    /// `GET /v1/checkpoints`.
    pub async fn status(&self) -> Result<JobStatus, ClientError> {
        self.call("GET", CHECKPOINTS, None).await
    }

    /// `GET /v1/checkpoints/history`.
    pub async fn history(&self) -> Result<History, ClientError> {
        self.call("GET", HISTORY, None).await
    }

    /// `POST /v1/savepoints`.
    pub async fn trigger_savepoint(&self, location: Option<String>) -> Result<SavepointStatus, ClientError> {
        let req = SavepointRequest { version: CONTROL_VERSION, location };
        self.call("POST", SAVEPOINTS, Some(to_json(&req))).await
    }

    /// `GET /v1/savepoints/{id}`.
    pub async fn savepoint(&self, id: &str) -> Result<SavepointStatus, ClientError> {
        self.call("GET", &savepoint_path(id), None).await
    }

    /// `POST /v1/stop`: resolves once the job stopped.
    pub async fn stop(&self, savepoint: bool) -> Result<StopResponse, ClientError> {
        let req = StopRequest { version: CONTROL_VERSION, savepoint };
        self.call("POST", STOP, Some(to_json(&req))).await
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // The request documents are plain structs: they always serialize.
    serde_json::to_vec(v).unwrap_or_default()
}
