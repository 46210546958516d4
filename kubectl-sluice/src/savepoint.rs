//! `savepoint`: sets the annotation `sluice.dev/savepoint` to a fresh nonce (any new value
//! triggers one savepoint) and, with `--wait`, follows `status.savepoints` until the operator
//! reports the savepoint of that value completed or failed.

use std::io::Write;
use std::time::Duration;

use serde_json::json;
pub use sluice_crds::savepoint_progress::{Progress, pending_trigger, progress};
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
