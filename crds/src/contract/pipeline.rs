//! The dataflow graph of a job: nodes (sources, operators, sinks) and the edges between them.
//!
//! Each node sets exactly one operator block, the way a Kubernetes volume sets exactly one
//! source (`generator:`, `map:`, `fileSink:` …). That keeps the CRD schema structural and gives
//! "unknown field" errors for misspelled operators.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::join::{JoinIntervalSpec, JoinKind, JoinSpec, JoinWindowSpec};
pub use super::kafka::{KafkaSinkSpec, KafkaSourceSpec};
pub use super::nexmark::NexmarkSpec;
pub use super::ranking::{DeduplicateSpec, Keep, RankWindow, TopNSpec};
pub use super::window::{LateRecords, SessionSpec, WindowAggregate, WindowFn, WindowKind, WindowSpec};

/// Default number of key groups: the upper bound for any node's parallelism.
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// The dataflow graph of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pipeline {
    /// Number of key groups keyed state is split into; a restore may use any parallelism up to it.
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: u32,
    /// Parallelism of nodes that do not set their own (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// What happens to a malformed input record.
    #[serde(default)]
    pub error_policy: ErrorPolicy,
    /// Sources, operators and sinks.
    pub nodes: Vec<Node>,
    /// Directed edges between nodes; the graph must be acyclic.
    #[serde(default)]
    pub edges: Vec<Edge>,
}

fn default_max_parallelism() -> u32 {
    DEFAULT_MAX_PARALLELISM
}

/// What a source does with a record it cannot decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ErrorPolicy {
    /// Fail the job (it then restarts from its last checkpoint and fails again: fix the input).
    #[default]
    Fail,
    /// Skip the record and count it in `sluice_runtime_malformed_records_total`.
    Skip,
    /// Copy the record to its source's dead-letter topic (`kafkaSource.deadLetterTopic`), then
    /// skip and count it; operators past the source skip and count.
    DeadLetter,
}

impl ErrorPolicy {
    /// True when a malformed record is dropped (and counted) instead of failing the job.
    pub fn skips(self) -> bool {
        self != ErrorPolicy::Fail
    }
}

/// One vertex of the graph. Exactly one operator block must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Unique name of the node; used in state paths, metrics and output file names.
    pub id: String,
    /// Number of parallel subtasks; defaults to the pipeline's parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// Source: a deterministic, replayable sequence generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorSpec>,
    /// Source: line-delimited JSON files, replayable by byte offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_file: Option<JsonFileSpec>,
    /// Source: a Kafka topic, replayable from checkpointed offsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_source: Option<KafkaSourceSpec>,
    /// Source: the Nexmark benchmark's persons, auctions and bids, replayable by split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexmark: Option<NexmarkSpec>,
    /// Operator: replace each record's value with a CEL expression's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<MapSpec>,
    /// Operator: keep records for which a CEL expression is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterSpec>,
    /// Operator: set each record's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_by: Option<KeyBySpec>,
    /// Keyed operator: a running aggregate per key, emitted on every update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateSpec>,
    /// Keyed operator: tumbling, sliding or session event-time windows with one or several
    /// aggregates, emitted when the watermark passes their end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowSpec>,
    /// Keyed operator of two inputs: an inner join on the key (window, interval or regular
    /// join with a time-to-live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinSpec>,
    /// Keyed operator: the N records ranked first by a field per key and event-time window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_n: Option<TopNSpec>,
    /// Keyed operator: the first or last record per key and time-to-live span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduplicate: Option<DeduplicateSpec>,
    /// Sink: exactly-once files (two-phase commit: temp file, pre-commit, rename on completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_sink: Option<FileSinkSpec>,
    /// Sink: a Kafka topic (exactly-once through transactions, at-least-once, or none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_sink: Option<KafkaSinkSpec>,
    /// Sink: print records to standard output (at-least-once, for debugging).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<EmptySpec>,
    /// Sink: drop every record (benchmarks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<EmptySpec>,
}

/// The operator a node runs, borrowed from whichever block is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NodeKind<'a> {
    /// See [`GeneratorSpec`].
    Generator(&'a GeneratorSpec),
    /// See [`JsonFileSpec`].
    JsonFile(&'a JsonFileSpec),
    /// See [`KafkaSourceSpec`].
    KafkaSource(&'a KafkaSourceSpec),
    /// See [`NexmarkSpec`].
    Nexmark(&'a NexmarkSpec),
    /// See [`MapSpec`].
    Map(&'a MapSpec),
    /// See [`FilterSpec`].
    Filter(&'a FilterSpec),
    /// See [`KeyBySpec`].
    KeyBy(&'a KeyBySpec),
    /// See [`AggregateSpec`].
    Aggregate(&'a AggregateSpec),
    /// See [`WindowSpec`].
    Window(&'a WindowSpec),
    /// See [`JoinSpec`].
    Join(&'a JoinSpec),
    /// See [`TopNSpec`].
    TopN(&'a TopNSpec),
    /// See [`DeduplicateSpec`].
    Deduplicate(&'a DeduplicateSpec),
    /// See [`FileSinkSpec`].
    FileSink(&'a FileSinkSpec),
    /// See [`KafkaSinkSpec`].
    KafkaSink(&'a KafkaSinkSpec),
    /// Standard output sink.
    Stdout,
    /// Discarding sink.
    Discard,
}

impl NodeKind<'_> {
    /// True for nodes that produce records and take no input.
    pub fn is_source(&self) -> bool {
        matches!(self, NodeKind::Generator(_) | NodeKind::JsonFile(_) | NodeKind::KafkaSource(_) | NodeKind::Nexmark(_))
    }

    /// True for nodes that consume records and emit none.
    pub fn is_sink(&self) -> bool {
        matches!(self, NodeKind::FileSink(_) | NodeKind::KafkaSink(_) | NodeKind::Stdout | NodeKind::Discard)
    }

    /// True for operators whose state is partitioned by key (their inputs must be hash edges).
    pub fn is_keyed(&self) -> bool {
        matches!(
            self,
            NodeKind::Aggregate(_)
                | NodeKind::Window(_)
                | NodeKind::Join(_)
                | NodeKind::TopN(_)
                | NodeKind::Deduplicate(_)
        )
    }

    /// True for operators that send their late records along `output: late` edges.
    pub fn dead_letters(&self) -> bool {
        let late = match self {
            NodeKind::Window(w) => w.late_records,
            NodeKind::Join(j) => j.late_records,
            NodeKind::TopN(t) => t.late_records,
            NodeKind::Deduplicate(d) => d.late_records,
            _ => return false,
        };
        late == LateRecords::DeadLetter
    }

    /// The block's field name, as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Generator(_) => "generator",
            NodeKind::JsonFile(_) => "jsonFile",
            NodeKind::KafkaSource(_) => "kafkaSource",
            NodeKind::Nexmark(_) => "nexmark",
            NodeKind::Map(_) => "map",
            NodeKind::Filter(_) => "filter",
            NodeKind::KeyBy(_) => "keyBy",
            NodeKind::Aggregate(_) => "aggregate",
            NodeKind::Window(_) => "window",
            NodeKind::Join(_) => "join",
            NodeKind::TopN(_) => "topN",
            NodeKind::Deduplicate(_) => "deduplicate",
            NodeKind::FileSink(_) => "fileSink",
            NodeKind::KafkaSink(_) => "kafkaSink",
            NodeKind::Stdout => "stdout",
            NodeKind::Discard => "discard",
        }
    }
}

impl Node {
    /// Every operator block that is set (a valid node has exactly one).
    pub fn kinds(&self) -> Vec<NodeKind<'_>> {
        let mut kinds = Vec::with_capacity(1);
        if let Some(s) = &self.generator {
            kinds.push(NodeKind::Generator(s));
        }
        if let Some(s) = &self.json_file {
            kinds.push(NodeKind::JsonFile(s));
        }
        if let Some(s) = &self.kafka_source {
            kinds.push(NodeKind::KafkaSource(s));
        }
        if let Some(s) = &self.nexmark {
            kinds.push(NodeKind::Nexmark(s));
        }
        if let Some(s) = &self.map {
            kinds.push(NodeKind::Map(s));
        }
        if let Some(s) = &self.filter {
            kinds.push(NodeKind::Filter(s));
        }
        if let Some(s) = &self.key_by {
            kinds.push(NodeKind::KeyBy(s));
        }
        if let Some(s) = &self.aggregate {
            kinds.push(NodeKind::Aggregate(s));
        }
        if let Some(s) = &self.window {
            kinds.push(NodeKind::Window(s));
        }
        if let Some(s) = &self.join {
            kinds.push(NodeKind::Join(s));
        }
        if let Some(s) = &self.top_n {
            kinds.push(NodeKind::TopN(s));
        }
        if let Some(s) = &self.deduplicate {
            kinds.push(NodeKind::Deduplicate(s));
        }
        if let Some(s) = &self.file_sink {
            kinds.push(NodeKind::FileSink(s));
        }
        if let Some(s) = &self.kafka_sink {
            kinds.push(NodeKind::KafkaSink(s));
        }
        if self.stdout.is_some() {
            kinds.push(NodeKind::Stdout);
        }
        if self.discard.is_some() {
            kinds.push(NodeKind::Discard);
        }
        kinds
    }

    /// The node's single operator; `None` when zero or several blocks are set (see validation).
    pub fn kind(&self) -> Option<NodeKind<'_>> {
        let kinds = self.kinds();
        if kinds.len() == 1 { Some(kinds[0]) } else { None }
    }

    /// Which of the node's inputs an edge from node `upstream` feeds: a join's right side is
    /// input 1; everything else is input 0.
    pub fn input_of(&self, upstream: &str) -> usize {
        match self.kind() {
            Some(NodeKind::Join(j)) => j.input_of(upstream),
            _ => 0,
        }
    }
}

/// How records travel along an edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Partitioning {
    /// Subtask i sends to subtask i (both ends need the same parallelism); chained when possible.
    #[default]
    Forward,
    /// Round-robin over all downstream subtasks, a batch at a time.
    Rebalance,
    /// By key: key → key group → subtask. Required into keyed operators.
    Hash,
}

/// A directed edge of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Edge {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
    /// How records are distributed over the downstream subtasks.
    #[serde(default)]
    pub partition: Partitioning,
    /// Which output of the upstream node the edge carries: its results (`main`, the default) or
    /// the records a window found too late (`late`, with `window.lateRecords: deadLetter`).
    #[serde(default, skip_serializing_if = "EdgeOutput::is_main")]
    pub output: EdgeOutput,
}

/// The output of a node an edge carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EdgeOutput {
    /// The node's results.
    #[default]
    Main,
    /// Records a window received after its watermark passed `end + allowedLateness` (unchanged,
    /// with their original key, event time and value).
    Late,
}

impl EdgeOutput {
    /// True for the main output (the default, left out when serialising).
    pub fn is_main(&self) -> bool {
        *self == EdgeOutput::Main
    }
}

/// A deterministic generator of sequence-numbered records `0..count`.
///
/// Record `seq` has key `seq % keys`, value `seq` and event time `startTimeMs + seq * eventTimeStepMs`.
/// The sequence is cut into `splits` interleaved splits whose positions are checkpointed, so a
/// restore at another parallelism reassigns them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorSpec {
    /// Total number of records; unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Number of distinct keys.
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// Records per second over the whole source; as fast as possible when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u64>,
    /// Event-time step between consecutive sequence numbers, in milliseconds.
    #[serde(default = "default_step")]
    pub event_time_step_ms: u64,
    /// Event time of record 0, in milliseconds since the epoch.
    #[serde(default)]
    pub start_time_ms: u64,
    /// Number of replayable splits (upper bound of useful parallelism).
    #[serde(default = "default_splits")]
    pub splits: u32,
}

fn default_keys() -> u64 {
    1000
}
fn default_step() -> u64 {
    1
}
fn default_splits() -> u32 {
    16
}

/// Line-delimited JSON files; each line is one record. Replayable by byte offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonFileSpec {
    /// A file, or a directory whose `*.json`/`*.jsonl` files are read in name order.
    pub path: String,
    /// Field (dotted path) holding the event time in epoch milliseconds; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_field: Option<String>,
    /// How far event time may go backwards; the watermark trails the largest time seen by this.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub max_out_of_orderness: Option<Duration>,
}

/// Replaces the value of each record with the result of a CEL expression over `value`, `key`, `ts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MapSpec {
    /// CEL expression, e.g. `{"user": value.user, "n": 1}`.
    pub expr: String,
}

/// Keeps the records for which a CEL expression over `value`, `key`, `ts` is true.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterSpec {
    /// CEL expression that yields a bool.
    pub expr: String,
}

/// Sets the key of each record, from a field of its value or a CEL expression. Exactly one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyBySpec {
    /// Dotted path into the record's value, e.g. `user.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// CEL expression over `value`, `key`, `ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
}

/// An aggregate function over the records of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AggregateFn {
    /// Number of records.
    Count,
    /// Sum of the numeric input.
    Sum,
    /// Smallest numeric input.
    Min,
    /// Largest numeric input.
    Max,
}

/// A running aggregate per key; emits `(key, aggregate)` after every record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AggregateSpec {
    /// The aggregate function.
    pub function: AggregateFn,
    /// Dotted path of the numeric input inside the value; the value itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Exactly-once file output: one JSON line per record, files made visible only on checkpoint completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSinkSpec {
    /// Output directory (created if missing). Committed files are `part-*.jsonl`; temp files start with `.`.
    pub path: String,
}

/// An operator block without settings (`stdout: {}`, `discard: {}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptySpec {}

impl Pipeline {
    /// The effective parallelism of a node: its own, else the pipeline's, else 1.
    pub fn parallelism_of(&self, node: &Node) -> u32 {
        node.parallelism.or(self.parallelism).unwrap_or(1)
    }
}
