//! The headless Service that gives runtime pods stable DNS names and exposes the control port.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sluice_crds::StreamJob;
use sluice_crds::contract::control::CONTROL_PORT;

use super::labels;

/// The job's headless Service.
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
            ports: Some(vec![ServicePort {
                name: Some("control".into()),
                port: i32::from(CONTROL_PORT),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
