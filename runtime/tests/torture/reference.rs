//! The independent reference evaluator: a batch interpreter of a job shape over its whole
//! input. It shares no code with the engine's operators: records are `serde_json` values, the
//! expression menus have their meaning written out here, windows and aggregates are plain maps.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value as J, json};

use super::input::FileRecord;
use super::job::{Branch, Func, IntFilter, IntKey, IntMap, RecFilter, RecKey, RecMap, Shape, pass_id};

/// One record of the reference: key, event time, value.
#[derive(Clone, Debug)]
pub struct Rec {
    /// Key.
    pub key: J,
    /// Event time.
    pub ts: i64,
    /// Value.
    pub value: J,
}

/// What a sink must hold.
#[derive(Debug)]
pub enum Expect {
    /// Exactly this multiset of lines (canonical JSON → count).
    Lines(HashMap<String, usize>),
    /// A running aggregate: per key (canonical JSON), the inputs `(ts, number)` in any order.
    Running(Func, HashMap<String, Vec<(i64, i64)>>),
}

/// JSON text with object keys sorted, so equal values compare equal as strings.
pub fn canon(v: &J) -> String {
    match v {
        J::Object(m) => {
            let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, canon(v))).collect();
            let parts: Vec<String> = sorted.into_iter().map(|(k, v)| format!("{}:{v}", J::String(k.clone()))).collect();
            format!("{{{}}}", parts.join(","))
        }
        J::Array(a) => format!("[{}]", a.iter().map(canon).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// A sink line as the file sink writes it: `{"key", "ts", "value"}`.
pub fn line(r: &Rec) -> String {
    canon(&json!({"key": r.key, "ts": r.ts, "value": r.value}))
}

fn int(v: &J) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("reference: {v} is not an integer"))
}

fn int_filter(f: IntFilter, v: i64) -> bool {
    match f {
        IntFilter::NotMod3 => v % 3 != 0,
        IntFilter::Mod5Below3 => v % 5 < 3,
        IntFilter::Even => v % 2 == 0,
    }
}

fn int_map(m: IntMap, v: i64) -> i64 {
    match m {
        IntMap::Twice => v * 2,
        IntMap::Plus7 => v + 7,
        IntMap::Mod1000 => v % 1000,
    }
}

fn int_key(k: IntKey, v: i64) -> i64 {
    match k {
        IntKey::Mod13 => v % 13,
        IntKey::Mod7Plus100 => v % 7 + 100,
    }
}

/// The generator branch's output records.
pub fn gen_branch(shape: &Shape) -> Vec<Rec> {
    let Some(g) = &shape.generator else { return Vec::new() };
    let mut out = Vec::new();
    for seq in 0..g.count as i64 {
        let v = seq;
        if g.filter.is_some_and(|f| !int_filter(f, v)) {
            continue;
        }
        let v = g.map.map_or(v, |m| int_map(m, v));
        let key = g.key.map_or(seq % g.keys as i64, |k| int_key(k, v));
        out.push(Rec { key: json!(key), ts: seq * g.step_ms as i64, value: json!(v) });
    }
    out
}

/// The file branch's output records.
pub fn file_branch(shape: &Shape, input: &[FileRecord]) -> Vec<Rec> {
    let Some(f) = &shape.files else { return Vec::new() };
    let mut out = Vec::new();
    for r in input {
        let keep = match f.filter {
            None => true,
            Some(RecFilter::SeqNotMod3) => r.seq % 3 != 0,
            Some(RecFilter::XBelow700) => r.x < 700,
        };
        if !keep {
            continue;
        }
        let key = match f.key {
            RecKey::Field => r.key,
            RecKey::SeqMod11 => r.seq % 11,
        };
        let value = match f.map {
            None => json!({"seq": r.seq, "key": r.key, "ts": r.ts, "x": r.x}),
            Some(RecMap::X) => json!(r.x),
            Some(RecMap::TwiceX) => json!(r.x * 2),
            Some(RecMap::SeqMod1000) => json!(r.seq % 1000),
        };
        out.push(Rec { key: json!(key), ts: r.ts, value });
    }
    out
}

fn fold(f: Func, acc: Option<i64>, v: i64) -> i64 {
    match (f, acc) {
        (Func::Count, a) => a.unwrap_or(0) + 1,
        (_, None) => v,
        (Func::Sum, Some(a)) => a + v,
        (Func::Min, Some(a)) => a.min(v),
        (Func::Max, Some(a)) => a.max(v),
    }
}

/// Tumbling windows over every record (none is late: see the module doc of `torture`).
fn windows(size: i64, f: Func, input: &[&Rec]) -> HashMap<String, usize> {
    let mut acc: HashMap<(String, i64), (J, i64)> = HashMap::new();
    for r in input {
        let start = r.ts - r.ts.rem_euclid(size);
        let v = if f == Func::Count { 0 } else { int(&r.value) };
        let e = acc.entry((canon(&r.key), start)).or_insert_with(|| (r.key.clone(), i64::MIN));
        e.1 = fold(f, (e.1 != i64::MIN).then_some(e.1), v);
    }
    let mut lines = HashMap::new();
    for ((_, start), (key, v)) in acc {
        let end = start + size;
        let rec =
            Rec { key: key.clone(), ts: end - 1, value: json!({"key": key, "start": start, "end": end, "value": v}) };
        *lines.entry(line(&rec)).or_default() += 1;
    }
    lines
}

/// What every sink of `shape` must hold after a complete run over `input`.
pub fn evaluate(shape: &Shape, input: &[FileRecord]) -> BTreeMap<&'static str, Expect> {
    let gens = gen_branch(shape);
    let files = file_branch(shape, input);
    let of = |b: Branch| if b == Branch::Gen { &gens } else { &files };
    let mut out = BTreeMap::new();
    let all: Vec<&Rec> = gens.iter().chain(files.iter()).collect();
    out.insert("win", Expect::Lines(windows(shape.window.0 as i64, shape.window.1, &all)));
    if let Some((b, f)) = shape.aggregate {
        let mut per_key: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for r in of(b) {
            per_key.entry(canon(&r.key)).or_default().push((r.ts, int(&r.value)));
        }
        out.insert("agg", Expect::Running(f, per_key));
    }
    for b in &shape.pass {
        let mut lines = HashMap::new();
        for r in of(*b) {
            *lines.entry(line(r)).or_default() += 1;
        }
        out.insert(pass_id(*b), Expect::Lines(lines));
    }
    out
}

/// Records the reference checks in total (input records feeding each sink).
pub fn records_checked(expect: &BTreeMap<&'static str, Expect>) -> usize {
    expect
        .values()
        .map(|e| match e {
            Expect::Lines(l) => l.values().sum::<usize>(),
            Expect::Running(_, k) => k.values().map(Vec::len).sum(),
        })
        .sum()
}
