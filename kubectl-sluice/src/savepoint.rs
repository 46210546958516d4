//! `savepoint`: sets the annotation `sluice.dev/savepoint` to a fresh nonce (any new value
//! triggers one savepoint) and, with `--wait`, follows `status.savepoints` until the operator
//! reports the savepoint of that value completed or failed.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
use sluice_crds::savepoints::{SavepointInfo, SavepointState, SavepointTrigger};
use sluice_crds::{ANNOTATION_SAVEPOINT, Phase, StreamJob};

use crate::Error;
use crate::job::{Jobs, Written};

/// A value for the annotation no one has used before: the time in milliseconds, for sorting,
/// and 8 random hex digits, so two requests in the same millisecond differ.
pub fn fresh_nonce() -> String {
    let ms = jiff::Timestamp::now().as_millisecond();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{ms}-{}", &random[..8])
}

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

/// Reads in a row that must show another annotation value before the request counts as
/// superseded: a single one may be a stale read from before this plugin's write (a lagging
/// API server cache), which shows the old value just the same.
pub const SUPERSEDED_READS: u32 = 2;

/// How `--wait` waits.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    /// Give up after this long.
    pub timeout: Duration,
    /// Read the job this often.
    pub interval: Duration,
}

/// Sets the annotation of job `name` to `nonce` and, with `wait`, follows the savepoint until
/// it completes (its location is the last line printed) or fails.
pub async fn request(
    jobs: &Jobs,
    name: &str,
    nonce: &str,
    wait: Option<Wait>,
    out: &mut impl Write,
) -> Result<(), Error> {
    let patch = json!({"metadata": {"annotations": {ANNOTATION_SAVEPOINT: nonce}}});
    // The value this write replaces, when the operator had not acted on it yet.
    let replaced = std::sync::Mutex::new(None);
    let decide = |job: &StreamJob| {
        if let Ok(mut r) = replaced.lock() {
            *r = pending_trigger(job);
        }
        Some(patch.clone())
    };
    let job = match jobs.patch_if_unchanged(name, decide).await? {
        Written::Patched(job) | Written::Unchanged(job) => job,
    };
    writeln!(out, "streamjob.sluice.dev/{name} savepoint requested ({ANNOTATION_SAVEPOINT}={nonce})")?;
    if let Some(v) = replaced.into_inner().ok().flatten() {
        writeln!(
            out,
            "note: this replaces the value {v:?}, which the operator had not acted on yet: one savepoint is taken, for {nonce}"
        )?;
    }
    let phase = job.status.as_ref().map(|s| s.phase).unwrap_or_default();
    if phase != Phase::Running {
        writeln!(
            out,
            "note: the job is {}, not Running: the operator will record the savepoint as failed",
            phase.as_str()
        )?;
    }
    let Some(wait) = wait else { return Ok(()) };
    let uid = job.metadata.uid.clone();
    let mut seen = Progress::NotSeen;
    let mut superseded_reads = 0;
    let follow = async {
        loop {
            tokio::time::sleep(wait.interval).await;
            let job = match jobs.get(name).await {
                Err(Error::NotFound { namespace, .. }) => {
                    return Err(Error::JobGone { name: name.into(), namespace, nonce: nonce.into() });
                }
                other => other?,
            };
            if job.metadata.uid != uid {
                return Err(Error::JobReplaced { name: name.into(), nonce: nonce.into() });
            }
            seen = progress(&job, nonce);
            match &seen {
                Progress::Completed(path) => return Ok(path.clone()),
                Progress::Failed(reason) => {
                    return Err(Error::SavepointFailed {
                        name: name.into(),
                        nonce: nonce.into(),
                        reason: reason.clone(),
                    });
                }
                Progress::Superseded(by) => {
                    superseded_reads += 1;
                    if superseded_reads >= SUPERSEDED_READS {
                        return Err(Error::SavepointSuperseded {
                            name: name.into(),
                            nonce: nonce.into(),
                            by: by.clone(),
                        });
                    }
                    continue;
                }
                Progress::Lost => return Err(Error::SavepointOutcomeLost { name: name.into(), nonce: nonce.into() }),
                Progress::NotSeen | Progress::Pending | Progress::InProgress => {}
            }
            superseded_reads = 0;
        }
    };
    let path = match tokio::time::timeout(wait.timeout, follow).await {
        Ok(done) => done?,
        Err(_) => {
            return Err(Error::WaitTimeout {
                name: name.into(),
                nonce: nonce.into(),
                waited: wait.timeout.into(),
                seen: seen.describe(),
            });
        }
    };
    writeln!(out, "savepoint {nonce} completed; its location:")?;
    writeln!(out, "{path}")?;
    Ok(())
}
