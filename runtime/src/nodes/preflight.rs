//! Every check `sluice-runtime run` makes of a job document before it processes a record, in
//! one pass that reports every problem once, with its field path and node id: the document's
//! fields ([`JobConfig::validate`]), each expression compiled and checked, input paths, sink
//! directories and the features of this build. `sluice-runtime validate` runs it and so does
//! every run ([`crate::job::run`]), through the same functions the nodes are built with, so
//! the two cannot disagree.

use std::path::Path;

use sluice_crds::contract::job_config::{FieldError, JobConfig, ValidationError};
use sluice_crds::contract::pipeline::{ErrorPolicy, Node, NodeKind};

use super::{check_build, filter_expr};
use crate::connectors::file::sink::check_dir;
use crate::ops::OpError;
use crate::ops::expr::Expr;
use crate::ops::json_file::input_files;
use crate::ops::simple::KeyBy;
use crate::storage;

/// Parses a YAML job document and checks it as [`check`] does, after the document's own
/// validation; returns every problem found (a document that does not parse has just one).
pub fn load(text: &str) -> Result<JobConfig, ValidationError> {
    let job = JobConfig::parse_yaml(text)?;
    let mut errors = job.validate().err().map_or_else(Vec::new, |e| e.errors);
    for e in runtime_errors(&job) {
        // One error per field: the document's own check of a field comes first.
        let said = |x: &FieldError| e.path.starts_with(&x.path) || x.path.starts_with(&e.path);
        if !errors.iter().any(said) {
            errors.push(e);
        }
    }
    if errors.is_empty() { Ok(job) } else { Err(ValidationError { errors }) }
}

/// The checks of a job document that need this runtime (its operators, its features, the
/// file system): every expression compiles and checks, every jsonFile input exists, every
/// fileSink directory is one, every node and storage URI is supported by this build.
pub fn check(job: &JobConfig) -> Result<(), ValidationError> {
    let errors = runtime_errors(job);
    if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
}

fn runtime_errors(job: &JobConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(c) = &job.checkpointing
        && let Err(e) = storage::check_supported(&c.storage.uri)
    {
        errors.push(FieldError { path: "checkpointing.storage.uri".into(), message: e.to_string() });
    }
    for (i, node) in job.pipeline.nodes.iter().enumerate() {
        let Some(kind) = node.kind() else { continue };
        if let Err((field, e)) = check_node(node, &kind) {
            errors.push(FieldError { path: format!("pipeline.nodes[{i}].{field}"), message: e.to_string() });
        }
    }
    errors
}

/// One node: the field at fault and the error (naming the node) when it cannot run.
fn check_node(node: &Node, kind: &NodeKind<'_>) -> Result<(), (&'static str, OpError)> {
    let id = node.id.as_str();
    check_build(id, kind).map_err(|e| (kind.name(), e))?;
    match kind {
        NodeKind::Map(m) => Expr::compile(id, &m.expr).map(drop).map_err(|e| ("map.expr", e)),
        NodeKind::Filter(f) => filter_expr(id, &f.expr).map(drop).map_err(|e| ("filter.expr", e)),
        NodeKind::KeyBy(k) => KeyBy::new(id, k, ErrorPolicy::Fail).map(drop).map_err(|e| ("keyBy.expr", e)),
        NodeKind::JsonFile(j) => input_files(id, &j.path).map(drop).map_err(|e| ("jsonFile.path", e)),
        NodeKind::FileSink(f) => check_dir(id, Path::new(&f.path)).map_err(|e| ("fileSink.path", e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job whose nodes are `nodes` (YAML flow mappings), chained in order.
    fn doc(nodes: &[&str], checkpoint_uri: &str) -> String {
        let ids: Vec<String> = (0..nodes.len()).map(|i| format!("n{i}")).collect();
        let mut yaml = format!(
            "name: t\ncheckpointing: {{interval: 1s, storage: {{uri: \"{checkpoint_uri}\"}}}}\npipeline:\n  nodes:\n"
        );
        for (id, n) in ids.iter().zip(nodes) {
            yaml += &format!("    - {{id: {id}, {n}}}\n");
        }
        yaml += "  edges:\n";
        for w in ids.windows(2) {
            yaml += &format!("    - {{from: {}, to: {}}}\n", w[0], w[1]);
        }
        yaml
    }

    fn lines(e: &ValidationError) -> Vec<String> {
        e.errors.iter().map(|f| format!("{}: {}", f.path, f.message)).collect()
    }

    #[test]
    fn every_problem_of_a_document_is_reported_once_with_its_field_and_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let missing = dir.path().join("missing.jsonl");
        let yaml = doc(
            &[
                &format!("jsonFile: {{path: {}}}", missing.display()),
                "map: {expr: \"value +\"}",
                "filter: {expr: \"foo(value)\"}",
                "keyBy: {expr: \"nope + 1\"}",
                "filter: {expr: \"1 + 1\"}",
                &format!("fileSink: {{path: {}}}", file.display()),
            ],
            "file:///tmp/ckpt",
        );
        let err = load(&yaml).expect_err("invalid");
        let want = [
            format!("pipeline.nodes[0].jsonFile.path: node n0: open {}: no such file or directory", missing.display()),
            "pipeline.nodes[1].map.expr: node n1: expression \"value +\": 1:8: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}".into(),
            "pipeline.nodes[2].filter.expr: node n2: expression \"foo(value)\": unknown function(s) [\"foo\"]".into(),
            "pipeline.nodes[3].keyBy.expr: node n3: expression \"nope + 1\": unknown variable(s) [\"nope\"]; use value, key or ts".into(),
            "pipeline.nodes[4].filter.expr: node n4: expression \"1 + 1\": a filter must yield a bool, this yields int".into(),
            format!(
                "pipeline.nodes[5].fileSink.path: node n5: invalid configuration: {} is an existing file, not a directory",
                file.display()
            ),
        ];
        assert_eq!(lines(&err), want);
        // `run` asks the same question of the parsed document.
        let job = JobConfig::parse_yaml(&yaml).expect("parses");
        assert_eq!(lines(&check(&job).expect_err("invalid")), want);
    }

    #[test]
    fn a_field_the_document_check_rejects_is_not_reported_twice() {
        let yaml = doc(&["generator: {count: 1}", "map: {expr: \" \"}", "discard: {}"], "file:///tmp/ckpt");
        let err = load(&yaml).expect_err("invalid");
        assert_eq!(lines(&err), ["pipeline.nodes[1].map.expr: must not be empty"]);
    }

    #[test]
    fn nodes_and_storage_this_build_lacks_are_refused() {
        let yaml = doc(&["kafkaSource: {bootstrapServers: \"k:9092\", topic: t}", "discard: {}"], "s3://bucket/prefix");
        let result = load(&yaml);
        let mut want = Vec::new();
        if !cfg!(feature = "s3") {
            want.push("checkpointing.storage.uri: storage configuration: s3://bucket/prefix: this build has no S3 support (feature `s3`)");
        }
        if !cfg!(feature = "kafka") {
            want.push("pipeline.nodes[0].kafkaSource: node n0: invalid configuration: kafkaSource needs a runtime built with the `kafka` feature");
        }
        match result {
            Ok(_) => assert!(want.is_empty(), "accepted, but this build lacks {want:?}"),
            Err(e) => assert_eq!(lines(&e), want),
        }
    }

    #[test]
    fn a_good_document_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{}\n").expect("write");
        let yaml = doc(
            &[
                &format!("jsonFile: {{path: {}}}", input.display()),
                "map: {expr: \"{'n': size(string(value))}\"}",
                "filter: {expr: \"value.n > 0\"}",
                &format!("fileSink: {{path: {}}}", dir.path().join("out").display()),
            ],
            "file:///tmp/ckpt",
        );
        load(&yaml).expect("valid");
        assert!(!dir.path().join("out").exists(), "checking creates nothing");
    }
}
