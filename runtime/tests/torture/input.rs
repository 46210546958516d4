//! The input of a case: the jsonFile source's files (written to disk) and the same records in
//! memory for the reference evaluator.

use std::io::Write as _;
use std::path::Path;

use rand::Rng;
use rand::rngs::StdRng;

use super::job::{FileBranch, Layout};

/// One line of an input file.
#[derive(Clone, Copy, Debug)]
pub struct FileRecord {
    /// Unique over all files.
    pub seq: i64,
    /// A key field.
    pub key: i64,
    /// Event time, ms.
    pub ts: i64,
    /// A number.
    pub x: i64,
}

/// Writes `input/part-NNN.jsonl` under `dir` and returns every record. Within a file, each
/// record's time is at most `out_of_orderness_ms` behind the largest time before it, so no
/// record is ever late under per-split watermarks.
pub fn write_files(rng: &mut StdRng, spec: &FileBranch, dir: &Path) -> std::io::Result<Vec<FileRecord>> {
    let input = dir.join("input");
    std::fs::create_dir_all(&input)?;
    let mut all = Vec::with_capacity(spec.files * spec.per_file);
    let lag = spec.out_of_orderness_ms as i64;
    let file_span = spec.per_file as i64 * spec.step_ms as i64;
    for f in 0..spec.files {
        let start = match spec.layout {
            Layout::Sequential => f as i64 * file_span,
            Layout::Overlapping => rng.random_range(0..=file_span / 4),
        } + lag;
        let mut out = std::io::BufWriter::new(std::fs::File::create(input.join(format!("part-{f:03}.jsonl")))?);
        for i in 0..spec.per_file {
            let base = start + i as i64 * spec.step_ms as i64;
            let r = FileRecord {
                seq: all.len() as i64,
                key: rng.random_range(0..50),
                ts: base - rng.random_range(0..=lag),
                x: rng.random_range(0..1000),
            };
            writeln!(out, "{{\"seq\":{},\"key\":{},\"ts\":{},\"x\":{}}}", r.seq, r.key, r.ts, r.x)?;
            all.push(r);
        }
        out.flush()?;
    }
    Ok(all)
}
