//! The window operator against a plain reference, over random streams (fixed seeds): random keys,
//! out-of-order event times, watermark schedules that make records late (some within
//! `allowedLateness`, some past it), tumbling, sliding and session windows with every aggregate,
//! and checkpoints (a full base, then incremental deltas) after which the operator is restored
//! through the checkpoint restore path (`checkpoint::restore::assign`, by key group) into a
//! different number of subtasks mid-stream.
//!
//! The reference shares no code with the operator: it keeps the raw records each window (or
//! each key, for sessions) accepted, works out windows by brute force and sessions by sorting
//! and clustering the records from scratch, and computes every aggregate from the records. What
//! it says, in plain terms:
//! - a record goes into each of its windows that is open (`end - 1 + allowedLateness >
//!   watermark`); if none is, it is late (counted; dead-lettered unchanged when so configured);
//! - a window is emitted when the watermark first reaches `end - 1`, and again at once whenever
//!   a record joins it after that;
//! - a session is the cluster of a key's records each within `gap` of the next (`[ts, ts+gap)`
//!   intervals that touch or overlap); a record whose cluster would be closed is late.
//!
//! `WINDOW_SEED=N` runs one seed (printed with each failure).

#[path = "common/rescale.rs"]
mod rescale;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_crds::contract::pipeline::{ErrorPolicy, LateRecords, SessionSpec, WindowAggregate, WindowFn, WindowSpec};
use sluice_runtime::ops::window::Window;
use sluice_runtime::record::Record;
use sluice_runtime::value::Value;

use self::rescale::Subtasks;

const MAX_P: u32 = 16;

/// What a window is, for both sides.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Sliding { size: i64, slide: i64 },
    Session { gap: i64 },
}

#[derive(Clone, Debug)]
struct Scenario {
    kind: Kind,
    lateness: i64,
    dead_letter: bool,
    /// The single `function: count` form instead of every aggregate.
    single: bool,
}

/// One input record: `v` (nullable number), `d` (distinct-counted: an int or a string).
#[derive(Clone, Debug, PartialEq)]
struct In {
    key: i64,
    ts: i64,
    v: Option<i64>,
    d: Result<i64, String>,
}

#[derive(Clone, Debug)]
enum Event {
    Rec(In),
    Watermark(i64),
    Checkpoint,
    Rescale(u32),
}

/// A window's output, comparable: key, start, end, then the aggregates.
type Row = (i64, i64, i64, Vec<String>);

fn spec(s: &Scenario) -> WindowSpec {
    let (size, slide, session) = match s.kind {
        Kind::Sliding { size, slide } => {
            let slide = (slide != size).then(|| Duration::from_millis(slide as u64));
            (Some(Duration::from_millis(size as u64)), slide, None)
        }
        Kind::Session { gap } => (None, None, Some(SessionSpec { gap: Duration::from_millis(gap as u64) })),
    };
    let agg = |name: &str, function, field: Option<&str>| WindowAggregate {
        name: name.into(),
        function,
        field: field.map(str::to_string),
    };
    let aggregates = vec![
        agg("n", WindowFn::Count, None),
        agg("nv", WindowFn::Count, Some("v")),
        agg("sum", WindowFn::Sum, Some("v")),
        agg("min", WindowFn::Min, Some("v")),
        agg("max", WindowFn::Max, Some("v")),
        agg("avg", WindowFn::Avg, Some("v")),
        agg("distinct", WindowFn::CountDistinct, Some("d")),
    ];
    WindowSpec {
        size,
        slide,
        session,
        function: s.single.then_some(WindowFn::Count),
        field: None,
        aggregates: if s.single { Vec::new() } else { aggregates },
        allowed_lateness: Duration::from_millis(s.lateness as u64),
        late_records: if s.dead_letter { LateRecords::DeadLetter } else { LateRecords::Drop },
    }
}

fn record(i: &In) -> Record {
    let d = match &i.d {
        Ok(n) => Value::Int(*n),
        Err(s) => Value::str(s),
    };
    let v = i.v.map_or(Value::Null, Value::Int);
    Record { key: Value::Int(i.key), ts: i.ts, value: Value::map([("v", v), ("d", d)]) }
}

// ---------------------------------------------------------------- the reference

/// The aggregates of a set of records, as the output prints them.
fn aggregates(s: &Scenario, recs: &[&In]) -> Vec<String> {
    if s.single {
        return vec![format!("value={}", recs.len())];
    }
    let vs: Vec<i64> = recs.iter().filter_map(|r| r.v).collect();
    let sum: Option<i64> = (!vs.is_empty()).then(|| vs.iter().sum());
    let avg = sum.map(|t| t as f64 / vs.len() as f64);
    let distinct: BTreeSet<String> = recs.iter().map(|r| format!("{:?}", r.d)).collect();
    let opt = |o: Option<i64>| o.map_or("null".to_string(), |x| x.to_string());
    vec![
        format!("n={}", recs.len()),
        format!("nv={}", vs.len()),
        format!("sum={}", opt(sum)),
        format!("min={}", opt(vs.iter().min().copied())),
        format!("max={}", opt(vs.iter().max().copied())),
        format!("avg={}", avg.map_or("null".to_string(), |a| format!("{:?}", a))),
        format!("distinct={}", distinct.len()),
    ]
}

#[derive(Default)]
struct Reference {
    wm: Option<i64>,
    /// Sliding/tumbling: the records each open window accepted, by (key, start).
    windows: BTreeMap<(i64, i64), Vec<In>>,
    /// Sessions: the records of each key's open sessions.
    keys: BTreeMap<i64, Vec<In>>,
    out: Vec<Row>,
    late: Vec<In>,
}

/// A key's records clustered into sessions: `(start, end, records)`, by start.
fn sessions(recs: &[In], gap: i64) -> Vec<(i64, i64, Vec<&In>)> {
    let mut sorted: Vec<&In> = recs.iter().collect();
    sorted.sort_by_key(|r| r.ts);
    let mut out: Vec<(i64, i64, Vec<&In>)> = Vec::new();
    for r in sorted {
        match out.last_mut() {
            Some((_, end, members)) if r.ts <= *end => {
                *end = (*end).max(r.ts + gap);
                members.push(r);
            }
            _ => out.push((r.ts, r.ts + gap, vec![r])),
        }
    }
    out
}

impl Reference {
    fn open(&self, s: &Scenario, end: i64) -> bool {
        self.wm.is_none_or(|wm| end - 1 + s.lateness > wm)
    }

    fn passed(&self, end: i64) -> bool {
        self.wm.is_some_and(|wm| end - 1 <= wm)
    }

    fn record(&mut self, s: &Scenario, r: In) {
        match s.kind {
            Kind::Sliding { size, slide } => {
                let k = r.ts.div_euclid(slide);
                let starts: Vec<i64> = (k - size / slide - 1..=k + 1)
                    .map(|k| k * slide)
                    .filter(|&st| st <= r.ts && r.ts < st + size && self.open(s, st + size))
                    .collect();
                if starts.is_empty() {
                    self.late.push(r);
                    return;
                }
                for st in starts {
                    let passed = self.passed(st + size);
                    let recs = self.windows.entry((r.key, st)).or_default();
                    recs.push(r.clone());
                    if passed {
                        let row = (r.key, st, st + size, aggregates(s, &recs.iter().collect::<Vec<_>>()));
                        self.out.push(row);
                    }
                }
            }
            Kind::Session { gap } => {
                let recs = self.keys.entry(r.key).or_default();
                recs.push(r.clone());
                let all = sessions(recs, gap);
                let (start, end, members) =
                    all.into_iter().find(|(_, _, m)| m.iter().any(|x| **x == r)).expect("the record's session");
                let row = (r.key, start, end, aggregates(s, &members));
                if !self.open(s, end) {
                    let recs = self.keys.get_mut(&r.key).expect("key");
                    recs.pop();
                    self.late.push(r);
                } else if self.passed(end) {
                    self.out.push(row);
                }
            }
        }
    }

    fn watermark(&mut self, s: &Scenario, w: i64) {
        let prev = self.wm;
        if prev.is_some_and(|p| w <= p) {
            return;
        }
        self.wm = Some(w);
        let fires = |end: i64| end - 1 <= w && prev.is_none_or(|p| end - 1 > p);
        match s.kind {
            Kind::Sliding { size, .. } => {
                for ((key, st), recs) in &self.windows {
                    if fires(st + size) {
                        self.out.push((*key, *st, st + size, aggregates(s, &recs.iter().collect::<Vec<_>>())));
                    }
                }
                self.windows.retain(|(_, st), _| st + size - 1 + s.lateness > w);
            }
            Kind::Session { gap } => {
                let mut keep = BTreeMap::new();
                for (key, recs) in &self.keys {
                    for (start, end, members) in sessions(recs, gap) {
                        if fires(end) {
                            self.out.push((*key, start, end, aggregates(s, &members)));
                        }
                        if end - 1 + s.lateness > w {
                            keep.entry(*key).or_insert_with(Vec::new).extend(members.into_iter().cloned());
                        }
                    }
                }
                self.keys = keep;
            }
        }
    }
}

// ---------------------------------------------------------------- the operator, rescaled

fn document(p: u32) -> String {
    format!(
        "name: t\npipeline:\n  maxParallelism: {MAX_P}\n  parallelism: {p}\n  nodes:\n    - {{id: gen, generator: {{count: 1}}}}\n    - {{id: win, window: {{size: 10ms, function: count}}}}\n  edges:\n    - {{from: gen, to: win, partition: hash}}\n"
    )
}

/// `p` subtasks of the scenario's window, checkpointed and rescaled by the shared harness.
fn subtasks(s: &Scenario, p: u32) -> Subtasks<Window> {
    let spec = spec(s);
    Subtasks::new(p, MAX_P, "win", 1, document, move || {
        Window::from_spec("win", &spec, ErrorPolicy::Fail).expect("a valid window")
    })
}

/// An operator output as a [`Row`].
fn row(s: &Scenario, r: &Record) -> Row {
    let get = |f: &str| r.value.get_path(f).cloned().unwrap_or(Value::Str("missing".into()));
    let int = |f: &str| get(f).as_i64().unwrap_or(i64::MIN);
    let show = |v: Value| match v {
        Value::Null => "null".to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        other => format!("{other:?}"),
    };
    let names: &[&str] = if s.single { &["value"] } else { &["n", "nv", "sum", "min", "max", "avg", "distinct"] };
    let aggs = names.iter().map(|n| format!("{n}={}", show(get(n)))).collect();
    assert_eq!(r.ts, int("end") - 1, "an output's event time is end - 1");
    assert_eq!(r.key, get("key"));
    (int("key"), int("start"), int("end"), aggs)
}

// ---------------------------------------------------------------- random streams

fn scenario(rng: &mut StdRng) -> Scenario {
    let kind = match rng.random_range(0..3) {
        0 => Kind::Sliding { size: [5, 10, 30][rng.random_range(0..3)], slide: 0 },
        1 => {
            let (size, slides): (i64, &[i64]) =
                [(10, &[2, 5][..]), (30, &[3, 10, 15][..]), (60, &[20, 60][..])][rng.random_range(0..3)];
            Kind::Sliding { size, slide: slides[rng.random_range(0..slides.len())] }
        }
        _ => Kind::Session { gap: [3, 10, 25][rng.random_range(0..3)] },
    };
    let kind = match kind {
        Kind::Sliding { size, slide: 0 } => Kind::Sliding { size, slide: size },
        k => k,
    };
    Scenario {
        kind,
        lateness: [0, 0, 5, 40][rng.random_range(0..4)],
        dead_letter: rng.random_bool(0.5),
        single: rng.random_bool(0.2),
    }
}

fn events(rng: &mut StdRng, n: usize) -> Vec<Event> {
    let keys = rng.random_range(1..=8);
    let disorder = [0, 10, 60][rng.random_range(0..3)];
    let (mut t, mut max_seen) = (rng.random_range(-100..100), i64::MIN);
    let mut out = Vec::new();
    for _ in 0..n {
        t += rng.random_range(0..4);
        let ts = t - rng.random_range(0..=disorder);
        max_seen = max_seen.max(ts);
        let v = rng.random_bool(0.85).then(|| rng.random_range(-50..50));
        let d =
            if rng.random_bool(0.8) { Ok(rng.random_range(0..6)) } else { Err(format!("s{}", rng.random_range(0..3))) };
        out.push(Event::Rec(In { key: rng.random_range(0..keys), ts, v, d }));
        match rng.random_range(0..100) {
            0..8 => out.push(Event::Watermark(max_seen - rng.random_range(0..=disorder + 5))),
            8..10 => out.push(Event::Watermark(max_seen + rng.random_range(0..20))),
            10..12 => out.push(Event::Checkpoint),
            12 => out.push(Event::Rescale(rng.random_range(1..=4))),
            _ => {}
        }
    }
    out
}

/// What a run exercised, summed over the seeds to show the streams reach every case.
#[derive(Default, Debug)]
struct Coverage {
    rescales: usize,
    late: usize,
    re_emitted: usize,
    sessions_merged: usize,
}

fn run(seed: u64, cov: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = scenario(&mut rng);
    let n = rng.random_range(200..1500);
    let events = events(&mut rng, n);
    let mut reference = Reference::default();
    let mut op = subtasks(&s, rng.random_range(1..=3));
    for e in &events {
        match e {
            Event::Rec(r) => {
                reference.record(&s, r.clone());
                op.record(0, record(r));
            }
            Event::Watermark(w) => {
                reference.watermark(&s, *w);
                op.watermark(*w);
            }
            Event::Checkpoint => op.checkpoint(),
            Event::Rescale(p) => {
                cov.rescales += 1;
                op.rescale(*p);
            }
        }
    }
    reference.watermark(&s, i64::MAX);
    op.finish();
    let context = format!("seed {seed} (WINDOW_SEED={seed}), {s:?}");
    let mut want = reference.out;
    let mut got: Vec<Row> = op.out.iter().map(|r| row(&s, r)).collect();
    want.sort();
    got.sort();
    assert!(!want.is_empty(), "{context}: the stream has windows");
    cov.late += reference.late.len();
    cov.re_emitted += want.windows(2).filter(|w| (w[0].0, w[0].1, w[0].2) == (w[1].0, w[1].1, w[1].2)).count();
    if let Kind::Session { gap } = s.kind {
        cov.sessions_merged += want.iter().filter(|r| r.2 - r.1 > gap).count();
    }
    let missing: Vec<&Row> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
    let extra: Vec<&Row> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
    assert!(
        got == want,
        "{context}: {} rows expected, {} emitted; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
        want.len(),
        got.len()
    );
    assert_eq!(op.late_counted, reference.late.len() as u64, "{context}: late records counted");
    let mut late_want: Vec<Record> =
        if s.dead_letter { reference.late.iter().map(record).collect() } else { Vec::new() };
    let mut late_got = op.late;
    let order = |r: &Record| (r.key.as_i64(), r.ts, format!("{:?}", r.value));
    late_want.sort_by_key(order);
    late_got.sort_by_key(order);
    assert_eq!(late_got, late_want, "{context}: dead-lettered records");
}

fn seeds(range: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("WINDOW_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => range.collect(),
    }
}

#[test]
fn windows_match_the_reference_through_lateness_and_rescales() {
    let mut cov = Coverage::default();
    for seed in seeds(0..120) {
        run(seed, &mut cov);
    }
    eprintln!("{cov:?}");
    if std::env::var("WINDOW_SEED").is_err() {
        assert!(
            cov.rescales > 50 && cov.late > 100 && cov.re_emitted > 100 && cov.sessions_merged > 100,
            "the streams exercise rescales, late records, re-emitted windows and merged sessions: {cov:?}"
        );
    }
}
