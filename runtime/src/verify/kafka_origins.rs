//! Where the duplicated records of a Kafka topic came from: for every run of committed
//! records that are copies of a record seen elsewhere too, its partition, offset range,
//! sequence numbers and the producer (id, epoch) that wrote it, read from the record batch
//! headers. A failed exactly-once check prints these, so one occurrence names the
//! transactions that wrote a record twice (compare with the runs' sink logs).

use std::collections::{BTreeMap, HashMap};

use super::kafka::{Committed, VerifyError, read_committed_at};
use crate::connectors::kafka::io::block_on;
use crate::connectors::kafka::security::Cluster;
use crate::connectors::kafka::{ProducerIdentity, first_batch_identity};
use crate::value::Value;

/// A run of adjacent committed records in one partition, each a copy of a duplicated record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateRun {
    /// The partition.
    pub partition: i32,
    /// Offsets of the first and last record of the run.
    pub offsets: (i64, i64),
    /// Records in the run.
    pub records: usize,
    /// Smallest and largest sequence number in the run.
    pub seqs: (i64, i64),
}

/// The runs of duplicated records among `records`, numbered by the integer at `field`,
/// ordered by partition and offset.
pub fn duplicate_runs(records: &[Committed], field: &str) -> Vec<DuplicateRun> {
    let seq_of = |r: &Committed| r.value.get_path(field).and_then(Value::as_i64);
    let mut copies: HashMap<i64, u32> = HashMap::new();
    for seq in records.iter().filter_map(seq_of) {
        *copies.entry(seq).or_default() += 1;
    }
    let mut by_partition: BTreeMap<i32, Vec<(i64, Option<i64>)>> = BTreeMap::new();
    for r in records {
        by_partition.entry(r.partition).or_default().push((r.offset, seq_of(r)));
    }
    let mut runs = Vec::new();
    for (partition, mut entries) in by_partition {
        entries.sort_unstable_by_key(|(offset, _)| *offset);
        let mut current: Option<DuplicateRun> = None;
        for (offset, seq) in entries {
            match seq.filter(|s| copies.get(s).is_some_and(|&n| n > 1)) {
                Some(seq) => match current.as_mut() {
                    Some(run) => {
                        run.offsets.1 = offset;
                        run.records += 1;
                        run.seqs = (run.seqs.0.min(seq), run.seqs.1.max(seq));
                    }
                    None => {
                        current =
                            Some(DuplicateRun { partition, offsets: (offset, offset), records: 1, seqs: (seq, seq) })
                    }
                },
                None => runs.extend(current.take()),
            }
        }
        runs.extend(current);
    }
    runs
}

/// Describes up to `limit` runs of duplicated records of `topic` (see [`duplicate_runs`]),
/// each with the producer that wrote its first and last record.
pub fn duplicate_origins(bootstrap: &str, topic: &str, field: &str, limit: usize) -> Result<Vec<String>, VerifyError> {
    let records = read_committed_at(bootstrap, topic)?;
    let runs = duplicate_runs(&records, field);
    let cluster = Cluster::plaintext(bootstrap);
    let writer = |partition: i32, offset: i64| -> String {
        let (cluster, topic) = (cluster.clone(), topic.to_owned());
        match block_on(None, async move { first_batch_identity(&cluster, &topic, partition, offset).await }) {
            Ok(Ok(ProducerIdentity { producer_id, producer_epoch })) => {
                format!("producer {producer_id} epoch {producer_epoch}")
            }
            Ok(Err(e)) => format!("producer unknown ({e})"),
            Err(e) => format!("producer unknown ({e})"),
        }
    };
    let mut lines: Vec<String> = runs
        .iter()
        .take(limit)
        .map(|run| {
            let (first, last) = (writer(run.partition, run.offsets.0), writer(run.partition, run.offsets.1));
            let written = if first == last { first } else { format!("{first} .. {last}") };
            format!(
                "partition {} offsets {}..={}: {} records, seq {}..={}, {written}",
                run.partition, run.offsets.0, run.offsets.1, run.records, run.seqs.0, run.seqs.1
            )
        })
        .collect();
    if runs.len() > limit {
        lines.push(format!("… and {} more runs", runs.len() - limit));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: i32, offset: i64, seq: i64) -> Committed {
        let value: Value = serde_json::from_value(serde_json::json!({ "seq": seq })).expect("value");
        Committed { partition, offset, key: Value::Null, value }
    }

    /// Copies are grouped into maximal runs of adjacent offsets per partition; a record seen
    /// once breaks a run, and both the original and the copy show up.
    #[test]
    fn copies_are_grouped_into_runs_per_partition() {
        let records = vec![
            rec(0, 0, 1),
            rec(0, 1, 2),
            rec(0, 2, 3),
            rec(0, 3, 4),
            rec(1, 0, 10),
            rec(1, 5, 2),
            rec(1, 7, 3),
            rec(1, 9, 11),
            rec(1, 10, 4),
        ];
        let runs = duplicate_runs(&records, "seq");
        assert_eq!(
            runs,
            vec![
                DuplicateRun { partition: 0, offsets: (1, 3), records: 3, seqs: (2, 4) },
                DuplicateRun { partition: 1, offsets: (5, 7), records: 2, seqs: (2, 3) },
                DuplicateRun { partition: 1, offsets: (10, 10), records: 1, seqs: (4, 4) },
            ]
        );
        assert!(duplicate_runs(&records[..4], "seq").is_empty(), "no copies, no runs");
    }
}
