//! Where a savepoint requested through the `sluice.dev/savepoint` annotation stands, read from
//! the StreamJob alone. Shared by every client that requests savepoints this way (the kubectl
//! plugin, the operator's job page), so they agree on what the status says.

use crate::savepoints::{SavepointInfo, SavepointState, SavepointTrigger};
use crate::{ANNOTATION_SAVEPOINT, StreamJob};

/// Where the savepoint of one annotation value stands, as the job's status tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The operator has not acted on the value yet (it is busy with another savepoint, or has
    /// not seen the change).
    NotSeen,
    /// Recorded, not yet asked of the runtime.
    Pending,
    /// The runtime is taking it.
    InProgress,
    /// Complete, at this directory.
    Completed(String),
    /// Failed, for this reason.
    Failed(String),
    /// The annotation holds another value (or none) and this one was never acted on.
    Superseded(String),
    /// The operator acted on it, but neither `last` nor the history still holds it.
    Lost,
}

impl Progress {
    /// In words, for a timeout message.
    pub fn describe(&self) -> String {
        match self {
            Progress::NotSeen => "not yet picked up by the operator".into(),
            Progress::Pending => "Pending".into(),
            Progress::InProgress => "InProgress".into(),
            Progress::Completed(p) => format!("Completed at {p}"),
            Progress::Failed(e) => format!("Failed: {e}"),
            Progress::Superseded(by) => format!("superseded by {by:?}"),
            Progress::Lost => "outcome no longer in status".into(),
        }
    }

    /// True once the outcome is known (completed, failed, superseded or lost).
    pub fn is_final(&self) -> bool {
        !matches!(self, Progress::NotSeen | Progress::Pending | Progress::InProgress)
    }
}

fn of_value<'a>(info: &'a SavepointInfo, nonce: &str) -> Option<&'a SavepointInfo> {
    (info.trigger == SavepointTrigger::Annotation && info.value == nonce).then_some(info)
}

/// Where the savepoint triggered by annotation value `nonce` stands in `job`.
pub fn progress(job: &StreamJob, nonce: &str) -> Progress {
    let savepoints = job.status.as_ref().and_then(|s| s.savepoints.clone()).unwrap_or_default();
    if let Some(last) = savepoints.last.as_ref().and_then(|l| of_value(l, nonce)) {
        return match last.state {
            SavepointState::Pending => Progress::Pending,
            SavepointState::InProgress => Progress::InProgress,
            SavepointState::Completed => Progress::Completed(last.path.clone().unwrap_or_default()),
            SavepointState::Failed => Progress::Failed(last.error.clone().unwrap_or_else(|| "no reason given".into())),
        };
    }
    if let Some(done) = savepoints.history.iter().find_map(|h| of_value(h, nonce)) {
        return Progress::Completed(done.path.clone().unwrap_or_default());
    }
    if savepoints.observed_annotation.as_deref() == Some(nonce) {
        return Progress::Lost;
    }
    let current = job.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_SAVEPOINT)).map(|v| v.trim());
    match current {
        Some(v) if v == nonce => Progress::NotSeen,
        Some(v) => Progress::Superseded(v.to_string()),
        None => Progress::Superseded(String::new()),
    }
}

/// The annotation's value on `job` when the operator has not acted on it yet (it is not
/// `status.savepoints.observedAnnotation`).
pub fn pending_trigger(job: &StreamJob) -> Option<String> {
    let value = job.metadata.annotations.as_ref()?.get(ANNOTATION_SAVEPOINT)?.trim();
    let observed =
        job.status.as_ref().and_then(|s| s.savepoints.as_ref()).and_then(|s| s.observed_annotation.as_deref());
    (!value.is_empty() && observed != Some(value)).then(|| value.to_string())
}
