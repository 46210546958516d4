//! `suspend` and `resume`: the StreamJob's `spec.state`, the field the operator acts on
//! (`suspended` stops the job with a savepoint and deletes its pods; `running` restores it).

use std::io::Write;

use serde_json::json;
use sluice_crds::StreamJob;
use sluice_crds::stream_job::DesiredState;

use crate::Error;
use crate::job::{Jobs, Written};

/// The spelling of a desired state in the spec.
pub fn spelling(state: DesiredState) -> &'static str {
    match state {
        DesiredState::Running => "running",
        DesiredState::Suspended => "suspended",
    }
}

/// The merge patch that sets `spec.state` to `want`, or `None` when the job already has it.
pub fn patch_for(job: &StreamJob, want: DesiredState) -> Option<serde_json::Value> {
    (job.spec.state != want).then(|| json!({"spec": {"state": spelling(want)}}))
}

/// Sets `spec.state` of job `name` to `want` (a conditional write, retried on conflict) and says
/// what happened.
pub async fn set(jobs: &Jobs, name: &str, want: DesiredState, out: &mut impl Write) -> Result<(), Error> {
    let written = jobs.patch_if_unchanged(name, |job| patch_for(job, want)).await?;
    let phase = |j: &StreamJob| j.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("Pending");
    match (written, want) {
        (Written::Unchanged(job), DesiredState::Suspended) => {
            writeln!(out, "streamjob.sluice.dev/{name} is already suspended (phase {})", phase(&job))?
        }
        (Written::Unchanged(job), DesiredState::Running) => writeln!(
            out,
            "streamjob.sluice.dev/{name} is not suspended (spec.state is running, phase {})",
            phase(&job)
        )?,
        (Written::Patched(_), DesiredState::Suspended) => writeln!(
            out,
            "streamjob.sluice.dev/{name} suspended: the operator stops it with a savepoint and deletes its pods \
             (follow with `kubectl sluice status {name}`)"
        )?,
        (Written::Patched(job), DesiredState::Running) => {
            let from = job.status.as_ref().and_then(|s| s.resume_from.clone());
            match from {
                Some(path) => writeln!(out, "streamjob.sluice.dev/{name} resumed from {path}")?,
                None => writeln!(out, "streamjob.sluice.dev/{name} resumed")?,
            }
        }
    }
    Ok(())
}
