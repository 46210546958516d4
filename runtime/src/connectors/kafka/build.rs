//! Instantiates `kafkaSource` and `kafkaSink` nodes.

use sluice_crds::contract::kafka::DeliveryGuarantee;
use sluice_crds::contract::pipeline::{ErrorPolicy, NodeKind};

use std::collections::BTreeMap;

use super::plain_sink::KafkaPlainSink;
use super::security::{Cluster, SecurityError, resolve_properties};
use super::sink::KafkaTxnSink;
use super::source::KafkaSource;
use crate::connectors::two_phase::TwoPhaseCommitSink;
use crate::fault::Faults;
use crate::ops::Instance;
use crate::ops::{OpContext, OpError};

/// Builds subtask `ctx` of the Kafka node `id`.
pub fn instantiate(
    id: &str,
    kind: NodeKind<'_>,
    ctx: OpContext,
    policy: ErrorPolicy,
    faults: &Faults,
) -> Result<Instance, OpError> {
    Ok(match kind {
        NodeKind::KafkaSource(spec) => {
            let mut spec = spec.clone();
            let cluster =
                secured("kafkaSource", &spec.bootstrap_servers, &mut spec.properties).map_err(external(id))?;
            Instance::Source(Box::new(KafkaSource::new(spec, cluster, ctx, policy)))
        }
        NodeKind::KafkaSink(spec) if spec.semantic == DeliveryGuarantee::ExactlyOnce => {
            let mut spec = spec.clone();
            let cluster = secured("kafkaSink", &spec.bootstrap_servers, &mut spec.properties).map_err(external(id))?;
            let sink = KafkaTxnSink::new(&spec, cluster, &ctx);
            Instance::Operator(Box::new(TwoPhaseCommitSink::new(sink, id, ctx.checkpointing, faults.clone())))
        }
        NodeKind::KafkaSink(spec) => {
            let mut spec = spec.clone();
            secured("kafkaSink", &spec.bootstrap_servers, &mut spec.properties).map_err(external(id))?;
            Instance::Operator(Box::new(KafkaPlainSink::new(id, &spec)?))
        }
        other => {
            return Err(OpError::Config { node: id.into(), message: format!("{} is not a Kafka node", other.name()) });
        }
    })
}

fn external(id: &str) -> impl Fn(String) -> OpError + '_ {
    move |message| OpError::External { node: id.into(), message }
}

/// Resolves the `${env:NAME}` references of a Kafka block's `properties` in place (librdkafka
/// gets the resolved values) and loads the connection security Sluice's own protocol client
/// uses: the same brokers, reached the same way.
/// The error names the property (`kafkaSink.properties["sasl.password"]: …`).
pub fn secured(
    block: &str,
    bootstrap_servers: &str,
    properties: &mut BTreeMap<String, String>,
) -> Result<Cluster, String> {
    let error = |e: SecurityError| format!("{block}.{e}");
    *properties = resolve_properties(properties).map_err(error)?;
    Cluster::new(bootstrap_servers, properties).map_err(error)
}
