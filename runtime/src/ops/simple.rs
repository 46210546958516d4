//! Stateless operators (map, filter, keyBy) and the simple sinks (stdout, discard).

use std::io::Write;

use sluice_crds::contract::pipeline::{ErrorPolicy, KeyBySpec};

use super::expr::Expr;
use super::{OpError, Operator, emit_all};
use crate::record::Batch;
use crate::value::Value;

/// Applies the error policy to a per-record failure: `Ok(false)` drops the record.
fn on_record_error(policy: ErrorPolicy, dropped: &mut u64, err: OpError) -> Result<bool, OpError> {
    if policy == ErrorPolicy::Skip && err.is_data_error() {
        *dropped += 1;
        if *dropped == 1 || dropped.is_power_of_two() {
            tracing::warn!(error = %err, dropped = *dropped, "dropping record per errorPolicy: skip");
        }
        Ok(false)
    } else {
        Err(err)
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
        let mut ctx = Expr::context();
        let mut err = None;
        batch.retain_mut(|r| {
            if err.is_some() {
                return false;
            }
            match self.expr.eval(&mut ctx, r) {
                Ok(v) => {
                    r.value = v;
                    true
                }
                Err(e) => match on_record_error(self.policy, &mut self.dropped, e) {
                    Ok(keep) => keep,
                    Err(e) => {
                        err = Some(e);
                        false
                    }
                },
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        emit_all(out, batch);
        Ok(())
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
    fn process(&mut self, mut batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let mut ctx = Expr::context();
        let mut err = None;
        batch.retain(|r| {
            if err.is_some() {
                return false;
            }
            let result = self.expr.eval(&mut ctx, r).and_then(|v| match v {
                Value::Bool(b) => Ok(b),
                other => Err(OpError::Expression {
                    node: self.node.clone(),
                    expr: "filter".into(),
                    message: format!("must yield a bool, got {}", other.type_name()),
                }),
            });
            match result {
                Ok(keep) => keep,
                Err(e) => on_record_error(self.policy, &mut self.dropped, e).unwrap_or_else(|e| {
                    err = Some(e);
                    false
                }),
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        emit_all(out, batch);
        Ok(())
    }
}

/// Sets each record's key from a field of its value or a CEL expression.
pub struct KeyBy {
    node: String,
    field: Option<String>,
    expr: Option<Expr>,
    policy: ErrorPolicy,
    dropped: u64,
}

impl KeyBy {
    /// A keyBy operator from its spec.
    pub fn new(node: &str, spec: &KeyBySpec, policy: ErrorPolicy) -> Result<KeyBy, OpError> {
        let expr = spec.expr.as_deref().map(|e| Expr::compile(node, e)).transpose()?;
        Ok(KeyBy { node: node.into(), field: spec.field.clone(), expr, policy, dropped: 0 })
    }
}

impl Operator for KeyBy {
    fn process(&mut self, mut batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let mut ctx = Expr::context();
        let mut err = None;
        batch.retain_mut(|r| {
            if err.is_some() {
                return false;
            }
            let key = match (&self.field, &self.expr) {
                (Some(f), _) => r.value.get_path(f).cloned().ok_or_else(|| OpError::Malformed {
                    node: self.node.clone(),
                    location: format!("ts {}", r.ts),
                    message: format!("no field {f:?} in {}", r.value),
                }),
                (None, Some(e)) => e.eval(&mut ctx, r),
                (None, None) => Ok(Value::Null),
            };
            match key {
                Ok(k) => {
                    r.key = k;
                    true
                }
                Err(e) => on_record_error(self.policy, &mut self.dropped, e).unwrap_or_else(|e| {
                    err = Some(e);
                    false
                }),
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        emit_all(out, batch);
        Ok(())
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
