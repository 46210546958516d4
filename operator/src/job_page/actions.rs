//! The job page's two buttons, acted out through the StreamJob: a savepoint is the
//! `sluice.dev/savepoint` annotation, a stop with savepoint is `spec.state: suspended`. The
//! answers have the runtime's shapes ([`SavepointStatus`], [`StopResponse`]), so the page
//! cannot tell whether it talks to the runtime or to the operator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::json;
use sluice_crds::contract::control::{
    CONTROL_VERSION, SavepointRequest, SavepointState, SavepointStatus, StopKind, StopRequest, StopResponse,
};
use sluice_crds::savepoint_progress::{Progress, progress};
use sluice_crds::stream_job::DesiredState;
use sluice_crds::{ANNOTATION_SAVEPOINT, Phase, StreamJob};

use super::{JobPages, Refused, error, read_job, refuse};

/// Field manager of the page's writes (so `managedFields` tells them from a user's).
pub const FIELD_MANAGER: &str = "sluice-job-page";

/// `POST v1/savepoints`: a fresh annotation value; the answer's id is that value.
pub(super) async fn savepoint(
    State(p): State<Arc<JobPages>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: SavepointRequest = match accept(&p, &headers, &body) {
        Ok(r) => r,
        Err(refusal) => return *refusal,
    };
    if request.location.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "location: a StreamJob's savepoints go to its checkpoint storage; the operator takes no location",
        );
    }
    let job = match read_job(&p, &ns, &name).await {
        Ok(job) => job,
        Err(refusal) => return *refusal,
    };
    let phase = phase_of(&job);
    if phase != Phase::Running {
        return error(StatusCode::CONFLICT, format!("streamjob {ns}/{name} is {}, not Running", phase.as_str()));
    }
    let nonce = fresh_nonce();
    let patch = json!({"metadata": {"annotations": {ANNOTATION_SAVEPOINT: nonce}}});
    if let Err(refusal) = write(&p, &ns, &name, patch).await {
        return *refusal;
    }
    tracing::info!(job = %format!("{ns}/{name}"), %nonce, "savepoint requested from the job page");
    let status = SavepointStatus {
        version: CONTROL_VERSION,
        id: nonce,
        state: SavepointState::Pending,
        location: None,
        error: None,
    };
    (StatusCode::ACCEPTED, axum::Json(status)).into_response()
}

/// `GET v1/savepoints/{id}`: the progress of annotation value `id`, from the job's status.
pub(super) async fn savepoint_status(
    State(p): State<Arc<JobPages>>,
    Path((ns, name, id)): Path<(String, String, String)>,
) -> Response {
    let job = match read_job(&p, &ns, &name).await {
        Ok(job) => job,
        Err(refusal) => return *refusal,
    };
    let (state, location, error) = match progress(&job, &id) {
        Progress::NotSeen | Progress::Pending | Progress::InProgress => (SavepointState::Pending, None, None),
        Progress::Completed(path) => (SavepointState::Completed, Some(path), None),
        Progress::Failed(reason) => (SavepointState::Failed, None, Some(reason)),
        Progress::Superseded(by) if by.is_empty() => {
            (SavepointState::Failed, None, Some(format!("no savepoint was requested as {id:?}")))
        }
        Progress::Superseded(by) => (
            SavepointState::Failed,
            None,
            Some(format!("superseded: the {ANNOTATION_SAVEPOINT} annotation now holds {by:?}")),
        ),
        Progress::Lost => (SavepointState::Failed, None, Some("the job's status no longer holds its outcome".into())),
    };
    axum::Json(SavepointStatus { version: CONTROL_VERSION, id, state, location, error }).into_response()
}

/// `POST v1/stop {"savepoint": true}`: suspends the job and answers once it is suspended, with
/// the savepoint it will resume from.
pub(super) async fn stop(
    State(p): State<Arc<JobPages>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: StopRequest = match accept(&p, &headers, &body) {
        Ok(r) => r,
        Err(refusal) => return *refusal,
    };
    if !request.savepoint {
        return error(
            StatusCode::BAD_REQUEST,
            "savepoint: through the operator a job stops only with a savepoint (spec.state: suspended)",
        );
    }
    let job = match read_job(&p, &ns, &name).await {
        Ok(job) => job,
        Err(refusal) => return *refusal,
    };
    if job.spec.state == DesiredState::Suspended {
        return error(StatusCode::CONFLICT, format!("streamjob {ns}/{name} is already suspended"));
    }
    let before = job.status.as_ref().and_then(|s| s.resume_from.clone());
    let uid = job.metadata.uid.clone();
    if let Err(refusal) = write(&p, &ns, &name, json!({"spec": {"state": "suspended"}})).await {
        return *refusal;
    }
    tracing::info!(job = %format!("{ns}/{name}"), "suspend requested from the job page");
    let wait = async {
        loop {
            tokio::time::sleep(p.poll).await;
            let job = read_job(&p, &ns, &name).await?;
            if job.metadata.uid != uid {
                return Err(refuse(StatusCode::GONE, format!("streamjob {ns}/{name} was deleted and created again")));
            }
            if job.spec.state != DesiredState::Suspended {
                return Err(refuse(StatusCode::CONFLICT, format!("streamjob {ns}/{name} was resumed while stopping")));
            }
            let status = job.status.unwrap_or_default();
            match status.phase {
                Phase::Suspended => {
                    let savepoint = status.resume_from.filter(|r| Some(r) != before.as_ref());
                    return Ok(StopResponse { version: CONTROL_VERSION, stopped: StopKind::Savepoint, savepoint });
                }
                Phase::Failed => {
                    let why = status.error.unwrap_or_else(|| "no reason given".into());
                    return Err(refuse(StatusCode::BAD_GATEWAY, format!("streamjob {ns}/{name} failed: {why}")));
                }
                _ => {}
            }
        }
    };
    match tokio::time::timeout(p.stop_timeout, wait).await {
        Ok(Ok(stopped)) => axum::Json(stopped).into_response(),
        Ok(Err(refusal)) => *refusal,
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "streamjob {ns}/{name} is not suspended after {}: follow it with `kubectl sluice status {name}`",
                humantime::format_duration(p.stop_timeout)
            ),
        ),
    }
}

fn phase_of(job: &StreamJob) -> Phase {
    job.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// A button's request, unless the page is read-only (403).
fn accept<T: DeserializeOwned>(p: &JobPages, headers: &HeaderMap, body: &Bytes) -> Result<T, Refused> {
    if p.read_only {
        return Err(refuse(StatusCode::FORBIDDEN, "the job page of this operator is read-only (--job-page-read-only)"));
    }
    parse(headers, body)
}

/// A request body as the runtime reads it: JSON only (415 otherwise), the request type's
/// fields only (400 naming the problem otherwise).
fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, Refused> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request body as Content-Type: application/json",
        ));
    }
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("request body: {e}")))
}

/// A merge patch of the StreamJob (404 when it is gone).
async fn write(p: &JobPages, ns: &str, name: &str, patch: serde_json::Value) -> Result<(), Refused> {
    let jobs: Api<StreamJob> = Api::namespaced(p.client.clone(), ns);
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
    match jobs.patch(name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => {
            Err(refuse(StatusCode::NOT_FOUND, format!("streamjob {name} not found in namespace {ns}")))
        }
        Err(e) => Err(refuse(StatusCode::BAD_GATEWAY, format!("writing streamjob {ns}/{name}: {e}"))),
    }
}

/// A value for the annotation no one has used before: `page-`, the time in milliseconds and a
/// per-process counter.
fn fresh_nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let ms = jiff::Timestamp::now().as_millisecond();
    format!("page-{ms}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
