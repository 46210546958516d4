//! The node registry: turns a job document's node into its source or operator instance (the
//! built-in operators of `ops` and the connectors), and names a transactional sink's recovery.
//! It sits above both, so that neither the operators nor the connectors know the other.
//! [`preflight`] checks a whole job document with the same code before anything runs.

pub mod preflight;
pub mod reads;

use sluice_crds::contract::job_config::JobConfig;
use sluice_crds::contract::pipeline::{ErrorPolicy, Node, NodeKind};

use crate::connectors::file::sink::{FileSink, FileSinkRecovery};
#[cfg(feature = "kafka")]
use crate::connectors::kafka::build::instantiate as kafka_nodes;
use crate::connectors::two_phase::{SinkRecovery, TwoPhaseCommitSink};
use crate::fault::Faults;
pub use crate::ops::Instance;
use crate::ops::aggregate::Aggregate;
use crate::ops::dedup::Deduplicate;
use crate::ops::expr::Expr;
use crate::ops::generator::Generator;
use crate::ops::join::Join;
use crate::ops::json_file::JsonFileSource;
use crate::ops::nexmark::NexmarkSource;
use crate::ops::reads::Reads;
use crate::ops::simple::{DiscardSink, Filter, KeyBy, Map, StdoutSink};
use crate::ops::topn::TopN;
use crate::ops::window::Window;
use crate::ops::{OpContext, OpError};
use crate::value::Value;

/// Builds the subtask `ctx` of `node`, of whose records the job reads `reads`
/// ([`reads::of_output`]; a source that can makes only that).
pub fn instantiate(
    node: &Node,
    reads: &Reads,
    ctx: OpContext,
    policy: ErrorPolicy,
    faults: &Faults,
) -> Result<Instance, OpError> {
    let id = node.id.as_str();
    let Some(kind) = node.kind() else {
        return Err(OpError::Config {
            node: id.into(),
            message: "node has no single operator (validate the job)".into(),
        });
    };
    Ok(match kind {
        NodeKind::Generator(g) => Instance::Source(Box::new(Generator::new(g.clone(), ctx))),
        NodeKind::JsonFile(j) => Instance::Source(Box::new(JsonFileSource::new(j.clone(), ctx, policy))),
        NodeKind::Nexmark(n) => Instance::Source(Box::new(NexmarkSource::new(n, ctx, reads))),
        NodeKind::Map(m) => Instance::Operator(Box::new(Map::new(Expr::compile(id, &m.expr)?, policy))),
        NodeKind::Filter(f) => Instance::Operator(Box::new(Filter::new(id, filter_expr(id, &f.expr)?, policy))),
        NodeKind::KeyBy(k) => Instance::Operator(Box::new(KeyBy::new(id, k, policy)?)),
        NodeKind::Aggregate(a) => Instance::Operator(Box::new(Aggregate::new(id, a.function, a.field.clone(), policy))),
        NodeKind::Window(w) => Instance::Operator(Box::new(Window::from_spec(id, w, policy)?)),
        NodeKind::Join(j) => Instance::Operator(Box::new(Join::from_spec(id, j)?)),
        NodeKind::TopN(t) => Instance::Operator(Box::new(TopN::from_spec(id, t, policy)?)),
        NodeKind::Deduplicate(d) => Instance::Operator(Box::new(Deduplicate::from_spec(id, d)?)),
        NodeKind::FileSink(f) => {
            let sink = FileSink::new(id, &f.path, ctx.subtask, &ctx.run_id)?;
            Instance::Operator(Box::new(TwoPhaseCommitSink::new(sink, id, ctx.checkpointing, faults.clone())))
        }
        NodeKind::KafkaSource(_) | NodeKind::KafkaSink(_) => return kafka_nodes(id, kind, ctx, policy, faults),
        NodeKind::Stdout => Instance::Operator(Box::new(StdoutSink)),
        NodeKind::Discard => Instance::Operator(Box::new(DiscardSink)),
    })
}

/// Kafka nodes need the `kafka` feature; see `connectors::kafka::build` when it is on.
#[cfg(not(feature = "kafka"))]
fn kafka_nodes(id: &str, kind: NodeKind<'_>, _: OpContext, _: ErrorPolicy, _: &Faults) -> Result<Instance, OpError> {
    check_build(id, &kind)?;
    Err(OpError::Config { node: id.into(), message: format!("{} is not a Kafka node", kind.name()) })
}

/// Checks that this build has the feature `kind` needs (`kafka` for the Kafka nodes).
pub fn check_build(id: &str, kind: &NodeKind<'_>) -> Result<(), OpError> {
    if matches!(kind, NodeKind::KafkaSource(_) | NodeKind::KafkaSink(_)) && !cfg!(feature = "kafka") {
        return Err(OpError::Config {
            node: id.into(),
            message: format!("{} needs a runtime built with the `kafka` feature", kind.name()),
        });
    }
    Ok(())
}

/// A filter's expression: compiled and, when constant, a bool.
pub fn filter_expr(id: &str, source: &str) -> Result<Expr, OpError> {
    let expr = Expr::compile(id, source)?;
    match expr.constant() {
        Some(c) if !matches!(c, Value::Bool(_)) => Err(OpError::Expression {
            node: id.into(),
            expr: source.into(),
            message: format!("a filter must yield a bool, this yields {}", c.type_name()),
        }),
        _ => Ok(expr),
    }
}

/// The recovery of a transactional sink node of `job`, if the node is one.
pub fn sink_recovery(node: &Node, job: &JobConfig) -> Option<Box<dyn SinkRecovery>> {
    match node.kind()? {
        NodeKind::FileSink(f) => Some(Box::new(FileSinkRecovery::new(&node.id, &f.path))),
        #[cfg(feature = "kafka")]
        NodeKind::KafkaSink(k) => crate::connectors::kafka::recovery::for_sink(&node.id, k, job),
        _ => {
            let _ = job;
            None
        }
    }
}
