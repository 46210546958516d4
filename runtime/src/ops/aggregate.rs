//! Running aggregates per key (count, sum, min, max), held in keyed state and emitted after
//! every record as `(key, aggregate)`.

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy};

use super::{OpError, OpSnapshot, Operator, Restored, SnapshotMode, emit_all};
use crate::record::Batch;
use crate::state::KeyedTable;
pub use crate::state::table::{PassThroughHasher, ValueMap};
use crate::value::{FieldPath, Value};

/// The namespace of an aggregate's entries (one value per key).
static NO_NAMESPACE: Value = Value::Null;

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
    field: Option<FieldPath>,
    policy: ErrorPolicy,
    table: KeyedTable,
    dropped: u64,
}

impl Aggregate {
    /// A running aggregate over `field` of the value (the value itself when `None`).
    pub fn new(node: &str, function: AggregateFn, field: Option<String>, policy: ErrorPolicy) -> Aggregate {
        Aggregate {
            node: node.into(),
            function,
            field: field.as_deref().map(FieldPath::new),
            policy,
            table: KeyedTable::new(),
            dropped: 0,
        }
    }
}

/// Applies the error policy to a bad record: `Some(error)` to fail, `None` to drop it.
fn reject(policy: ErrorPolicy, dropped: &mut u64, node: &str, key: &Value, message: String) -> Option<OpError> {
    if policy.skips() {
        *dropped += 1;
        None
    } else {
        Some(OpError::Malformed { node: node.to_string(), location: format!("key {key}"), message })
    }
}

impl Operator for Aggregate {
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        self.table.restore(restored.keyed);
        Ok(())
    }

    fn process(&mut self, mut batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let mut failure = None;
        let Aggregate { node, function, field, policy, table, dropped } = self;
        let (function, policy) = (*function, *policy);
        batch.retain_mut(|r| {
            if failure.is_some() {
                return false;
            }
            let input = match field {
                None => Some(&r.value),
                Some(f) => f.get(&r.value),
            };
            let Some(input) = input else {
                let message = format!("no field {:?}", field.as_ref().map_or("", FieldPath::as_str));
                failure = reject(policy, dropped, node, &r.key, message);
                return false;
            };
            let result = match table.get_mut(&r.key, &NO_NAMESPACE) {
                Some(acc) => {
                    // Integer fast path: update in place, no allocation, no re-hash.
                    if let (Value::Int(a), Value::Int(b)) = (&mut *acc, input) {
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
                    accumulate(function, Some(acc), input).inspect(|v| *acc = v.clone())
                }
                None => accumulate(function, None, input).inspect(|v| {
                    table.insert(r.key.clone(), Value::Null, v.clone());
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
        Ok(OpSnapshot { keyed: Some(Box::new(self.table.capture(mode))), ..OpSnapshot::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::SnapshotMode;
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

    fn delta_keys(op: &mut Aggregate) -> Vec<i64> {
        let snap = op.snapshot(CheckpointId(1), SnapshotMode::Incremental).expect("snapshot");
        let mut w = crate::state::StateWriter::new(128);
        snap.keyed.expect("keyed").write_to(&mut w);
        let (bytes, _) = w.finish(true);
        let range = crate::graph::KeyGroupRange { start: 0, end: 127 };
        let entries = crate::state::decode_state_file("t", &bytes, bytes.len() as u64, crc32c::crc32c(&bytes), range)
            .expect("decode");
        let mut keys: Vec<i64> = entries.iter().filter_map(|e| e.key.as_i64()).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn incremental_capture_is_exact_whether_few_or_most_keys_changed() {
        let mut op = Aggregate::new("sum", AggregateFn::Sum, None, ErrorPolicy::Fail);
        let all: Vec<(i64, i64)> = (0..5000).map(|k| (k, 1)).collect();
        op.process(batch(&all), &mut Vec::new()).expect("p");
        op.snapshot(CheckpointId(1), SnapshotMode::Full).expect("full");
        // Most keys change: the change list overflows and the capture scans by epoch.
        let most: Vec<(i64, i64)> = (0..4000).map(|k| (k, 1)).collect();
        op.process(batch(&most), &mut Vec::new()).expect("p");
        assert!(op.table.is_overflowed());
        assert_eq!(delta_keys(&mut op), (0..4000).collect::<Vec<_>>());
        // Then a few: tracked by the list again.
        op.process(batch(&[(7, 1), (4999, 1), (7, 1)]), &mut Vec::new()).expect("p");
        assert!(!op.table.is_overflowed());
        assert_eq!(delta_keys(&mut op), vec![7, 4999]);
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
