//! Runs a plan's actions: the only writer of child objects. ConfigMap and Service by
//! server-side apply; pods by create (an existing pod of the attempt is never modified).
//! Calls to the runtime and deletions in checkpoint storage answer with an [`Outcome`] that
//! the controller folds into the status ([`super::absorb`]).

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use sluice_crds::StreamJob;

use super::absorb::Outcome;
use super::plan::{Action, Restore};
use crate::build;
use crate::config::FIELD_MANAGER;
use crate::context::Context;
use crate::error::Error;

/// Applies `actions` in order; stops at the first Kubernetes API failure (the next reconcile
/// re-plans). Runtime and storage failures are outcomes, not errors.
pub async fn apply(job: &StreamJob, actions: &[Action], spec_hash: &str, ctx: &Context) -> Result<Vec<Outcome>, Error> {
    let ns = job.namespace().ok_or(Error::NoNamespace)?;
    let mut outcomes = Vec::new();
    for action in actions {
        match action {
            Action::DeletePods { names, force } => delete_pods(ctx, &ns, names, *force).await?,
            Action::Launch { attempt, restore } => launch(job, ctx, &ns, *attempt, restore, spec_hash).await?,
            Action::TriggerSavepoint { pod_ip, location } => {
                let result = ctx.runtime.trigger_savepoint(pod_ip, location).await.map_err(|e| e.to_string());
                tracing::info!(job = %job.name_any(), %location, ?result, "triggered savepoint");
                outcomes.push(Outcome::Triggered(result));
            }
            Action::StopWithSavepoint { pod_ip } => {
                tracing::info!(job = %job.name_any(), %pod_ip, "stopping with a savepoint");
                let result = ctx.runtime.stop_with_savepoint(pod_ip).await.map_err(|e| e.to_string());
                tracing::info!(job = %job.name_any(), ?result, "stop-with-savepoint answered");
                outcomes.push(Outcome::Stopped(result));
            }
            Action::DisposeSavepoint { path } => {
                let result = dispose(job, ctx, &ns, path).await;
                outcomes.push(Outcome::Disposed { path: path.clone(), result });
            }
        }
    }
    Ok(outcomes)
}

async fn dispose(job: &StreamJob, ctx: &Context, ns: &str, path: &str) -> Result<(), String> {
    let c = job.spec.checkpointing.as_ref().ok_or("checkpointing is not configured")?;
    let prefix = crate::savepoint::key_prefix(&c.storage.uri, path)
        .ok_or_else(|| format!("{path} is not under the job's storage {}", c.storage.uri))?;
    let store = ctx.stores.open(ns, &c.storage).await.map_err(|e| e.to_string())?;
    let n = crate::savepoint::dispose(store.as_ref(), &prefix).await.map_err(|e| e.to_string())?;
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

async fn launch(
    job: &StreamJob,
    ctx: &Context,
    ns: &str,
    attempt: u32,
    restore: &Restore,
    spec_hash: &str,
) -> Result<(), Error> {
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    let cm = build::config_map::config_map(job);
    let cm_name = cm.name_any();
    Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .patch(&cm_name, &ssa, &Patch::Apply(&cm))
        .await
        .map_err(|source| Error::Apply { kind: "ConfigMap", name: cm_name, source })?;
    let svc = build::service::service(job);
    let svc_name = svc.name_any();
    Api::<Service>::namespaced(ctx.client.clone(), ns)
        .patch(&svc_name, &ssa, &Patch::Apply(&svc))
        .await
        .map_err(|source| Error::Apply { kind: "Service", name: svc_name, source })?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let post = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    for index in 0..job.spec.workers {
        let pod = build::pod::pod(job, attempt, index, restore, spec_hash);
        let name = pod.name_any();
        match pods.create(&post, &pod).await {
            Ok(_) => tracing::info!(pod = %name, attempt, ?restore, "created pod"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => return Err(Error::Apply { kind: "Pod", name, source }),
        }
    }
    Ok(())
}
