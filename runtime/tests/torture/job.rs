//! A random job shape from one seed, and its job document for one run (each run may rescale).
//!
//! Expressions come from small fixed menus; each entry carries its CEL text (what the engine
//! runs) and its meaning in plain Rust (what the reference evaluator runs, see `reference.rs`).

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A filter over an integer value.
#[derive(Clone, Copy, Debug)]
pub enum IntFilter {
    /// `value % 3 != 0`
    NotMod3,
    /// `value % 5 < 3`
    Mod5Below3,
    /// `value % 2 == 0`
    Even,
}

/// A map from an integer value to an integer value.
#[derive(Clone, Copy, Debug)]
pub enum IntMap {
    /// `value * 2`
    Twice,
    /// `value + 7`
    Plus7,
    /// `value % 1000`
    Mod1000,
}

/// A key from an integer value.
#[derive(Clone, Copy, Debug)]
pub enum IntKey {
    /// `value % 13`
    Mod13,
    /// `value % 7 + 100`
    Mod7Plus100,
}

/// A filter over a file record `{seq, key, ts, x}`.
#[derive(Clone, Copy, Debug)]
pub enum RecFilter {
    /// `value.seq % 3 != 0`
    SeqNotMod3,
    /// `value.x < 700`
    XBelow700,
}

/// A key from a file record.
#[derive(Clone, Copy, Debug)]
pub enum RecKey {
    /// `field: key`
    Field,
    /// `value.seq % 11`
    SeqMod11,
}

/// A map from a file record to an integer.
#[derive(Clone, Copy, Debug)]
pub enum RecMap {
    /// `value.x`
    X,
    /// `value.x * 2`
    TwiceX,
    /// `value.seq % 1000`
    SeqMod1000,
}

/// The window's and the aggregate's function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// Number of records.
    Count,
    /// Sum.
    Sum,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
}

impl IntFilter {
    /// The CEL text.
    pub fn cel(self) -> &'static str {
        match self {
            IntFilter::NotMod3 => "value % 3 != 0",
            IntFilter::Mod5Below3 => "value % 5 < 3",
            IntFilter::Even => "value % 2 == 0",
        }
    }
}

impl IntMap {
    /// The CEL text.
    pub fn cel(self) -> &'static str {
        match self {
            IntMap::Twice => "value * 2",
            IntMap::Plus7 => "value + 7",
            IntMap::Mod1000 => "value % 1000",
        }
    }
}

impl IntKey {
    /// The CEL text.
    pub fn cel(self) -> &'static str {
        match self {
            IntKey::Mod13 => "value % 13",
            IntKey::Mod7Plus100 => "value % 7 + 100",
        }
    }
}

impl RecFilter {
    /// The CEL text.
    pub fn cel(self) -> &'static str {
        match self {
            RecFilter::SeqNotMod3 => "value.seq % 3 != 0",
            RecFilter::XBelow700 => "value.x < 700",
        }
    }
}

impl RecMap {
    /// The CEL text.
    pub fn cel(self) -> &'static str {
        match self {
            RecMap::X => "value.x",
            RecMap::TwiceX => "value.x * 2",
            RecMap::SeqMod1000 => "value.seq % 1000",
        }
    }
}

impl Func {
    /// The YAML name.
    pub fn name(self) -> &'static str {
        match self {
            Func::Count => "count",
            Func::Sum => "sum",
            Func::Min => "min",
            Func::Max => "max",
        }
    }
}

/// The generator source and its chain (filter → map → keyBy, each optional).
#[derive(Clone, Debug)]
pub struct GenBranch {
    /// Records.
    pub count: u64,
    /// Keys (`seq % keys`).
    pub keys: u64,
    /// Records per second over the whole source.
    pub rate: u64,
    /// Event-time step per sequence number, ms.
    pub step_ms: u64,
    /// Splits.
    pub splits: u32,
    /// Optional filter.
    pub filter: Option<IntFilter>,
    /// Optional map.
    pub map: Option<IntMap>,
    /// Optional keyBy expression.
    pub key: Option<IntKey>,
}

/// How the files' time ranges lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// File i covers the i-th slice of the time range (time-ordered contents, as in issue 13).
    Sequential,
    /// Every file covers the whole range.
    Overlapping,
}

/// The jsonFile source and its chain (filter → keyBy → map, the map optional unless needed).
#[derive(Clone, Debug)]
pub struct FileBranch {
    /// Number of files.
    pub files: usize,
    /// Records per file.
    pub per_file: usize,
    /// Event-time step between consecutive records of a file, ms.
    pub step_ms: u64,
    /// `maxOutOfOrderness`, ms; each record's time lies at most this far behind its file's
    /// largest time so far.
    pub out_of_orderness_ms: u64,
    /// Time layout.
    pub layout: Layout,
    /// Optional filter.
    pub filter: Option<RecFilter>,
    /// The key.
    pub key: RecKey,
    /// Optional map to an integer (always set when the branch feeds a sum/min/max).
    pub map: Option<RecMap>,
}

/// Which branch a sink or the aggregate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    /// The generator chain's end.
    Gen,
    /// The file chain's end.
    Files,
}

/// A random job shape.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Key groups.
    pub max_parallelism: u32,
    /// Checkpoint interval, ms.
    pub interval_ms: u64,
    /// Retained checkpoints.
    pub retained: u32,
    /// The generator branch.
    pub generator: Option<GenBranch>,
    /// The file branch.
    pub files: Option<FileBranch>,
    /// Window size (event time, ms) and function; both branches feed it.
    pub window: (u64, Func),
    /// A running aggregate over one branch.
    pub aggregate: Option<(Branch, Func)>,
    /// Pass-through sinks (one per branch listed).
    pub pass: Vec<Branch>,
    /// The window's sink is an exactly-once Kafka sink to this topic (when the test broker
    /// runs; see [`KafkaOut::choose`]), else a file sink.
    pub kafka: Option<KafkaOut>,
}

/// An exactly-once Kafka sink for the window's output.
#[derive(Clone, Debug)]
pub struct KafkaOut {
    /// The broker list.
    pub brokers: String,
    /// The topic (fresh per case).
    pub topic: String,
}

impl KafkaOut {
    /// Half of the cases (from a generator of their own, so the rest of the case is the same
    /// with or without a broker) write windows to Kafka when `SLUICE_TEST_KAFKA_BROKERS` is set
    /// and `TORTURE_KAFKA` is not `0`; `TORTURE_KAFKA=1` makes it every case.
    pub fn choose(seed: u64) -> Option<KafkaOut> {
        if !cfg!(feature = "kafka") || std::env::var("TORTURE_KAFKA").is_ok_and(|v| v == "0") {
            return None;
        }
        let brokers = std::env::var("SLUICE_TEST_KAFKA_BROKERS").ok().filter(|b| !b.is_empty())?;
        let mut own = StdRng::seed_from_u64(seed ^ 0x006b_6166_6b61);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let always = std::env::var("TORTURE_KAFKA").is_ok_and(|v| v == "1");
        (own.random_bool(0.5) || always).then(|| KafkaOut { brokers, topic: format!("torture-win-{seed}-{nanos}") })
    }

    /// Creates the topic (3 partitions).
    pub fn create_topic(&self) {
        #[cfg(feature = "kafka")]
        sluice_runtime::verify::kafka::create_topic(&self.brokers, &self.topic, 3)
            .unwrap_or_else(|e| panic!("creating topic {}: {e}", self.topic));
    }
}

/// Parallelism of one run: the pipeline's, the window's and the window sink's.
#[derive(Clone, Copy, Debug)]
pub struct RunParallelism {
    /// Pipeline default (sources, chains, aggregate, pass sinks).
    pub pipeline: u32,
    /// The window node.
    pub window: u32,
    /// The window's sink.
    pub window_sink: u32,
}

impl std::fmt::Display for RunParallelism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p={}/win={}/out={}", self.pipeline, self.window, self.window_sink)
    }
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn maybe<T>(rng: &mut StdRng, p: f64, f: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    if rng.random_bool(p) { Some(f(rng)) } else { None }
}

/// Which sources a case may use (`TORTURE_SOURCES=gen|files|both`, default any).
pub fn sources_choice(rng: &mut StdRng) -> (bool, bool) {
    match std::env::var("TORTURE_SOURCES").as_deref() {
        Ok("gen") => (true, false),
        Ok("files") => (false, true),
        Ok("both") => (true, true),
        _ => pick(rng, &[(true, true), (true, true), (true, true), (true, false), (false, true)]),
    }
}

impl Shape {
    /// A random shape.
    pub fn random(rng: &mut StdRng) -> Shape {
        let (has_gen, has_files) = sources_choice(rng);
        let func = pick(rng, &[Func::Count, Func::Sum, Func::Min, Func::Max]);
        let generator = has_gen.then(|| {
            let count = rng.random_range(20_000..60_000);
            let secs = rng.random_range(2..5);
            GenBranch {
                count,
                keys: pick(rng, &[5, 17, 64, 200]),
                rate: count / secs,
                step_ms: pick(rng, &[1, 2, 5]),
                splits: rng.random_range(1..9),
                filter: maybe(rng, 0.5, |r| pick(r, &[IntFilter::NotMod3, IntFilter::Mod5Below3, IntFilter::Even])),
                map: maybe(rng, 0.4, |r| pick(r, &[IntMap::Twice, IntMap::Plus7, IntMap::Mod1000])),
                key: maybe(rng, 0.4, |r| pick(r, &[IntKey::Mod13, IntKey::Mod7Plus100])),
            }
        });
        let files = has_files.then(|| FileBranch {
            files: rng.random_range(6..13),
            per_file: rng.random_range(1_500..5_000),
            step_ms: pick(rng, &[1, 3, 10]),
            out_of_orderness_ms: pick(rng, &[0, 20, 200, 1000]),
            layout: pick(rng, &[Layout::Sequential, Layout::Overlapping]),
            filter: maybe(rng, 0.5, |r| pick(r, &[RecFilter::SeqNotMod3, RecFilter::XBelow700])),
            key: pick(rng, &[RecKey::Field, RecKey::SeqMod11]),
            map: Some(pick(rng, &[RecMap::X, RecMap::TwiceX, RecMap::SeqMod1000])),
        });
        let files = files.map(|mut f| {
            if func == Func::Count && rng.random_bool(0.3) {
                f.map = None; // a count needs no number: the window may take the records as they are
            }
            f
        });
        let span = [
            generator.as_ref().map(|g| g.count * g.step_ms),
            files.as_ref().map(|f| f.per_file as u64 * f.step_ms * f.files as u64),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(10_000);
        let size = rng.random_range((span / 60).max(10)..(span / 6).max(20));
        let mut branches = Vec::new();
        if generator.is_some() {
            branches.push(Branch::Gen);
        }
        if files.as_ref().is_some_and(|f| f.map.is_some()) {
            branches.push(Branch::Files);
        }
        let aggregate = if branches.is_empty() {
            None
        } else {
            maybe(rng, 0.6, |r| (pick(r, &branches), pick(r, &[Func::Count, Func::Sum, Func::Min, Func::Max])))
        };
        let mut pass: Vec<Branch> = Vec::new();
        if generator.is_some() && (files.is_none() || rng.random_bool(0.7)) {
            pass.push(Branch::Gen);
        }
        if files.is_some() && (pass.is_empty() || rng.random_bool(0.6)) {
            pass.push(Branch::Files);
        }
        Shape {
            max_parallelism: pick(rng, &[4, 8, 16]),
            interval_ms: rng.random_range(100..=300),
            retained: rng.random_range(1..=3),
            generator,
            files,
            window: (size, func),
            aggregate,
            pass,
            kafka: None,
        }
    }

    /// A random parallelism for one run.
    pub fn random_parallelism(&self, rng: &mut StdRng) -> RunParallelism {
        let top = self.max_parallelism.min(4);
        RunParallelism {
            pipeline: rng.random_range(1..=top),
            window: rng.random_range(1..=top),
            window_sink: rng.random_range(1..=top.min(3)),
        }
    }

    /// The node id at the end of a branch's chain.
    pub fn branch_end(&self, b: Branch) -> &'static str {
        match b {
            Branch::Gen => {
                let g = self.generator.as_ref().expect("gen branch");
                if g.key.is_some() {
                    "gen-key"
                } else if g.map.is_some() {
                    "gen-map"
                } else if g.filter.is_some() {
                    "gen-filter"
                } else {
                    "gen"
                }
            }
            Branch::Files => {
                let f = self.files.as_ref().expect("file branch");
                if f.map.is_some() { "files-map" } else { "files-key" }
            }
        }
    }

    /// The job document for one run, with data under `dir`.
    pub fn yaml(&self, dir: &Path, p: RunParallelism) -> String {
        let d = dir.display();
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let chain = |nodes: &mut Vec<String>, edges: &mut Vec<String>, prev: &mut String, id: &str, body: String| {
            nodes.push(format!("    - {{id: {id}, {body}}}"));
            edges.push(format!("    - {{from: {prev}, to: {id}}}"));
            *prev = id.to_string();
        };
        if let Some(g) = &self.generator {
            nodes.push(format!(
                "    - {{id: gen, generator: {{count: {}, keys: {}, ratePerSecond: {}, eventTimeStepMs: {}, splits: {}}}}}",
                g.count, g.keys, g.rate, g.step_ms, g.splits
            ));
            let mut prev = "gen".to_string();
            if let Some(f) = g.filter {
                chain(&mut nodes, &mut edges, &mut prev, "gen-filter", format!("filter: {{expr: \"{}\"}}", f.cel()));
            }
            if let Some(m) = g.map {
                chain(&mut nodes, &mut edges, &mut prev, "gen-map", format!("map: {{expr: \"{}\"}}", m.cel()));
            }
            if let Some(k) = g.key {
                chain(&mut nodes, &mut edges, &mut prev, "gen-key", format!("keyBy: {{expr: \"{}\"}}", k.cel()));
            }
        }
        if let Some(f) = &self.files {
            nodes.push(format!(
                "    - {{id: files, jsonFile: {{path: {d}/input, timestampField: ts, maxOutOfOrderness: {}ms}}}}",
                f.out_of_orderness_ms
            ));
            let mut prev = "files".to_string();
            if let Some(x) = f.filter {
                chain(&mut nodes, &mut edges, &mut prev, "files-filter", format!("filter: {{expr: \"{}\"}}", x.cel()));
            }
            let key = match f.key {
                RecKey::Field => "keyBy: {field: key}".to_string(),
                RecKey::SeqMod11 => "keyBy: {expr: \"value.seq % 11\"}".to_string(),
            };
            chain(&mut nodes, &mut edges, &mut prev, "files-key", key);
            if let Some(m) = f.map {
                chain(&mut nodes, &mut edges, &mut prev, "files-map", format!("map: {{expr: \"{}\"}}", m.cel()));
            }
        }
        let (size, func) = self.window;
        nodes.push(format!(
            "    - {{id: win, parallelism: {}, window: {{size: {size}ms, function: {}}}}}",
            p.window,
            func.name()
        ));
        let win_sink = match &self.kafka {
            Some(k) => format!(
                "kafkaSink: {{bootstrapServers: \"{}\", topic: {}, transactionTimeout: 5m}}",
                k.brokers, k.topic
            ),
            None => format!("fileSink: {{path: {d}/out/win}}"),
        };
        nodes.push(format!("    - {{id: win-out, parallelism: {}, {win_sink}}}", p.window_sink));
        for b in self.branches() {
            edges.push(format!("    - {{from: {}, to: win, partition: hash}}", self.branch_end(b)));
        }
        edges.push("    - {from: win, to: win-out, partition: rebalance}".into());
        if let Some((b, f)) = self.aggregate {
            nodes.push(format!("    - {{id: agg, aggregate: {{function: {}}}}}", f.name()));
            nodes.push(format!("    - {{id: agg-out, fileSink: {{path: {d}/out/agg}}}}"));
            edges.push(format!("    - {{from: {}, to: agg, partition: hash}}", self.branch_end(b)));
            edges.push("    - {from: agg, to: agg-out}".into());
        }
        for b in &self.pass {
            let id = pass_id(*b);
            nodes.push(format!("    - {{id: {id}, fileSink: {{path: {d}/out/{id}}}}}"));
            edges.push(format!("    - {{from: {}, to: {id}}}", self.branch_end(*b)));
        }
        format!(
            "name: torture\ncheckpointing:\n  interval: {}ms\n  timeout: 20s\n  retained: {}\n  tolerableFailures: 1000\n  storage:\n    uri: file://{d}/checkpoints\npipeline:\n  maxParallelism: {}\n  parallelism: {}\n  nodes:\n{}\n  edges:\n{}\n",
            self.interval_ms,
            self.retained,
            self.max_parallelism,
            p.pipeline,
            nodes.join("\n"),
            edges.join("\n")
        )
    }

    /// The branches that exist.
    pub fn branches(&self) -> Vec<Branch> {
        let mut b = Vec::new();
        if self.generator.is_some() {
            b.push(Branch::Gen);
        }
        if self.files.is_some() {
            b.push(Branch::Files);
        }
        b
    }

    /// Every sink directory name under `out/`.
    pub fn sinks(&self) -> Vec<&'static str> {
        let mut s = vec!["win"];
        if self.aggregate.is_some() {
            s.push("agg");
        }
        s.extend(self.pass.iter().map(|b| pass_id(*b)));
        s
    }

    /// The time it takes to run the whole job once, roughly, ms (the generator's rate).
    pub fn expected_ms(&self) -> u64 {
        self.generator.as_ref().map_or(600, |g| g.count * 1000 / g.rate.max(1))
    }
}

/// The id of the pass-through sink of a branch.
pub fn pass_id(b: Branch) -> &'static str {
    match b {
        Branch::Gen => "pass-gen",
        Branch::Files => "pass-files",
    }
}
