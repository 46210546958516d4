//! A job over several worker pods (`spec.workers` > 1): each pod runs `sluice-runtime worker`
//! with its index, the attempt's run id as the attempt id, and every worker's stable DNS name
//! `<pod>.<service>.<namespace>.svc` (pod `hostname` + `subdomain` under the job's headless
//! Service, which publishes not-ready addresses so peers resolve before they are ready).
//! Worker 0 runs the checkpoint coordinator and serves the control endpoint the operator talks
//! to; the others serve none, so only worker 0 has HTTP probes.

use k8s_openapi::api::core::v1::{Container, ContainerPort, ServicePort};
use kube::ResourceExt;
use sluice_crds::StreamJob;
use sluice_crds::contract::control::{CONTROL_PORT, HEALTHZ, READYZ};

use super::config_map::{CONFIG_DIR, JOB_FILE};
use super::labels;
use super::pod::{RestoreFlags, probe, restore_args};
use crate::reconcile::plan::Restore;

/// Port every worker's exchange listens on (named `exchange`): batches between workers.
pub const EXCHANGE_PORT: u16 = 7070;
/// Port worker 0 listens on for the other workers' control connections (named `coordinator`).
pub const COORDINATOR_PORT: u16 = 7071;
/// How long a worker waits for its peers to start and connect (`--connect-timeout`): pods of
/// one attempt start in any order and may pull their image first.
pub const CONNECT_TIMEOUT: &str = "120s";

/// The stable DNS name of worker `index` of `attempt`: `<hostname>.<service>.<namespace>.svc`.
pub fn host(job: &StreamJob, attempt: u32, index: u32) -> String {
    let name = job.name_any();
    let ns = job.namespace().unwrap_or_else(|| "default".into());
    format!("{}.{}.{ns}.svc", labels::pod_name(&name, attempt, index), labels::service_name(&name))
}

/// The `--peers` of `attempt`: every worker's exchange address, by index.
pub fn peers(job: &StreamJob, attempt: u32) -> String {
    (0..job.spec.workers).map(|i| format!("{}:{EXCHANGE_PORT}", host(job, attempt, i))).collect::<Vec<_>>().join(",")
}

/// The `sluice-runtime worker` command line of worker `index` of `attempt` (run id `run_id`,
/// also its attempt id: every worker of the attempt gets the same one).
pub fn args(job: &StreamJob, attempt: u32, index: u32, restore: &Restore, run_id: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "sluice-runtime".into(),
        "worker".into(),
        format!("{CONFIG_DIR}/{JOB_FILE}"),
        "--index".into(),
        index.to_string(),
        "--peers".into(),
        peers(job, attempt),
        "--coordinator".into(),
        format!("{}:{COORDINATOR_PORT}", host(job, attempt, 0)),
        "--attempt".into(),
        run_id.into(),
        "--listen".into(),
        format!("0.0.0.0:{EXCHANGE_PORT}"),
        "--connect-timeout".into(),
        CONNECT_TIMEOUT.into(),
    ];
    if index == 0 {
        a.extend(["--coordinator-listen".into(), format!("0.0.0.0:{COORDINATOR_PORT}")]);
    }
    a.extend(restore_args(restore, RestoreFlags::of(&job.spec)));
    a.extend(["--log-format".into(), "json".into()]);
    if index == 0 {
        a.extend(["--control-addr".into(), format!("0.0.0.0:{CONTROL_PORT}")]);
    }
    a.extend(["--run-id".into(), run_id.into()]);
    a
}

fn port(name: &str, port: u16) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: i32::from(port), ..ContainerPort::default() }
}

/// Turns the runtime container of a one-worker pod into worker `index` of `attempt`: the
/// `worker` command, the exchange port (and on worker 0 the coordinator and control ports and
/// the probes; the other workers serve no control endpoint).
pub fn shape(c: &mut Container, job: &StreamJob, attempt: u32, index: u32, restore: &Restore, run_id: &str) {
    c.args = Some(args(job, attempt, index, restore, run_id));
    if index == 0 {
        c.ports = Some(vec![
            port("control", CONTROL_PORT),
            port("exchange", EXCHANGE_PORT),
            port("coordinator", COORDINATOR_PORT),
        ]);
        c.liveness_probe = Some(probe(HEALTHZ, 10, 3));
        c.readiness_probe = Some(probe(READYZ, 5, 1));
    } else {
        c.ports = Some(vec![port("exchange", EXCHANGE_PORT)]);
        c.liveness_probe = None;
        c.readiness_probe = None;
    }
}

/// The headless Service's ports for a job of several workers, besides `control`.
pub fn service_ports() -> Vec<ServicePort> {
    [("exchange", EXCHANGE_PORT), ("coordinator", COORDINATOR_PORT)]
        .into_iter()
        .map(|(name, port)| ServicePort { name: Some(name.into()), port: i32::from(port), ..ServicePort::default() })
        .collect()
}

/// Which worker a runtime pod is: the index its name ends with (`<job>-<attempt>-<index>`).
pub fn index_of(pod_name: &str) -> Option<u32> {
    pod_name.rsplit('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::pod::pod;
    use crate::build::test_job::job;

    fn three() -> StreamJob {
        let mut j = job();
        j.spec.workers = 3;
        j
    }

    #[test]
    fn every_worker_gets_its_index_the_same_attempt_and_every_peer_by_dns_name() {
        let j = three();
        let p = pod(&j, 4, 1, &Restore::Latest, "h");
        assert_eq!(p.metadata.name.as_deref(), Some("demo-4-1"));
        let spec = p.spec.expect("spec");
        assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("demo-4-1"), Some("demo")));
        let args = spec.containers[0].args.clone().expect("args");
        let peers = "demo-4-0.demo.ns.svc:7070,demo-4-1.demo.ns.svc:7070,demo-4-2.demo.ns.svc:7070";
        assert_eq!(
            args,
            [
                "sluice-runtime",
                "worker",
                "/etc/sluice/job.yaml",
                "--index",
                "1",
                "--peers",
                peers,
                "--coordinator",
                "demo-4-0.demo.ns.svc:7071",
                "--attempt",
                "demo-4-uid1",
                "--listen",
                "0.0.0.0:7070",
                "--connect-timeout",
                "120s",
                "--log-format",
                "json",
                "--run-id",
                "demo-4-uid1"
            ]
        );
        // Every worker of the attempt: the same attempt id and peers.
        for index in [0, 2] {
            let a = pod(&j, 4, index, &Restore::Latest, "h").spec.expect("spec").containers[0].args.clone();
            let a = a.expect("args");
            let after = |flag: &str| a.iter().position(|x| x == flag).and_then(|i| a.get(i + 1)).cloned();
            assert_eq!(after("--attempt").as_deref(), Some("demo-4-uid1"));
            assert_eq!(after("--peers").as_deref(), Some(peers));
            assert_eq!(after("--index"), Some(index.to_string()));
        }
    }

    #[test]
    fn worker_zero_listens_for_the_coordinator_and_serves_control_with_probes_the_others_do_not() {
        let j = three();
        let c0 = pod(&j, 2, 0, &Restore::From("s3://b/sp".into()), "h").spec.expect("spec").containers[0].clone();
        let a0 = c0.args.clone().expect("args");
        assert!(a0.windows(2).any(|w| w == ["--coordinator-listen", "0.0.0.0:7071"]), "{a0:?}");
        assert!(a0.windows(2).any(|w| w == ["--control-addr", "0.0.0.0:9090"]), "{a0:?}");
        assert!(a0.windows(2).any(|w| w == ["--restore", "s3://b/sp"]), "{a0:?}");
        let names =
            |c: &Container| -> Vec<String> { c.ports.iter().flatten().filter_map(|p| p.name.clone()).collect() };
        assert_eq!(names(&c0), ["control", "exchange", "coordinator"]);
        assert!(c0.readiness_probe.is_some() && c0.liveness_probe.is_some());

        let c1 = pod(&j, 2, 1, &Restore::From("s3://b/sp".into()), "h").spec.expect("spec").containers[0].clone();
        let a1 = c1.args.clone().expect("args");
        assert!(!a1.iter().any(|a| a == "--control-addr" || a == "--coordinator-listen"), "{a1:?}");
        assert!(a1.windows(2).any(|w| w == ["--restore", "s3://b/sp"]), "every worker restores the same point");
        assert_eq!(names(&c1), ["exchange"]);
        assert!(c1.readiness_probe.is_none() && c1.liveness_probe.is_none(), "no control endpoint to probe");
    }

    #[test]
    fn one_worker_keeps_the_run_command() {
        let a = pod(&job(), 1, 0, &Restore::Latest, "h").spec.expect("spec").containers[0].args.clone();
        assert_eq!(a.expect("args")[1], "run");
    }

    #[test]
    fn the_index_is_read_back_from_the_pod_name() {
        assert_eq!(index_of("demo-3-0"), Some(0));
        assert_eq!(index_of("my-job-12-1023"), Some(1023));
        assert_eq!(index_of("odd"), None);
    }
}
