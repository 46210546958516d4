//! Unit tests of `topN` and `deduplicate` beyond the differential ones
//! (`tests/topn_dedup_differential.rs`): malformed input, foreign state, the order of values.

use std::cmp::Ordering;
use std::time::Duration;

use sluice_crds::contract::pipeline::{DeduplicateSpec, ErrorPolicy, Keep, LateRecords, RankWindow, TopNSpec};

use super::dedup::Deduplicate;
use super::topn::{TopN, cmp_order};
use super::{OpError, Operator, Restored};
use crate::record::Record;
use crate::state::StateEntry;
use crate::value::Value;

fn top(policy: ErrorPolicy) -> TopN {
    let spec = TopNSpec {
        n: 2,
        order_by: "p".into(),
        descending: true,
        with_ties: false,
        window: RankWindow { size: Duration::from_millis(10), slide: None },
        allowed_lateness: Duration::ZERO,
        late_records: LateRecords::Drop,
    };
    TopN::from_spec("top", &spec, policy).expect("valid")
}

fn rec(key: i64, ts: i64, value: Value) -> Record {
    Record { key: Value::Int(key), ts, value }
}

fn restored(namespace: Value, value: Value) -> Restored {
    let entry = StateEntry { key_group: 0, key: Value::Int(1), namespace, value: Some(value) };
    Restored { keyed: vec![entry], operator_state: Vec::new() }
}

#[test]
fn numbers_rank_below_strings_and_an_int_before_an_equal_float() {
    let (i, f, s) = (Value::Int(3), Value::Float(3.0), Value::str("3"));
    assert_eq!(cmp_order(&i, &f), Ordering::Less);
    assert_eq!(cmp_order(&Value::Float(2.5), &i), Ordering::Less);
    assert_eq!(cmp_order(&Value::Int(i64::MAX), &s), Ordering::Less);
    assert_eq!(cmp_order(&Value::str("a"), &Value::str("b")), Ordering::Less);
}

#[test]
fn a_record_without_a_rankable_order_by_fails_or_is_skipped_and_counted() {
    let bad = [Value::map([("q", Value::Int(1))]), Value::map([("p", Value::Bool(true))]), Value::Null];
    for v in bad {
        let mut out = Vec::new();
        let err = top(ErrorPolicy::Fail).process(vec![rec(1, 0, v.clone())], &mut out).expect_err("malformed");
        assert!(matches!(&err, OpError::Malformed { message, .. } if message.contains("orderBy \"p\"")), "{err}");
        let mut skip = top(ErrorPolicy::Skip);
        skip.process(vec![rec(1, 0, v)], &mut out).expect("skipped");
        skip.finish_all(&mut out).expect("finish");
        assert_eq!((skip.malformed_records(), out.len()), (1, 0));
    }
}

#[test]
fn foreign_state_is_refused_on_restore() {
    let err = top(ErrorPolicy::Fail).restore(restored(Value::Int(0), Value::Int(7))).expect_err("not a ranking");
    assert!(matches!(err, OpError::Restore { .. }), "{err}");
    let spec = DeduplicateSpec { keep: Keep::Last, ttl: Duration::from_millis(5), late_records: LateRecords::Drop };
    let mut dedup = Deduplicate::from_spec("d", &spec).expect("valid");
    let err = dedup.restore(restored(Value::Null, Value::str("x"))).expect_err("not a key's state");
    assert!(matches!(err, OpError::Restore { .. }), "{err}");
}

#[test]
fn keep_last_emits_at_the_span_end_and_keep_first_at_the_record() {
    for (keep, want) in [(Keep::First, vec![(10, 1), (20, 3)]), (Keep::Last, vec![(14, 2), (24, 3)])] {
        let spec = DeduplicateSpec { keep, ttl: Duration::from_millis(5), late_records: LateRecords::Drop };
        let mut d = Deduplicate::from_spec("d", &spec).expect("valid");
        let mut out = Vec::new();
        let batch = vec![rec(1, 12, Value::Int(2)), rec(1, 10, Value::Int(1)), rec(1, 20, Value::Int(3))];
        d.process(batch, &mut out).expect("process");
        assert!(out.is_empty(), "nothing before the watermark");
        d.on_watermark_all(9, &mut out).expect("watermark");
        assert!(out.is_empty(), "nothing before the watermark reaches a record");
        d.finish_all(&mut out).expect("finish");
        let got: Vec<(i64, i64)> = out.iter().map(|r| (r.ts, r.value.as_i64().unwrap_or(-1))).collect();
        assert_eq!(got, want, "{keep:?}");
    }
}
