//! Instantiates `kafkaSource` and `kafkaSink` nodes.

use sluice_crds::contract::pipeline::{ErrorPolicy, NodeKind};

use crate::fault::Faults;
use crate::ops::build::Instance;
use crate::ops::{OpContext, OpError};

/// Builds subtask `ctx` of the Kafka node `id`.
pub fn instantiate(
    id: &str,
    kind: NodeKind<'_>,
    ctx: OpContext,
    policy: ErrorPolicy,
    faults: &Faults,
) -> Result<Instance, OpError> {
    let _ = (ctx, policy, faults);
    Err(OpError::Restore { node: id.into(), message: format!("{} is not implemented yet", kind.name()) })
}
