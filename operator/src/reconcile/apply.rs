//! Runs a plan's actions: the only writer of child objects. ConfigMap and Service by
//! server-side apply, only over objects this StreamJob controls (or none); pods by create (an
//! existing pod of the attempt is never modified, a foreign pod of its name is a conflict).
//! A launch the API server refuses is an outcome, not an error: the status says why.
//! Calls to the runtime and deletions in checkpoint storage answer with an [`Outcome`] that
//! the controller folds into the status ([`super::absorb`]).

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use sluice_crds::conditions::Reason;
use sluice_crds::{ANNOTATION_JOB_UID, StreamJob};

use super::absorb::Outcome;
use super::plan::{Action, Restore};
use crate::build;
use crate::config::FIELD_MANAGER;
use crate::context::Context;
use crate::error::Error;
use crate::store::StoreSession;

/// Applies `actions` in order; stops at the first Kubernetes API failure (the next reconcile
/// re-plans). Runtime and storage failures are outcomes, not errors.
pub async fn apply(
    job: &StreamJob,
    actions: &[Action],
    spec_hash: &str,
    ctx: &Context,
    stores: &StoreSession<'_>,
) -> Result<Vec<Outcome>, Error> {
    let ns = job.namespace().ok_or(Error::NoNamespace)?;
    let mut outcomes = Vec::new();
    for action in actions {
        match action {
            Action::DeletePods { names, force } => delete_pods(ctx, &ns, names, *force).await?,
            Action::Launch { attempt, restore } => {
                if let Err(rejected) = launch(job, ctx, &ns, *attempt, restore, spec_hash).await? {
                    tracing::warn!(job = %job.name_any(), attempt, message = %rejected.message, "launch refused");
                    // Nothing after a refused launch acts on this attempt.
                    outcomes.push(Outcome::LaunchRejected(rejected));
                    break;
                }
            }
            Action::TriggerSavepoint { pod_ip, location } => {
                let result = ctx.runtime.trigger_savepoint(pod_ip, location).await;
                tracing::info!(job = %job.name_any(), %location, ?result, "triggered savepoint");
                outcomes.push(Outcome::Triggered(result));
            }
            Action::StopWithSavepoint { pod_ip } => {
                tracing::info!(job = %job.name_any(), %pod_ip, "stopping with a savepoint");
                let result = ctx.runtime.stop_with_savepoint(pod_ip).await;
                tracing::info!(job = %job.name_any(), ?result, "stop-with-savepoint answered");
                outcomes.push(Outcome::Stopped(result));
            }
            Action::DisposeSavepoint { path } => {
                let result = dispose(job, stores, path).await;
                outcomes.push(Outcome::Disposed { path: path.clone(), result });
            }
        }
    }
    Ok(outcomes)
}

/// Why a savepoint's files could not be deleted (retried on the next reconcile).
#[derive(Debug, thiserror::Error)]
pub enum DisposeError {
    /// The job has no checkpoint storage to delete from.
    #[error("checkpointing is not configured")]
    NoCheckpointing,
    /// The savepoint lies outside the job's storage: it is not the operator's to delete.
    #[error("{path} is not under the job's storage {storage}")]
    OutsideStorage {
        /// Directory URI of the savepoint.
        path: String,
        /// The job's storage URI.
        storage: String,
    },
    /// The job's storage could not be opened.
    #[error("{0}")]
    Open(#[from] crate::store::Error),
    /// Listing or deleting the savepoint's objects failed.
    #[error("{0}")]
    Delete(#[from] sluice_storage::Error),
}

async fn dispose(job: &StreamJob, stores: &StoreSession<'_>, path: &str) -> Result<(), DisposeError> {
    let c = job.spec.checkpointing.as_ref().ok_or(DisposeError::NoCheckpointing)?;
    let prefix = crate::savepoint::key_prefix(&c.storage.uri, path)
        .ok_or_else(|| DisposeError::OutsideStorage { path: path.to_string(), storage: c.storage.uri.clone() })?;
    let store = stores.open(&c.storage).await?;
    let n = crate::savepoint::dispose(store.as_ref(), &prefix).await?;
    tracing::info!(job = %job.name_any(), %path, objects = n, "disposed of savepoint");
    Ok(())
}

async fn delete_pods(ctx: &Context, ns: &str, names: &[String], force: bool) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let params = if force {
        DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }
    } else {
        DeleteParams::default()
    };
    for name in names {
        match pods.delete(name, &params).await {
            Ok(_) => tracing::info!(pod = %name, force, "deleted pod"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(Error::DeletePod { name: name.clone(), source }),
        }
    }
    Ok(())
}

/// Why a launch cannot go on: the API server refused a child (4xx other than 409/429) or an
/// object of a child's name belongs to someone else. Retrying the same request now cannot help;
/// the attempt counts as failed and is retried with the restart backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The attempt that could not be launched.
    pub attempt: u32,
    /// `ChildRejected` or `NameConflict`.
    pub reason: Reason,
    /// What was refused and why, in the API server's words.
    pub message: String,
}

/// Whether an API error refuses the request itself (retrying it unchanged cannot succeed).
fn refused(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 409 && s.code != 429 => {
            Some(format!("{} ({})", s.message, s.code))
        }
        _ => None,
    }
}

/// The controller owner of `meta`, when it is not `job`: `Some(description)` of the holder.
pub fn foreign_controller(meta: &ObjectMeta, job: &StreamJob) -> Option<String> {
    let uid = job.meta().uid.as_deref();
    let controller = meta.owner_references.iter().flatten().find(|r| r.controller == Some(true));
    match controller {
        Some(r) if Some(r.uid.as_str()) == uid => None,
        Some(r) => Some(format!("it is controlled by {} {} (uid {})", r.kind, r.name, r.uid)),
        None => Some("it has no controller (created by someone else)".to_string()),
    }
}

/// Whose a pod of a child's name is, when it is not `job`'s: runtime pods carry no owner
/// reference, so the job's uid annotation (or, for pods of older operators, the controller
/// reference) decides.
fn foreign_pod(pod: &Pod, job: &StreamJob) -> Option<String> {
    let uid = job.meta().uid.as_deref();
    match pod.annotations().get(ANNOTATION_JOB_UID) {
        Some(u) if Some(u.as_str()) == uid => None,
        Some(u) => Some(format!("it belongs to another StreamJob object (uid {u})")),
        None => foreign_controller(pod.meta(), job),
    }
}

/// Server-side applies `object` unless an object of its name exists that `job` does not
/// control (a Service called like the job, an earlier job's leftovers): applying with force
/// would take it over.
async fn apply_owned<K>(
    api: &Api<K>,
    job: &StreamJob,
    object: &K,
    kind: &'static str,
) -> Result<Result<(), (Reason, String)>, Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let existing = api.get_opt(&name).await.map_err(|source| Error::Apply { kind, name: name.clone(), source })?;
    if let Some(why) = existing.as_ref().and_then(|e| foreign_controller(e.meta(), job)) {
        let message = format!("{kind} {name} already exists and {why}; rename the StreamJob or remove the {kind}");
        return Ok(Err((Reason::NameConflict, message)));
    }
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(&name, &ssa, &Patch::Apply(object)).await {
        Ok(_) => Ok(Ok(())),
        Err(source) => match refused(&source) {
            Some(m) => Ok(Err((Reason::ChildRejected, format!("the API server refused {kind} {name}: {m}")))),
            None => Err(Error::Apply { kind, name, source }),
        },
    }
}

/// Applies the ConfigMap and Service and creates the pods of `attempt`. `Ok(Err(_))` when the
/// launch is refused (see [`Rejected`]); `Err` for errors worth retrying at once.
async fn launch(
    job: &StreamJob,
    ctx: &Context,
    ns: &str,
    attempt: u32,
    restore: &Restore,
    spec_hash: &str,
) -> Result<Result<(), Rejected>, Error> {
    let conflict = |message| Rejected { attempt, reason: Reason::NameConflict, message };
    let refusal = |message| Rejected { attempt, reason: Reason::ChildRejected, message };
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    if let Err((reason, message)) = apply_owned(&cms, job, &build::config_map::config_map(job), "ConfigMap").await? {
        return Ok(Err(Rejected { attempt, reason, message }));
    }
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    if let Err((reason, message)) = apply_owned(&svcs, job, &build::service::service(job), "Service").await? {
        return Ok(Err(Rejected { attempt, reason, message }));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let post = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    for index in 0..job.spec.workers {
        let pod = build::pod::pod(job, attempt, index, restore, spec_hash);
        let name = pod.name_any();
        match pods.create(&post, &pod).await {
            Ok(_) => tracing::info!(pod = %name, attempt, ?restore, "created pod"),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Ours (a launch whose status write was lost) or someone else's pod of this name.
                let existing = pods.get_opt(&name).await.map_err(|source| Error::Apply {
                    kind: "Pod",
                    name: name.clone(),
                    source,
                })?;
                if let Some(why) = existing.as_ref().and_then(|p| foreign_pod(p, job)) {
                    return Ok(Err(conflict(format!("Pod {name} already exists and {why}"))));
                }
            }
            Err(source) => match refused(&source) {
                Some(m) => return Ok(Err(refusal(format!("the API server refused Pod {name}: {m}")))),
                None => return Err(Error::Apply { kind: "Pod", name, source }),
            },
        }
    }
    Ok(Ok(()))
}
