//! Fetch for `read_committed` consumers. tansu 0.6 stops a read_committed fetch at the last
//! stable offset but always answers an empty `aborted_transactions` list, so clients would
//! deliver the records of aborted transactions. This route runs tansu's own FetchService
//! and then fills `aborted_transactions` the way Kafka's transaction index does: for each
//! producer whose transactional records appear in the response, the first offset of every
//! run that ends in an ABORT marker (looking past the response, below the last stable
//! offset, when the marker is not in it).

use std::collections::BTreeMap;

use rama::{Context, Service};
use tansu_sans_io::{
    BatchAttribute, ControlBatch, FetchRequest, FetchResponse, IsolationLevel,
    fetch_response::AbortedTransaction,
    record::{deflated, inflated},
};
use tansu_storage::{Error, FetchService, Storage, TopicId, Topition};
use tracing::{debug, warn};

/// Bytes read per look-ahead step while searching for a transaction's end marker.
const LOOKAHEAD_BYTES: u32 = 1024 * 1024;

/// tansu's FetchService plus the aborted-transaction list for read_committed requests.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadCommittedFetchService;

impl<G> Service<G, FetchRequest> for ReadCommittedFetchService
where
    G: Storage,
{
    type Response = FetchResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: FetchRequest) -> Result<FetchResponse, Error> {
        let read_committed = req.isolation_level == Some(1);
        let mut response = FetchService.serve(ctx.clone(), req).await?;
        if !read_committed {
            return Ok(response);
        }
        for topic in response.responses.iter_mut().flatten() {
            let Some(name) = topic_name(ctx.state(), topic.topic.clone(), topic.topic_id).await? else {
                continue;
            };
            for partition in topic.partitions.iter_mut().flatten() {
                let Some(frame) = partition.records.as_ref() else {
                    continue;
                };
                let tp = Topition::new(name.clone(), partition.partition_index);
                let aborted = aborted_runs(ctx.state(), &tp, &frame.batches).await?;
                debug!(?tp, ?aborted, "read_committed aborted transactions");
                partition.aborted_transactions = Some(aborted);
            }
        }
        Ok(response)
    }
}

async fn topic_name<G: Storage>(
    storage: &G,
    name: Option<String>,
    id: Option<[u8; 16]>,
) -> Result<Option<String>, Error> {
    if let Some(name) = name {
        return Ok(Some(name));
    }
    let Some(id) = id else { return Ok(None) };
    let metadata = storage.metadata(Some(&[TopicId::from(id)])).await?;
    Ok(metadata.topics().iter().find_map(|topic| topic.name.clone()))
}

/// Whether a transactional control batch is an ABORT marker.
fn is_abort(batch: &deflated::Batch) -> Result<bool, Error> {
    let inflated = inflated::Batch::try_from(batch)?;
    let Some(key) = inflated.records.first().and_then(|record| record.key.clone()) else {
        return Ok(false);
    };
    Ok(ControlBatch::try_from(key)?.is_abort())
}

/// Applies one batch to the open runs; returns `Some((pid, first_offset))` when the batch
/// is an ABORT marker closing an open run.
fn step(open: &mut BTreeMap<i64, i64>, batch: &deflated::Batch) -> Result<Option<(i64, Option<i64>)>, Error> {
    let attributes = BatchAttribute::try_from(batch.attributes)?;
    if !attributes.transaction {
        return Ok(None);
    }
    if attributes.control {
        let first = open.remove(&batch.producer_id);
        if is_abort(batch)? {
            return Ok(Some((batch.producer_id, first)));
        }
        return Ok(None);
    }
    let _ = open.entry(batch.producer_id).or_insert(batch.base_offset);
    Ok(None)
}

async fn aborted_runs<G: Storage>(
    storage: &G,
    tp: &Topition,
    batches: &[deflated::Batch],
) -> Result<Vec<AbortedTransaction>, Error> {
    let mut open = BTreeMap::new();
    let mut aborted = Vec::new();
    let mut next = None;
    for batch in batches {
        if let Some((producer_id, Some(first_offset))) = step(&mut open, batch)? {
            aborted.push(entry(producer_id, first_offset));
        }
        next = Some(batch.base_offset + i64::from(batch.last_offset_delta) + 1);
    }
    // Runs whose end marker lies beyond this response: every record here is below the last
    // stable offset, so the marker exists; read on until each open run is decided.
    let mut pending: BTreeMap<i64, i64> = open.clone();
    let mut offset = next.unwrap_or_default();
    while !pending.is_empty() {
        let more = storage.fetch(tp, offset, 0, LOOKAHEAD_BYTES, IsolationLevel::ReadCommitted).await?;
        if more.is_empty() {
            warn!(?tp, ?pending, "no end marker found below the last stable offset");
            break;
        }
        for batch in &more {
            let attributes = BatchAttribute::try_from(batch.attributes)?;
            if attributes.transaction
                && attributes.control
                && let Some(first_offset) = pending.remove(&batch.producer_id)
                && is_abort(batch)?
            {
                aborted.push(entry(batch.producer_id, first_offset));
            }
            offset = batch.base_offset + i64::from(batch.last_offset_delta) + 1;
        }
    }
    aborted.sort_by_key(|txn| txn.first_offset);
    Ok(aborted)
}

fn entry(producer_id: i64, first_offset: i64) -> AbortedTransaction {
    AbortedTransaction::default().producer_id(producer_id).first_offset(first_offset)
}
