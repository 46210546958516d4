//! `logs`: the log of the current attempt's runtime pods, found by the labels the operator puts
//! on them (`sluice.dev/job`, `sluice.dev/attempt`), several pods merged line by line.

use std::io::Write;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use sluice_crds::{LABEL_ATTEMPT, LABEL_JOB};

use crate::Error;
use crate::cli::LogsArgs;
use crate::job::Jobs;

/// The container `logs` reads by default: the runtime container of the operator's pods.
pub const RUNTIME_CONTAINER: &str = sluice_crds::CONTAINER_RUNTIME;

/// The label selector of the runtime pods of `attempt` of job `name`.
pub fn selector(name: &str, attempt: u32) -> String {
    format!("{LABEL_JOB}={name},{LABEL_ATTEMPT}={attempt}")
}

/// Names of the runtime pods of the current attempt of job `name`, sorted.
pub async fn current_pods(client: Client, jobs: &Jobs, name: &str) -> Result<Vec<String>, Error> {
    let job = jobs.get(name).await?;
    let status = job.status.unwrap_or_default();
    let none = || Error::NoPods {
        name: name.into(),
        namespace: jobs.namespace().into(),
        attempt: status.attempt,
        phase: status.phase.as_str().into(),
    };
    if status.attempt == 0 {
        return Err(none());
    }
    let pods: Api<Pod> = Api::namespaced(client, jobs.namespace());
    let list = pods.list(&ListParams::default().labels(&selector(name, status.attempt))).await.map_err(|source| {
        Error::Api {
            step: "listing the pods of",
            name: name.into(),
            namespace: jobs.namespace().into(),
            source: Box::new(source),
        }
    })?;
    let mut names: Vec<String> = list.items.into_iter().filter_map(|p| p.metadata.name).collect();
    names.sort();
    if names.is_empty() {
        return Err(none());
    }
    Ok(names)
}

/// `kubectl sluice logs JOB [-f] [-c CONTAINER] [--tail N] [-p] [--prefix]`: streams each pod's
/// log; with several pods, lines are interleaved as they arrive and prefixed `[pod] `.
pub async fn stream(client: Client, jobs: &Jobs, args: &LogsArgs, out: &mut impl Write) -> Result<(), Error> {
    let names = current_pods(client.clone(), jobs, &args.job).await?;
    let pods: Api<Pod> = Api::namespaced(client, jobs.namespace());
    let params = LogParams {
        container: Some(args.container.clone()),
        follow: args.follow,
        tail_lines: args.tail,
        previous: args.previous,
        ..LogParams::default()
    };
    let prefix = args.prefix || names.len() > 1;
    let mut streams = Vec::new();
    for pod in &names {
        let reader =
            pods.log_stream(pod, &params).await.map_err(|e| Error::Logs { pod: pod.clone(), source: Box::new(e) })?;
        let pod = pod.clone();
        let lines = reader.lines().map(move |line| match line {
            Ok(l) => Ok((pod.clone(), l)),
            Err(e) => Err(Error::Logs { pod: pod.clone(), source: Box::new(e) }),
        });
        streams.push(lines.boxed());
    }
    let mut merged = futures::stream::select_all(streams);
    while let Some((pod, line)) = merged.try_next().await? {
        if prefix {
            writeln!(out, "[{pod}] {line}")?;
        } else {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    Ok(())
}
