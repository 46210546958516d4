//! `status`: what the StreamJob's status says, in one screen — phase, attempt, workers, the last
//! checkpoint and its age, the last savepoint, conditions — or as JSON/YAML (`-o`).

use std::io::Write;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;
use sluice_crds::savepoints::SavepointInfo;
use sluice_crds::stream_job::CheckpointStatus;
use sluice_crds::{LABEL_ATTEMPT, LABEL_JOB, StreamJob};

use crate::Error;
use crate::cli::Output;
use crate::render::{age, age_seconds, machine, table};
use crate::state::spelling;

/// Runtime pods of the current attempt: wanted and ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workers {
    /// `spec.workers`.
    pub desired: u32,
    /// Pods of the current attempt whose `Ready` condition is true; `None` when the pods could
    /// not be listed (no permission).
    pub ready: Option<u32>,
}

/// A checkpoint, with its age.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointSummary {
    /// Checkpoint id.
    pub id: u64,
    /// URI of its manifest.
    pub path: String,
    /// When it completed (RFC 3339).
    pub completed_at: Option<String>,
    /// Seconds since it completed.
    pub age_seconds: Option<i64>,
    /// Bytes of state it references.
    pub size_bytes: Option<u64>,
    /// Trigger-to-completion time.
    pub duration_ms: Option<u64>,
}

impl CheckpointSummary {
    /// From the status entry.
    pub fn new(c: &CheckpointStatus, now: Timestamp) -> Self {
        CheckpointSummary {
            id: c.id,
            path: c.path.clone(),
            completed_at: c.completed_at.as_ref().map(|t| t.0.to_string()),
            age_seconds: c.completed_at.as_ref().map(|t| age_seconds(now, t)),
            size_bytes: c.size_bytes,
            duration_ms: c.duration_ms,
        }
    }
}

/// A savepoint, with its age.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavepointSummary {
    /// The trigger value (annotation value, nonce, `upgrade`, …).
    pub value: String,
    /// What asked for it.
    pub trigger: String,
    /// Pending, InProgress, Completed or Failed.
    pub state: String,
    /// Its directory.
    pub path: Option<String>,
    /// When it completed or failed (RFC 3339).
    pub completed_at: Option<String>,
    /// Seconds since it completed or failed, else since it was triggered.
    pub age_seconds: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl SavepointSummary {
    /// From the status entry.
    pub fn new(s: &SavepointInfo, now: Timestamp) -> Self {
        let at = s.completed_at.as_ref().or(s.started_at.as_ref());
        SavepointSummary {
            value: s.value.clone(),
            trigger: format!("{:?}", s.trigger),
            state: format!("{:?}", s.state),
            path: s.path.clone(),
            completed_at: s.completed_at.as_ref().map(|t| t.0.to_string()),
            age_seconds: at.map(|t| age_seconds(now, t)),
            error: s.error.clone(),
        }
    }
}

/// A status condition, with its age.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionSummary {
    /// `Ready`, `Progressing`, `CheckpointHealthy`, `Degraded`, …
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
    /// Seconds since the status last flipped.
    pub age_seconds: i64,
}

/// What `status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Job name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `status.phase`.
    pub phase: String,
    /// `spec.state`.
    pub desired_state: String,
    /// Current attempt (0 before the first launch).
    pub attempt: u32,
    /// Relaunches after failures.
    pub restarts: u32,
    /// Runtime pods.
    pub workers: Workers,
    /// Parallelism of the running attempt.
    pub parallelism: Option<u32>,
    /// `status.checkpoints.latest`.
    pub last_checkpoint: Option<CheckpointSummary>,
    /// `status.savepoints.last`.
    pub last_savepoint: Option<SavepointSummary>,
    /// The restore point of the current attempt.
    pub restored_from: Option<String>,
    /// The savepoint a resume restores from.
    pub resume_from: Option<String>,
    /// The flow under way (`Upgrade at Savepoint`).
    pub operation: Option<String>,
    /// `status.error`.
    pub error: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<ConditionSummary>,
}

impl Summary {
    /// The summary of `job` at `now`, with `ready` pods counted by the caller.
    pub fn new(job: &StreamJob, ready: Option<u32>, now: Timestamp) -> Self {
        let st = job.status.clone().unwrap_or_default();
        Summary {
            name: job.metadata.name.clone().unwrap_or_default(),
            namespace: job.metadata.namespace.clone().unwrap_or_default(),
            phase: st.phase.as_str().to_string(),
            desired_state: spelling(job.spec.state).to_string(),
            attempt: st.attempt,
            restarts: st.restarts,
            workers: Workers { desired: job.spec.workers, ready },
            parallelism: st.parallelism,
            last_checkpoint: st
                .checkpoints
                .as_ref()
                .and_then(|c| c.latest.as_ref())
                .map(|c| CheckpointSummary::new(c, now)),
            last_savepoint: st.savepoints.as_ref().and_then(|s| s.last.as_ref()).map(|s| SavepointSummary::new(s, now)),
            restored_from: st.restored_from.clone(),
            resume_from: st.resume_from.clone(),
            operation: st
                .operation
                .as_ref()
                .map(|o| format!("{:?} at step {:?} (attempt {})", o.kind, o.step, o.attempt)),
            error: st.error.clone(),
            conditions: st
                .conditions
                .iter()
                .map(|c| ConditionSummary {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    age_seconds: age_seconds(now, &c.last_transition_time),
                })
                .collect(),
        }
    }

    /// Writes the layout for people.
    pub fn write_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        let ready = self.workers.ready.map_or("?".to_string(), |r| r.to_string());
        let mut rows: Vec<(&str, String)> = vec![
            ("Name:", self.name.clone()),
            ("Namespace:", self.namespace.clone()),
            ("Phase:", self.phase.clone()),
            ("Desired state:", self.desired_state.clone()),
            ("Attempt:", format!("{} (restarts after failures: {})", self.attempt, self.restarts)),
            ("Workers:", format!("{ready}/{} ready", self.workers.desired)),
        ];
        if let Some(p) = self.parallelism {
            rows.push(("Parallelism:", p.to_string()));
        }
        rows.push((
            "Last checkpoint:",
            match &self.last_checkpoint {
                Some(c) => format!("{} {} ago  {}", c.id, c.age_seconds.map_or("?".into(), age), c.path),
                None => "none yet".into(),
            },
        ));
        rows.push((
            "Last savepoint:",
            match &self.last_savepoint {
                Some(s) => {
                    let mut line = format!("{} ({} {})", s.state, s.trigger.to_lowercase(), s.value);
                    if let Some(a) = s.age_seconds {
                        line.push_str(&format!(" {} ago", age(a)));
                    }
                    if let Some(p) = &s.path {
                        line.push_str(&format!("  {p}"));
                    }
                    if let Some(e) = &s.error {
                        line.push_str(&format!("  error: {e}"));
                    }
                    line
                }
                None => "none".into(),
            },
        ));
        for (label, value) in [
            ("Restored from:", &self.restored_from),
            ("Resume from:", &self.resume_from),
            ("Operation:", &self.operation),
            ("Error:", &self.error),
        ] {
            if let Some(v) = value {
                rows.push((label, v.clone()));
            }
        }
        for (label, value) in rows {
            writeln!(out, "{label:<17}{value}")?;
        }
        writeln!(out, "Conditions:")?;
        if self.conditions.is_empty() {
            return writeln!(out, "  none yet");
        }
        let mut cells = vec![["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"].map(String::from).to_vec()];
        for c in &self.conditions {
            cells.push(vec![
                format!("  {}", c.type_),
                c.status.clone(),
                c.reason.clone(),
                age(c.age_seconds),
                c.message.clone(),
            ]);
        }
        cells[0][0] = format!("  {}", cells[0][0]);
        table(out, &cells)
    }
}

/// Ready pods of `attempt` of job `name`; `None` when listing pods is forbidden.
pub async fn ready_pods(client: Client, namespace: &str, name: &str, attempt: u32) -> Result<Option<u32>, Error> {
    if attempt == 0 {
        return Ok(Some(0));
    }
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let selector = format!("{LABEL_JOB}={name},{LABEL_ATTEMPT}={attempt}");
    let list = match pods.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list,
        Err(kube::Error::Api(s)) if s.is_forbidden() => return Ok(None),
        Err(source) => {
            return Err(Error::Api {
                step: "listing the pods of",
                name: name.into(),
                namespace: namespace.into(),
                source: Box::new(source),
            });
        }
    };
    let ready = list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p)).count();
    Ok(Some(u32::try_from(ready).unwrap_or(u32::MAX)))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `kubectl sluice status JOB [-o json|yaml]`.
pub async fn show(
    client: Client,
    namespace: &str,
    name: &str,
    output: Option<Output>,
    now: Timestamp,
    out: &mut impl Write,
) -> Result<(), Error> {
    let job = crate::job::Jobs::new(client.clone(), namespace).get(name).await?;
    let attempt = job.status.as_ref().map_or(0, |s| s.attempt);
    let ready = ready_pods(client, namespace, name, attempt).await?;
    let summary = Summary::new(&job, ready, now);
    match output {
        Some(format) => machine(out, format, &summary),
        None => Ok(summary.write_human(out)?),
    }
}
