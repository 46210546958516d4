//! Validation of a job document beyond what serde checks. Every error carries the field path
//! (`pipeline.nodes[2].parallelism`) so that a user can find the line to fix.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use super::field_errors::Errors;
pub use super::field_errors::{FieldError, ValidationError};
use super::job_config::{JOB_CONFIG_VERSION, JobConfig};
use super::pipeline::{EdgeOutput, ErrorPolicy, NodeKind, Partitioning, Pipeline};

/// Largest supported number of key groups (as in Flink).
pub const MAX_KEY_GROUPS: u32 = 32_768;

/// True when `s` is a DNS label: lowercase alphanumerics and `-`, 1–63 characters.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl JobConfig {
    /// Parses a YAML job document and validates it. Every error names the field path.
    pub fn from_yaml(text: &str) -> Result<JobConfig, ValidationError> {
        let config = JobConfig::parse_yaml(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a YAML job document without [validating](Self::validate) it (for callers that
    /// add checks of their own and report every problem together). The error names the field.
    pub fn parse_yaml(text: &str) -> Result<JobConfig, ValidationError> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            // serde_yaml may start its message with the path too: say it once.
            let message = message.strip_prefix(&format!("{path}: ")).map(str::to_string).unwrap_or(message);
            ValidationError::single(if path == "." { String::new() } else { path }, message)
        })
    }

    /// Checks everything serde cannot: graph shape, ranges, references. Collects every problem.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate(self)
    }
}

fn validate(config: &JobConfig) -> Result<(), ValidationError> {
    let mut errs = Errors::default();
    if config.version != JOB_CONFIG_VERSION {
        errs.add(
            "version",
            format!("unsupported version {} (this runtime reads {JOB_CONFIG_VERSION})", config.version),
        );
    }
    if !is_dns_label(&config.name) {
        errs.add("name", "must be a DNS label: lowercase letters, digits and '-', at most 63 characters");
    }
    if let Some(c) = &config.checkpointing {
        if c.interval < Duration::from_millis(10) {
            errs.add("checkpointing.interval", "must be ≥ 10ms");
        }
        if c.timeout < Duration::from_millis(10) {
            errs.add("checkpointing.timeout", "must be ≥ 10ms");
        }
        if c.max_concurrent < 1 {
            errs.add("checkpointing.maxConcurrent", "must be ≥ 1");
        }
        if c.retained < 1 {
            errs.add("checkpointing.retained", "must be ≥ 1");
        }
        if let Err(m) = check_storage_uri(&c.storage.uri) {
            errs.add("checkpointing.storage.uri", m);
        }
    }
    validate_pipeline(&config.pipeline, "pipeline", &mut errs);
    super::kafka_validate::transaction_timeouts(config, &mut errs);
    errs.into_result()
}

/// Checks that a storage URI is `file:///absolute` or `s3://bucket[/prefix]`.
pub fn check_storage_uri(uri: &str) -> Result<(), String> {
    if let Some(path) = uri.strip_prefix("file://") {
        if path.starts_with('/') {
            Ok(())
        } else {
            Err(format!("file URI needs an absolute path (file:///dir), got {uri:?}"))
        }
    } else if let Some(rest) = uri.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or("");
        if bucket.len() >= 3 { Ok(()) } else { Err(format!("s3 URI needs a bucket (s3://bucket/prefix), got {uri:?}")) }
    } else {
        Err(format!("unsupported scheme in {uri:?}: use file:///dir or s3://bucket/prefix"))
    }
}

/// Validates a pipeline whose YAML location is `at` (`pipeline` in a job document, `spec.pipeline`
/// in a StreamJob).
pub fn validate_pipeline_at(pipeline: &Pipeline, at: &str) -> Result<(), ValidationError> {
    let mut errs = Errors::default();
    validate_pipeline(pipeline, at, &mut errs);
    errs.into_result()
}

fn validate_pipeline(p: &Pipeline, at: &str, errs: &mut Errors) {
    if p.max_parallelism < 1 || p.max_parallelism > MAX_KEY_GROUPS {
        errs.add(format!("{at}.maxParallelism"), format!("must be between 1 and {MAX_KEY_GROUPS}"));
    }
    match p.parallelism {
        Some(0) => errs.add(format!("{at}.parallelism"), "must be ≥ 1"),
        Some(n) if n > p.max_parallelism => {
            errs.add(format!("{at}.parallelism"), format!("must be ≤ maxParallelism ({})", p.max_parallelism))
        }
        _ => {}
    }
    if p.nodes.is_empty() {
        errs.add(format!("{at}.nodes"), "must contain at least one node");
        return;
    }
    let index = validate_nodes(p, at, errs);
    let degrees = validate_edges(p, at, &index, errs);
    validate_roles(p, at, &degrees, errs);
    if !p.nodes.iter().any(|n| n.kind().is_some_and(|k| k.is_source())) {
        errs.add(format!("{at}.nodes"), "needs at least one source");
    }
    if let Some(cycle_node) = find_cycle(p.nodes.len(), &degrees.inputs) {
        errs.add(format!("{at}.edges"), format!("the graph has a cycle through {:?}", p.nodes[cycle_node].id));
    }
}

/// Each node on its own: id, parallelism, exactly one operator and its settings. Returns the
/// index of every node id.
fn validate_nodes<'p>(p: &'p Pipeline, at: &str, errs: &mut Errors) -> HashMap<&'p str, usize> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, node) in p.nodes.iter().enumerate() {
        let np = format!("{at}.nodes[{i}]");
        if node.id.is_empty()
            || !node.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            errs.add(format!("{np}.id"), "must be non-empty and use only a-z, 0-9, '-' and '_'");
        }
        if index.insert(node.id.as_str(), i).is_some() {
            errs.add(format!("{np}.id"), format!("duplicate node id {:?}", node.id));
        }
        match node.parallelism {
            Some(0) => errs.add(format!("{np}.parallelism"), "must be ≥ 1"),
            Some(n) if n > p.max_parallelism => {
                errs.add(format!("{np}.parallelism"), format!("must be ≤ maxParallelism ({})", p.max_parallelism))
            }
            _ => {}
        }
        let kinds = node.kinds();
        match kinds.len() {
            0 => errs.add(np.clone(), "no operator set: set exactly one of generator, jsonFile, kafkaSource, nexmark, map, filter, keyBy, aggregate, window, join, topN, deduplicate, fileSink, kafkaSink, stdout, discard"),
            1 => validate_kind(&kinds[0], p.error_policy, &np, errs),
            _ => errs.add(
                np.clone(),
                format!("several operators set ({}): set exactly one", kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")),
            ),
        }
    }
    index
}

/// Per node: its input edges (upstream, partitioning), its output count, its late-output count.
struct Degrees {
    inputs: Vec<Vec<(usize, Partitioning)>>,
    outputs: Vec<usize>,
    late_edges: Vec<usize>,
}

/// Each edge: known ends, no self-loop or duplicate, late outputs only from dead-lettering
/// windows, forward only between equal parallelisms, hash into keyed operators.
fn validate_edges(p: &Pipeline, at: &str, index: &HashMap<&str, usize>, errs: &mut Errors) -> Degrees {
    let n = p.nodes.len();
    let mut d = Degrees { inputs: vec![Vec::new(); n], outputs: vec![0; n], late_edges: vec![0; n] };
    let mut seen = BTreeMap::new();
    for (i, e) in p.edges.iter().enumerate() {
        let ep = format!("{at}.edges[{i}]");
        let from = index.get(e.from.as_str()).copied();
        let to = index.get(e.to.as_str()).copied();
        if from.is_none() {
            errs.add(format!("{ep}.from"), format!("unknown node {:?}", e.from));
        }
        if to.is_none() {
            errs.add(format!("{ep}.to"), format!("unknown node {:?}", e.to));
        }
        let (Some(f), Some(t)) = (from, to) else { continue };
        if f == t {
            errs.add(ep.clone(), format!("edge from {:?} to itself makes a cycle", e.from));
            continue;
        }
        if seen.insert((f, t), i).is_some() {
            errs.add(ep.clone(), format!("duplicate edge {:?} → {:?}", e.from, e.to));
        }
        d.inputs[t].push((f, e.partition));
        d.outputs[f] += 1;
        if e.output == EdgeOutput::Late {
            d.late_edges[f] += 1;
            if !p.nodes[f].kind().is_some_and(|k| k.dead_letters()) {
                errs.add(
                    format!("{ep}.output"),
                    format!(
                        "late: {:?} must be a window, join, topN or deduplicate with lateRecords: deadLetter",
                        e.from
                    ),
                );
            }
        }
        let (pf, pt) = (p.parallelism_of(&p.nodes[f]), p.parallelism_of(&p.nodes[t]));
        if e.partition == Partitioning::Forward && pf != pt && pf > 0 && pt > 0 {
            errs.add(
                format!("{ep}.partition"),
                format!("forward needs equal parallelism on both ends ({pf} vs {pt}); use rebalance or hash"),
            );
        }
        if let Some(kind) = p.nodes[t].kind()
            && kind.is_keyed()
            && e.partition != Partitioning::Hash
        {
            errs.add(
                format!("{ep}.partition"),
                format!("{:?} is a keyed {} and needs partition: hash", e.to, kind.name()),
            );
        }
    }
    d
}

/// Each node's place in the graph: sources without inputs, others with, sinks without outputs,
/// a dead-lettering window with its late edge.
fn validate_roles(p: &Pipeline, at: &str, d: &Degrees, errs: &mut Errors) {
    for (i, node) in p.nodes.iter().enumerate() {
        let Some(kind) = node.kind() else { continue };
        let np = format!("{at}.nodes[{i}]");
        if kind.is_source() && !d.inputs[i].is_empty() {
            errs.add(np.clone(), format!("source {:?} cannot have inputs", node.id));
        }
        if !kind.is_source() && d.inputs[i].is_empty() {
            errs.add(np.clone(), format!("{:?} has no input edge", node.id));
        }
        if kind.is_sink() && d.outputs[i] > 0 {
            errs.add(np.clone(), format!("sink {:?} cannot have outputs", node.id));
        }
        if kind.dead_letters() && d.late_edges[i] == 0 {
            errs.add(
                format!("{np}.{}.lateRecords", kind.name()),
                format!("deadLetter needs an edge from {:?} with output: late", node.id),
            );
        }
        if let NodeKind::Join(j) = kind {
            let inputs: Vec<&str> = d.inputs[i].iter().map(|(f, _)| p.nodes[*f].id.as_str()).collect();
            super::join::validate_inputs(j, &node.id, &np, &inputs, errs);
        }
    }
}

fn validate_kind(kind: &NodeKind<'_>, policy: ErrorPolicy, np: &str, errs: &mut Errors) {
    match kind {
        NodeKind::Generator(g) => {
            if g.keys < 1 {
                errs.add(format!("{np}.generator.keys"), "must be ≥ 1");
            }
            if g.splits < 1 {
                errs.add(format!("{np}.generator.splits"), "must be ≥ 1");
            }
            if g.rate_per_second == Some(0) {
                errs.add(format!("{np}.generator.ratePerSecond"), "must be ≥ 1 (omit it for no limit)");
            }
        }
        NodeKind::JsonFile(j) if j.path.is_empty() => errs.add(format!("{np}.jsonFile.path"), "must not be empty"),
        NodeKind::Map(m) if m.expr.trim().is_empty() => errs.add(format!("{np}.map.expr"), "must not be empty"),
        NodeKind::Filter(m) if m.expr.trim().is_empty() => errs.add(format!("{np}.filter.expr"), "must not be empty"),
        NodeKind::KeyBy(k) if k.field.is_some() == k.expr.is_some() => {
            errs.add(format!("{np}.keyBy"), "set exactly one of field, expr")
        }
        NodeKind::Window(w) => super::window::validate(w, &format!("{np}.window"), errs),
        NodeKind::Join(j) => super::join::validate(j, &format!("{np}.join"), errs),
        NodeKind::TopN(t) => super::ranking::validate_top_n(t, &format!("{np}.topN"), errs),
        NodeKind::Deduplicate(d) => super::ranking::validate_deduplicate(d, &format!("{np}.deduplicate"), errs),
        NodeKind::FileSink(f) if f.path.is_empty() => errs.add(format!("{np}.fileSink.path"), "must not be empty"),
        NodeKind::Nexmark(n) => super::nexmark::validate(n, &format!("{np}.nexmark"), errs),
        NodeKind::KafkaSource(k) => super::kafka_validate::source(k, policy, &format!("{np}.kafkaSource"), errs),
        NodeKind::KafkaSink(k) => super::kafka_validate::sink(k, &format!("{np}.kafkaSink"), errs),
        _ => {}
    }
}

/// Kahn's algorithm; returns a node on a cycle if there is one.
fn find_cycle(n: usize, inputs: &[Vec<(usize, Partitioning)>]) -> Option<usize> {
    let mut indegree: Vec<usize> = inputs.iter().map(|v| v.len()).collect();
    let mut outs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (t, ins) in inputs.iter().enumerate() {
        for (f, _) in ins {
            outs[*f].push(t);
        }
    }
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut visited = 0;
    while let Some(i) = queue.pop_front() {
        visited += 1;
        for &t in &outs[i] {
            indegree[t] -= 1;
            if indegree[t] == 0 {
                queue.push_back(t);
            }
        }
    }
    if visited == n { None } else { (0..n).find(|&i| indegree[i] > 0) }
}

#[cfg(test)]
mod tests {
    use crate::JobConfig;

    const GOOD: &str = r#"
name: demo
checkpointing:
  interval: 1s
  storage: {uri: "file:///tmp/ckpt"}
pipeline:
  nodes:
    - {id: gen, generator: {count: 10}}
    - {id: win, window: {size: 1s, function: count}}
    - {id: out, fileSink: {path: /tmp/out}}
  edges:
    - {from: gen, to: win, partition: hash}
    - {from: win, to: out}
"#;

    fn error_of(yaml: &str) -> String {
        JobConfig::from_yaml(yaml).expect_err("must be rejected").to_string()
    }

    #[test]
    fn the_good_document_is_accepted() {
        JobConfig::from_yaml(GOOD).expect("valid");
    }

    #[test]
    fn unknown_operator_names_the_node() {
        let e = error_of(&GOOD.replace("{id: gen, generator: {count: 10}}", "{id: gen, generatr: {count: 10}}"));
        assert!(e.contains("pipeline.nodes[0]") && e.contains("generatr"), "{e}");
    }

    #[test]
    fn missing_field_names_its_path() {
        let e = error_of(&GOOD.replace("{size: 1s, function: count}", "{size: 1s}"));
        assert!(e.contains("pipeline.nodes[1].window") && e.contains("function"), "{e}");
        let e = error_of(&GOOD.replace("name: demo\n", ""));
        assert!(e.contains("name"), "{e}");
    }

    #[test]
    fn zero_parallelism_names_the_field() {
        let e = error_of(&GOOD.replace("{id: out, fileSink", "{id: out, parallelism: 0, fileSink"));
        assert_eq!(e, "pipeline.nodes[2].parallelism: must be ≥ 1");
    }

    #[test]
    fn a_parallelism_above_max_parallelism_is_rejected_for_the_pipeline_as_for_a_node() {
        // Random pairs against the rule itself: accepted exactly when 1 ≤ p ≤ max.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let max = 1 + (seed % 300) as u32;
            let p = (seed >> 20) as u32 % 400;
            for (what, yaml) in [
                (
                    "pipeline",
                    GOOD.replace("pipeline:\n", &format!("pipeline:\n  maxParallelism: {max}\n  parallelism: {p}\n")),
                ),
                (
                    "node",
                    GOOD.replace("pipeline:\n", &format!("pipeline:\n  maxParallelism: {max}\n"))
                        .replace("{id: gen, ", &format!("{{id: gen, parallelism: {p}, ")),
                ),
            ] {
                let path = if what == "pipeline" { "pipeline.parallelism" } else { "pipeline.nodes[0].parallelism" };
                match (p, JobConfig::from_yaml(&yaml)) {
                    (1.., Ok(_)) if p <= max => {}
                    (0, Err(e)) => assert_eq!(e.to_string(), format!("{path}: must be ≥ 1")),
                    (_, Err(e)) if p > max => {
                        assert_eq!(e.to_string(), format!("{path}: must be ≤ maxParallelism ({max})"))
                    }
                    (_, r) => panic!("{what} parallelism {p}, maxParallelism {max}: {r:?}"),
                }
            }
        }
    }

    #[test]
    fn dangling_edges_name_the_end() {
        let e = error_of(&GOOD.replace("{from: win, to: out}", "{from: win, to: sink}"));
        assert!(e.contains("pipeline.edges[1].to: unknown node \"sink\""), "{e}");
    }

    #[test]
    fn late_outputs_need_a_dead_lettering_window_and_the_other_way_round() {
        let late = GOOD.replace(
            "{size: 1s, function: count}",
            "{size: 1s, function: count, allowedLateness: 2s, lateRecords: deadLetter}",
        );
        let e = error_of(&late);
        assert_eq!(e, "pipeline.nodes[1].window.lateRecords: deadLetter needs an edge from \"win\" with output: late");
        let with_edge = late
            .replace(
                "    - {from: win, to: out}",
                "    - {from: win, to: out}\n    - {from: win, to: late, output: late}",
            )
            .replace("    - {id: out,", "    - {id: late, fileSink: {path: /tmp/late}}\n    - {id: out,");
        JobConfig::from_yaml(&with_edge).expect("a dead-lettering window with a late edge is valid");
        let e = error_of(&GOOD.replace("{from: win, to: out}", "{from: win, to: out, output: late}"));
        assert!(
            e.contains("pipeline.edges[1].output: late: \"win\" must be a window, join, topN or deduplicate with lateRecords: deadLetter"),
            "{e}"
        );
        let e = error_of(&GOOD.replace("{from: win, to: out}", "{from: win, to: out, output: early}"));
        assert!(e.contains("early"), "{e}");
    }

    #[test]
    fn cycles_are_rejected() {
        let yaml = GOOD.replace(
            "    - {from: win, to: out}",
            "    - {from: win, to: out}\n    - {from: win, to: win2, partition: hash}\n    - {from: win2, to: win, partition: hash}",
        )
        .replace("    - {id: out,", "    - {id: win2, window: {size: 1s, function: count}}\n    - {id: out,");
        let e = error_of(&yaml);
        assert!(e.contains("pipeline.edges: the graph has a cycle"), "{e}");
    }

    #[test]
    fn keyed_operators_need_hash_edges_and_forward_needs_equal_parallelism() {
        let e = error_of(&GOOD.replace("{from: gen, to: win, partition: hash}", "{from: gen, to: win}"));
        assert!(e.contains("pipeline.edges[0].partition") && e.contains("partition: hash"), "{e}");
        let e = error_of(&GOOD.replace("{id: out, fileSink", "{id: out, parallelism: 2, fileSink"));
        assert!(e.contains("pipeline.edges[1].partition: forward needs equal parallelism"), "{e}");
    }

    #[test]
    fn bad_durations_and_storage_are_named() {
        let e = error_of(&GOOD.replace("interval: 1s", "interval: soon"));
        assert!(e.contains("checkpointing.interval"), "{e}");
        let e = error_of(&GOOD.replace("file:///tmp/ckpt", "ftp://x"));
        assert!(e.contains("checkpointing.storage.uri"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let yaml = GOOD.replace("name: demo", "name: Demo!").replace("{count: 10}", "{count: 10, keys: 0}");
        let e = JobConfig::from_yaml(&yaml).expect_err("invalid");
        assert_eq!(e.errors.len(), 2, "{e}");
    }
}
