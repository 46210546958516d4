//! The aggregates of one window: their accumulators (held as one [`Value`] per window in keyed
//! state), folding a record in, merging two windows (sessions), and the output fields.
//!
//! Accumulators: `count` an int; `sum`, `min`, `max` null until a number came, then that
//! number; `avg` two slots, its sum and its count; `countDistinct` the distinct values,
//! exactly, in chunks (`distinct.rs`). A window's state is the accumulator itself when it has
//! one `count`/`sum`/`min`/`max` (the layout of tumbling windows before multi-aggregates, so
//! their checkpoints still restore), else one flat list of every aggregate's slots (an `avg`
//! as a list of its own cost each window a second allocation: a quarter of q17's state).
//!
//! Null inputs are ignored, as in SQL; a missing field or a non-number where a number is needed
//! makes the record malformed, and a malformed record changes no aggregate.

use std::sync::Arc;

use sluice_crds::contract::pipeline::{AggregateFn, WindowFn};

use super::distinct;
use crate::ops::aggregate::accumulate;
use crate::value::{FieldPath, PathMemo, Value};

/// One aggregate of the output.
struct Agg {
    name: Arc<str>,
    function: WindowFn,
    field: Option<FieldPath>,
    /// Where `field` was last found.
    memo: PathMemo,
}

/// The aggregates of a window node.
pub(super) struct Aggs {
    aggs: Vec<Agg>,
    /// The state of a window is the one accumulator itself, not a list of them.
    bare: bool,
    /// How many slots the list of accumulators has (an `avg` takes two).
    slots: usize,
}

/// The slots an aggregate's accumulator takes in a window's list.
fn width(f: WindowFn) -> usize {
    if f == WindowFn::Avg { 2 } else { 1 }
}

impl Aggs {
    /// `(output name, function, field)` of each aggregate.
    pub(super) fn new(outputs: Vec<(&str, WindowFn, Option<&str>)>) -> Aggs {
        let aggs: Vec<Agg> = outputs
            .into_iter()
            .map(|(name, function, field)| {
                let field = field.map(FieldPath::new);
                let memo = field.as_ref().map(FieldPath::memo).unwrap_or_default();
                Agg { name: Arc::from(name), function, field, memo }
            })
            .collect();
        let bare = aggs.len() == 1
            && matches!(aggs[0].function, WindowFn::Count | WindowFn::Sum | WindowFn::Min | WindowFn::Max);
        let slots = aggs.iter().map(|a| width(a.function)).sum();
        Aggs { aggs, bare, slots }
    }

    /// Each aggregate with its slots of the list `accs`.
    fn split<'s, 'v>(&'s self, accs: &'v [Value]) -> impl Iterator<Item = (&'s Agg, &'v [Value])> {
        let mut at = 0;
        self.aggs.iter().map(move |a| {
            let w = width(a.function);
            let acc = accs.get(at..at + w).unwrap_or(&[]);
            at += w;
            (a, acc)
        })
    }

    fn input<'v>(agg: &Agg, value: &'v Value) -> Option<&'v Value> {
        match &agg.field {
            None => Some(value),
            Some(f) => f.get_remembered(value, &agg.memo),
        }
    }

    /// Checks that `value` is a valid input of every aggregate (nothing is changed).
    pub(super) fn check(&self, value: &Value) -> Result<(), String> {
        for a in &self.aggs {
            let Some(input) = Self::input(a, value) else {
                return Err(format!(
                    "no field {:?} (aggregate {:?})",
                    a.field.as_ref().map_or("", FieldPath::as_str),
                    a.name
                ));
            };
            let numeric = matches!(a.function, WindowFn::Sum | WindowFn::Min | WindowFn::Max | WindowFn::Avg);
            if numeric && !matches!(input, Value::Int(_) | Value::Float(_) | Value::Null) {
                return Err(format!("{:?} of {:?} needs a number, got {}", a.function, a.name, input.type_name()));
            }
        }
        Ok(())
    }

    /// The state of a window without records.
    pub(super) fn empty(&self) -> Value {
        let acc = |f: WindowFn| match f {
            WindowFn::Count => Value::Int(0),
            WindowFn::Sum | WindowFn::Min | WindowFn::Max => Value::Null,
            WindowFn::Avg => Value::Int(0),
            WindowFn::CountDistinct => distinct::empty(),
        };
        if self.bare {
            return acc(self.aggs[0].function);
        }
        let mut accs = Vec::with_capacity(self.slots);
        for a in &self.aggs {
            accs.extend(std::iter::repeat_n(acc(a.function), width(a.function)));
        }
        Value::List(Arc::new(accs))
    }

    /// Whether `state` has the shape of this node's window state (checked on restore).
    pub(super) fn fits(&self, state: &Value) -> bool {
        let number = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_) | Value::Null);
        let fits = |f: WindowFn, acc: &[Value]| match (f, acc) {
            (WindowFn::Count, [Value::Int(_)]) => true,
            (WindowFn::Sum | WindowFn::Min | WindowFn::Max, [v]) => number(v),
            (WindowFn::Avg, [sum, Value::Int(_)]) => number(sum),
            (WindowFn::CountDistinct, [acc]) => distinct::fits(acc),
            _ => false,
        };
        if self.bare {
            return fits(self.aggs[0].function, std::slice::from_ref(state));
        }
        match state {
            Value::List(l) => l.len() == self.slots && self.split(l).all(|(a, acc)| fits(a.function, acc)),
            _ => false,
        }
    }

    /// Folds a record's value into `state`; the value must have passed [`Aggs::check`].
    pub(super) fn add(&self, state: &mut Value, value: &Value) {
        if self.bare {
            let a = &self.aggs[0];
            if let Some(input) = Self::input(a, value) {
                add_one(a, std::slice::from_mut(state), input);
            }
            return;
        }
        let Value::List(accs) = state else { return };
        let mut rest = &mut Arc::make_mut(accs)[..];
        for a in &self.aggs {
            let (acc, tail) = rest.split_at_mut(width(a.function).min(rest.len()));
            rest = tail;
            if let Some(input) = Self::input(a, value) {
                add_one(a, acc, input);
            }
        }
    }

    /// Merges the state `from` of another window into `into` (session windows).
    pub(super) fn merge(&self, into: &mut Value, from: &Value) {
        if self.bare {
            merge_one(self.aggs[0].function, std::slice::from_mut(into), std::slice::from_ref(from));
            return;
        }
        let (Value::List(accs), Value::List(others)) = (into, from) else { return };
        let mut rest = &mut Arc::make_mut(accs)[..];
        for (a, other) in self.split(others) {
            let (acc, tail) = rest.split_at_mut(width(a.function).min(rest.len()));
            rest = tail;
            merge_one(a.function, acc, other);
        }
    }

    /// The output names, in the aggregates' order.
    pub(super) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.aggs.iter().map(|a| &a.name)
    }

    /// Gives `put` the output of each aggregate of a window with `state`: its index and value
    /// (nothing for a state of another shape).
    pub(super) fn emit(&self, state: &Value, mut put: impl FnMut(usize, Value)) {
        let result = |f: WindowFn, acc: &[Value]| match (f, acc) {
            (WindowFn::Avg, [sum, n]) => match (sum.as_f64(), n.as_i64()) {
                (Some(sum), Some(n)) if n > 0 => Value::Float(sum / n as f64),
                _ => Value::Null,
            },
            (WindowFn::CountDistinct, [acc]) => Value::Int(distinct::count(acc)),
            (_, [acc]) => acc.clone(),
            _ => Value::Null,
        };
        if self.bare {
            put(0, result(self.aggs[0].function, std::slice::from_ref(state)));
            return;
        }
        if let Value::List(accs) = state {
            for (i, (a, acc)) in self.split(accs).enumerate() {
                put(i, result(a.function, acc));
            }
        }
    }
}

/// `a + b` (`a` may be null: no input yet), kept an int while it fits.
fn plus(a: &Value, b: &Value) -> Value {
    match a {
        Value::Null => b.clone(),
        _ => accumulate(AggregateFn::Sum, Some(a), b).unwrap_or(Value::Null),
    }
}

/// Folds `input` into an aggregate's slots `acc`.
fn add_one(a: &Agg, acc: &mut [Value], input: &Value) {
    if matches!(input, Value::Null) && !(a.function == WindowFn::Count && a.field.is_none()) {
        return;
    }
    match (a.function, acc) {
        (WindowFn::Count, [Value::Int(n)]) => *n = n.saturating_add(1),
        (WindowFn::Sum, [acc]) => *acc = plus(acc, input),
        (WindowFn::Min | WindowFn::Max, [acc]) => *acc = extreme(a.function, acc, input),
        (WindowFn::Avg, [sum, n]) => {
            *sum = plus(sum, input);
            if let Value::Int(n) = n {
                *n += 1;
            }
        }
        (WindowFn::CountDistinct, [acc]) => distinct::insert(acc, input),
        _ => {}
    }
}

/// The smaller (`Min`) or larger (`Max`) of `acc` (null: none yet) and `input`.
fn extreme(f: WindowFn, acc: &Value, input: &Value) -> Value {
    let function = if f == WindowFn::Min { AggregateFn::Min } else { AggregateFn::Max };
    match (acc, input) {
        (_, Value::Null) => acc.clone(),
        (Value::Null, _) => input.clone(),
        _ => accumulate(function, Some(acc), input).unwrap_or_else(|_| acc.clone()),
    }
}

/// Merges the slots `other` of another window's aggregate into `acc`.
fn merge_one(f: WindowFn, acc: &mut [Value], other: &[Value]) {
    match (f, acc, other) {
        (WindowFn::Count, [Value::Int(a)], [Value::Int(b)]) => *a = a.saturating_add(*b),
        (WindowFn::Sum, [acc], [other]) if !matches!(other, Value::Null) => *acc = plus(acc, other),
        (WindowFn::Min | WindowFn::Max, [acc], [other]) => *acc = extreme(f, acc, other),
        (WindowFn::Avg, [sum, n], [other_sum, m]) => {
            if !matches!(other_sum, Value::Null) {
                *sum = plus(sum, other_sum);
            }
            if let (Value::Int(n), Value::Int(m)) = (n, m) {
                *n += *m;
            }
        }
        (WindowFn::CountDistinct, [acc], [other]) => {
            for v in distinct::values(other) {
                distinct::insert(acc, v);
            }
        }
        _ => {}
    }
}
