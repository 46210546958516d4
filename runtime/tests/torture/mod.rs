//! The randomized differential torture test (issue 13): one `u64` seed gives a random job, its
//! random input and a random fault schedule; the committed output of every sink must equal what
//! an independent reference evaluator computes over the whole input.
//!
//! Event-time semantics assumed: a window fires when the watermark passes its end; a source's
//! watermark is per split (the minimum over a subtask's unfinished splits of their largest time
//! minus `maxOutOfOrderness` minus 1). The input keeps every record within its file's
//! `maxOutOfOrderness`, and the generator is in order, so no record is ever late — whatever the
//! parallelism, the dealing of splits or the crashes — and the reference counts every record.

pub mod check;
pub mod input;
pub mod job;
pub mod reference;
pub mod schedule;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;

use job::Shape;
use schedule::{Outcome, Runner, Step};

/// What one case did.
#[derive(Debug, Default)]
pub struct CaseReport {
    /// The seed.
    pub seed: u64,
    /// Faults that landed (kills, crashes, stops, refused corruptions).
    pub faults: usize,
    /// The schedule codes of the faults that landed, one per fault (a damage also when the run
    /// after it finished instead of refusing).
    pub landed: String,
    /// Processes started.
    pub runs: usize,
    /// Input records the reference checked against the output (per sink).
    pub records: usize,
    /// Committed lines read.
    pub lines: usize,
    /// A one-line summary of the shape.
    pub summary: String,
    /// The schedule, compactly (`K` kill, `C` crash, `S` stop with savepoint, `X` cancel, `T` SIGTERM; the
    /// newest checkpoint damaged: `D` its manifest deleted, `M` its manifest flipped, `B` a state
    /// file flipped, `E` every manifest deleted; `F` marks where the job finished on its own).
    pub schedule: String,
    /// The failure, with everything needed to replay it.
    pub failure: Option<String>,
    /// Seconds taken.
    pub secs: f64,
}

/// The command that replays `seed`.
pub fn replay(seed: u64) -> String {
    format!("TORTURE_SEED={seed} cargo test --workspace --test torture -- --nocapture")
}

fn describe(shape: &Shape) -> String {
    let mut parts = Vec::new();
    if let Some(g) = &shape.generator {
        parts.push(format!("gen({}rec/{}splits)", g.count, g.splits));
    }
    if let Some(f) = &shape.files {
        parts.push(format!("files({}x{} {:?} ooo={}ms)", f.files, f.per_file, f.layout, f.out_of_orderness_ms));
    }
    parts.push(format!("win({}ms {:?})", shape.window.0, shape.window.1));
    if let Some((b, f)) = shape.aggregate {
        parts.push(format!("agg({b:?} {f:?})"));
    }
    parts.push(format!("sinks={}", shape.sinks().join(",")));
    if let Some(k) = &shape.kafka {
        parts.push(format!("win→kafka:{}", k.topic));
    }
    parts.join(" ")
}

/// Runs the case of `seed` in a fresh directory (removed when the case passes).
pub fn run_case(seed: u64) -> CaseReport {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shape = Shape::random(&mut rng);
    shape.kafka = job::KafkaOut::choose(seed);
    if let Some(k) = &shape.kafka {
        k.create_topic();
    }
    let dir = case_dir(seed);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).expect("create case dir");
    let input = match &shape.files {
        Some(f) => input::write_files(&mut rng, f, &dir).expect("write input files"),
        None => Vec::new(),
    };
    let schedule = schedule::random_schedule(&mut rng, &shape);
    let finals = (shape.random_parallelism(&mut rng), shape.random_parallelism(&mut rng));
    let expect = reference::evaluate(&shape, &input);
    let mut report = CaseReport {
        seed,
        records: reference::records_checked(&expect),
        summary: describe(&shape),
        ..CaseReport::default()
    };
    let mut runner = Runner { shape: &shape, dir: dir.clone(), runs: 0, restore_next: None };
    let mut log = Vec::new();
    let result = execute(&mut runner, &schedule, finals, &mut log, &mut report).and_then(|()| {
        let lines = check::check_all(&dir.join("out"), shape.kafka.as_ref(), &expect).map_err(|p| p.join("\n"))?;
        report.lines = lines;
        let mut temps = check::temp_files(&dir);
        if schedule::skipped("orphans") {
            temps.retain(|t| !t.contains(".sluice-tmp-"));
        }
        if temps.is_empty() { Ok(()) } else { Err(format!("temp files left: {temps:?}")) }
    });
    report.runs = runner.runs;
    report.secs = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => report.failure = Some(failure_text(seed, &shape, &dir, &schedule, &log, &e)),
    }
    report
}

fn execute(
    runner: &mut Runner<'_>,
    schedule: &[Step],
    finals: (job::RunParallelism, job::RunParallelism),
    log: &mut Vec<String>,
    report: &mut CaseReport,
) -> Result<(), String> {
    for step in schedule {
        let outcome = runner.step(step).inspect_err(|_| log.push(format!("{step}: FAILED")))?;
        log.push(format!("{step}: {outcome:?}"));
        report.schedule.push_str(step.code());
        match outcome {
            Outcome::Faulted(_) => {
                report.faults += 1;
                report.landed.push_str(step.code());
            }
            Outcome::Skipped(_) => {}
            Outcome::Finished => {
                if matches!(step.fault, schedule::Fault::Corrupt(_)) {
                    // The damage was done; the run restored what it could and finished.
                    report.landed.push_str(step.code());
                }
                report.schedule.push('F');
                break;
            }
        }
    }
    runner.complete(finals.0).inspect(|()| log.push(format!("run to the end [{}]: ok", finals.0)))?;
    // Once more on a finished job: must add nothing.
    runner.complete(finals.1).inspect(|()| log.push(format!("run again after the end [{}]: ok", finals.1)))
}

fn failure_text(seed: u64, shape: &Shape, dir: &std::path::Path, schedule: &[Step], log: &[String], e: &str) -> String {
    let first = std::fs::read_to_string(dir.join("logs/job-1.yaml")).unwrap_or_default();
    let planned: Vec<String> = schedule.iter().map(ToString::to_string).collect();
    format!(
        "TORTURE FAILURE seed={seed}\n{e}\nshape: {}\nschedule: {}\nwhat happened:\n  {}\njob (run 1):\n{first}\ncase directory kept: {}\nreplay: {}",
        describe(shape),
        planned.join("; "),
        log.join("\n  "),
        dir.display(),
        replay(seed)
    )
}

/// The working directory of a case (kept when it fails).
pub fn case_dir(seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-torture-{seed}-{}", std::process::id()))
}
