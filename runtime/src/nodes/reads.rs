//! What a job reads of a node's records ([`Reads`]): the union, over every node its records
//! reach, of the fields that node reads. A record passes on unchanged through filters and keyBys
//! (and along the late output of windows), so what the nodes after them read counts too; a map
//! or a window makes new values, so the walk stops there. Every other node (a sink that writes
//! records, a join, top-N, a deduplication, which breaks ties by the whole value) reads the whole
//! value, as does an expression that does not compile: the answer must never miss a field
//! something could observe.

use sluice_crds::contract::pipeline::{EdgeOutput, NodeKind, Pipeline};
use sluice_crds::contract::window::{WindowFn, WindowSpec};

use crate::ops::expr::Expr;
use crate::ops::reads::Reads;
use crate::value::FieldPath;

/// What the job `pipeline` reads of the records node `id` emits.
pub fn of_output(pipeline: &Pipeline, id: &str) -> Reads {
    output(pipeline, id, 0)
}

/// [`of_output`] at `depth` nodes from where the walk began.
fn output(pipeline: &Pipeline, id: &str, depth: usize) -> Reads {
    let mut reads = Reads::nothing();
    for edge in pipeline.edges.iter().filter(|e| e.from == id && e.output == EdgeOutput::Main) {
        reads.add(input(pipeline, &edge.to, depth + 1));
        if reads.is_whole() {
            break;
        }
    }
    reads
}

/// What is read of the records node `id` receives: by the node itself, and by the nodes after
/// it where it passes them on (its output if unchanged, its late output always).
fn input(pipeline: &Pipeline, id: &str, depth: usize) -> Reads {
    let node = pipeline.nodes.iter().find(|n| n.id == id);
    // A graph with a cycle is refused by validation; were one ever walked, read whole.
    let Some(kind) = node.and_then(|n| n.kind()).filter(|_| depth <= pipeline.nodes.len()) else {
        return Reads::Whole;
    };
    let (mut reads, passes_on) = by(id, kind);
    if passes_on {
        reads.add(output(pipeline, id, depth));
    }
    for edge in pipeline.edges.iter().filter(|e| e.from == id && e.output == EdgeOutput::Late) {
        reads.add(input(pipeline, &edge.to, depth + 1));
    }
    reads
}

/// What a node of `kind` reads of its input itself, and whether it passes its input records on
/// unchanged.
fn by(id: &str, kind: NodeKind<'_>) -> (Reads, bool) {
    let expr = |source: &str| Expr::compile(id, source).map_or(Reads::Whole, |e| e.reads());
    match kind {
        NodeKind::Filter(f) => (expr(&f.expr), true),
        NodeKind::KeyBy(k) => {
            let reads = match (&k.field, &k.expr) {
                (Some(f), _) => path(f),
                (None, Some(e)) => expr(e),
                (None, None) => Reads::nothing(),
            };
            (reads, true)
        }
        NodeKind::Map(m) => (expr(&m.expr), false),
        NodeKind::Aggregate(a) => (field_or_whole(a.field.as_deref(), false), false),
        NodeKind::Window(w) => (window(w), false),
        NodeKind::Discard => (Reads::nothing(), false),
        _ => (Reads::Whole, false),
    }
}

/// The field at dotted `path`, as operators split it.
fn path(text: &str) -> Reads {
    Reads::path(FieldPath::new(text).parts())
}

/// The field an aggregate reads: `field`, else the whole value unless `nothing_without_field`.
fn field_or_whole(field: Option<&str>, nothing_without_field: bool) -> Reads {
    match field {
        Some(f) => path(f),
        None if nothing_without_field => Reads::nothing(),
        None => Reads::Whole,
    }
}

/// What a window's aggregates read: their fields; a `count` without a field counts records and
/// reads nothing of them.
fn window(w: &WindowSpec) -> Reads {
    let mut reads = Reads::nothing();
    if let Some(function) = w.function {
        reads.add(field_or_whole(w.field.as_deref(), function == WindowFn::Count));
    }
    for a in &w.aggregates {
        reads.add(field_or_whole(a.field.as_deref(), a.function == WindowFn::Count));
    }
    reads
}

#[cfg(test)]
mod tests {
    use sluice_crds::contract::job_config::JobConfig;

    use super::*;

    /// `reads` written out: fields sorted, `*` for whole, nested fields in braces.
    fn text(reads: &Reads) -> String {
        match reads {
            Reads::Whole => "*".into(),
            Reads::Fields(f) => f
                .iter()
                .map(|(name, below)| match below {
                    Reads::Whole => name.to_string(),
                    _ => format!("{name}{{{}}}", text(below)),
                })
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    fn pipeline(yaml: &str) -> Pipeline {
        serde_yaml::from_str::<JobConfig>(yaml).expect("job").pipeline
    }

    /// What the Nexmark queries read of the events, written out by hand from their SQL.
    #[test]
    fn the_nexmark_queries_read_their_columns() {
        let cases = [
            (include_str!("../../../examples/nexmark/q0.yaml"), "bid{auction,bidder,extra,price},dateTime,event_type"),
            (include_str!("../../../examples/nexmark/q2.yaml"), "bid{auction,price},event_type"),
            (
                include_str!("../../../examples/nexmark/q3.yaml"),
                "auction{category,id,seller},event_type,person{city,id,name,state}",
            ),
            (include_str!("../../../examples/nexmark/q5.yaml"), "bid{auction},event_type"),
            (include_str!("../../../examples/nexmark/q8.yaml"), "auction{seller},event_type,person{id,name}"),
            (include_str!("../../../examples/nexmark/q17.yaml"), "bid{auction,price},event_type"),
        ];
        for (yaml, want) in cases {
            assert_eq!(text(&of_output(&pipeline(yaml), "events")), want, "{yaml}");
        }
    }

    fn job(nodes: &str, edges: &str) -> Pipeline {
        pipeline(&format!(
            "name: j\npipeline:\n  nodes:\n    - {{id: src, nexmark: {{events: 10}}}}\n{nodes}  edges:\n{edges}"
        ))
    }

    /// Whatever a record could reach is read: through filters and keyBys, along a window's
    /// late output, into a node that writes or compares whole values.
    #[test]
    fn a_record_that_reaches_a_writer_or_a_comparison_is_read_whole() {
        let edge = |from: &str, to: &str| format!("    - {{from: {from}, to: {to}}}\n");
        let cases = [
            // A filter passes the whole record on to a sink that writes it.
            (
                "    - {id: f, filter: {expr: 'value.event_type == 2'}}\n    - {id: out, stdout: {}}\n",
                edge("src", "f") + &edge("f", "out"),
                "*",
            ),
            // A keyBy by an expression, then a deduplication (ties broken by the whole value).
            (
                "    - {id: k, keyBy: {expr: 'value.bid.auction % 7'}}\n    - {id: d, deduplicate: {keep: first, ttl: 1s}}\n    - {id: out, discard: {}}\n",
                edge("src", "k") + "    - {from: k, to: d, partition: hash}\n" + &edge("d", "out"),
                "*",
            ),
            // A window's results are new values, but its late records go on unchanged.
            (
                "    - {id: k, keyBy: {field: bid.auction}}\n    - {id: w, window: {size: 1s, function: max, field: bid.price, lateRecords: deadLetter}}\n    - {id: out, discard: {}}\n    - {id: late, stdout: {}}\n",
                edge("src", "k")
                    + "    - {from: k, to: w, partition: hash}\n"
                    + &edge("w", "out")
                    + "    - {from: w, to: late, output: late}\n",
                "*",
            ),
            // ... and where the late records are only counted, the window's fields are read.
            (
                "    - {id: k, keyBy: {field: bid.auction}}\n    - {id: w, window: {size: 1s, function: max, field: bid.price, lateRecords: deadLetter}}\n    - {id: out, discard: {}}\n    - {id: late, window: {size: 1s, function: count}}\n    - {id: out2, discard: {}}\n",
                edge("src", "k")
                    + "    - {from: k, to: w, partition: hash}\n"
                    + &edge("w", "out")
                    + "    - {from: w, to: late, output: late, partition: hash}\n"
                    + &edge("late", "out2"),
                "bid{auction,price}",
            ),
            // `has()` and a whole sub-map are read whole; a map reads what it selects.
            (
                "    - {id: f, filter: {expr: 'has(value.person) && value.bid.price > 1'}}\n    - {id: m, map: {expr: '{\"a\": value.auction, \"t\": ts}'}}\n    - {id: out, stdout: {}}\n",
                edge("src", "f") + &edge("f", "m") + &edge("m", "out"),
                "auction,bid{price},person",
            ),
            // An expression that names `value` whole, and a running sum of the whole value.
            (
                "    - {id: m, map: {expr: 'size(value)'}}\n    - {id: out, discard: {}}\n",
                edge("src", "m") + &edge("m", "out"),
                "*",
            ),
            (
                "    - {id: k, keyBy: {field: bid.bidder}}\n    - {id: a, aggregate: {function: count}}\n    - {id: out, discard: {}}\n",
                edge("src", "k") + "    - {from: k, to: a, partition: hash}\n" + &edge("a", "out"),
                "*",
            ),
            // Two branches: the union of what each reads.
            (
                "    - {id: a, map: {expr: 'value.bid.url'}}\n    - {id: b, keyBy: {field: person.city}}\n    - {id: out, discard: {}}\n",
                edge("src", "a") + &edge("src", "b") + &edge("a", "out") + &edge("b", "out"),
                "bid{url},person{city}",
            ),
        ];
        for (nodes, edges, want) in cases {
            assert_eq!(text(&of_output(&job(nodes, &edges), "src")), want, "{nodes}");
        }
    }
}
