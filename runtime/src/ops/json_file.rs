//! Line-delimited JSON files as a replayable source. Each file is a split whose checkpointed
//! position is a byte offset plus the largest event time read from it; a restore seeks there
//! and reads on.
//!
//! Event time is tracked per split: a subtask's watermark is the minimum over its unfinished
//! files of (largest timestamp read − `maxOutOfOrderness` − 1), and a file not read yet holds
//! it back entirely. So a record within `maxOutOfOrderness` of the largest timestamp before it
//! in its own file is never late downstream, whichever subtask reads which file in which order
//! (after any restore or rescale). The subtask reads next from the unfinished file with the
//! smallest event time so far, which keeps the watermark moving and open windows few.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{ErrorPolicy, JsonFileSpec};

use super::{OpContext, OpError, Source, SourcePoll};
use crate::record::{Batch, Record};
use crate::value::Value;

/// Offset of a file read to its end.
const DONE: u64 = u64::MAX;

/// At most this many files are kept open per subtask; others are reopened (and seeked) on demand.
const MAX_OPEN_FILES: usize = 32;

/// Checkpointed position in one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilePosition {
    file: String,
    offset: u64,
    /// Largest event time read from the file so far (`i64::MIN`: none yet).
    #[serde(default = "no_time")]
    max_ts: i64,
}

fn no_time() -> i64 {
    i64::MIN
}

impl FilePosition {
    fn done(&self) -> bool {
        self.offset == DONE
    }
}

/// A subtask of the JSON file source.
pub struct JsonFileSource {
    spec: JsonFileSpec,
    ctx: OpContext,
    policy: ErrorPolicy,
    positions: Vec<FilePosition>,
    /// Open readers, parallel to `positions`.
    readers: Vec<Option<BufReader<File>>>,
    open: usize,
    line: String,
    malformed: u64,
}

/// The files a jsonFile source at `path` reads, in name order: the file itself, or the `.json`
/// and `.jsonl` files of the directory. A path that is neither is an error naming the node.
pub fn input_files(node: &str, path: &str) -> Result<Vec<PathBuf>, OpError> {
    let root = PathBuf::from(path);
    let io = |op: &'static str, source: std::io::Error| OpError::Io {
        node: node.into(),
        op,
        path: root.display().to_string(),
        source,
    };
    if root.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .map_err(|e| io("list", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "jsonl"))
            .collect();
        files.sort();
        Ok(files)
    } else if root.is_file() {
        Ok(vec![root])
    } else {
        Err(io("open", std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")))
    }
}

impl JsonFileSource {
    /// A source subtask; call [`Source::open`] before polling.
    pub fn new(spec: JsonFileSpec, ctx: OpContext, policy: ErrorPolicy) -> JsonFileSource {
        JsonFileSource {
            spec,
            ctx,
            policy,
            positions: Vec::new(),
            readers: Vec::new(),
            open: 0,
            line: String::new(),
            malformed: 0,
        }
    }

    fn io(&self, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpError + use<> {
        let (node, path) = (self.ctx.node.clone(), path.display().to_string());
        move |source| OpError::Io { node, op, path, source }
    }

    /// The files of the source, in name order.
    fn files(&self) -> Result<Vec<PathBuf>, OpError> {
        input_files(&self.ctx.node, &self.spec.path)
    }

    fn parse_line(&self, offset: u64, file: &str) -> Result<Option<Record>, OpError> {
        let text = self.line.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let malformed = |message: String| OpError::Malformed {
            node: self.ctx.node.clone(),
            location: format!("{file}, byte {offset}"),
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let ts = match &self.spec.timestamp_field {
            None => 0,
            Some(field) => value
                .get_path(field)
                .and_then(Value::as_i64)
                .ok_or_else(|| malformed(format!("no integer timestamp at {field:?}")))?,
        };
        Ok(Some(Record { key: Value::Null, ts, value }))
    }

    /// The reader of split `idx`, opened and positioned when it is not open.
    fn reader(&mut self, idx: usize) -> Result<&mut BufReader<File>, OpError> {
        if self.readers[idx].is_none() {
            if self.open >= MAX_OPEN_FILES
                && let Some(other) = self.readers.iter_mut().find(|r| r.is_some())
            {
                *other = None;
                self.open -= 1;
            }
            let path = PathBuf::from(&self.positions[idx].file);
            let mut f = File::open(&path).map_err(self.io("open", &path))?;
            f.seek(SeekFrom::Start(self.positions[idx].offset)).map_err(self.io("seek", &path))?;
            self.readers[idx] = Some(BufReader::with_capacity(1 << 16, f));
            self.open += 1;
        }
        let node = self.ctx.node.clone();
        self.readers[idx].as_mut().ok_or_else(|| OpError::External { node, message: "file reader vanished".into() })
    }

    fn close(&mut self, idx: usize) {
        if self.readers[idx].take().is_some() {
            self.open -= 1;
        }
    }

    /// Reads up to `max` records of split `idx` into `out`. `Ok(None)` when the split ends in
    /// a partial line (still being written): come back later.
    fn read_split(&mut self, idx: usize, out: &mut Batch, max: usize) -> Result<Option<usize>, OpError> {
        let mut produced = 0;
        while produced < max {
            let mut line = std::mem::take(&mut self.line);
            line.clear();
            let read = self.reader(idx)?.read_line(&mut line).map_err({
                let (node, path) = (self.ctx.node.clone(), self.positions[idx].file.clone());
                move |source| OpError::Io { node, op: "read", path, source }
            });
            self.line = line;
            let n = read?;
            if n == 0 {
                self.positions[idx].offset = DONE;
                self.close(idx);
                return Ok(Some(produced));
            }
            if !self.line.ends_with('\n') {
                // A partial last line: reopen at the line's start next time.
                self.close(idx);
                return if produced > 0 { Ok(Some(produced)) } else { Ok(None) };
            }
            let offset = self.positions[idx].offset;
            self.positions[idx].offset += n as u64;
            match self.parse_line(offset, &self.positions[idx].file) {
                Ok(Some(r)) => {
                    let pos = &mut self.positions[idx];
                    pos.max_ts = pos.max_ts.max(r.ts);
                    out.push(r);
                    produced += 1;
                }
                Ok(None) => {}
                Err(e) if self.policy.skips() => {
                    self.malformed += 1;
                    tracing::warn!(error = %e, "skipping malformed record");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(produced))
    }
}

impl Source for JsonFileSource {
    fn open(&mut self, restored: Option<Vec<serde_json::Value>>) -> Result<(), OpError> {
        self.positions = match restored {
            None => self
                .files()?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % self.ctx.parallelism == self.ctx.subtask)
                .map(|(_, p)| FilePosition { file: p.display().to_string(), offset: 0, max_ts: i64::MIN })
                .collect(),
            Some(state) => state
                .into_iter()
                .map(|v| {
                    serde_json::from_value(v).map_err(|e| OpError::Restore {
                        node: self.ctx.node.clone(),
                        message: format!("file position: {e}"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        self.readers = self.positions.iter().map(|_| None).collect();
        self.open = 0;
        Ok(())
    }

    fn poll(&mut self, out: &mut Batch, max: usize) -> Result<SourcePoll, OpError> {
        // Unfinished splits, least event time first (a split not read yet comes first).
        let mut order: Vec<usize> = (0..self.positions.len()).filter(|&i| !self.positions[i].done()).collect();
        if order.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        order.sort_by_key(|&i| (self.positions[i].max_ts, i));
        let mut produced = 0;
        for idx in order {
            match self.read_split(idx, out, max - produced)? {
                Some(n) => produced += n,
                None => continue, // still being written: try the next split
            }
            if produced >= max || !self.positions[idx].done() {
                break;
            }
        }
        if produced > 0 || self.positions.iter().all(FilePosition::done) {
            Ok(SourcePoll::Data)
        } else {
            Ok(SourcePoll::Idle(Duration::from_millis(50)))
        }
    }

    fn watermark(&self) -> i64 {
        let Some(least) = self.positions.iter().filter(|p| !p.done()).map(|p| p.max_ts).min() else {
            return i64::MAX;
        };
        if least == i64::MIN {
            return i64::MIN;
        }
        let lag = self.spec.max_out_of_orderness.map_or(0, |d| d.as_millis() as i64);
        least.saturating_sub(lag).saturating_sub(1)
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Vec<serde_json::Value>, OpError> {
        self.positions
            .iter()
            .map(|p| {
                serde_json::to_value(p).map_err(|e| OpError::Serialize {
                    node: self.ctx.node.clone(),
                    what: "a file position",
                    message: e.to_string(),
                })
            })
            .collect()
    }

    fn malformed_count(&self) -> u64 {
        self.malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::KeyGroupRange;

    fn source(path: &Path, policy: ErrorPolicy) -> JsonFileSource {
        let ctx = OpContext {
            node: "in".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            key_groups: KeyGroupRange { start: 0, end: 127 },
            run_id: "r".into(),
            job: "job".into(),
            checkpointing: true,
            max_concurrent_checkpoints: 1,
            io: None,
        };
        let spec = JsonFileSpec {
            path: path.display().to_string(),
            timestamp_field: Some("ts".into()),
            max_out_of_orderness: None,
        };
        JsonFileSource::new(spec, ctx, policy)
    }

    fn read_all(s: &mut JsonFileSource) -> Result<Vec<i64>, OpError> {
        let mut out = Vec::new();
        let mut batch = Vec::new();
        loop {
            batch.clear();
            let status = s.poll(&mut batch, 2)?;
            out.extend(batch.iter().filter_map(|r| r.value.get_path("n").and_then(Value::as_i64)));
            if status == SourcePoll::Finished {
                return Ok(out);
            }
        }
    }

    #[test]
    fn resumes_from_a_checkpointed_byte_offset() {
        let dir = tempfile::tempdir().expect("tmp");
        let lines: String = (0..10).map(|n| format!("{{\"n\":{n},\"ts\":{n}}}\n")).collect();
        std::fs::write(dir.path().join("a.jsonl"), lines).expect("write");
        let mut s = source(dir.path(), ErrorPolicy::Fail);
        s.open(None).expect("open");
        let mut batch = Vec::new();
        s.poll(&mut batch, 4).expect("poll");
        let state = s.snapshot(CheckpointId(1)).expect("snap");
        let mut again = source(dir.path(), ErrorPolicy::Fail);
        again.open(Some(state)).expect("restore");
        assert_eq!(read_all(&mut again).expect("read"), (4..10).collect::<Vec<_>>());
    }

    fn subtask(path: &Path, subtask: u32, parallelism: u32, lag_ms: u64) -> JsonFileSource {
        let mut s = source(path, ErrorPolicy::Fail);
        s.ctx.subtask = subtask;
        s.ctx.parallelism = parallelism;
        s.spec.max_out_of_orderness = Some(Duration::from_millis(lag_ms));
        s
    }

    /// Random files whose records are out of order by at most `lag` within each file; random
    /// parallelism before and after a snapshot at a random point. Whatever the dealing, no
    /// subtask ever emits a record at or below a watermark it (or the job, at the snapshot)
    /// reported, and every record comes exactly once.
    #[test]
    fn no_record_falls_behind_a_watermark_whatever_the_dealing_and_rescale() {
        use rand::{Rng, SeedableRng};
        for seed in 0..40u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().expect("tmp");
            let lag = rng.random_range(0..50u64);
            let files = rng.random_range(1..9);
            let mut n = 0;
            for f in 0..files {
                // Later files hold later times, as in a time-partitioned export.
                let mut ts = f * 10_000 + rng.random_range(0..5_000);
                let mut text = String::new();
                for _ in 0..rng.random_range(0..300) {
                    ts += rng.random_range(0..20);
                    let t = ts - rng.random_range(0..=lag as i64);
                    text.push_str(&format!("{{\"n\":{n},\"ts\":{t}}}\n"));
                    n += 1;
                }
                std::fs::write(dir.path().join(format!("f{f}.jsonl")), text).expect("write");
            }
            // (n, ts) of every record read, in order.
            let mut seen: Vec<(i64, i64)> = Vec::new();
            let read = |s: &mut JsonFileSource, polls: usize, seen: &mut Vec<(i64, i64)>| {
                let mut wm = i64::MIN;
                for _ in 0..polls {
                    let mut batch = Vec::new();
                    let status = s.poll(&mut batch, 7).expect("poll");
                    for r in &batch {
                        assert!(r.ts > wm, "seed {seed}: record at {} after watermark {wm}", r.ts);
                        seen.push((r.value.get_path("n").and_then(Value::as_i64).unwrap_or(-1), r.ts));
                    }
                    wm = wm.max(s.watermark());
                    if status == SourcePoll::Finished {
                        break;
                    }
                }
                wm
            };
            let p1 = rng.random_range(1..4);
            let mut state = Vec::new();
            let mut job_wm = i64::MAX;
            for i in 0..p1 {
                let mut s = subtask(dir.path(), i, p1, lag);
                s.open(None).expect("open");
                job_wm = job_wm.min(read(&mut s, rng.random_range(0..60), &mut seen));
                state.extend(s.snapshot(CheckpointId(1)).expect("snapshot"));
            }
            let before = seen.len();
            let p2 = rng.random_range(1..5);
            for i in 0..p2 {
                let share: Vec<_> = state.iter().skip(i as usize).step_by(p2 as usize).cloned().collect();
                let mut s = subtask(dir.path(), i, p2, lag);
                s.open(Some(share)).expect("restore");
                read(&mut s, usize::MAX, &mut seen);
                assert_eq!(s.watermark(), i64::MAX, "seed {seed}: subtask {i} finished");
            }
            for &(n, ts) in &seen[before..] {
                assert!(ts > job_wm, "seed {seed}: record {n} at {ts} replayed behind the job's watermark {job_wm}");
            }
            let mut ns: Vec<i64> = seen.iter().map(|(n, _)| *n).collect();
            ns.sort_unstable();
            assert_eq!(ns, (0..n).collect::<Vec<_>>(), "seed {seed}: every record exactly once");
        }
    }

    #[test]
    fn malformed_lines_fail_or_are_skipped_per_policy() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a.jsonl"), "{\"n\":1,\"ts\":1}\nnot json\n{\"n\":2,\"ts\":2}\n").expect("w");
        let mut strict = source(dir.path(), ErrorPolicy::Fail);
        strict.open(None).expect("open");
        let err = read_all(&mut strict).expect_err("fails");
        assert!(err.to_string().contains("a.jsonl, byte 15"), "{err}");
        let mut lenient = source(dir.path(), ErrorPolicy::Skip);
        lenient.open(None).expect("open");
        assert_eq!(read_all(&mut lenient).expect("reads"), vec![1, 2]);
        assert_eq!(lenient.malformed_count(), 1);
    }
}
