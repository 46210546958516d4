//! The runtime's job page, reached through the operator: `/jobs/{namespace}/{name}/` on the
//! operator's HTTP port shows the page of that StreamJob's running attempt.
//!
//! The page uses relative URLs only, so it works under any prefix (this one, or the API
//! server's service proxy in front of it). Reads (`/`, `v1/job`, `v1/checkpoints/history`)
//! are passed to the runtime pod of the current attempt as they are. Its two buttons act
//! through the StreamJob, the way `kubectl sluice` does, never around the operator:
//! - `POST v1/savepoints` sets the `sluice.dev/savepoint` annotation to a fresh value and
//!   answers with that value as the savepoint id; `GET v1/savepoints/{id}` reads its progress
//!   from `status.savepoints`;
//! - `POST v1/stop {"savepoint": true}` sets `spec.state: suspended` and answers once the
//!   operator has stopped the job with a savepoint (the one it will resume from).
//!
//! With `--job-page-read-only` both answer 403.

mod actions;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use sluice_crds::contract::control::{HISTORY, JOB};
use sluice_crds::{LABEL_JOB, StreamJob};

use crate::reconcile::observe::{PodState, observe_pod};
use crate::runtime_client::HttpRuntime;

/// Largest runtime answer passed on (the page, a job view, a history).
const ANSWER_LIMIT: usize = 4 << 20;

/// What the job-page routes need.
#[derive(Clone)]
pub struct JobPages {
    /// Kubernetes client (reads pods and StreamJobs, patches StreamJobs).
    pub client: kube::Client,
    /// Calls the runtime pods.
    pub runtime: Arc<HttpRuntime>,
    /// The one namespace this operator watches (jobs elsewhere are 404), or all.
    pub namespace: Option<String>,
    /// How often a stop request reads the StreamJob while it waits.
    pub poll: Duration,
    /// How long a stop request waits for the job to be suspended.
    pub stop_timeout: Duration,
    /// Refuse the savepoint and stop buttons (403).
    pub read_only: bool,
}

/// The routes under `/jobs/{namespace}/{name}/`.
pub fn router(pages: JobPages) -> Router {
    Router::new()
        .route("/jobs/{ns}/{name}", get(to_slash))
        .route("/jobs/{ns}/{name}/", get(page))
        .route("/jobs/{ns}/{name}/ui", get(page))
        .route("/jobs/{ns}/{name}/v1/job", get(job_view))
        .route("/jobs/{ns}/{name}/v1/checkpoints/history", get(history))
        .route("/jobs/{ns}/{name}/v1/savepoints", axum::routing::post(actions::savepoint))
        .route("/jobs/{ns}/{name}/v1/savepoints/{id}", get(actions::savepoint_status))
        .route("/jobs/{ns}/{name}/v1/stop", axum::routing::post(actions::stop))
        .with_state(Arc::new(pages))
}

/// A refusal as the runtime's control endpoint words them: `{"error": "..."}`, so the page
/// shows it the same way.
pub(crate) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "version": 1, "error": message.into() }))).into_response()
}

/// A refusal carried in a `Result`: boxed, so the results that carry one stay small.
pub(crate) type Refused = Box<Response>;

/// [`error`], boxed for a `Result`.
pub(crate) fn refuse(code: StatusCode, message: impl Into<String>) -> Refused {
    Box::new(error(code, message))
}

/// The page reads relative URLs: it must be served from a path ending in `/`.
async fn to_slash(Path((ns, name)): Path<(String, String)>) -> Redirect {
    Redirect::permanent(&format!("/jobs/{ns}/{name}/"))
}

async fn page(State(p): State<Arc<JobPages>>, Path((ns, name)): Path<(String, String)>) -> Response {
    forward(&p, &ns, &name, "/").await
}

async fn job_view(State(p): State<Arc<JobPages>>, Path((ns, name)): Path<(String, String)>) -> Response {
    forward(&p, &ns, &name, JOB).await
}

async fn history(State(p): State<Arc<JobPages>>, Path((ns, name)): Path<(String, String)>) -> Response {
    forward(&p, &ns, &name, HISTORY).await
}

/// Passes `GET path` to the job's running runtime pod and its answer back.
async fn forward(p: &JobPages, ns: &str, name: &str, path: &str) -> Response {
    let ip = match running_pod_ip(p, ns, name).await {
        Ok(ip) => ip,
        Err(refusal) => return *refusal,
    };
    match p.runtime.fetch(&ip, path, ANSWER_LIMIT).await {
        Ok(answer) => {
            let mut headers = HeaderMap::new();
            if let Some(ct) = answer.content_type {
                headers.insert(header::CONTENT_TYPE, ct);
            }
            headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            (answer.status, headers, answer.body).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("streamjob {ns}/{name}: {e}")),
    }
}

/// The IP of the current attempt's running runtime pod (worker 0), or the answer saying why there is none
/// (404 for a job that does not exist, 503 for one without a running pod).
async fn running_pod_ip(p: &JobPages, ns: &str, name: &str) -> Result<String, Refused> {
    refuse_other_namespace(p, ns, name)?;
    let pods: Api<Pod> = Api::namespaced(p.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("{LABEL_JOB}={name}")))
        .await
        .map_err(|e| refuse(StatusCode::BAD_GATEWAY, format!("listing the pods of streamjob {ns}/{name}: {e}")))?;
    let observed: Vec<_> = list.items.iter().filter_map(observe_pod).collect();
    let current = observed.iter().map(|o| o.attempt).max();
    // Worker 0 serves the job page (the only runtime of a one-worker job).
    let running = observed
        .iter()
        .filter(|o| Some(o.attempt) == current && o.index == 0 && !o.terminating)
        .find(|o| matches!(o.state, PodState::Running { .. }))
        .and_then(|o| o.ip.clone());
    if let Some(ip) = running {
        return Ok(ip);
    }
    let job = read_job(p, ns, name).await?;
    let phase = job.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("Pending");
    Err(refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("streamjob {ns}/{name} has no running runtime pod (phase {phase})"),
    ))
}

/// The StreamJob, read from the API server (404 when it does not exist).
pub(crate) async fn read_job(p: &JobPages, ns: &str, name: &str) -> Result<StreamJob, Refused> {
    refuse_other_namespace(p, ns, name)?;
    let jobs: Api<StreamJob> = Api::namespaced(p.client.clone(), ns);
    match jobs.get_opt(name).await {
        Ok(Some(job)) => Ok(job),
        Ok(None) => Err(refuse(StatusCode::NOT_FOUND, format!("streamjob {name} not found in namespace {ns}"))),
        Err(e) => Err(refuse(StatusCode::BAD_GATEWAY, format!("reading streamjob {ns}/{name}: {e}"))),
    }
}

/// 404 for a job outside the namespace this operator watches: it does not run it.
fn refuse_other_namespace(p: &JobPages, ns: &str, name: &str) -> Result<(), Refused> {
    match &p.namespace {
        Some(watched) if watched != ns => Err(refuse(
            StatusCode::NOT_FOUND,
            format!("streamjob {ns}/{name}: this operator runs the jobs of namespace {watched} only"),
        )),
        _ => Ok(()),
    }
}
