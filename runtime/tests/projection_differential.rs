//! Projection pushdown against no pushdown: random chains of filters, keyBys, maps and windows
//! after a Nexmark source, ending in a sink that writes whole records, each run twice over the
//! same events — once with the source making only what `nodes::reads` says the chain reads, once
//! with it making every field — must emit the same records. The second run does not use the
//! walk at all, so a field the walk misses (or a node it wrongly sees through) shows up as a
//! difference. The chains use fields of every column, whole columns, `has()`, missing fields and
//! expressions that fail on other kinds of events (skipped by the error policy, in both runs).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_crds::contract::job_config::JobConfig;
use sluice_crds::contract::pipeline::Pipeline;
use sluice_runtime::fault::Faults;
use sluice_runtime::graph::KeyGroupRange;
use sluice_runtime::nodes::{Instance, instantiate, reads};
use sluice_runtime::ops::reads::Reads;
use sluice_runtime::ops::{OpContext, Operator, SourcePoll};
use sluice_runtime::record::Record;

/// Paths of the Nexmark record, with a few that do not exist.
const PATHS: &[&str] = &[
    "event_type",
    "dateTime",
    "person",
    "person.id",
    "person.name",
    "person.emailAddress",
    "person.creditCard",
    "person.city",
    "person.state",
    "person.extra",
    "auction",
    "auction.id",
    "auction.itemName",
    "auction.description",
    "auction.initialBid",
    "auction.reserve",
    "auction.expires",
    "auction.seller",
    "auction.category",
    "auction.extra",
    "bid",
    "bid.auction",
    "bid.bidder",
    "bid.price",
    "bid.channel",
    "bid.url",
    "bid.dateTime",
    "bid.extra",
    "bid.nope",
];

fn path(rng: &mut StdRng) -> &'static str {
    PATHS[rng.random_range(0..PATHS.len())]
}

/// A random CEL condition on the record.
fn condition(rng: &mut StdRng) -> String {
    match rng.random_range(0..5) {
        0 => format!("value.event_type == {}", rng.random_range(0..3)),
        1 => format!("has(value.{})", path(rng)),
        2 => format!("value.{} != null", path(rng)),
        3 => format!("value.bid.price > {}", rng.random_range(0..100_000)),
        _ => format!("value.{} == value.{}", path(rng), path(rng)),
    }
}

/// A random stage: its node (YAML flow mapping, without the id) and whether it changes the
/// record's shape (what the stages after it can select).
fn stage(rng: &mut StdRng, nexmark_shaped: bool) -> (String, bool) {
    if !nexmark_shaped {
        // After a map or window: stages that read the new shape or pass it on.
        return match rng.random_range(0..3) {
            0 => ("filter: {expr: 'value != null'}".into(), false),
            1 => ("map: {expr: '{\"r\": value}'}".into(), false),
            _ => ("keyBy: {expr: 'string(value)'}".into(), false),
        };
    }
    match rng.random_range(0..7) {
        0 | 1 => (format!("filter: {{expr: '{}'}}", condition(rng)), true),
        2 => (format!("keyBy: {{field: {}}}", path(rng)), true),
        3 => {
            let fields: Vec<String> =
                (0..rng.random_range(1..4)).map(|i| format!("\"f{i}\": value.{}", path(rng))).collect();
            (format!("map: {{expr: '{{{}}}'}}", fields.join(", ")), false)
        }
        4 | 5 => {
            let function = ["count", "count", "sum", "min", "max", "countDistinct"][rng.random_range(0..6)];
            let field = if function == "count" && rng.random_bool(0.5) {
                String::new()
            } else {
                format!(", field: {}", path(rng))
            };
            (format!("window: {{size: 1s, function: {function}{field}}}"), false)
        }
        _ => (format!("map: {{expr: 'has(value.{}) ? value.{} : null'}}", path(rng), path(rng)), false),
    }
}

/// A random chain: source, 1–4 stages, a sink that writes whole records.
fn chain(rng: &mut StdRng) -> Pipeline {
    let mut nodes = String::from("    - {id: s0, nexmark: {events: 3000, eventsPerSecond: 1000, splits: 1}}\n");
    let mut edges = String::new();
    let mut shaped = true;
    let n = rng.random_range(1..5);
    for i in 1..=n {
        let (node, still) = stage(rng, shaped);
        shaped = still;
        nodes += &format!("    - {{id: s{i}, {node}}}\n");
        edges += &format!("    - {{from: s{}, to: s{i}, partition: hash}}\n", i - 1);
    }
    nodes += &format!("    - {{id: s{}, stdout: {{}}}}\n", n + 1);
    edges += &format!("    - {{from: s{n}, to: s{}}}\n", n + 1);
    let yaml = format!("name: p\npipeline:\n  errorPolicy: skip\n  nodes:\n{nodes}  edges:\n{edges}");
    serde_yaml::from_str::<JobConfig>(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}")).pipeline
}

fn ctx(node: &str) -> OpContext {
    OpContext {
        node: node.into(),
        subtask: 0,
        parallelism: 1,
        max_parallelism: 128,
        key_groups: KeyGroupRange::for_subtask(0, 1, 128),
        run_id: "r".into(),
        job: "p".into(),
        checkpointing: false,
        max_concurrent_checkpoints: 1,
        io: None,
    }
}

/// The records the chain hands its sink, the source making `reads` of its records.
fn run(pipeline: &Pipeline, reads: &Reads) -> Vec<Record> {
    let build = |i: usize, reads: &Reads| {
        let node = &pipeline.nodes[i];
        instantiate(node, reads, ctx(&node.id), pipeline.error_policy, &Faults::none()).expect("instantiate")
    };
    let Instance::Source(mut source) = build(0, reads) else { panic!("s0 is the source") };
    let mut ops: Vec<Box<dyn Operator>> = (1..pipeline.nodes.len() - 1)
        .map(|i| match build(i, &Reads::Whole) {
            Instance::Operator(op) => op,
            Instance::Source(_) => panic!("one source"),
        })
        .collect();
    source.open(None).expect("open");
    let mut sunk = Vec::new();
    loop {
        let mut batch = Vec::new();
        let done = source.poll(&mut batch, 97).expect("poll") == SourcePoll::Finished;
        let watermark = source.watermark();
        for op in &mut ops {
            let mut out = Vec::new();
            op.process(batch, &mut out).expect("process");
            op.on_watermark_all(watermark, &mut out).expect("watermark");
            if done {
                op.finish_all(&mut out).expect("finish");
            }
            batch = out;
        }
        sunk.append(&mut batch);
        if done {
            return sunk;
        }
    }
}

#[test]
fn a_projected_source_feeds_every_chain_what_the_whole_one_does() {
    let mut rng = StdRng::seed_from_u64(20261202);
    let mut narrowed = 0;
    for round in 0..200 {
        let pipeline = chain(&mut rng);
        let reads = reads::of_output(&pipeline, "s0");
        narrowed += usize::from(!reads.is_whole());
        let (projected, whole) = (run(&pipeline, &reads), run(&pipeline, &Reads::Whole));
        assert!(
            projected == whole,
            "round {round}: {} vs {} records, reads {reads:?}\n{:#?}",
            projected.len(),
            whole.len(),
            pipeline.nodes
        );
    }
    // The chains must exercise the pushdown, not only fall back to whole records.
    assert!(narrowed > 80, "only {narrowed} of 200 chains read part of the record");
}
