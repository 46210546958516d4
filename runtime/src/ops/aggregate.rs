//! Running aggregates per key (count, sum, min, max), held in keyed state and emitted after
//! every record as `(key, aggregate)`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy};

use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode, emit_all};
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

/// A state value with the snapshot epoch in which it last changed (for incremental snapshots).
#[derive(Clone, Debug)]
pub struct Slot {
    /// The value.
    pub value: Value,
    /// Epoch of the last change.
    pub epoch: u64,
}

/// A running aggregate per key.
pub struct Aggregate {
    node: String,
    function: AggregateFn,
    field: Option<String>,
    policy: ErrorPolicy,
    state: ValueMap<Slot>,
    /// Keys changed since the last snapshot, each once.
    dirty: Vec<Value>,
    epoch: u64,
    dropped: u64,
}

impl Aggregate {
    /// A running aggregate over `field` of the value (the value itself when `None`).
    pub fn new(node: &str, function: AggregateFn, field: Option<String>, policy: ErrorPolicy) -> Aggregate {
        Aggregate {
            node: node.into(),
            function,
            field,
            policy,
            state: ValueMap::default(),
            dirty: Vec::new(),
            epoch: 1,
            dropped: 0,
        }
    }
}

/// Applies the error policy to a bad record: `Some(error)` to fail, `None` to drop it.
fn reject(policy: ErrorPolicy, dropped: &mut u64, node: &str, key: &Value, message: String) -> Option<OpError> {
    if policy == ErrorPolicy::Skip {
        *dropped += 1;
        None
    } else {
        Some(OpError::Malformed { node: node.to_string(), location: format!("key {key}"), message })
    }
}

impl Operator for Aggregate {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        for e in restored.keyed {
            if let Some(value) = e.value {
                self.state.insert(e.key, Slot { value, epoch: 0 });
            }
        }
        Ok(())
    }

    fn process(&mut self, mut batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let mut failure = None;
        let Aggregate { node, function, field, policy, state, dirty, epoch, dropped } = self;
        let (function, policy, epoch) = (*function, *policy, *epoch);
        batch.retain_mut(|r| {
            if failure.is_some() {
                return false;
            }
            let input = match field {
                None => Some(&r.value),
                Some(f) => r.value.get_path(f),
            };
            let Some(input) = input else {
                let message = format!("no field {:?}", field.as_deref().unwrap_or(""));
                failure = reject(policy, dropped, node, &r.key, message);
                return false;
            };
            let result = match state.get_mut(&r.key) {
                Some(slot) => {
                    if slot.epoch != epoch {
                        slot.epoch = epoch;
                        dirty.push(r.key.clone());
                    }
                    // Integer fast path: update in place, no allocation, no re-hash.
                    if let (Value::Int(a), Value::Int(b)) = (&mut slot.value, input) {
                        let next = match function {
                            AggregateFn::Count => a.checked_add(1),
                            AggregateFn::Sum => a.checked_add(*b),
                            AggregateFn::Min => Some((*a).min(*b)),
                            AggregateFn::Max => Some((*a).max(*b)),
                        };
                        if let Some(n) = next {
                            *a = n;
                            r.value = Value::Int(n);
                            return true;
                        }
                    }
                    accumulate(function, Some(&slot.value), input).inspect(|v| slot.value = v.clone())
                }
                None => accumulate(function, None, input).inspect(|v| {
                    state.insert(r.key.clone(), Slot { value: v.clone(), epoch });
                    dirty.push(r.key.clone());
                }),
            };
            match result {
                Ok(v) => {
                    r.value = v;
                    true
                }
                Err(message) => {
                    failure = reject(policy, dropped, node, &r.key, message);
                    false
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        emit_all(out, batch);
        Ok(())
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId, mode: SnapshotMode) -> Result<OpSnapshot, OpError> {
        let entries = match mode {
            SnapshotMode::Full => {
                self.state.iter().map(|(k, s)| (k.clone(), Value::Null, Some(s.value.clone()))).collect()
            }
            SnapshotMode::Incremental => self
                .dirty
                .iter()
                .map(|k| (k.clone(), Value::Null, self.state.get(k).map(|s| s.value.clone())))
                .collect(),
        };
        self.dirty.clear();
        self.epoch += 1;
        let delta = mode == SnapshotMode::Incremental;
        Ok(OpSnapshot { keyed: Some(Box::new(EntryList { entries, delta })), ..OpSnapshot::default() })
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
