//! The producer id and epoch of a transaction, read from the header of its first record
//! batch. librdkafka does not expose them, but every batch a transactional producer writes
//! carries them, and the sink knows the offset of its first record in each partition from
//! the delivery report.

use serde::{Deserialize, Serialize};

use super::{
    Error,
    fetch::{Isolation, fetch_partition},
    security::Cluster,
    wire::{be_i16, be_i32, be_i64},
};

/// The producer id and epoch a transaction was written with: what EndTxn needs besides
/// the transactional id. Kept in the checkpoint for every pre-committed transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerIdentity {
    /// Producer id assigned by InitProducerId.
    pub producer_id: i64,
    /// Producer epoch assigned by InitProducerId.
    pub producer_epoch: i16,
}

/// Bytes asked for; the broker returns at least the first whole batch regardless.
const FETCH_BYTES: i32 = 64 * 1024;

// Record batch v2 header layout (byte offsets from the batch start).
const BATCH_LENGTH_AT: usize = 8;
const BATCH_OVERHEAD: usize = 12; // base offset + batch length
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// Reads the producer id/epoch of the transactional batch holding the record at `offset`
/// of `topic`/`partition` (read_uncommitted, from the partition leader).
pub async fn first_batch_identity(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<ProducerIdentity, Error> {
    let data = fetch_partition(cluster, topic, partition, offset, Isolation::ReadUncommitted, FETCH_BYTES).await?;
    let not_found = || Error::BatchNotFound { topic: topic.to_owned(), partition, offset };
    let records = data.records.as_ref().ok_or_else(not_found)?;
    let header = batch_containing(records, offset).ok_or_else(not_found)?;
    if header.attributes & TRANSACTIONAL == 0 || header.attributes & CONTROL != 0 {
        return Err(Error::NotTransactional { topic: topic.to_owned(), partition, offset });
    }
    Ok(header.identity)
}

/// The fields of a batch header this module reads.
#[derive(Debug, PartialEq, Eq)]
struct BatchHeader {
    attributes: i16,
    identity: ProducerIdentity,
}

/// Finds the batch whose offset range holds `offset` in a records blob.
fn batch_containing(mut records: &[u8], offset: i64) -> Option<BatchHeader> {
    while records.len() >= BATCH_OVERHEAD {
        let base = be_i64(records, 0)?;
        let length = usize::try_from(be_i32(records, BATCH_LENGTH_AT)?).ok()?;
        let end = BATCH_OVERHEAD.checked_add(length)?;
        let last = base + i64::from(be_i32(records, LAST_OFFSET_DELTA_AT)?);
        if (base..=last).contains(&offset) {
            return Some(BatchHeader {
                attributes: be_i16(records, ATTRIBUTES_AT)?,
                identity: ProducerIdentity {
                    producer_id: be_i64(records, PRODUCER_ID_AT)?,
                    producer_epoch: be_i16(records, PRODUCER_EPOCH_AT)?,
                },
            });
        }
        records = records.get(end..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record batch v2 header (no records) with the given fields.
    fn batch(base: i64, last_delta: i32, attributes: i16, producer_id: i64, epoch: i16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base.to_be_bytes());
        b.extend_from_slice(&49i32.to_be_bytes()); // length of the rest of the header
        b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        b.push(2); // magic
        b.extend_from_slice(&0u32.to_be_bytes()); // crc
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&last_delta.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes()); // base timestamp
        b.extend_from_slice(&0i64.to_be_bytes()); // max timestamp
        b.extend_from_slice(&producer_id.to_be_bytes());
        b.extend_from_slice(&epoch.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // base sequence
        b.extend_from_slice(&0i32.to_be_bytes()); // record count
        b
    }

    #[test]
    fn batch_containing_picks_the_batch_whose_range_holds_the_offset() {
        let mut records = batch(10, 4, TRANSACTIONAL, 7, 1);
        records.extend(batch(15, 2, TRANSACTIONAL, 8, 3));
        let found = batch_containing(&records, 16).expect("second batch");
        assert_eq!(found.identity, ProducerIdentity { producer_id: 8, producer_epoch: 3 });
        let found = batch_containing(&records, 10).expect("first batch");
        assert_eq!(found.identity, ProducerIdentity { producer_id: 7, producer_epoch: 1 });
        assert_eq!(batch_containing(&records, 18), None);
    }

    #[test]
    fn batch_containing_stops_at_a_truncated_batch() {
        let records = batch(0, 0, TRANSACTIONAL, 1, 0);
        assert_eq!(batch_containing(&records[..30], 0), None);
    }
}
