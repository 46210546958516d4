//! The only writer of `.status`: merges the plan's conditions and applies the status with
//! server-side apply on the status subresource; records the plan's Events.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use sluice_crds::{StreamJob, StreamJobStatus, conditions};

use super::plan::{Note, Plan};
use crate::config::FIELD_MANAGER;
use crate::context::Context;
use crate::error::Error;

/// The status the plan asks for, with conditions merged (`now` for changed transitions).
pub fn next_status(previous: &StreamJobStatus, plan: &Plan, now: jiff::Timestamp) -> StreamJobStatus {
    let mut status = plan.status.clone();
    status.conditions =
        conditions::merge(&previous.conditions, &plan.conditions, plan.status.observed_generation, &Time(now));
    status
}

/// Key of `job` in [`Context::last_written`]: its uid (its namespace/name without one).
pub fn key(job: &StreamJob) -> String {
    job.meta().uid.clone().unwrap_or_else(|| format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any()))
}

/// Writes `status` unless it equals what the object already has. The write is conditional on
/// the object's `resourceVersion`: if anyone changed the object since it was read, the API
/// server answers 409 and nothing is overwritten (the reconcile is retried on a fresh read).
pub async fn write(
    job: &StreamJob,
    previous: &StreamJobStatus,
    status: &StreamJobStatus,
    ctx: &Context,
) -> Result<(), Error> {
    if job.status.is_some() && previous == status {
        return Ok(());
    }
    let ns = job.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<StreamJob> = Api::namespaced(ctx.client.clone(), &ns);
    let mut body = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "StreamJob",
        "status": status,
    });
    if let Some(rv) = job.resource_version() {
        body["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    let written = api
        .patch_status(&job.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::WriteStatus { job: job.name_any(), source })?;
    ctx.set_written(&key(job), written.resource_version());
    Ok(())
}

/// Records the plan's Events on the job. A failed Event is logged, never fatal.
pub async fn record_events(job: &StreamJob, plan: &Plan, ctx: &Context) {
    let reference = job.object_ref(&());
    for note in &plan.events {
        publish(&reference, note, ctx).await;
    }
}

/// Longest Event note the API server accepts (`events.k8s.io/v1` rejects longer ones).
pub const MAX_NOTE_BYTES: usize = 1024;

/// `message` cut to at most [`MAX_NOTE_BYTES`] bytes on a character boundary, marked with `…`.
pub fn event_note(message: &str) -> String {
    if message.len() <= MAX_NOTE_BYTES {
        return message.to_string();
    }
    let ellipsis = "…";
    let mut end = MAX_NOTE_BYTES - ellipsis.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &message[..end])
}

/// Records one Event on the object `reference` points to. A failed Event is logged, never fatal.
pub async fn publish(reference: &ObjectReference, note: &Note, ctx: &Context) {
    let ev = Event {
        type_: if note.warning { EventType::Warning } else { EventType::Normal },
        reason: note.reason.as_str().to_string(),
        note: Some(event_note(&note.message)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, reference).await {
        tracing::warn!(error = %e, reason = note.reason.as_str(), "could not record event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_are_cut_to_what_the_api_server_accepts() {
        assert_eq!(event_note("short"), "short");
        let long = "é".repeat(1000);
        let note = event_note(&long);
        assert!(note.len() <= MAX_NOTE_BYTES && note.ends_with('…'), "{}", note.len());
        assert!(note.starts_with("éé"));
        let exact = "x".repeat(MAX_NOTE_BYTES);
        assert_eq!(event_note(&exact), exact);
    }
}
