//! Line-delimited JSON files as a replayable source. Each file is a split whose checkpointed
//! position is a byte offset; a restore seeks there and reads on.

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

/// Checkpointed position in one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FilePosition {
    file: String,
    offset: u64,
}

/// A subtask of the JSON file source.
pub struct JsonFileSource {
    spec: JsonFileSpec,
    ctx: OpContext,
    policy: ErrorPolicy,
    positions: Vec<FilePosition>,
    current: Option<(usize, BufReader<File>)>,
    line: String,
    max_ts: i64,
    malformed: u64,
}

impl JsonFileSource {
    /// A source subtask; call [`Source::open`] before polling.
    pub fn new(spec: JsonFileSpec, ctx: OpContext, policy: ErrorPolicy) -> JsonFileSource {
        JsonFileSource {
            spec,
            ctx,
            policy,
            positions: Vec::new(),
            current: None,
            line: String::new(),
            max_ts: i64::MIN,
            malformed: 0,
        }
    }

    fn io(&self, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpError + use<> {
        let (node, path) = (self.ctx.node.clone(), path.display().to_string());
        move |source| OpError::Io { node, op, path, source }
    }

    /// The files of the source, in name order.
    fn files(&self) -> Result<Vec<PathBuf>, OpError> {
        let root = PathBuf::from(&self.spec.path);
        if root.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
                .map_err(self.io("list", &root))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "jsonl"))
                .collect();
            files.sort();
            Ok(files)
        } else if root.is_file() {
            Ok(vec![root])
        } else {
            Err(OpError::Io {
                node: self.ctx.node.clone(),
                op: "open",
                path: root.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            })
        }
    }

    fn parse_line(&self, offset: u64, file: &str) -> Result<Option<Record>, OpError> {
        let text = self.line.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let malformed = |message: String| OpError::Malformed {
            node: self.ctx.node.clone(),
            location: format!("{file}:{offset}"),
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
}

impl Source for JsonFileSource {
    fn open(&mut self, restored: Option<Vec<serde_json::Value>>) -> Result<(), OpError> {
        self.positions = match restored {
            None => self
                .files()?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u32 % self.ctx.parallelism == self.ctx.subtask)
                .map(|(_, p)| FilePosition { file: p.display().to_string(), offset: 0 })
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
        Ok(())
    }

    fn poll(&mut self, out: &mut Batch, max: usize) -> Result<SourcePoll, OpError> {
        let mut produced = 0;
        while produced < max {
            if self.current.is_none() {
                let Some(idx) = self.positions.iter().position(|p| p.offset != u64::MAX) else {
                    return Ok(if produced > 0 { SourcePoll::Data } else { SourcePoll::Finished });
                };
                let pos = &self.positions[idx];
                let path = PathBuf::from(&pos.file);
                let mut f = File::open(&path).map_err(self.io("open", &path))?;
                f.seek(SeekFrom::Start(pos.offset)).map_err(self.io("seek", &path))?;
                self.current = Some((idx, BufReader::with_capacity(1 << 16, f)));
            }
            let Some((idx, reader)) = self.current.as_mut() else { continue };
            let idx = *idx;
            self.line.clear();
            let n = reader.read_line(&mut self.line).map_err({
                let (node, path) = (self.ctx.node.clone(), self.positions[idx].file.clone());
                move |source| OpError::Io { node, op: "read", path, source }
            })?;
            if n == 0 {
                self.positions[idx].offset = u64::MAX; // done
                self.current = None;
                continue;
            }
            if !self.line.ends_with('\n') {
                // A partial last line: the file is still being written. Come back later.
                self.current = None;
                return Ok(if produced > 0 { SourcePoll::Data } else { SourcePoll::Idle(Duration::from_millis(50)) });
            }
            let offset = self.positions[idx].offset;
            self.positions[idx].offset += n as u64;
            match self.parse_line(offset, &self.positions[idx].file.clone()) {
                Ok(Some(r)) => {
                    self.max_ts = self.max_ts.max(r.ts);
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
        Ok(SourcePoll::Data)
    }

    fn watermark(&self) -> i64 {
        if self.positions.iter().all(|p| p.offset == u64::MAX) {
            return i64::MAX;
        }
        let lag = self.spec.max_out_of_orderness.map_or(0, |d| d.as_millis() as i64);
        self.max_ts.saturating_sub(lag).saturating_sub(1)
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<Vec<serde_json::Value>, OpError> {
        Ok(self.positions.iter().map(|p| serde_json::json!({"file": p.file, "offset": p.offset})).collect())
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

    #[test]
    fn malformed_lines_fail_or_are_skipped_per_policy() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a.jsonl"), "{\"n\":1,\"ts\":1}\nnot json\n{\"n\":2,\"ts\":2}\n").expect("w");
        let mut strict = source(dir.path(), ErrorPolicy::Fail);
        strict.open(None).expect("open");
        let err = read_all(&mut strict).expect_err("fails");
        assert!(err.to_string().contains("a.jsonl:15"), "{err}");
        let mut lenient = source(dir.path(), ErrorPolicy::Skip);
        lenient.open(None).expect("open");
        assert_eq!(read_all(&mut lenient).expect("reads"), vec![1, 2]);
        assert_eq!(lenient.malformed_count(), 1);
    }
}
