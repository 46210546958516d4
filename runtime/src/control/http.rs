//! The HTTP routes of the control endpoint. Every refusal is an [`ErrorResponse`]: unknown
//! paths 404, other methods 405, bodies per [`JsonBody`].

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sluice_crds::CheckpointId;
use sluice_crds::contract::control::{
    CHECKPOINTS, CONTROL_VERSION, CheckpointInfo, ErrorResponse, HEALTHZ, HISTORY, JOB, JobState, JobStatus, METRICS,
    READYZ, SAVEPOINTS, STOP, SavepointRequest, StopKind, StopRequest, StopResponse, UI,
};

use super::body::{JsonBody, error};
use super::job_view::job_view;
use super::location::check_location;
use super::{ControlState, StopError};
use crate::checkpoint::driver::stats;

/// 409 for a stop in progress (naming it; once the job ended, saying so) or a job that no
/// longer runs; 500 for a failed stop.
fn stop_error(e: StopError, job: JobState) -> Response {
    let code = match e {
        StopError::InProgress(_) | StopError::NotRunning(_) => StatusCode::CONFLICT,
        StopError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let (message, stop_in_progress) = match e {
        StopError::InProgress(k) if job != JobState::Running => {
            (format!("{e}, and the job has ended ({})", state_word(job)), Some(k))
        }
        StopError::InProgress(k) => (e.to_string(), Some(k)),
        _ => (e.to_string(), None),
    };
    let body = ErrorResponse { version: CONTROL_VERSION, error: message, stop_in_progress };
    (code, Json(body)).into_response()
}

/// The wire word of a job state (`finished`, …).
fn state_word(s: JobState) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| format!("{s:?}"))
}

/// The job's status document.
pub fn job_status(state: &ControlState) -> JobStatus {
    let (latest, in_progress, completed, failed, consecutive, last_failure) = match state.handles.get() {
        Some(h) => {
            let s = stats(&h.stats);
            let latest = s.latest.as_ref().map(|l| CheckpointInfo {
                id: CheckpointId(l.id),
                path: l.location.clone(),
                completed_at_ms: l.completed_at_ms,
                size_bytes: l.size_bytes,
                duration_ms: l.duration_ms,
            });
            (
                latest,
                s.in_progress.first().map(|i| CheckpointId(*i)),
                s.completed,
                s.failed,
                s.consecutive_failures,
                s.last_failure.clone(),
            )
        }
        None => (None, None, 0, 0, 0, None),
    };
    JobStatus {
        version: CONTROL_VERSION,
        run_id: state.run_id.clone(),
        state: state.job_state(),
        restored_from: state.restored_from.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        latest,
        in_progress,
        completed,
        failed,
        consecutive_failures: consecutive,
        last_failure,
    }
}

async fn readyz(State(s): State<Arc<ControlState>>) -> Response {
    if s.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else {
        let why = format!("not ready: the job is {:?} and not (yet) restored and running", s.job_state());
        error(StatusCode::SERVICE_UNAVAILABLE, why)
    }
}

async fn trigger_savepoint(State(s): State<Arc<ControlState>>, JsonBody(req): JsonBody<SavepointRequest>) -> Response {
    if let Some(location) = &req.location
        && let Err(why) = check_location(location)
    {
        return error(StatusCode::BAD_REQUEST, why);
    }
    match s.request_savepoint(req.location) {
        Ok(status) => (StatusCode::ACCEPTED, Json(status)).into_response(),
        Err(e) => stop_error(e, s.job_state()),
    }
}

async fn savepoint_status(State(s): State<Arc<ControlState>>, id: Result<Path<String>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else {
        return error(StatusCode::BAD_REQUEST, "the savepoint id in the path is not valid UTF-8");
    };
    match s.savepoint(&id) {
        Some(sp) => Json(sp).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no savepoint {id:?} in this run")),
    }
}

async fn stop(State(s): State<Arc<ControlState>>, JsonBody(req): JsonBody<StopRequest>) -> Response {
    let stopped = StopKind::of(req.savepoint);
    match s.stop(stopped).await {
        Ok(savepoint) => Json(StopResponse { version: CONTROL_VERSION, stopped, savepoint }).into_response(),
        Err(e) => stop_error(e, s.job_state()),
    }
}

/// The job page: one self-contained HTML file (plain JS, no external resources) that polls
/// [`JOB`] and [`HISTORY`] and posts savepoints and stops.
pub const JOB_PAGE: &str = include_str!("ui/job.html");

async fn job_page() -> Response {
    ([(axum::http::header::CACHE_CONTROL, "no-store")], axum::response::Html(JOB_PAGE)).into_response()
}

async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such path {:?} (see sluice_crds::contract::control)", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}

/// The routes, over shared state.
pub fn router(state: Arc<ControlState>) -> Router {
    Router::new()
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(READYZ, get(readyz))
        .route(METRICS, get(|State(s): State<Arc<ControlState>>| async move { super::metrics::render(&s) }))
        .route(CHECKPOINTS, get(|State(s): State<Arc<ControlState>>| async move { Json(job_status(&s)) }))
        .route(HISTORY, get(|State(s): State<Arc<ControlState>>| async move { Json(s.history()) }))
        .route(JOB, get(|State(s): State<Arc<ControlState>>| async move { Json(job_view(&s)) }))
        .route("/", get(job_page))
        .route(UI, get(job_page))
        .route(SAVEPOINTS, post(trigger_savepoint))
        .route(&format!("{SAVEPOINTS}/{{id}}"), get(savepoint_status))
        .route(STOP, post(stop))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// Serves on a bound listener until `shutdown` resolves (in-flight requests finish first).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<ControlState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "control endpoint listening");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
