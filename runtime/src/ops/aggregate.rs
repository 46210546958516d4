//! Running aggregates per key (count, sum, min, max), held in keyed state and emitted after
//! every record as `(key, aggregate)`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy};

use super::{OpError, OpSnapshot, Operator, Restored};
use crate::record::Batch;
use crate::state::EntryList;
use crate::value::Value;

/// A hasher for [`Value`] keys: `Value::hash` already writes a well-mixed stable hash, so this
/// passes it through instead of hashing it again.
#[derive(Default, Clone, Copy)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map keyed by [`Value`] with the pass-through hasher.
pub type ValueMap<V> = HashMap<Value, V, BuildHasherDefault<PassThroughHasher>>;

/// Folds `input` into an accumulator.
pub fn accumulate(function: AggregateFn, acc: Option<&Value>, input: &Value) -> Result<Value, String> {
    if function == AggregateFn::Count {
        return Ok(Value::Int(acc.and_then(Value::as_i64).unwrap_or(0) + 1));
    }
    let Some(acc) = acc else {
        return match input {
            Value::Int(_) | Value::Float(_) => Ok(input.clone()),
            other => Err(format!("{function:?} needs a number, got {}", other.type_name())),
        };
    };
    match (function, acc, input) {
        (AggregateFn::Sum, Value::Int(a), Value::Int(b)) => {
            Ok(a.checked_add(*b).map(Value::Int).unwrap_or(Value::Float(*a as f64 + *b as f64)))
        }
        (AggregateFn::Min, Value::Int(a), Value::Int(b)) => Ok(Value::Int(*a.min(b))),
        (AggregateFn::Max, Value::Int(a), Value::Int(b)) => Ok(Value::Int(*a.max(b))),
        (f, a, b) => {
            let (Some(a), Some(b)) = (a.as_f64(), b.as_f64()) else {
                return Err(format!("{f:?} needs a number, got {}", b.type_name()));
            };
            Ok(Value::Float(match f {
                AggregateFn::Sum => a + b,
                AggregateFn::Min => a.min(b),
                _ => a.max(b),
            }))
        }
    }
}

/// A running aggregate per key.
pub struct Aggregate {
    node: String,
    function: AggregateFn,
    field: Option<String>,
    policy: ErrorPolicy,
    state: ValueMap<Value>,
    dropped: u64,
}

impl Aggregate {
    /// A running aggregate over `field` of the value (the value itself when `None`).
    pub fn new(node: &str, function: AggregateFn, field: Option<String>, policy: ErrorPolicy) -> Aggregate {
        Aggregate { node: node.into(), function, field, policy, state: ValueMap::default(), dropped: 0 }
    }
}

impl Operator for Aggregate {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        for e in restored.keyed {
            if let Some(v) = e.value {
                self.state.insert(e.key, v);
            }
        }
        Ok(())
    }

    fn process(&mut self, mut batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let mut failure = None;
        batch.retain_mut(|r| {
            if failure.is_some() {
                return false;
            }
            let input = match &self.field {
                None => Some(&r.value),
                Some(f) => r.value.get_path(f),
            };
            let result = match input {
                Some(input) => {
                    let slot = self.state.get_mut(&r.key);
                    match accumulate(self.function, slot.as_deref(), input) {
                        Ok(v) => {
                            match slot {
                                Some(s) => *s = v.clone(),
                                None => {
                                    self.state.insert(r.key.clone(), v.clone());
                                }
                            }
                            Ok(v)
                        }
                        Err(m) => Err(m),
                    }
                }
                None => Err(format!("no field {:?}", self.field.as_deref().unwrap_or(""))),
            };
            match result {
                Ok(v) => {
                    r.value = v;
                    true
                }
                Err(message) => {
                    let err =
                        OpError::Malformed { node: self.node.clone(), location: format!("key {}", r.key), message };
                    if self.policy == ErrorPolicy::Skip {
                        self.dropped += 1;
                        false
                    } else {
                        failure = Some(err);
                        false
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        out.append(&mut batch);
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<OpSnapshot, OpError> {
        let entries = self.state.iter().map(|(k, v)| (k.clone(), Value::Null, v.clone())).collect();
        Ok(OpSnapshot { keyed: Some(Box::new(EntryList(entries))), ..OpSnapshot::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn batch(pairs: &[(i64, i64)]) -> Batch {
        pairs.iter().map(|&(k, v)| Record { key: Value::Int(k), ts: 0, value: Value::Int(v) }).collect()
    }

    #[test]
    fn emits_the_running_value_after_every_record() {
        let mut op = Aggregate::new("sum", AggregateFn::Sum, None, ErrorPolicy::Fail);
        let mut out = Vec::new();
        op.process(batch(&[(1, 5), (2, 1), (1, 7)]), &mut out).expect("process");
        let vals: Vec<_> = out.iter().map(|r| r.value.as_i64().unwrap_or(-1)).collect();
        assert_eq!(vals, vec![5, 1, 12]);
    }

    #[test]
    fn min_max_count_and_mixed_numbers() {
        assert_eq!(accumulate(AggregateFn::Count, None, &Value::Null), Ok(Value::Int(1)));
        assert_eq!(accumulate(AggregateFn::Min, Some(&Value::Int(3)), &Value::Int(2)), Ok(Value::Int(2)));
        assert_eq!(accumulate(AggregateFn::Max, Some(&Value::Int(3)), &Value::Float(4.5)), Ok(Value::Float(4.5)));
        assert!(accumulate(AggregateFn::Sum, None, &Value::str("x")).is_err());
    }

    #[test]
    fn non_numeric_input_fails_or_is_skipped_per_policy() {
        let bad = vec![Record { key: Value::Int(1), ts: 0, value: Value::str("x") }];
        let mut strict = Aggregate::new("sum", AggregateFn::Sum, None, ErrorPolicy::Fail);
        assert!(strict.process(bad.clone(), &mut Vec::new()).is_err());
        let mut lenient = Aggregate::new("sum", AggregateFn::Sum, None, ErrorPolicy::Skip);
        let mut out = Vec::new();
        lenient.process(bad, &mut out).expect("skips");
        assert!(out.is_empty());
    }
}
