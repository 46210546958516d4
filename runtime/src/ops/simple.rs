//! Stateless operators (map, filter, keyBy) and the simple sinks (stdout, discard).

use std::io::Write;

use sluice_crds::contract::pipeline::{ErrorPolicy, KeyBySpec};

use super::expr::Expr;
use super::{OpError, Operator, emit_all};
use crate::record::{Batch, Record};
use crate::value::{FieldPath, Value};

/// Runs `f` on every record of `batch`, keeping those it accepts (`Ok(true)`) and applying the
/// job's error policy to data errors: `skip` drops the record and counts it, `fail` stops at the
/// first error. Then emits what is left.
fn apply_each(
    policy: ErrorPolicy,
    dropped: &mut u64,
    mut batch: Batch,
    out: &mut Batch,
    mut f: impl FnMut(&mut Record) -> Result<bool, OpError>,
) -> Result<(), OpError> {
    let mut failure = None;
    batch.retain_mut(|r| {
        if failure.is_some() {
            return false;
        }
        match f(r) {
            Ok(keep) => keep,
            Err(e) if policy.skips() && e.is_data_error() => {
                *dropped += 1;
                if *dropped == 1 || dropped.is_power_of_two() {
                    tracing::warn!(error = %e, dropped = *dropped, "dropping record per errorPolicy: skip");
                }
                false
            }
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => {
            emit_all(out, batch);
            Ok(())
        }
    }
}

/// Replaces each record's value with a CEL expression's result.
pub struct Map {
    expr: Expr,
    policy: ErrorPolicy,
    dropped: u64,
}

impl Map {
    /// A map operator.
    pub fn new(expr: Expr, policy: ErrorPolicy) -> Map {
        Map { expr, policy, dropped: 0 }
    }
}

impl Operator for Map {
    fn process(&mut self, mut batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        if let Some(c) = self.expr.constant() {
            for r in &mut batch {
                r.value = c.clone();
            }
            emit_all(out, batch);
            return Ok(());
        }
        let (expr, mut ctx) = (&self.expr, Expr::context());
        apply_each(self.policy, &mut self.dropped, batch, out, |r| {
            r.value = expr.eval(&mut ctx, r)?;
            Ok(true)
        })
    }
}

/// Keeps the records for which a CEL expression is true.
pub struct Filter {
    expr: Expr,
    node: String,
    policy: ErrorPolicy,
    dropped: u64,
}

impl Filter {
    /// A filter operator.
    pub fn new(node: &str, expr: Expr, policy: ErrorPolicy) -> Filter {
        Filter { expr, node: node.into(), policy, dropped: 0 }
    }
}

impl Operator for Filter {
    fn process(&mut self, batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let (expr, node, mut ctx) = (&self.expr, &self.node, Expr::context());
        apply_each(self.policy, &mut self.dropped, batch, out, |r| match expr.eval(&mut ctx, r)? {
            Value::Bool(b) => Ok(b),
            other => Err(OpError::Expression {
                node: node.clone(),
                expr: "filter".into(),
                message: format!("must yield a bool, got {}", other.type_name()),
            }),
        })
    }
}

/// Sets each record's key from a field of its value or a CEL expression.
pub struct KeyBy {
    node: String,
    field: Option<FieldPath>,
    expr: Option<Expr>,
    policy: ErrorPolicy,
    dropped: u64,
}

impl KeyBy {
    /// A keyBy operator from its spec.
    pub fn new(node: &str, spec: &KeyBySpec, policy: ErrorPolicy) -> Result<KeyBy, OpError> {
        let expr = spec.expr.as_deref().map(|e| Expr::compile(node, e)).transpose()?;
        Ok(KeyBy { node: node.into(), field: spec.field.as_deref().map(FieldPath::new), expr, policy, dropped: 0 })
    }
}

impl Operator for KeyBy {
    fn process(&mut self, batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let (node, field, expr, mut ctx) = (&self.node, &self.field, &self.expr, Expr::context());
        apply_each(self.policy, &mut self.dropped, batch, out, |r| {
            r.key = match (field, expr) {
                (Some(f), _) => f.get(&r.value).cloned().ok_or_else(|| OpError::Malformed {
                    node: node.clone(),
                    location: format!("ts {}", r.ts),
                    message: format!("no field {f:?} in {}", r.value),
                })?,
                (None, Some(e)) => e.eval(&mut ctx, r)?,
                (None, None) => Value::Null,
            };
            Ok(true)
        })
    }
}

/// Prints records as JSON lines on standard output (at-least-once; for debugging).
pub struct StdoutSink;

impl Operator for StdoutSink {
    fn process(&mut self, batch: Batch, _out: &mut Batch) -> Result<(), OpError> {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        for r in &batch {
            // A closed stdout is not worth failing the job for.
            if serde_json::to_writer(&mut w, r).is_err() || w.write_all(b"\n").is_err() {
                break;
            }
        }
        let _ = w.flush();
        Ok(())
    }
}

/// Drops every record (benchmarks).
pub struct DiscardSink;

impl Operator for DiscardSink {
    fn process(&mut self, _batch: Batch, _out: &mut Batch) -> Result<(), OpError> {
        Ok(())
    }
}
