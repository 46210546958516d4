//! Reads what exists: the job's pods, the runtime's control endpoint and the latest checkpoint
//! in storage, into an [`Observed`]. Never writes.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

use sluice_crds::contract::control::{
    DataLossKind, EXIT_DATA_LOSS, EXIT_INVALID_JOB, JobState, JobStatus, SavepointStatus,
};
use sluice_crds::savepoints::SavepointState;
use sluice_crds::{ANNOTATION_RUN_ID, ANNOTATION_SPEC_HASH, ANNOTATION_WORKERS, LABEL_ATTEMPT, LABEL_JOB, StreamJob};

use crate::context::Context;
use crate::error::Error;
use crate::recovery::RestorePoint;
use crate::savepoint::Found;
use crate::store::StoreSession;

/// Phase of one runtime pod, reduced to what the planner needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodState {
    /// Scheduled or starting, not running yet.
    Pending,
    /// Running; `ready` tells whether `/readyz` passes.
    Running {
        /// The runtime answers `/readyz`.
        ready: bool,
    },
    /// The runtime exited 0 (bounded job finished).
    Succeeded,
    /// The runtime exited non-zero or was killed.
    Failed,
    /// The pod's node stopped reporting (phase `Unknown` or reason `NodeLost`).
    NodeLost,
}

/// One runtime pod of the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPod {
    /// Pod name.
    pub name: String,
    /// Attempt the pod belongs to.
    pub attempt: u32,
    /// Which worker of its attempt it runs (0 runs the coordinator and the control endpoint).
    pub index: u32,
    /// How many worker pods its attempt has (the `sluice.dev/workers` annotation, else 1).
    pub workers: u32,
    /// What it is doing.
    pub state: PodState,
    /// A deletion is already under way.
    pub terminating: bool,
    /// Spec hash the pod was built from.
    pub spec_hash: Option<String>,
    /// Why it failed, in words (container exit code / reason), when it did.
    pub failure: Option<String>,
    /// The runtime exited with status 3 (a person must decide), and why: a completed
    /// checkpoint's output could not be committed, or restore was refused.
    pub data_loss: Option<DataLossKind>,
    /// The runtime exited with status 65: it refused the job document before running anything
    /// (`EXIT_INVALID_JOB`). A relaunch would be refused the same way.
    pub invalid_job: bool,
    /// The pod's IP, once it has one (the runtime's control endpoint listens there).
    pub ip: Option<String>,
    /// The runtime's `--run-id` (annotation, else the container argument).
    pub run_id: Option<String>,
    /// Why a pod that has not started waits, in words: a container waiting reason
    /// (`ImagePullBackOff`, `CreateContainerConfigError`, …) or an unschedulable pod's message.
    pub waiting: Option<String>,
    /// When the pod was created.
    pub created_at: Option<jiff::Timestamp>,
    /// When a deletion under way lets the kubelet kill it (`metadata.deletionTimestamp`: the
    /// request's time plus the grace period).
    pub deletion_at: Option<jiff::Timestamp>,
}

/// What the runtime's control endpoint said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeObservation {
    /// Not asked (no running pod of the current attempt).
    NotQueried,
    /// Asked, no answer.
    Unreachable(String),
    /// The answer.
    Status(JobStatus),
}

impl RuntimeObservation {
    /// The job state the runtime reported, if it answered.
    pub fn job_state(&self) -> Option<JobState> {
        match self {
            RuntimeObservation::Status(s) => Some(s.state),
            _ => None,
        }
    }
}

/// What checkpoint storage said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreObservation {
    /// The job has no checkpointing block.
    NotConfigured,
    /// Storage answered; the newest readable checkpoint, if any.
    Latest(Option<RestorePoint>),
    /// Storage the operator cannot reach itself (`file://` on a pod volume): the runtime picks
    /// the restore point.
    RuntimeManaged,
    /// Storage could not be read; relaunching from an older state would break exactly-once,
    /// so recovery waits.
    Unavailable(String),
}

/// Everything the planner looks at, besides spec and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `metadata.generation` of the StreamJob.
    pub generation: Option<i64>,
    /// The StreamJob is being deleted.
    pub deleting: bool,
    /// The job's pods, every attempt.
    pub pods: Vec<ObservedPod>,
    /// The current attempt's runtime.
    pub runtime: RuntimeObservation,
    /// The latest checkpoint.
    pub store: StoreObservation,
    /// Hash of the spec fields pods are built from, for the current spec.
    pub desired_hash: String,
    /// Problems with the spec beyond what the CRD checks (field path: message).
    pub invalid: Option<String>,
    /// The StreamJob's name (savepoint directories are named after its attempts).
    pub job_name: String,
    /// The `sluice.dev/savepoint` annotation's value.
    pub annotation: Option<String>,
    /// The runtime's answer about the savepoint request in `status.savepoints.last`.
    pub savepoint_poll: Option<SavepointPoll>,
    /// Savepoint paths the status refers to, and whether each is complete in storage (a path
    /// the operator could not check is absent).
    pub savepoints_found: BTreeMap<String, bool>,
    /// Savepoint paths the status refers to that hold another object's or job's savepoint,
    /// and why (never complete, never restored from).
    pub foreign_savepoints: BTreeMap<String, String>,
    /// The StreamJob's `metadata.uid` (run ids and savepoint names carry it).
    pub uid: Option<String>,
}

/// What the runtime said about a savepoint request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SavepointPoll {
    /// Its status.
    Status(SavepointStatus),
    /// The runtime does not know the id (it restarted, or another attempt runs).
    Unknown,
    /// No answer.
    Unreachable(String),
}

/// Reduces a pod to an [`ObservedPod`]; `None` for pods without a readable attempt label.
pub fn observe_pod(pod: &Pod) -> Option<ObservedPod> {
    let attempt = pod.labels().get(LABEL_ATTEMPT)?.parse().ok()?;
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let reason = status.and_then(|s| s.reason.as_deref());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let state = match (phase, reason) {
        (_, Some("NodeLost")) | ("Unknown", _) => PodState::NodeLost,
        ("Running", _) => PodState::Running { ready },
        ("Succeeded", _) => PodState::Succeeded,
        ("Failed", _) => PodState::Failed,
        _ => PodState::Pending,
    };
    let failure = match state {
        PodState::Failed | PodState::NodeLost => Some(describe_failure(pod)),
        _ => None,
    };
    let data_loss = terminated_state(pod)
        .filter(|t| state == PodState::Failed && t.exit_code == i32::from(EXIT_DATA_LOSS))
        .map(|t| DataLossKind::of_message(t.message.as_deref().unwrap_or_default()));
    let invalid_job =
        state == PodState::Failed && terminated_state(pod).is_some_and(|t| t.exit_code == i32::from(EXIT_INVALID_JOB));
    Some(ObservedPod {
        name: pod.name_any(),
        attempt,
        index: crate::build::workers::index_of(&pod.name_any()).unwrap_or(0),
        workers: pod.annotations().get(ANNOTATION_WORKERS).and_then(|w| w.parse().ok()).unwrap_or(1),
        state,
        terminating: pod.meta().deletion_timestamp.is_some(),
        spec_hash: pod.annotations().get(ANNOTATION_SPEC_HASH).cloned(),
        failure,
        data_loss,
        invalid_job,
        ip: status.and_then(|s| s.pod_ip.clone()),
        run_id: run_id_of(pod),
        waiting: (state == PodState::Pending).then(|| waiting_reason(pod)).flatten(),
        created_at: pod.meta().creation_timestamp.as_ref().map(|t| t.0),
        deletion_at: pod.meta().deletion_timestamp.as_ref().map(|t| t.0),
    })
}

/// Why a pending pod has not started: the first container waiting reason other than the
/// normal `ContainerCreating`/`PodInitializing`, else a `PodScheduled=False` condition.
fn waiting_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let containers = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for c in containers {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.as_deref().filter(|r| !matches!(*r, "ContainerCreating" | "PodInitializing"))
        {
            let message = w.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default();
            return Some(format!("container {} {reason}{message}", c.name));
        }
    }
    let unscheduled = status.conditions.iter().flatten().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(format!(
        "{}{}",
        unscheduled.reason.as_deref().unwrap_or("not scheduled"),
        unscheduled.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default()
    ))
}

/// The run id a pod was started with: its annotation, else its `--run-id` argument (pods
/// created before the annotation existed).
fn run_id_of(pod: &Pod) -> Option<String> {
    if let Some(r) = pod.annotations().get(ANNOTATION_RUN_ID) {
        return Some(r.clone());
    }
    let args = pod.spec.as_ref()?.containers.iter().find(|c| c.name == crate::build::pod::CONTAINER)?.args.as_ref()?;
    args.iter().position(|a| a == "--run-id").and_then(|i| args.get(i + 1)).cloned()
}

/// The terminated state of the pod's container, when it has one.
fn terminated_state(pod: &Pod) -> Option<ContainerStateTerminated> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find_map(|c| c.state.as_ref().and_then(|st| st.terminated.clone())))
}

fn describe_failure(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    match (terminated_state(pod), status.and_then(|s| s.reason.clone())) {
        (Some(t), _) => format!(
            "pod {} exited with code {}{}{}",
            pod.name_any(),
            t.exit_code,
            t.reason.map(|r| format!(" ({r})")).unwrap_or_default(),
            // The runtime writes its error to the termination message.
            t.message.map(|m| format!(": {}", m.trim())).unwrap_or_default()
        ),
        (None, Some(r)) => format!("pod {}: {r}", pod.name_any()),
        (None, None) => format!("pod {} failed", pod.name_any()),
    }
}

/// Reads pods (a consistent list from the API server, not a cache: a stale cache could hide a
/// pod just created and lead to a second attempt), the runtime status and the latest checkpoint
/// (through `stores`, this reconcile's store session).
pub async fn observe(job: &StreamJob, ctx: &Context, stores: &StoreSession<'_>) -> Result<Observed, Error> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let list = pods_api
        .list(&ListParams::default().labels(&format!("{LABEL_JOB}={name}")))
        .await
        .map_err(|source| Error::ListPods { job: name.clone(), source })?;
    let mut pods: Vec<ObservedPod> = list.items.iter().filter_map(observe_pod).collect();
    let current = pods.iter().map(|p| p.attempt).max().unwrap_or(0).max(job.status.as_ref().map_or(0, |s| s.attempt));
    pods.extend(confirm_missing(job, &pods_api, &pods, current).await?);

    // Worker 0 serves the control endpoint (the only runtime of a one-worker job).
    let running_ip =
        coordinator(&pods, current).filter(|o| matches!(o.state, PodState::Running { .. })).and_then(|o| o.ip.clone());
    let runtime = match &running_ip {
        Some(ip) => match ctx.runtime.job_status(ip).await {
            Ok(s) => RuntimeObservation::Status(s),
            Err(e) => RuntimeObservation::Unreachable(e.to_string()),
        },
        None => RuntimeObservation::NotQueried,
    };
    let status = job.status.clone().unwrap_or_default();
    let last = status.savepoints.as_ref().and_then(|s| s.last.as_ref());
    let savepoint_poll = match (last, &running_ip) {
        (Some(l), Some(ip)) if l.state == SavepointState::InProgress => match &l.request_id {
            Some(id) => Some(match ctx.runtime.savepoint_status(ip, id).await {
                Ok(s) => SavepointPoll::Status(s),
                Err(e) if e.is_not_found() => SavepointPoll::Unknown,
                Err(e) => SavepointPoll::Unreachable(e.to_string()),
            }),
            None => None,
        },
        _ => None,
    };

    let store = match &job.spec.checkpointing {
        None => StoreObservation::NotConfigured,
        Some(c) if c.storage.uri.starts_with("file://") => StoreObservation::RuntimeManaged,
        Some(c) => match latest_restore_point(stores, &c.storage).await {
            Ok(p) => StoreObservation::Latest(p),
            // This operator build cannot open such a store (e.g. no S3 support compiled in):
            // the runtime, which can, picks the latest checkpoint itself.
            Err(crate::store::Error::Unsupported(m)) => {
                tracing::warn!(job = %name, message = %m, "cannot read checkpoint storage; the runtime will choose the restore point");
                StoreObservation::RuntimeManaged
            }
            // Manifests, none intact: the runtime's restore rule decides (it refuses, naming them).
            Err(e @ crate::store::Error::Unverified { .. }) => {
                tracing::warn!(job = %name, error = %e, "no checkpoint manifest reads back; the runtime will decide");
                StoreObservation::RuntimeManaged
            }
            Err(e) => StoreObservation::Unavailable(e.to_string()),
        },
    };

    let invalid = sluice_crds::contract::validate::validate_pipeline_at(&job.spec.pipeline, "spec.pipeline")
        .err()
        .map(|e| e.to_string())
        .or_else(|| sluice_crds::workers::check_workers(&job.spec).err().map(|e| e.to_string()));

    let (savepoints_found, foreign_savepoints) = check_savepoints(job, &status, &store, stores).await;

    Ok(Observed {
        generation: job.meta().generation,
        deleting: job.meta().deletion_timestamp.is_some(),
        pods,
        runtime,
        store,
        desired_hash: crate::build::spec_hash(&job.spec),
        invalid,
        job_name: name,
        annotation: crate::savepoint::annotation_value(job.annotations()),
        savepoint_poll,
        savepoints_found,
        foreign_savepoints,
        uid: job.meta().uid.clone(),
    })
}

/// Worker 0 of `attempt`, the pod whose control endpoint the operator talks to.
pub fn coordinator(pods: &[ObservedPod], attempt: u32) -> Option<&ObservedPod> {
    pods.iter().find(|p| p.attempt == attempt && p.index == 0)
}

/// The pods of the current attempt the list did not show although the attempt has them, read
/// one by one. A list can lag behind a create (a cache, a watch-fed read, a lagging replica);
/// without this a pod just created would count as deleted and fail the attempt. Only asked when
/// the list shows some pods of the attempt but fewer than its workers.
async fn confirm_missing(
    job: &StreamJob,
    api: &Api<Pod>,
    pods: &[ObservedPod],
    current: u32,
) -> Result<Vec<ObservedPod>, Error> {
    let listed: Vec<&ObservedPod> = pods.iter().filter(|p| p.attempt == current).collect();
    let expected = listed.iter().map(|p| p.workers).max().unwrap_or(0);
    if listed.len() >= expected as usize {
        return Ok(vec![]);
    }
    let name = job.name_any();
    let mut found = Vec::new();
    for index in (0..expected).filter(|i| !listed.iter().any(|p| p.index == *i)) {
        let pod_name = crate::build::labels::pod_name(&name, current, index);
        let pod = api.get_opt(&pod_name).await.map_err(|source| Error::ListPods { job: name.clone(), source })?;
        let ours = pod.as_ref().filter(|p| p.labels().get(LABEL_JOB) == Some(&name));
        if let Some(p) = ours.and_then(observe_pod).filter(|p| p.attempt == current) {
            tracing::info!(job = %name, pod = %pod_name, "pod missing from the list exists: the list lagged");
            found.push(p);
        }
    }
    Ok(found)
}

/// The newest checkpoint of the job's storage that reads back (see [`crate::recovery`]).
async fn latest_restore_point(
    stores: &StoreSession<'_>,
    storage: &sluice_crds::checkpointing::CheckpointStorage,
) -> Result<Option<RestorePoint>, crate::store::Error> {
    let store = stores.open(storage).await?;
    crate::recovery::latest_restore_point(store.as_ref(), &storage.uri).await
}

/// Checks in storage the savepoints a flow or trigger under way refers to: complete and this
/// object's (`true`), absent (`false`), or foreign (second map). A store the operator cannot
/// read leaves them unchecked.
async fn check_savepoints(
    job: &StreamJob,
    status: &sluice_crds::StreamJobStatus,
    store: &StoreObservation,
    stores: &StoreSession<'_>,
) -> (BTreeMap<String, bool>, BTreeMap<String, String>) {
    let (mut found, mut foreign) = (BTreeMap::new(), BTreeMap::new());
    let (Some(c), StoreObservation::Latest(_)) = (&job.spec.checkpointing, store) else { return (found, foreign) };
    let last = status.savepoints.as_ref().and_then(|s| s.last.as_ref());
    let paths: Vec<String> = last
        .filter(|l| matches!(l.state, SavepointState::Pending | SavepointState::InProgress))
        .and_then(|l| l.path.clone())
        .into_iter()
        .chain(status.operation.as_ref().and_then(|o| o.savepoint_path.clone()))
        .collect();
    if paths.is_empty() {
        return (found, foreign);
    }
    let Ok(opened) = stores.open(&c.storage).await else {
        return (found, foreign);
    };
    let (name, uid) = (job.name_any(), job.meta().uid.clone());
    for path in paths {
        let Some(prefix) = crate::savepoint::key_prefix(&c.storage.uri, &path) else { continue };
        match crate::savepoint::identify(opened.as_ref(), &prefix, &name, uid.as_deref()).await {
            Ok(Found::Ours) => {
                found.insert(path, true);
            }
            Ok(Found::Absent) => {
                found.insert(path, false);
            }
            Ok(Found::Foreign(why)) => {
                tracing::warn!(job = %name, path = %path, %why, "not this job's savepoint");
                found.insert(path.clone(), false);
                foreign.insert(path, why);
            }
            Err(e) => tracing::warn!(path = %path, error = %e, "cannot check savepoint"),
        }
    }
    (found, foreign)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32, message: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "demo-2-0", "labels": {LABEL_ATTEMPT: "2"}},
            "status": {
                "phase": "Failed",
                "containerStatuses": [{
                    "name": "runtime", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code, "reason": "Error", "message": message}}
                }]
            }
        }))
        .expect("pod")
    }

    #[test]
    fn a_pending_pod_says_why_it_waits() {
        let pod = |status: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "demo-1-0", "labels": {LABEL_ATTEMPT: "1"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "status": status
            }))
            .expect("pod")
        };
        let pulling = pod(serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "runtime", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x:1\""}}}]}));
        let p = observe_pod(&pulling).expect("observed");
        assert_eq!(p.waiting.as_deref(), Some("container runtime ImagePullBackOff: Back-off pulling image \"x:1\""));
        assert!(p.created_at.is_some());
        let unschedulable = pod(serde_json::json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}));
        assert_eq!(
            observe_pod(&unschedulable).expect("observed").waiting.as_deref(),
            Some("Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.")
        );
        let creating = pod(serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "runtime", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(observe_pod(&creating).expect("observed").waiting, None, "starting normally");
    }

    #[test]
    fn exit_status_3_is_a_data_loss_and_the_termination_message_is_the_reason() {
        let p = observe_pod(&exited(3, Some("DataLossRisk: transaction t of completed checkpoint 9 ...")))
            .expect("observed");
        assert_eq!(p.data_loss, Some(DataLossKind::UncommittableTransaction));
        let failure = p.failure.expect("failure");
        assert!(failure.contains("code 3") && failure.contains("checkpoint 9"), "{failure}");
        let refused = DataLossKind::RestoreRefused.termination_message("checkpoint 12 failed verification");
        let p = observe_pod(&exited(3, Some(&refused))).expect("observed");
        assert_eq!(p.data_loss, Some(DataLossKind::RestoreRefused));
        let p = observe_pod(&exited(1, None)).expect("observed");
        assert!(p.data_loss.is_none() && !p.invalid_job && p.failure.expect("failure").contains("code 1"));
        let p = observe_pod(&exited(65, Some("invalid job: pipeline.nodes[1] (sum): ..."))).expect("observed");
        assert!(p.invalid_job && p.data_loss.is_none(), "{p:?}");
        assert!(p.failure.expect("failure").contains("pipeline.nodes[1]"));
    }
}
