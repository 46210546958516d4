//! `sluice-runtime` as a user meets it (issue 17, "errors said once, in the user's words"):
//! `validate` finds everything `run` would refuse, every problem once with its field and node;
//! a failing run says its error once in node terms; each kind of failure has its exit status;
//! `bench` never deletes a directory it did not create; logs carry no colour codes off a
//! terminal; a cancelled run says how to resume and a resumed one what it restored.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sluice_crds::contract::control::{EXIT_FAILURE, EXIT_INVALID_JOB, EXIT_USAGE};

fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-runtime"));
    cmd.args(args).env("RUST_LOG", "warn");
    cmd
}

fn run_cli(args: &[&str]) -> Output {
    cli(args).output().expect("run sluice-runtime")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tiny xorshift generator: reproducible cases from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The defects a document can have that only `run` used to find (or nobody, for the
/// pipeline's parallelism), each with the one line `validate` must report for it.
const DEFECTS: usize = 6;

/// A job `src → m → f → k → out` with the defects of `mask`, and the lines expected for them.
fn document(dir: &Path, mask: u32) -> (String, Vec<String>) {
    let has = |d: usize| mask & (1 << d) != 0;
    let input = if has(1) { dir.join("missing.jsonl") } else { dir.join("in.jsonl") };
    let output = if has(5) { dir.join("a-file") } else { dir.join("out") };
    let yaml = format!(
        r#"name: t
pipeline:
  maxParallelism: 64
  parallelism: {}
  nodes:
    - {{id: src, jsonFile: {{path: "{}"}}}}
    - {{id: m, map: {{expr: "{}"}}}}
    - {{id: f, filter: {{expr: "{}"}}}}
    - {{id: k, keyBy: {{expr: "{}"}}}}
    - {{id: out, fileSink: {{path: "{}"}}}}
  edges:
    - {{from: src, to: m}}
    - {{from: m, to: f}}
    - {{from: f, to: k}}
    - {{from: k, to: out}}
"#,
        if has(0) { 65 } else { 1 },
        input.display(),
        if has(2) { "value +" } else { "value" },
        if has(3) { "frob(value)" } else { "value != null" },
        if has(4) { "user + 1" } else { "value" },
        output.display(),
    );
    let all = [
        "pipeline.parallelism: must be ≤ maxParallelism (64)".to_string(),
        format!("pipeline.nodes[0].jsonFile.path: node src: open {}: no such file or directory", input.display()),
        "pipeline.nodes[1].map.expr: node m: expression \"value +\": 1:8: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}".to_string(),
        "pipeline.nodes[2].filter.expr: node f: expression \"frob(value)\": unknown function(s) [\"frob\"]".to_string(),
        "pipeline.nodes[3].keyBy.expr: node k: expression \"user + 1\": unknown variable(s) [\"user\"]; use value, key or ts".to_string(),
        format!(
            "pipeline.nodes[4].fileSink.path: node out: invalid configuration: {} is an existing file, not a directory",
            output.display()
        ),
    ];
    (yaml, (0..DEFECTS).filter(|&d| has(d)).map(|d| all[d].clone()).collect())
}

/// What the binary prints for an invalid document at `path` with `lines`.
fn invalid_message(path: &Path, lines: &[String]) -> String {
    match lines {
        [one] => format!("error: invalid job document {}: {one}\n", path.display()),
        _ => format!(
            "error: invalid job document {}: {} problems:\n{}",
            path.display(),
            lines.len(),
            lines.iter().map(|l| format!("  {l}\n")).collect::<String>()
        ),
    }
}

#[test]
fn validate_and_run_report_exactly_the_problems_run_would_meet_once_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "{\"n\": 1}\n").expect("input");
    std::fs::write(dir.path().join("a-file"), "not a directory").expect("file");
    let job = dir.path().join("job.yaml");
    let seed = 0x5eed_0017 ^ u64::from(std::process::id());
    let mut rng = Rng(seed);
    // Every single defect, then random mixes.
    let masks: Vec<u32> = (0..DEFECTS as u32).map(|d| 1 << d).chain((0..10).map(|_| rng.next() as u32 % 64)).collect();
    for mask in masks {
        let (yaml, lines) = document(dir.path(), mask);
        std::fs::write(&job, &yaml).expect("write job");
        let job_arg = job.to_str().expect("utf-8 path");
        let validated = run_cli(&["validate", job_arg]);
        if lines.is_empty() {
            assert!(validated.status.success(), "seed {seed:#x} mask {mask:#b}: {}", stderr(&validated));
            continue;
        }
        let want = invalid_message(&job, &lines);
        assert_eq!(stderr(&validated), want, "seed {seed:#x} mask {mask:#b}");
        assert_eq!(validated.status.code(), Some(i32::from(EXIT_INVALID_JOB)));
        // `run` refuses the same document with the same words, before creating anything.
        let ran = run_cli(&["run", job_arg, "--no-restore"]);
        assert_eq!(stderr(&ran), want, "seed {seed:#x} mask {mask:#b}");
        assert_eq!(ran.status.code(), Some(i32::from(EXIT_INVALID_JOB)));
        assert!(!dir.path().join("out").exists(), "an invalid run created its sink directory");
    }
}

/// A jsonFile directory of two files read at parallelism 2 (file i by subtask i), one line of
/// one file malformed: the run fails naming node, subtask, file and offset, each once.
#[test]
fn a_failing_run_says_its_error_once_naming_node_and_subtask() {
    let seed = 0xfa11 ^ u64::from(std::process::id());
    let mut rng = Rng(seed);
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in");
        std::fs::create_dir(&input).expect("input dir");
        let (bad_file, bad_line) = (rng.next() % 2, rng.next() % 50);
        let mut bad = (String::new(), 0);
        for file in 0..2 {
            let mut text = String::new();
            for line in 0..50 {
                if (file, line) == (bad_file, bad_line) {
                    bad = (input.join(format!("{file}.jsonl")).display().to_string(), text.len());
                    text += "{oops\n";
                } else {
                    text += &format!("{{\"n\": {line}}}\n");
                }
            }
            std::fs::write(input.join(format!("{file}.jsonl")), text).expect("input file");
        }
        let job = dir.path().join("job.yaml");
        let yaml = format!(
            "name: t\npipeline:\n  parallelism: 2\n  nodes:\n    - {{id: src, jsonFile: {{path: \"{}\"}}}}\n    - {{id: out, discard: {{}}}}\n  edges:\n    - {{from: src, to: out}}\n",
            input.display()
        );
        std::fs::write(&job, yaml).expect("write job");
        let out = run_cli(&["run", job.to_str().expect("utf-8 path")]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(i32::from(EXIT_FAILURE)), "seed {seed:#x}: {err}");
        let line = err.lines().find(|l| l.starts_with("error: ")).expect("an error line");
        assert_eq!(
            line,
            format!(
                "error: job t failed: node src (subtask {bad_file}): malformed record at {}, byte {}: key must be a string at line 1 column 2",
                bad.0, bad.1
            ),
            "seed {seed:#x}"
        );
        for piece in ["job t failed", "node src", "malformed record", bad.0.as_str(), "key must be a string"] {
            assert_eq!(err.matches(piece).count(), 1, "{piece:?} said more than once: {err}");
        }
        assert!(!err.contains("chain"), "internal task names: {err}");
    }
}

#[test]
fn usage_invalid_document_and_failure_have_their_own_exit_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let code = |o: Output| o.status.code().expect("exited");
    assert_eq!(code(run_cli(&["run"])), i32::from(EXIT_USAGE), "a missing argument");
    assert_eq!(code(run_cli(&["validate", "x.yaml", "--bogus"])), i32::from(EXIT_USAGE), "an unknown flag");
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, "name: t\npipeline: {nodes: []}\n").expect("write");
    let job = job.to_str().expect("utf-8 path");
    assert_eq!(code(run_cli(&["validate", job])), i32::from(EXIT_INVALID_JOB));
    assert_eq!(code(run_cli(&["run", job])), i32::from(EXIT_INVALID_JOB));
    assert_eq!(code(run_cli(&["validate", "/nonexistent/job.yaml"])), i32::from(EXIT_FAILURE), "unreadable");
    // Data-loss risk (3): restore_rules.rs `fallback_past_committed_output_is_refused_until_allowed`
    // and kafka_connectors.rs; a cancel past its grace (4): signals.rs's unit test.
    assert_eq!((EXIT_USAGE, EXIT_INVALID_JOB, EXIT_FAILURE), (2, 65, 1), "as the README documents");
}

#[test]
fn bench_refuses_a_directory_it_did_not_create_and_reuses_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bench =
        |d: &Path| run_cli(&["bench", "--records", "2000", "--keys", "10", "--dir", d.to_str().expect("utf-8")]);
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::fs::write(theirs.join("precious.txt"), "keep me").expect("write");
    let refused = bench(&theirs);
    assert_eq!(refused.status.code(), Some(i32::from(EXIT_FAILURE)));
    assert!(stderr(&refused).contains("not created by `sluice-runtime bench`"), "{}", stderr(&refused));
    assert_eq!(std::fs::read_to_string(theirs.join("precious.txt")).expect("still there"), "keep me");

    let ours = dir.path().join("ours");
    assert!(bench(&ours).status.success());
    assert!(ours.join(".sluice-bench").is_file(), "the marker of a directory bench created");
    std::fs::write(ours.join("leftover"), "x").expect("write");
    let again = bench(&ours);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!ours.join("leftover").exists(), "its own directory is emptied");
    // An empty directory is taken over (and marked).
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert!(bench(&empty).status.success());
    assert!(empty.join(".sluice-bench").is_file());
}

/// The second run of a finished job logs its restore at INFO: into a file, without colours.
#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("job.yaml");
    let yaml = format!(
        "name: fin\ncheckpointing: {{interval: 50ms, storage: {{uri: \"file://{}\"}}}}\npipeline:\n  nodes:\n    - {{id: gen, generator: {{count: 1000}}}}\n    - {{id: out, fileSink: {{path: \"{}\"}}}}\n  edges:\n    - {{from: gen, to: out}}\n",
        dir.path().join("ckpt").display(),
        dir.path().join("out").display()
    );
    std::fs::write(&job, yaml).expect("write job");
    let log = dir.path().join("stderr.log");
    for _ in 0..2 {
        let status = cli(&["run", job.to_str().expect("utf-8 path")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .status()
            .expect("run sluice-runtime");
        assert!(status.success());
    }
    let text = std::fs::read_to_string(&log).expect("read log");
    assert!(text.contains("INFO") && text.contains("restoring"), "the run logged nothing: {text}");
    assert!(!text.contains("\x1b["), "colour codes in a log file: {text:?}");
}

/// Waits for a line of `lines` that `want` accepts; panics at the end of output.
fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, want: impl Fn(&str) -> bool) -> String {
    for line in lines {
        let line = line.expect("read stdout");
        if want(&line) {
            return line;
        }
    }
    panic!("the output ended before the line looked for");
}

fn newest_checkpoint(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("manifests"))
        .expect("manifests")
        .filter_map(|e| sluice_runtime::storage::layout::parse_manifest_key(&e.ok()?.file_name().to_string_lossy()))
        .map(|c| c.0)
        .max()
        .expect("a checkpoint")
}

/// Ctrl-C: the run ends with the command that resumes it, from the checkpoint it names (the
/// newest in storage); the resumed run's progress says which checkpoint it restored.
#[test]
fn ctrl_c_says_how_to_resume_and_progress_says_what_was_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = dir.path().join("ckpt");
    let job: PathBuf = dir.path().join("job.yaml");
    let yaml = format!(
        "name: slow\ncheckpointing: {{interval: 100ms, storage: {{uri: \"file://{}\"}}}}\npipeline:\n  nodes:\n    - {{id: gen, generator: {{count: 100000000, ratePerSecond: 2000}}}}\n    - {{id: out, fileSink: {{path: \"{}\"}}}}\n  edges:\n    - {{from: gen, to: out}}\n",
        ckpt.display(),
        dir.path().join("out").display()
    );
    std::fs::write(&job, yaml).expect("write job");
    let job_arg = job.to_str().expect("utf-8 path");
    let interrupt = |expect_restored: Option<u64>| {
        let mut child =
            cli(&["run", job_arg, "--progress"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("start");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let progress = wait_for(&mut lines, |l| l.contains("checkpoints this run: ") && !l.contains(": 0 completed"));
        if let Some(id) = expect_restored {
            assert!(progress.ends_with(&format!("; restored from checkpoint #{id}")), "{progress}");
        }
        let int = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
        assert!(int.success());
        let rest: Vec<String> = lines.map(|l| l.expect("read")).collect();
        assert!(child.wait().expect("wait").success(), "a cancelled run exits 0");
        let newest = newest_checkpoint(&ckpt);
        assert_eq!(
            rest.last().map(String::as_str),
            Some(
                format!("to resume from checkpoint {newest} (the latest), run: sluice-runtime run {job_arg}").as_str()
            ),
            "{rest:?}"
        );
        newest
    };
    let first = interrupt(None);
    interrupt(Some(first));
}

/// `--restore` of a checkpoint another job wrote is refused, saying so once, unless
/// `--allow-non-restored-state` (restore_fit.rs covers the library side and removed nodes).
#[test]
fn restoring_another_jobs_snapshot_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = |name: &str| {
        let path = dir.path().join(format!("{name}.yaml"));
        let yaml = format!(
            "name: {name}\ncheckpointing: {{interval: 50ms, storage: {{uri: \"file://{}\"}}}}\npipeline:\n  nodes:\n    - {{id: gen, generator: {{count: 1000}}}}\n    - {{id: out, fileSink: {{path: \"{}\"}}}}\n  edges:\n    - {{from: gen, to: out}}\n",
            dir.path().join(name).join("ckpt").display(),
            dir.path().join(name).join("out").display()
        );
        std::fs::write(&path, yaml).expect("write job");
        path.to_str().expect("utf-8 path").to_string()
    };
    let (first, second) = (job("first"), job("second"));
    assert!(run_cli(&["run", &first]).status.success());
    let first_ckpt = dir.path().join("first").join("ckpt");
    let id = newest_checkpoint(&first_ckpt);
    let manifest = format!(
        "file://{}/{}",
        first_ckpt.display(),
        sluice_runtime::storage::layout::manifest_key(sluice_crds::CheckpointId(id))
    );
    let refused = run_cli(&["run", &second, "--restore", &manifest]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(i32::from(EXIT_FAILURE)), "{err}");
    assert_eq!(err.matches(r#"written by job "first", not "second""#).count(), 1, "{err}");
    assert_eq!(err.matches("--allow-non-restored-state").count(), 1, "{err}");
    assert!(!dir.path().join("second").join("out").exists(), "a refused run writes nothing");
    let allowed = run_cli(&["run", &second, "--restore", &manifest, "--allow-non-restored-state"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
}

/// `run` serves its control endpoint where the client commands look (127.0.0.1:9090) without
/// being asked; when that address is taken (another run, anything) the run goes on without
/// one and says so once, instead of failing.
#[test]
fn a_run_whose_default_control_address_is_taken_says_so_once_and_runs() {
    // Held for the whole test: taken either by us or by whoever has it already.
    let _held = std::net::TcpListener::bind("127.0.0.1:9090");
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("job.yaml");
    let yaml = "name: t\npipeline:\n  nodes:\n    - {id: gen, generator: {count: 100}}\n    - {id: out, discard: {}}\n  edges:\n    - {from: gen, to: out}\n";
    std::fs::write(&job, yaml).expect("write job");
    let out = run_cli(&["run", job.to_str().expect("utf-8 path")]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let note = "note: no control endpoint for this run: 127.0.0.1:9090 is not free";
    assert_eq!(err.matches(note).count(), 1, "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("job t finished: 100 source records"), "{err}");
    // Asked for explicitly, an address that is taken fails the run before it starts.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = taken.local_addr().expect("addr").to_string();
    let refused = run_cli(&["run", job.to_str().expect("utf-8 path"), "--control-addr", &addr]);
    assert_eq!(refused.status.code(), Some(i32::from(EXIT_FAILURE)), "{}", stderr(&refused));
    assert!(stderr(&refused).contains(&format!("binding the control endpoint to {addr}")), "{}", stderr(&refused));
}
