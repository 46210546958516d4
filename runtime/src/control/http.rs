//! The HTTP routes of the control endpoint.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sluice_crds::CheckpointId;
use sluice_crds::contract::control::{
    CHECKPOINTS, CONTROL_VERSION, CheckpointInfo, ErrorResponse, HEALTHZ, JobStatus, METRICS, READYZ, SAVEPOINTS, STOP,
    SavepointRequest, StopKind, StopRequest, StopResponse,
};

use super::{ControlState, StopError};
use crate::checkpoint::driver::stats;

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(ErrorResponse { version: CONTROL_VERSION, error: message.into(), stop_in_progress: None }))
        .into_response()
}

/// 409 for a stop in progress (naming it) or a job that no longer runs; 500 for a failed stop.
fn stop_error(e: StopError) -> Response {
    let code = match e {
        StopError::InProgress(_) | StopError::NotRunning(_) => StatusCode::CONFLICT,
        StopError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let stop_in_progress = match e {
        StopError::InProgress(k) => Some(k),
        _ => None,
    };
    let body = ErrorResponse { version: CONTROL_VERSION, error: e.to_string(), stop_in_progress };
    (code, Json(body)).into_response()
}

/// The job's status document.
pub fn job_status(state: &ControlState) -> JobStatus {
    let (latest, in_progress, completed, failed, consecutive, last_failure) = match state.handles.get() {
        Some(h) => {
            let s = stats(&h.stats).clone();
            let latest = s.latest.map(|l| CheckpointInfo {
                id: CheckpointId(l.id),
                path: l.location,
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
                s.last_failure,
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

/// The routes, over shared state.
pub fn router(state: Arc<ControlState>) -> Router {
    Router::new()
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(
            READYZ,
            get(|State(s): State<Arc<ControlState>>| async move {
                if s.is_ready() { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
            }),
        )
        .route(METRICS, get(|State(s): State<Arc<ControlState>>| async move { super::metrics::render(&s) }))
        .route(CHECKPOINTS, get(|State(s): State<Arc<ControlState>>| async move { Json(job_status(&s)) }))
        .route(
            SAVEPOINTS,
            post(|State(s): State<Arc<ControlState>>, Json(req): Json<SavepointRequest>| async move {
                match s.request_savepoint(req.location) {
                    Ok(status) => (StatusCode::ACCEPTED, Json(status)).into_response(),
                    Err(e) => stop_error(e),
                }
            }),
        )
        .route(
            &format!("{SAVEPOINTS}/{{id}}"),
            get(|State(s): State<Arc<ControlState>>, Path(id): Path<String>| async move {
                match s.savepoint(&id) {
                    Some(sp) => Json(sp).into_response(),
                    None => error(StatusCode::NOT_FOUND, format!("no savepoint {id}")),
                }
            }),
        )
        .route(
            STOP,
            post(|State(s): State<Arc<ControlState>>, Json(req): Json<StopRequest>| async move {
                let stopped = StopKind::of(req.savepoint);
                match s.stop(stopped).await {
                    Ok(savepoint) => {
                        Json(StopResponse { version: CONTROL_VERSION, stopped, savepoint }).into_response()
                    }
                    Err(e) => stop_error(e),
                }
            }),
        )
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
