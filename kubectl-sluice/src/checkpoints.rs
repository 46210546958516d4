//! `checkpoints`: what the StreamJob's status records about checkpoints and savepoints — the
//! latest checkpoint, the last savepoint trigger and the savepoint history — and where to look
//! for the rest (the status keeps only the latest checkpoint).

use std::io::Write;

use jiff::Timestamp;
use serde::Serialize;
use sluice_crds::StreamJob;

use crate::Error;
use crate::cli::Output;
use crate::render::{age, machine, table};
use crate::status::{CheckpointSummary, SavepointSummary};

/// What `checkpoints` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoints {
    /// Job name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `spec.checkpointing.storage.uri`; `None` when checkpointing is off.
    pub storage: Option<String>,
    /// `status.checkpoints.latest`.
    pub latest_checkpoint: Option<CheckpointSummary>,
    /// `status.savepoints.last`, when it is not already the newest history entry.
    pub last_savepoint: Option<SavepointSummary>,
    /// `status.savepoints.history`, newest first.
    pub savepoint_history: Vec<SavepointSummary>,
    /// The restore point of the current attempt.
    pub restored_from: Option<String>,
    /// The savepoint a resume restores from.
    pub resume_from: Option<String>,
    /// The current attempt (its pod `<name>-<attempt>-0` lists the runtime's last checkpoints).
    pub attempt: u32,
}

impl Checkpoints {
    /// What `job`'s status holds, at `now`.
    pub fn new(job: &StreamJob, now: Timestamp) -> Self {
        let st = job.status.clone().unwrap_or_default();
        let savepoints = st.savepoints.clone().unwrap_or_default();
        let history: Vec<SavepointSummary> = savepoints.history.iter().map(|s| SavepointSummary::new(s, now)).collect();
        let last = savepoints.last.as_ref().map(|s| SavepointSummary::new(s, now));
        let last_savepoint = last.filter(|l| history.first().is_none_or(|h| h.path != l.path || h.value != l.value));
        Checkpoints {
            name: job.metadata.name.clone().unwrap_or_default(),
            namespace: job.metadata.namespace.clone().unwrap_or_default(),
            storage: job.spec.checkpointing.as_ref().map(|c| c.storage.uri.clone()),
            latest_checkpoint: st
                .checkpoints
                .as_ref()
                .and_then(|c| c.latest.as_ref())
                .map(|c| CheckpointSummary::new(c, now)),
            last_savepoint,
            savepoint_history: history,
            restored_from: st.restored_from.clone(),
            resume_from: st.resume_from.clone(),
            attempt: st.attempt,
        }
    }

    /// Whether the status holds nothing about checkpoints or savepoints.
    pub fn is_empty(&self) -> bool {
        self.latest_checkpoint.is_none() && self.last_savepoint.is_none() && self.savepoint_history.is_empty()
    }

    /// Writes the layout for people: a table, then where to look for more.
    pub fn write_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        let (name, ns) = (&self.name, &self.namespace);
        if self.is_empty() {
            match &self.storage {
                None => writeln!(
                    out,
                    "streamjob {name} has checkpointing off (spec.checkpointing is not set): it keeps no checkpoints"
                )?,
                Some(_) => {
                    writeln!(out, "streamjob {name} has no completed checkpoint or savepoint in its status yet")?
                }
            }
        } else {
            let ago = |s: Option<i64>| s.map_or(String::new(), age);
            let mut rows = vec![["KIND", "ID", "STATE", "AGE", "PATH"].map(String::from).to_vec()];
            if let Some(c) = &self.latest_checkpoint {
                rows.push(vec![
                    "checkpoint".into(),
                    c.id.to_string(),
                    "Completed".into(),
                    ago(c.age_seconds),
                    c.path.clone(),
                ]);
            }
            for s in self.last_savepoint.iter().chain(&self.savepoint_history) {
                let path = match (&s.path, &s.error) {
                    (_, Some(e)) => format!("error: {e}"),
                    (Some(p), None) => p.clone(),
                    (None, None) => String::new(),
                };
                let id = format!("{} {}", s.trigger.to_lowercase(), s.value);
                rows.push(vec!["savepoint".into(), id, s.state.clone(), ago(s.age_seconds), path]);
            }
            table(out, &rows)?;
        }
        if let Some(p) = &self.resume_from {
            writeln!(out, "Resume restores from: {p}")?;
        }
        if let Some(uri) = &self.storage {
            writeln!(out, "The status keeps only the latest checkpoint. Every retained checkpoint is under {uri}")?;
            writeln!(out, "(manifests/chk-<id>.json, savepoints under savepoints/)")?;
            if self.attempt > 0 {
                writeln!(
                    out,
                    "and the running job lists its last 20: kubectl -n {ns} exec {name}-{}-0 -c runtime -- sluice-runtime checkpoints",
                    self.attempt
                )?;
            }
        }
        Ok(())
    }
}

/// `kubectl sluice checkpoints JOB [-o json|yaml]`.
pub async fn show(
    jobs: &crate::job::Jobs,
    name: &str,
    output: Option<Output>,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<(), Error> {
    let job = jobs.get(name).await?;
    let view = Checkpoints::new(&job, now);
    match output {
        Some(format) => machine(out, format, &view),
        None => Ok(view.write_human(out)?),
    }
}
