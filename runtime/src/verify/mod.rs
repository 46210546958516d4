//! The exactly-once verifier: produce sequence-numbered input, and after the job drains, check
//! that every sequence number appears exactly once in the committed output. `sluice-runtime
//! verify` exposes it; the kill tests and the kind end-to-end test use it. The file-sink check
//! is here, the Kafka one in [`kafka`].

#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod kafka_origins;

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Sequence numbers expected (`0..expected`).
    pub expected: u64,
    /// Distinct sequence numbers seen.
    pub seen: u64,
    /// Expected numbers never seen.
    pub lost: u64,
    /// Numbers seen more than once (counted once each).
    pub duplicated: u64,
    /// Records whose number is outside `0..expected` or missing.
    pub out_of_place: u64,
    /// A few examples of each problem, for the message.
    pub examples: Vec<String>,
}

impl VerifyReport {
    /// True for a perfect run: nothing lost, duplicated or out of place.
    pub fn is_exactly_once(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_place == 0 && self.seen == self.expected
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "expected {} records: {} seen, {} lost, {} duplicated, {} out of place",
            self.expected, self.seen, self.lost, self.duplicated, self.out_of_place
        )?;
        if !self.examples.is_empty() {
            write!(f, " (e.g. {})", self.examples.join(", "))?;
        }
        Ok(())
    }
}

/// Counts sequence numbers; feed it every output record's number (or `None` when a record
/// has none), then call [`SequenceCheck::report`].
pub struct SequenceCheck {
    counts: Vec<u8>,
    out_of_place: u64,
    examples: Vec<String>,
}

impl SequenceCheck {
    /// A check for `0..expected`.
    pub fn new(expected: u64) -> SequenceCheck {
        SequenceCheck { counts: vec![0; expected as usize], out_of_place: 0, examples: Vec::new() }
    }

    /// Records one output record's sequence number.
    pub fn add(&mut self, seq: Option<i64>) {
        match seq.and_then(|s| usize::try_from(s).ok()).filter(|s| *s < self.counts.len()) {
            Some(s) => self.counts[s] = self.counts[s].saturating_add(1),
            None => {
                self.out_of_place += 1;
                if self.examples.len() < 6 {
                    self.examples.push(format!("out of place {seq:?}"));
                }
            }
        }
    }

    /// The findings.
    pub fn report(mut self) -> VerifyReport {
        let mut r =
            VerifyReport { expected: self.counts.len() as u64, out_of_place: self.out_of_place, ..Default::default() };
        for (i, &c) in self.counts.iter().enumerate() {
            match c {
                0 => {
                    r.lost += 1;
                    if self.examples.len() < 6 {
                        self.examples.push(format!("lost {i}"));
                    }
                }
                1 => r.seen += 1,
                _ => {
                    r.seen += 1;
                    r.duplicated += 1;
                    if self.examples.len() < 6 {
                        self.examples.push(format!("{i} ×{c}"));
                    }
                }
            }
        }
        r.examples = self.examples;
        r
    }
}

/// Writes `count` JSON lines `{"seq": i, "ts": i}` to `path` (input for a `jsonFile` source).
pub fn produce_file(path: &Path, count: u64) -> std::io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    for i in 0..count {
        writeln!(w, "{{\"seq\":{i},\"ts\":{i}}}")?;
    }
    w.flush()
}

/// Checks the committed `part-*` files of a file sink directory: the integer at `field` (a
/// dotted path into each output line, e.g. `value` or `value.seq`) must cover `0..expected`
/// exactly once. Temp files are never read.
pub fn check_file_sink(dir: &Path, field: &str, expected: u64) -> std::io::Result<VerifyReport> {
    let mut check = SequenceCheck::new(expected);
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")))
        .collect();
    names.sort();
    for path in names {
        for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
            let line = line?;
            let v: Option<crate::value::Value> = serde_json::from_str(&line).ok();
            check.add(v.as_ref().and_then(|v| v.get_path(field)).and_then(crate::value::Value::as_i64));
        }
    }
    Ok(check.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_sequence_passes() {
        let mut c = SequenceCheck::new(5);
        for i in [3, 1, 0, 4, 2] {
            c.add(Some(i));
        }
        assert!(c.report().is_exactly_once());
    }

    #[test]
    fn a_planted_duplicate_and_a_planted_loss_are_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("part-a.jsonl"), "{\"value\":0}\n{\"value\":1}\n{\"value\":1}\n").expect("w");
        std::fs::write(dir.path().join("part-b.jsonl"), "{\"value\":3}\n{\"value\":99}\n{\"nope\":1}\n").expect("w");
        std::fs::write(dir.path().join(".part-c.inprogress"), "{\"value\":2}\n").expect("w");
        let r = check_file_sink(dir.path(), "value", 4).expect("check");
        assert_eq!((r.lost, r.duplicated, r.out_of_place, r.seen), (1, 1, 2, 3), "{r}");
        assert!(!r.is_exactly_once());
        assert!(r.to_string().contains("lost 2"), "{r}");
    }

    #[test]
    fn produced_input_round_trips_through_the_check() {
        let dir = tempfile::tempdir().expect("tmp");
        produce_file(&dir.path().join("part-in.jsonl"), 100).expect("produce");
        assert!(check_file_sink(dir.path(), "seq", 100).expect("check").is_exactly_once());
    }
}
