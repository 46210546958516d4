//! The `topN` and `deduplicate` operators against brute-force references, over random streams
//! (fixed seeds): random keys, out-of-order event times, order values with many ties (and
//! records identical but for their value), watermark schedules that make records late (some
//! within a top-N's `allowedLateness`, some past it), dead-lettering, and checkpoints (a full
//! base, then deltas) after which the operator is restored through the checkpoint restore path
//! (`checkpoint::restore::assign`, by key group) into another number of subtasks mid-stream.
//!
//! The references share no code with the operators. They keep every record a window or a key
//! accepted and work the answer out from scratch:
//! - top-N: a record joins each of its windows that is open (`end − 1 + allowedLateness >
//!   watermark`), else it is late; when the watermark first reaches `end − 1` the window's
//!   records are sorted (orderBy, then event time, then encoded value) and the first N emitted
//!   with ranks 1..N; a record joining a fired window that changes that list re-emits it;
//! - deduplicate: a record at or behind the watermark is late; at the end each key's accepted
//!   records are sorted by (event time, encoded value) and cut into spans — the first record
//!   opens `[t, t + ttl)`, the first one at or after its end opens the next — and the first
//!   (or last) of each span is the output.
//!
//! Every output must also be on time: emitted by the watermark call that passed its event time
//! (a top-N row re-emitted for a late record excepted). `RANK_SEED=N` runs one seed.

#[path = "common/rescale.rs"]
mod rescale;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rescale::Rescaled;
use sluice_crds::contract::pipeline::{DeduplicateSpec, ErrorPolicy, Keep, LateRecords, RankWindow, TopNSpec};
use sluice_runtime::ops::Operator;
use sluice_runtime::ops::dedup::Deduplicate;
use sluice_runtime::ops::topn::TopN;
use sluice_runtime::record::Record;
use sluice_runtime::value::Value;

/// One input record: the ranked field `o` and a payload `id` (few values: identical records).
#[derive(Clone, Debug, PartialEq)]
struct In {
    key: i64,
    ts: i64,
    o: Value,
    id: i64,
}

#[derive(Clone, Debug)]
enum Event {
    Rec(In),
    Watermark(i64),
    Checkpoint,
    Rescale(u32),
}

fn value(i: &In) -> Value {
    Value::map([("o", i.o.clone()), ("id", Value::Int(i.id))])
}

fn record(i: &In) -> Record {
    Record { key: Value::Int(i.key), ts: i.ts, value: value(i) }
}

fn bytes(v: &Value) -> Vec<u8> {
    let mut b = Vec::new();
    v.encode(&mut b);
    b
}

fn events(rng: &mut StdRng, n: usize) -> Vec<Event> {
    let keys = rng.random_range(1..=6);
    let disorder = [0, 10, 60][rng.random_range(0..3)];
    let (mut t, mut max_seen) = (rng.random_range(-100..100), i64::MIN);
    let mut out = Vec::new();
    for _ in 0..n {
        t += rng.random_range(0..4);
        let ts = t - rng.random_range(0..=disorder);
        max_seen = max_seen.max(ts);
        let o = match rng.random_range(0..10) {
            0 => Value::Float(rng.random_range(0..6) as f64 / 2.0),
            1 => Value::str(["a", "b"][rng.random_range(0..2)]),
            _ => Value::Int(rng.random_range(0..4)),
        };
        out.push(Event::Rec(In { key: rng.random_range(0..keys), ts, o, id: rng.random_range(0..3) }));
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

fn seeds(range: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("RANK_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => range.collect(),
    }
}

/// Drives the operator and feeds `reference` the same events; returns the harness at the end.
fn drive<O: Operator>(events: &[Event], op: &mut Rescaled<O>, mut reference: impl FnMut(&Event), rescales: &mut usize) {
    for e in events {
        reference(e);
        match e {
            Event::Rec(r) => op.record(record(r)),
            Event::Watermark(w) => op.watermark(*w),
            Event::Checkpoint => op.checkpoint(),
            Event::Rescale(p) => {
                *rescales += 1;
                op.rescale(*p);
            }
        }
    }
    op.finish();
}

fn check_late(context: &str, late_counted: u64, late_got: &[Record], late_want: &[In], dead_letter: bool) {
    assert_eq!(late_counted, late_want.len() as u64, "{context}: late records counted");
    let order = |r: &Record| (r.key.as_i64(), r.ts, bytes(&r.value));
    let mut want: Vec<Record> = if dead_letter { late_want.iter().map(record).collect() } else { Vec::new() };
    let mut got = late_got.to_vec();
    want.sort_by_key(order);
    got.sort_by_key(order);
    assert_eq!(got, want, "{context}: dead-lettered records");
}

// ---------------------------------------------------------------- top-N

#[derive(Clone, Debug)]
struct TopScenario {
    n: usize,
    size: i64,
    slide: i64,
    descending: bool,
    with_ties: bool,
    lateness: i64,
    dead_letter: bool,
}

/// A top-N output: key, start, end, rank, the record's ts, its value's `o` and `id`.
type TopRow = (i64, i64, i64, i64, i64, String, i64);

/// The reference's order: numbers by value (an int before an equal float), then strings.
fn cmp_o(a: &Value, b: &Value) -> Ordering {
    let class = |v: &Value| match v {
        Value::Int(i) => (0, *i as f64, 0, String::new()),
        Value::Float(f) => (0, *f, 1, String::new()),
        Value::Str(s) => (1, 0.0, 0, s.to_string()),
        other => panic!("the streams rank numbers and strings, not {other:?}"),
    };
    let (x, y) = (class(a), class(b));
    x.0.cmp(&y.0).then(x.1.total_cmp(&y.1)).then(x.2.cmp(&y.2)).then(x.3.cmp(&y.3))
}

#[derive(Default)]
struct TopRef {
    wm: Option<i64>,
    windows: BTreeMap<(i64, i64), Vec<In>>,
    out: Vec<TopRow>,
    late: Vec<In>,
}

impl TopRef {
    fn ranking(s: &TopScenario, recs: &[In]) -> Vec<In> {
        let mut sorted = recs.to_vec();
        sorted.sort_by(|a, b| {
            let o = cmp_o(&a.o, &b.o);
            let o = if s.descending { o.reverse() } else { o };
            o.then(a.ts.cmp(&b.ts)).then_with(|| bytes(&value(a)).cmp(&bytes(&value(b))))
        });
        let keep = match sorted.get(s.n.wrapping_sub(1)) {
            Some(nth) if s.with_ties => {
                sorted.iter().filter(|r| Self::better(s, &r.o, &nth.o) != Ordering::Greater).count()
            }
            _ => s.n,
        };
        sorted.truncate(keep);
        sorted
    }

    /// `Less` when order value `a` ranks before `b`.
    fn better(s: &TopScenario, a: &Value, b: &Value) -> Ordering {
        if s.descending { cmp_o(b, a) } else { cmp_o(a, b) }
    }

    fn emit(&mut self, s: &TopScenario, key: i64, start: i64, top: &[In]) {
        for (i, r) in top.iter().enumerate() {
            // With ties, SQL's RANK: one more than the rows ranked strictly before.
            let ahead = top.iter().filter(|x| Self::better(s, &x.o, &r.o) == Ordering::Less).count();
            let rank = if s.with_ties { ahead + 1 } else { i + 1 };
            self.out.push((key, start, start + s.size, rank as i64, r.ts, format!("{:?}", r.o), r.id));
        }
    }

    fn event(&mut self, s: &TopScenario, e: &Event) {
        match e {
            Event::Rec(r) => {
                let k = r.ts.div_euclid(s.slide);
                let open = |st: i64| self.wm.is_none_or(|w| st + s.size - 1 + s.lateness > w);
                let starts: Vec<i64> = (k - s.size / s.slide - 1..=k + 1)
                    .map(|k| k * s.slide)
                    .filter(|&st| st <= r.ts && r.ts < st + s.size && open(st))
                    .collect();
                if starts.is_empty() {
                    self.late.push(r.clone());
                }
                for st in starts {
                    let fired = self.wm.is_some_and(|w| st + s.size - 1 <= w);
                    let recs = self.windows.entry((r.key, st)).or_default();
                    let before = Self::ranking(s, recs);
                    recs.push(r.clone());
                    let after = Self::ranking(s, recs);
                    if fired && after != before {
                        self.emit(s, r.key, st, &after);
                    }
                }
            }
            Event::Watermark(w) => self.watermark(s, *w),
            _ => {}
        }
    }

    fn watermark(&mut self, s: &TopScenario, w: i64) {
        let prev = self.wm;
        if prev.is_some_and(|p| w <= p) {
            return;
        }
        self.wm = Some(w);
        let fires = |st: i64| st + s.size - 1 <= w && prev.is_none_or(|p| st + s.size - 1 > p);
        let due: Vec<((i64, i64), Vec<In>)> =
            self.windows.iter().filter(|((_, st), _)| fires(*st)).map(|(k, v)| (*k, Self::ranking(s, v))).collect();
        for ((key, st), top) in due {
            self.emit(s, key, st, &top);
        }
        self.windows.retain(|(_, st), _| st + s.size - 1 + s.lateness > w);
    }
}

fn top_scenario(rng: &mut StdRng) -> TopScenario {
    let (size, slides): (i64, &[i64]) =
        [(5, &[5][..]), (10, &[2, 5, 10][..]), (30, &[10, 30][..])][rng.random_range(0..3)];
    TopScenario {
        n: [1, 2, 3, 5][rng.random_range(0..4)],
        size,
        slide: slides[rng.random_range(0..slides.len())],
        descending: rng.random_bool(0.5),
        with_ties: rng.random_bool(0.3),
        lateness: [0, 0, 5, 40][rng.random_range(0..4)],
        dead_letter: rng.random_bool(0.5),
    }
}

fn top_op(s: &TopScenario) -> TopN {
    let spec = TopNSpec {
        n: s.n as u32,
        order_by: "o".into(),
        descending: s.descending,
        with_ties: s.with_ties,
        window: RankWindow {
            size: Duration::from_millis(s.size as u64),
            slide: (s.slide != s.size).then(|| Duration::from_millis(s.slide as u64)),
        },
        allowed_lateness: Duration::from_millis(s.lateness as u64),
        late_records: if s.dead_letter { LateRecords::DeadLetter } else { LateRecords::Drop },
    };
    TopN::from_spec("op", &spec, ErrorPolicy::Fail).expect("a valid topN")
}

fn top_row(r: &Record) -> TopRow {
    let int = |f: &str| r.value.get_path(f).and_then(Value::as_i64).unwrap_or_else(|| panic!("{f} in {:?}", r.value));
    let o = r.value.get_path("value.o").cloned().unwrap_or_default();
    assert_eq!((r.ts, &r.key), (int("end") - 1, &Value::Int(int("key"))), "a row's event time and key");
    (int("key"), int("start"), int("end"), int("rank"), int("ts"), format!("{o:?}"), int("value.id"))
}

#[derive(Default, Debug)]
struct Coverage {
    rescales: usize,
    late: usize,
    re_emitted: usize,
    ties: usize,
    shared_ranks: usize,
    dups: usize,
}

fn run_top(seed: u64, cov: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = top_scenario(&mut rng);
    let n = rng.random_range(200..1200);
    let events = events(&mut rng, n);
    let mut reference = TopRef::default();
    let s2 = s.clone();
    let mut op = Rescaled::new(rng.random_range(1..=3), move || top_op(&s2));
    drive(&events, &mut op, |e| reference.event(&s, e), &mut cov.rescales);
    reference.watermark(&s, i64::MAX);
    let context = format!("seed {seed} (RANK_SEED={seed}), {s:?}");
    for (r, before, after) in &op.out {
        let fired = *before < r.ts && r.ts <= *after;
        let re_emitted = before == after && r.ts <= *after;
        assert!(fired || re_emitted, "{context}: {r:?} emitted between watermarks {before} and {after}");
        cov.re_emitted += usize::from(re_emitted && !fired);
    }
    let mut got: Vec<TopRow> = op.out.iter().map(|(r, ..)| top_row(r)).collect();
    let mut want = reference.out;
    assert!(!want.is_empty(), "{context}: the stream has windows");
    cov.ties += want.windows(2).filter(|w| w[0].5 == w[1].5 && (w[0].0, w[0].1) == (w[1].0, w[1].1)).count();
    got.sort();
    want.sort();
    cov.shared_ranks += want
        .windows(2)
        .filter(|w| (w[0].0, w[0].1, w[0].3) == (w[1].0, w[1].1, w[1].3) && (w[0].4, w[0].6) != (w[1].4, w[1].6))
        .count();
    let missing: Vec<&TopRow> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
    let extra: Vec<&TopRow> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
    assert!(
        got == want,
        "{context}: {} rows expected, {} emitted; missing {missing:?}; unexpected {extra:?}",
        want.len(),
        got.len()
    );
    cov.late += reference.late.len();
    check_late(&context, op.late_counted, &op.late, &reference.late, s.dead_letter);
}

#[test]
fn top_n_matches_the_reference_through_ties_lateness_and_rescales() {
    let mut cov = Coverage::default();
    for seed in seeds(0..100) {
        run_top(seed, &mut cov);
    }
    eprintln!("{cov:?}");
    if std::env::var("RANK_SEED").is_err() {
        assert!(
            cov.rescales > 40 && cov.late > 100 && cov.re_emitted > 50 && cov.ties > 500 && cov.shared_ranks > 50,
            "the streams exercise rescales, late records, re-emitted rankings, ties and shared ranks: {cov:?}"
        );
    }
}

// ---------------------------------------------------------------- deduplicate

#[derive(Clone, Debug)]
struct DedupScenario {
    keep: Keep,
    ttl: i64,
    dead_letter: bool,
}

/// A deduplicate output: key, event time, the value's `o` and `id`.
type DedupRow = (i64, i64, String, i64);

fn dedup_reference(s: &DedupScenario, events: &[Event]) -> (Vec<DedupRow>, Vec<In>) {
    let (mut wm, mut accepted, mut late) = (i64::MIN, BTreeMap::<i64, Vec<In>>::new(), Vec::new());
    for e in events {
        match e {
            Event::Rec(r) if r.ts <= wm => late.push(r.clone()),
            Event::Rec(r) => accepted.entry(r.key).or_default().push(r.clone()),
            Event::Watermark(w) => wm = wm.max(*w),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (key, mut recs) in accepted {
        recs.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| bytes(&value(a)).cmp(&bytes(&value(b)))));
        let mut spans: Vec<(i64, Vec<In>)> = Vec::new();
        for r in recs {
            match spans.last_mut() {
                Some((start, members)) if r.ts < *start + s.ttl => members.push(r),
                _ => spans.push((r.ts, vec![r])),
            }
        }
        for (start, members) in spans {
            let (ts, r) = match s.keep {
                Keep::First => (members[0].ts, &members[0]),
                Keep::Last => (start + s.ttl - 1, &members[members.len() - 1]),
            };
            out.push((key, ts, format!("{:?}", r.o), r.id));
        }
    }
    (out, late)
}

fn dedup_row(r: &Record) -> DedupRow {
    let o = r.value.get_path("o").cloned().unwrap_or_default();
    let id = r.value.get_path("id").and_then(Value::as_i64).expect("id");
    (r.key.as_i64().expect("int key"), r.ts, format!("{o:?}"), id)
}

fn run_dedup(seed: u64, cov: &mut Coverage) {
    let mut rng = StdRng::seed_from_u64(seed);
    let s = DedupScenario {
        keep: if rng.random_bool(0.5) { Keep::First } else { Keep::Last },
        ttl: [1, 3, 10, 40][rng.random_range(0..4)],
        dead_letter: rng.random_bool(0.5),
    };
    let n = rng.random_range(200..1200);
    let events = events(&mut rng, n);
    let spec = DeduplicateSpec {
        keep: s.keep,
        ttl: Duration::from_millis(s.ttl as u64),
        late_records: if s.dead_letter { LateRecords::DeadLetter } else { LateRecords::Drop },
    };
    let mut op = Rescaled::new(rng.random_range(1..=3), move || Deduplicate::from_spec("op", &spec).expect("valid"));
    drive(&events, &mut op, |_| {}, &mut cov.rescales);
    let (mut want, late) = dedup_reference(&s, &events);
    let context = format!("seed {seed} (RANK_SEED={seed}), {s:?}");
    for (r, before, after) in &op.out {
        assert!(*before < r.ts && r.ts <= *after, "{context}: {r:?} emitted between watermarks {before} and {after}");
    }
    let mut got: Vec<DedupRow> = op.out.iter().map(|(r, ..)| dedup_row(r)).collect();
    let accepted = events.iter().filter(|e| matches!(e, Event::Rec(_))).count() - late.len();
    cov.dups += accepted - want.len();
    got.sort();
    want.sort();
    let missing: Vec<&DedupRow> = want.iter().filter(|r| !got.contains(r)).take(3).collect();
    let extra: Vec<&DedupRow> = got.iter().filter(|r| !want.contains(r)).take(3).collect();
    assert!(
        got == want,
        "{context}: {} rows expected, {} emitted; missing {missing:?}; unexpected {extra:?}",
        want.len(),
        got.len()
    );
    cov.late += late.len();
    check_late(&context, op.late_counted, &op.late, &late, s.dead_letter);
}

#[test]
fn deduplicate_matches_the_reference_through_lateness_and_rescales() {
    let mut cov = Coverage::default();
    for seed in seeds(0..100) {
        run_dedup(seed, &mut cov);
    }
    eprintln!("{cov:?}");
    if std::env::var("RANK_SEED").is_err() {
        assert!(
            cov.rescales > 40 && cov.late > 100 && cov.dups > 1000,
            "the streams exercise rescales, late records and duplicates: {cov:?}"
        );
    }
}
