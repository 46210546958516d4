//! The only writer of `.status`: merges the plan's conditions and applies the status with
//! server-side apply on the status subresource; records the plan's Events.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use sluice_crds::{StreamJob, StreamJobStatus, conditions};

use super::plan::Plan;
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

/// Writes `status` unless it equals what the object already has.
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
    let body = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "StreamJob",
        "status": status,
    });
    api.patch_status(&job.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::WriteStatus { job: job.name_any(), source })?;
    Ok(())
}

/// Records the plan's Events on the job. A failed Event is logged, never fatal.
pub async fn record_events(job: &StreamJob, plan: &Plan, ctx: &Context) {
    let reference = job.object_ref(&());
    for note in &plan.events {
        let ev = Event {
            type_: if note.warning { EventType::Warning } else { EventType::Normal },
            reason: note.reason.as_str().to_string(),
            note: Some(note.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, reason = note.reason.as_str(), "could not record event");
        }
    }
}
