//! The headless Service that gives runtime pods stable DNS names and exposes the control port.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sluice_crds::StreamJob;
use sluice_crds::contract::control::CONTROL_PORT;

use super::labels;

/// The job's headless Service: its name is the pods' `subdomain`, so each pod resolves as
/// `<hostname>.<service>.<namespace>.svc`, before it is ready too (`publishNotReadyAddresses`):
/// the workers of an attempt find each other while they start.
pub fn service(job: &StreamJob) -> Service {
    let name = job.name_any();
    Service {
        metadata: ObjectMeta {
            name: Some(labels::service_name(&name)),
            namespace: job.namespace(),
            labels: Some(labels::common(&name)),
            owner_references: job.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels::selector(&name)),
            publish_not_ready_addresses: Some(true),
            ports: Some(ports(job)),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// `control`, plus the workers' `exchange` and `coordinator` ports for a job of several workers.
fn ports(job: &StreamJob) -> Vec<ServicePort> {
    let mut ports =
        vec![ServicePort { name: Some("control".into()), port: i32::from(CONTROL_PORT), ..ServicePort::default() }];
    if job.spec.workers > 1 {
        ports.extend(super::workers::service_ports());
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_job::job;

    #[test]
    fn the_service_is_headless_publishes_not_ready_pods_and_is_owned_by_the_job() {
        let mut j = job();
        let one = service(&j);
        let spec = one.spec.clone().expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        let names = |s: &Service| -> Vec<String> {
            s.spec.iter().flat_map(|s| s.ports.iter().flatten()).filter_map(|p| p.name.clone()).collect()
        };
        assert_eq!(names(&one), ["control"], "one worker: unchanged");
        let owner = one.metadata.owner_references.clone().expect("owned")[0].clone();
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("StreamJob", "uid-1", Some(true)));
        j.spec.workers = 2;
        assert_eq!(names(&service(&j)), ["control", "exchange", "coordinator"]);
    }
}
