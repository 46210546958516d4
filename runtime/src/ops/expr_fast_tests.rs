//! The direct evaluator against the CEL interpreter: random expressions over random records,
//! edge values included (overflow, NaN, -0.0, empty and non-ASCII strings, missing fields,
//! fields of the wrong type). Wherever the direct evaluator answers, the interpreter must give
//! the same value; where it does not, the interpreter answers alone, so a gap costs speed only.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::expr::Expr;
use crate::record::Record;
use crate::value::Value;

const INTS: &[&str] = &["0", "1", "-1", "2", "7", "123", "9223372036854775807", "(-9223372036854775807 - 1)"];
const FLOATS: &[&str] = &["0.0", "-0.0", "1.5", "-2.25", "0.908", "1e300", "3.0"];
const STRS: &[&str] = &[r#""""#, r#""ab""#, r#""é""#, r#""ab\u0000""#];

struct Gen(StdRng);

impl Gen {
    fn pick(&mut self, xs: &[&str]) -> String {
        xs[self.0.random_range(0..xs.len())].to_string()
    }

    fn int(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.0.random_bool(0.3);
        match if leaf { self.0.random_range(0..4) } else { self.0.random_range(4..10) } {
            0 => self.pick(INTS),
            1 => self.pick(&["value.a", "value.m.x", "key", "ts"]),
            2 => self.0.random_range(-5i64..50).to_string(),
            3 => self.pick(&["value.a", "value.n", "value.missing", "value.s"]),
            4..=6 => {
                let op = self.pick(&["+", "-", "*", "/", "%"]);
                format!("({} {op} {})", self.int(d - 1), self.int(d - 1))
            }
            7 => format!("-({})", self.int(d - 1)),
            8 => format!("int({})", self.float(d - 1)),
            _ => format!("({} ? {} : {})", self.boolean(d - 1), self.int(d - 1), self.int(d - 1)),
        }
    }

    fn float(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.0.random_bool(0.3);
        match if leaf { self.0.random_range(0..3) } else { self.0.random_range(3..8) } {
            0 => self.pick(FLOATS),
            1 => self.pick(&["value.b", "value.b", "value.a"]),
            2 => format!("double({})", self.pick(&["value.a", "ts", "key", "1"])),
            3..=5 => {
                let op = self.pick(&["+", "-", "*", "/"]);
                format!("({} {op} {})", self.float(d - 1), self.float(d - 1))
            }
            6 => format!("-({})", self.float(d - 1)),
            _ => format!("double({})", self.int(d - 1)),
        }
    }

    fn string(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.0.random_bool(0.4);
        match if leaf { self.0.random_range(0..2) } else { self.0.random_range(2..4) } {
            0 => self.pick(STRS),
            1 => self.pick(&["value.s", "value.m.y", "key"]),
            2 => format!("({} + {})", self.string(d - 1), self.string(d - 1)),
            _ => format!("string({})", self.int(d - 1)),
        }
    }

    fn boolean(&mut self, d: u32) -> String {
        let leaf = d == 0 || self.0.random_bool(0.25);
        let cmp = ["==", "!=", "<", "<=", ">", ">="];
        match if leaf { self.0.random_range(0..2) } else { self.0.random_range(2..11) } {
            0 => self.pick(&["true", "false"]),
            1 => self.pick(&["value.t", "value.n", "value.a"]),
            2 | 3 => format!("({} {} {})", self.int(d - 1), self.pick(&cmp), self.int(d - 1)),
            4 => format!("({} {} {})", self.float(d - 1), self.pick(&cmp), self.float(d - 1)),
            5 => format!("({} {} {})", self.string(d - 1), self.pick(&cmp), self.string(d - 1)),
            // Mixed types: CEL's rules decide (heterogeneous comparison or an error).
            6 => format!("({} {} {})", self.int(d - 1), self.pick(&cmp), self.float(d - 1)),
            7 => format!("!({})", self.boolean(d - 1)),
            8 => format!("({} && {})", self.boolean(d - 1), self.boolean(d - 1)),
            9 => format!("({} || {})", self.boolean(d - 1), self.boolean(d - 1)),
            _ => format!("({} == {})", self.boolean(d - 1), self.boolean(d - 1)),
        }
    }

    fn any(&mut self, d: u32) -> String {
        match self.0.random_range(0..7) {
            0 => self.int(d),
            1 => self.float(d),
            2 => self.string(d),
            3 => self.boolean(d),
            4 => format!(r#"{{"a": {}, "b": {}, "c": value.m}}"#, self.int(d), self.float(d)),
            5 => format!("[{}, {}, null]", self.string(d), self.boolean(d)),
            _ => self.pick(&["value", "value.m", "key"]),
        }
    }

    fn record(&mut self) -> Record {
        let ints = [0, 1, -1, 7, 123, 246, i64::MAX, i64::MIN, -123];
        let floats = [0.0, -0.0, 1.5, f64::NAN, f64::INFINITY, -3.25, 1e300];
        let strs = ["", "ab", "é", "zz"];
        let rng = &mut self.0;
        let int = |rng: &mut StdRng| ints[rng.random_range(0..ints.len())];
        let mut fields: Vec<(&str, Value)> = vec![
            ("a", Value::Int(int(rng))),
            ("b", Value::Float(floats[rng.random_range(0..floats.len())])),
            ("s", Value::str(strs[rng.random_range(0..strs.len())])),
            ("t", Value::Bool(rng.random_bool(0.5))),
            ("n", Value::Null),
            ("m", Value::map([("x", Value::Int(int(rng))), ("y", Value::str(strs[rng.random_range(0..strs.len())]))])),
        ];
        // Now and then a field of the wrong type, or none at all.
        match rng.random_range(0..8) {
            0 => fields[0].1 = Value::str("1"),
            1 => fields[1].1 = Value::Int(2),
            2 => {
                fields.remove(5);
            }
            _ => {}
        }
        let key = if rng.random_bool(0.8) { Value::Int(int(rng)) } else { Value::str("k") };
        Record { key, ts: [0, 1_700_000_000_000, -5, i64::MAX][rng.random_range(0..4)], value: Value::map(fields) }
    }
}

/// Equal as CEL results: floats bit for bit, any NaN equal to any NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

#[test]
fn the_direct_evaluator_agrees_with_the_interpreter_on_random_expressions_and_records() {
    let mut g = Gen(StdRng::seed_from_u64(0x05ee_dce1));
    let records: Vec<Record> = (0..40).map(|_| g.record()).collect();
    let (mut answered, mut interpreted_ok, mut evaluations) = (0u64, 0u64, 0u64);
    for round in 0..1500 {
        let depth = 1 + round % 4;
        let src = g.any(depth);
        let Ok(e) = Expr::compile("f", &src) else { continue };
        if e.constant().is_some() {
            continue;
        }
        assert!(e.is_direct(), "{src}: every construct of the generator is one the direct evaluator knows");
        for r in &records {
            evaluations += 1;
            let interpreted = e.eval_interpreted(r);
            interpreted_ok += u64::from(interpreted.is_ok());
            if let Some(direct) = e.eval_direct(r) {
                answered += 1;
                match &interpreted {
                    Ok(v) => assert!(same(&direct, v), "{src} on {}: direct {direct}, interpreter {v}", r.value),
                    Err(err) => panic!("{src} on {}: direct {direct}, interpreter fails: {err}", r.value),
                }
            }
        }
    }
    println!("{evaluations} evaluations, {interpreted_ok} answered by the interpreter, {answered} directly");
    // The direct path must carry the bulk, or the comparison above proves little.
    assert!(answered * 10 >= interpreted_ok * 7, "direct {answered} of {interpreted_ok} the interpreter answered");
}

#[test]
fn nexmark_projections_and_filters_run_directly() {
    let bid = Value::map([
        ("auction", Value::Int(1230)),
        ("bidder", Value::Int(7)),
        ("price", Value::Int(1000)),
        ("extra", Value::str("")),
    ]);
    let r = Record {
        key: Value::Null,
        ts: 5,
        value: Value::map([("event_type", Value::Int(2)), ("dateTime", Value::Int(5)), ("bid", bid)]),
    };
    for (src, want) in [
        ("value.event_type == 2", Value::Bool(true)),
        ("value.event_type == 2 && value.bid.auction % 123 == 0", Value::Bool(true)),
        (r#"{"auction": value.bid.auction, "price": value.bid.price}"#, {
            Value::map([("auction", Value::Int(1230)), ("price", Value::Int(1000))])
        }),
        (r#"{"price": double(value.bid.price) * 0.908, "extra": value.bid.extra}"#, {
            Value::map([("price", Value::Float(1000.0 * 0.908)), ("extra", Value::str(""))])
        }),
    ] {
        let e = Expr::compile("q", src).expect("compiles");
        assert!(e.is_direct(), "{src}");
        assert_eq!(e.eval_direct(&r), Some(want.clone()), "{src}");
        assert_eq!(e.eval_interpreted(&r).expect("interprets"), want, "{src}");
    }
    // Unknown to the direct evaluator: the interpreter alone.
    let e = Expr::compile("q", "has(value.bid) && size(value.bid.extra) == 0").expect("compiles");
    assert!(!e.is_direct());
    assert_eq!(e.eval(&mut Expr::context(), &r).expect("evals"), Value::Bool(true));
}
