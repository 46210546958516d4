//! Instantiates `kafkaSource` and `kafkaSink` nodes.

use sluice_crds::contract::kafka::DeliveryGuarantee;
use sluice_crds::contract::pipeline::{ErrorPolicy, NodeKind};

use super::plain_sink::KafkaPlainSink;
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
        NodeKind::KafkaSource(spec) => Instance::Source(Box::new(KafkaSource::new(spec.clone(), ctx, policy))),
        NodeKind::KafkaSink(spec) if spec.semantic == DeliveryGuarantee::ExactlyOnce => {
            let sink = KafkaTxnSink::new(spec, &ctx);
            Instance::Operator(Box::new(TwoPhaseCommitSink::new(sink, id, ctx.checkpointing, faults.clone())))
        }
        NodeKind::KafkaSink(spec) => Instance::Operator(Box::new(KafkaPlainSink::new(id, spec)?)),
        other => {
            return Err(OpError::Config { node: id.into(), message: format!("{} is not a Kafka node", other.name()) });
        }
    })
}
