//! The join operator against a brute-force reference, over random two-sided streams (fixed
//! seeds): random keys, out-of-order event times, watermark schedules that make records late,
//! window, interval and regular (time-to-live) joins, and checkpoints (a full base, then
//! incremental deltas) after which the operator is restored through the checkpoint restore path
//! (`checkpoint::restore::assign`, by key group) into a different number of subtasks mid-stream.
//!
//! The reference shares no code with the operator: it keeps every raw record with the step it
//! arrived at, decides lateness from the watermark at that step, and at the end pairs records by
//! nested loops over all of them. What it says, in plain terms:
//! - window join: a record whose window `[start, end)` has `end - 1 <= watermark` is late;
//!   every left × right pair of one key in one window is emitted at the first watermark that
//!   reaches `end - 1` (or at the end of input), with event time `end - 1`;
//! - interval join: a record at or behind the watermark is late; every left × right pair of one
//!   key with `left.ts - lower <= right.ts <= left.ts + upper` is emitted when the later of the
//!   two arrives, with event time `max(left.ts, right.ts)`; a regular join with `ttl` is the
//!   interval `[-ttl, +ttl]`;
//! - state: after every watermark the operator holds exactly the entries that can still match
//!   (a window not fired; a left record until `ts + upper`, a right one until `ts + lower`).
//!
//! `JOIN_SEED=N` runs one seed (printed with each failure).

#[path = "common/rescale.rs"]
mod rescale;

use std::collections::BTreeSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_crds::contract::pipeline::{JoinIntervalSpec, JoinSpec, JoinWindowSpec, LateRecords};
use sluice_runtime::ops::join::Join;
use sluice_runtime::record::Record;
use sluice_runtime::value::Value;

use self::rescale::Subtasks;

const MAX_P: u32 = 16;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Window { size: i64 },
    Interval { lower: i64, upper: i64 },
    Ttl { ttl: i64 },
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    kind: Kind,
    dead_letter: bool,
}

/// One input record: its side (0 left, 1 right), key, event time and unique id.
#[derive(Clone, Copy, Debug, PartialEq)]
struct In {
    side: usize,
    key: i64,
    ts: i64,
    id: i64,
}

#[derive(Clone, Debug)]
enum Event {
    Rec(In),
    Watermark(i64),
    Checkpoint,
    Rescale(u32),
}

/// An output, comparable: the step it was emitted at, key, event time, left id, right id and
/// the window's start (window joins).
type Row = (usize, i64, i64, i64, i64, Option<i64>);

fn spec(s: &Scenario) -> JoinSpec {
    let ms = |v: i64| Duration::from_millis(v as u64);
    let mut spec = JoinSpec {
        left: "a".into(),
        right: "b".into(),
        window: None,
        interval: None,
        ttl: None,
        late_records: if s.dead_letter { LateRecords::DeadLetter } else { LateRecords::Drop },
    };
    match s.kind {
        Kind::Window { size } => spec.window = Some(JoinWindowSpec { size: ms(size) }),
        Kind::Interval { lower, upper } => {
            spec.interval = Some(JoinIntervalSpec { lower: ms(lower), upper: ms(upper) })
        }
        Kind::Ttl { ttl } => spec.ttl = Some(ms(ttl)),
    }
    spec
}

fn record(i: &In) -> Record {
    Record { key: Value::Int(i.key), ts: i.ts, value: Value::map([("id", Value::Int(i.id))]) }
}

/// `(lower, upper)` of an interval or regular join.
fn bounds(kind: Kind) -> Option<(i64, i64)> {
    match kind {
        Kind::Window { .. } => None,
        Kind::Interval { lower, upper } => Some((lower, upper)),
        Kind::Ttl { ttl } => Some((ttl, ttl)),
    }
}

// ---------------------------------------------------------------- the reference

#[derive(Default)]
struct Reference {
    wm: Option<i64>,
    /// `(step, watermark)` of every step that raised the watermark.
    raised: Vec<(usize, i64)>,
    /// Accepted records with the step they arrived at.
    accepted: Vec<(usize, In)>,
    late: Vec<In>,
}

impl Reference {
    fn window_start(ts: i64, size: i64) -> i64 {
        ts.div_euclid(size) * size
    }

    fn record(&mut self, s: &Scenario, step: usize, r: In) {
        let last = match s.kind {
            Kind::Window { size } => Reference::window_start(r.ts, size) + size - 1,
            _ => r.ts,
        };
        if self.wm.is_some_and(|wm| last <= wm) {
            self.late.push(r);
        } else {
            self.accepted.push((step, r));
        }
    }

    fn watermark(&mut self, step: usize, w: i64) {
        if self.wm.is_none_or(|p| w > p) {
            self.wm = Some(w);
            self.raised.push((step, w));
        }
    }

    /// Every pair, by nested loops over all accepted records; `end` is the finishing step.
    fn rows(&self, s: &Scenario, end: usize) -> Vec<Row> {
        let mut rows = Vec::new();
        for (sl, l) in self.accepted.iter().filter(|(_, r)| r.side == 0) {
            for (sr, r) in self.accepted.iter().filter(|(_, r)| r.side == 1) {
                if l.key != r.key {
                    continue;
                }
                match (s.kind, bounds(s.kind)) {
                    (Kind::Window { size }, _) => {
                        let start = Reference::window_start(l.ts, size);
                        if start != Reference::window_start(r.ts, size) {
                            continue;
                        }
                        let last = start + size - 1;
                        let step = self.raised.iter().find(|(_, w)| *w >= last).map_or(end, |(st, _)| *st);
                        rows.push((step, l.key, last, l.id, r.id, Some(start)));
                    }
                    (_, Some((lower, upper))) => {
                        if l.ts - lower <= r.ts && r.ts <= l.ts + upper {
                            rows.push(((*sl).max(*sr), l.key, l.ts.max(r.ts), l.id, r.id, None));
                        }
                    }
                    _ => unreachable!("a window or bounds"),
                }
            }
        }
        rows.sort();
        rows
    }

    /// The state entries that can still match at the current watermark.
    fn live_entries(&self, s: &Scenario) -> usize {
        let wm = self.wm.unwrap_or(i64::MIN);
        let live: BTreeSet<(i64, usize, i64)> = self
            .accepted
            .iter()
            .filter_map(|(_, r)| match (s.kind, bounds(s.kind)) {
                (Kind::Window { size }, _) => {
                    let start = Reference::window_start(r.ts, size);
                    (start + size - 1 > wm).then_some((r.key, 0, start))
                }
                (_, Some((lower, upper))) => {
                    let until = r.ts + if r.side == 0 { upper } else { lower };
                    (until > wm).then_some((r.key, r.side, r.ts))
                }
                _ => None,
            })
            .collect();
        live.len()
    }
}

// ---------------------------------------------------------------- the operator

fn document(p: u32) -> String {
    format!(
        "name: t\npipeline:\n  maxParallelism: {MAX_P}\n  parallelism: {p}\n  nodes:\n    - {{id: a, generator: {{count: 1}}}}\n    - {{id: b, generator: {{count: 1}}}}\n    - {{id: j, join: {{left: a, right: b, ttl: 1s}}}}\n  edges:\n    - {{from: a, to: j, partition: hash}}\n    - {{from: b, to: j, partition: hash}}\n"
    )
}

fn subtasks(s: &Scenario, p: u32) -> Subtasks<Join> {
    let spec = spec(s);
    Subtasks::new(p, MAX_P, "j", 2, document, move || Join::from_spec("j", &spec).expect("a valid join"))
}

/// An operator output as a [`Row`] emitted at `step`.
fn row(s: &Scenario, step: usize, r: &Record) -> Row {
    let int = |path: &str| r.value.get_path(path).and_then(Value::as_i64);
    let key = int("key").expect("key");
    assert_eq!(r.key, Value::Int(key), "the output's key is the join key");
    let start = int("start");
    match s.kind {
        Kind::Window { size } => {
            let start = start.expect("a window join's start");
            assert_eq!((int("end"), r.ts), (Some(start + size), start + size - 1), "end and event time");
        }
        _ => assert_eq!(start, None, "no window"),
    }
    (step, key, r.ts, int("left.id").expect("left"), int("right.id").expect("right"), start)
}

// ---------------------------------------------------------------- random streams

fn scenario(rng: &mut StdRng) -> Scenario {
    let pick = |rng: &mut StdRng, xs: &[i64]| xs[rng.random_range(0..xs.len())];
    let kind = match rng.random_range(0..3) {
        0 => Kind::Window { size: pick(rng, &[3, 10, 30]) },
        1 => Kind::Interval { lower: pick(rng, &[0, 2, 10]), upper: pick(rng, &[0, 5, 25]) },
        _ => Kind::Ttl { ttl: pick(rng, &[1, 6, 20]) },
    };
    Scenario { kind, dead_letter: rng.random_bool(0.5) }
}

fn events(rng: &mut StdRng, n: usize) -> Vec<Event> {
    let keys = rng.random_range(1..=6);
    let disorder = [0, 8, 40][rng.random_range(0..3)];
    let (mut t, mut max_seen) = (rng.random_range(-100..100), i64::MIN);
    let mut out = Vec::new();
    for id in 0..n as i64 {
        t += rng.random_range(0..3);
        let ts = t - rng.random_range(0..=disorder);
        max_seen = max_seen.max(ts);
        out.push(Event::Rec(In { side: rng.random_range(0..2), key: rng.random_range(0..keys), ts, id }));
        match rng.random_range(0..100) {
            0..8 => out.push(Event::Watermark(max_seen - rng.random_range(0..=disorder + 5))),
            8..10 => out.push(Event::Watermark(max_seen + rng.random_range(0..15))),
            10..12 => out.push(Event::Checkpoint),
            12 => out.push(Event::Rescale(rng.random_range(1..=4))),
            _ => {}
        }
    }
    out
}

/// What the runs exercised, summed over the seeds.
#[derive(Default, Debug)]
struct Coverage {
    rows: [usize; 3],
    late: usize,
    rescales: usize,
    state_checks: usize,
}

fn run(seed: u64, cov: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = scenario(&mut rng);
    let n = rng.random_range(200..1200);
    let events = events(&mut rng, n);
    let mut reference = Reference::default();
    let mut op = subtasks(&s, rng.random_range(1..=3));
    let context = format!("seed {seed} (JOIN_SEED={seed}), {s:?}");
    let mut got = Vec::new();
    for (step, e) in events.iter().enumerate() {
        match e {
            Event::Rec(r) => {
                reference.record(&s, step, *r);
                op.record(r.side, record(r));
            }
            Event::Watermark(w) => {
                reference.watermark(step, *w);
                op.watermark(*w);
                let held: usize = op.ops.iter().map(Join::state_entries).sum();
                assert_eq!(held, reference.live_entries(&s), "{context}: state entries after watermark {w}");
                cov.state_checks += 1;
            }
            Event::Checkpoint => op.checkpoint(),
            Event::Rescale(p) => {
                cov.rescales += 1;
                op.rescale(*p);
            }
        }
        got.extend(op.out.drain(..).map(|r| row(&s, step, &r)));
    }
    op.finish();
    got.extend(op.out.drain(..).map(|r| row(&s, events.len(), &r)));
    got.sort();
    let want = reference.rows(&s, events.len());
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
    let mut late_got = std::mem::take(&mut op.late);
    let order = |r: &Record| (r.key.as_i64(), r.ts, format!("{:?}", r.value));
    late_want.sort_by_key(order);
    late_got.sort_by_key(order);
    assert_eq!(late_got, late_want, "{context}: dead-lettered records");
    let k = match s.kind {
        Kind::Window { .. } => 0,
        Kind::Interval { .. } => 1,
        Kind::Ttl { .. } => 2,
    };
    cov.rows[k] += want.len();
    cov.late += reference.late.len();
}

#[test]
fn joins_match_the_brute_force_reference_through_lateness_and_rescales() {
    let seeds: Vec<u64> = match std::env::var("JOIN_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..150).collect(),
    };
    let mut cov = Coverage::default();
    for &seed in &seeds {
        run(seed, &mut cov);
    }
    eprintln!("{cov:?}");
    if seeds.len() > 1 {
        assert!(
            cov.rows.iter().all(|n| *n > 1000) && cov.late > 200 && cov.rescales > 50 && cov.state_checks > 1000,
            "the streams exercise every join, late records, rescales and state drops: {cov:?}"
        );
    }
}
