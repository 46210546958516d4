//! The exactly-once file sink. A transaction is a hidden temp file in the target directory:
//! begin creates `.<node>-<subtask>-<run>-<seq>.inprogress`; pre-commit flushes, fsyncs and
//! closes it; commit renames it to `part-<node>-<subtask>-<run>-<seq>.jsonl` (and fsyncs the
//! directory); abort deletes it. Readers only ever look at `part-*` files.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::connectors::two_phase::{RecoveryContext, SinkRecovery, TwoPhaseCommit, committable_txn};
use crate::ops::OpError;
use crate::record::Batch;

/// Suffix of a transaction's temp file.
pub const TEMP_SUFFIX: &str = ".inprogress";

/// One subtask of a file sink.
pub struct FileSink {
    node: String,
    dir: PathBuf,
    subtask: u32,
    run_id: String,
    seq: u64,
}

/// An open file transaction.
pub struct FileTxn {
    temp: PathBuf,
    target: PathBuf,
    writer: BufWriter<File>,
}

/// A pre-committed file: rename `temp` to `target` to commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCommittable {
    /// The hidden, fsynced temp file.
    pub temp: String,
    /// The visible name it gets on commit.
    pub target: String,
}

fn io_err(node: &str, op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpError + use<> {
    let (node, path) = (node.to_string(), path.display().to_string());
    move |source| OpError::Io { node, op, path, source }
}

/// Deletes a transaction's temp file (already gone is fine).
fn remove_temp(node: &str, temp: &Path) -> Result<(), OpError> {
    fs::remove_file(temp)
        .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
        .map_err(io_err(node, "delete", temp))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FileSink {
    /// A sink subtask writing into `dir` (created if missing).
    pub fn new(node: &str, dir: impl Into<PathBuf>, subtask: u32, run_id: &str) -> Result<FileSink, OpError> {
        let dir = dir.into();
        check_dir(node, &dir)?;
        fs::create_dir_all(&dir).map_err(io_err(node, "create directory", &dir))?;
        Ok(FileSink { node: node.into(), dir, subtask, run_id: run_id.into(), seq: 0 })
    }
}

/// Checks that a file sink can use `dir` as its directory: missing (it is created) or a
/// directory, not an existing file.
pub fn check_dir(node: &str, dir: &Path) -> Result<(), OpError> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(OpError::Config {
            node: node.into(),
            message: format!("{} is an existing file, not a directory", dir.display()),
        }),
        _ => Ok(()),
    }
}

/// Commits one pre-committed file, idempotently.
fn commit_file(node: &str, checkpoint: u64, c: &FileCommittable) -> Result<bool, OpError> {
    let (temp, target) = (Path::new(&c.temp), Path::new(&c.target));
    match fs::rename(temp, target) {
        Ok(()) => {
            sync_dir(target.parent().unwrap_or(Path::new("."))).map_err(io_err(node, "sync directory", target))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.exists() => Ok(false), // already committed
        Err(e) => Err(OpError::Commit {
            node: node.into(),
            checkpoint,
            message: format!(
                "rename {} → {}: {e} (pre-committed data is missing: possible data loss)",
                c.temp, c.target
            ),
        }),
    }
}

impl TwoPhaseCommit for FileSink {
    type Txn = FileTxn;
    type Committable = FileCommittable;

    fn begin(&mut self) -> Result<FileTxn, OpError> {
        self.seq += 1;
        let stem = format!("{}-{}-{}-{:06}", self.node, self.subtask, self.run_id, self.seq);
        let temp = self.dir.join(format!(".{stem}{TEMP_SUFFIX}"));
        let target = self.dir.join(format!("part-{stem}.jsonl"));
        let file =
            OpenOptions::new().write(true).create_new(true).open(&temp).map_err(io_err(&self.node, "create", &temp))?;
        Ok(FileTxn { temp, target, writer: BufWriter::with_capacity(1 << 16, file) })
    }

    fn write(&mut self, txn: &mut FileTxn, batch: &Batch) -> Result<(), OpError> {
        for r in batch {
            serde_json::to_writer(&mut txn.writer, r)
                .map_err(std::io::Error::other)
                .and_then(|()| txn.writer.write_all(b"\n"))
                .map_err(io_err(&self.node, "write", &txn.temp))?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, txn: FileTxn) -> Result<FileCommittable, OpError> {
        let FileTxn { temp, target, writer } = txn;
        let file = writer.into_inner().map_err(|e| io_err(&self.node, "flush", &temp)(e.into_error()))?;
        file.sync_all().map_err(io_err(&self.node, "fsync", &temp))?;
        drop(file);
        Ok(FileCommittable { temp: temp.display().to_string(), target: target.display().to_string() })
    }

    fn commit(&mut self, c: &FileCommittable) -> Result<(), OpError> {
        commit_file(&self.node, 0, c).map(|_| ())
    }

    fn abort(&mut self, txn: FileTxn) -> Result<(), OpError> {
        drop(txn.writer);
        remove_temp(&self.node, &txn.temp)
    }

    fn abort_committable(&mut self, c: &FileCommittable) -> Result<bool, OpError> {
        remove_temp(&self.node, Path::new(&c.temp)).map(|()| true)
    }
}

/// Recovery of a file sink node: commit what the checkpoint lists, delete every other temp file
/// of this node in the directory.
pub struct FileSinkRecovery {
    node: String,
    dir: PathBuf,
}

impl FileSinkRecovery {
    /// Recovery for node `node` writing into `dir`.
    pub fn new(node: &str, dir: impl Into<PathBuf>) -> FileSinkRecovery {
        FileSinkRecovery { node: node.into(), dir: dir.into() }
    }
}

#[async_trait::async_trait]
impl SinkRecovery for FileSinkRecovery {
    async fn recover(
        &self,
        _ctx: &RecoveryContext<'_>,
        committables: &[serde_json::Value],
    ) -> Result<(usize, usize), OpError> {
        let mut keep = HashSet::new();
        let mut committed = 0;
        for v in committables {
            let (checkpoint, c): (u64, FileCommittable) = committable_txn(&self.node, v)?;
            if commit_file(&self.node, checkpoint, &c)? {
                committed += 1;
            }
            keep.insert(PathBuf::from(&c.temp));
        }
        let mut aborted = 0;
        let prefix = format!(".{}-", self.node);
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((committed, 0)),
            Err(e) => return Err(io_err(&self.node, "list", &self.dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io_err(&self.node, "list", &self.dir))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX) && !keep.contains(&path) {
                fs::remove_file(&path).map_err(io_err(&self.node, "delete", &path))?;
                aborted += 1;
            }
        }
        Ok((committed, aborted))
    }

    fn committed_output(&self) -> Option<String> {
        let prefix = format!("part-{}-", self.node);
        let count = fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        (count > 0).then(|| format!("{count} committed files {prefix}* in {}", self.dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use crate::value::Value;

    fn batch(n: i64) -> Batch {
        (0..n).map(|i| Record { key: Value::Null, ts: i, value: Value::Int(i) }).collect()
    }

    fn visible(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn transaction_moves_from_hidden_temp_to_visible_part_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut sink = FileSink::new("out", dir.path(), 0, "r1").expect("sink");
        let mut txn = sink.begin().expect("begin");
        sink.write(&mut txn, &batch(3)).expect("write");
        assert!(visible(dir.path())[0].ends_with(TEMP_SUFFIX));
        let c = sink.pre_commit(txn).expect("pre-commit");
        assert!(visible(dir.path())[0].starts_with('.'), "pre-committed data stays invisible");
        sink.commit(&c).expect("commit");
        sink.commit(&c).expect("commit is idempotent");
        let names = visible(dir.path());
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("part-out-0-r1-"));
        let text = fs::read_to_string(dir.path().join(&names[0])).expect("read");
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn abort_deletes_the_temp_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut sink = FileSink::new("out", dir.path(), 0, "r1").expect("sink");
        let mut txn = sink.begin().expect("begin");
        sink.write(&mut txn, &batch(3)).expect("write");
        sink.abort(txn).expect("abort");
        assert!(visible(dir.path()).is_empty());
    }

    fn recover(r: &FileSinkRecovery, listed: &[serde_json::Value]) -> Result<(usize, usize), OpError> {
        let faults = crate::fault::Faults::default();
        let ctx = RecoveryContext { store: None, checkpoint: None, parallelism: 1, faults: &faults };
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(r.recover(&ctx, listed))
    }

    #[test]
    fn recovery_commits_listed_transactions_and_deletes_the_rest() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut sink = FileSink::new("out", dir.path(), 0, "r1").expect("sink");
        let mut t1 = sink.begin().expect("begin");
        sink.write(&mut t1, &batch(2)).expect("write");
        let c1 = sink.pre_commit(t1).expect("pre");
        let mut t2 = sink.begin().expect("begin");
        sink.write(&mut t2, &batch(2)).expect("write");
        let _c2 = sink.pre_commit(t2).expect("pre"); // pre-committed for a checkpoint that never completed
        let mut t3 = sink.begin().expect("begin"); // open when the process died
        sink.write(&mut t3, &batch(1)).expect("write");
        drop(t3);
        let mut other = FileSink::new("other-node", dir.path(), 0, "r1").expect("sink");
        let mut o = other.begin().expect("begin");
        other.write(&mut o, &batch(1)).expect("write");

        let listed = vec![serde_json::json!({"checkpoint": 4, "txn": c1})];
        let recovery = FileSinkRecovery::new("out", dir.path());
        assert_eq!(recover(&recovery, &listed).expect("recover"), (1, 2));
        assert_eq!(recover(&recovery, &listed).expect("again"), (0, 0), "recovery is idempotent");
        let names = visible(dir.path());
        assert_eq!(names.iter().filter(|n| n.starts_with("part-out-")).count(), 1);
        assert!(names.iter().any(|n| n.starts_with(".other-node-")), "other nodes' files are left alone");
    }

    #[test]
    fn committed_output_counts_only_this_nodes_committed_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let recovery = FileSinkRecovery::new("out", dir.path());
        assert_eq!(recovery.committed_output(), None);
        let mut sink = FileSink::new("out", dir.path(), 0, "r1").expect("sink");
        let mut t = sink.begin().expect("begin");
        sink.write(&mut t, &batch(1)).expect("write");
        let c = sink.pre_commit(t).expect("pre");
        assert_eq!(recovery.committed_output(), None, "pre-committed is not committed");
        sink.commit(&c).expect("commit");
        let said = recovery.committed_output().expect("committed output");
        assert!(said.starts_with("1 committed files part-out-*"), "{said}");
        assert_eq!(FileSinkRecovery::new("other", dir.path()).committed_output(), None);
    }

    #[test]
    fn lost_precommitted_file_is_reported_as_a_commit_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let c = FileCommittable {
            temp: dir.path().join(".gone.inprogress").display().to_string(),
            target: dir.path().join("part-gone.jsonl").display().to_string(),
        };
        let err = recover(&FileSinkRecovery::new("out", dir.path()), &[serde_json::json!({"checkpoint": 9, "txn": c})])
            .expect_err("must fail");
        assert!(matches!(err, OpError::Commit { checkpoint: 9, .. }), "{err}");
    }
}
