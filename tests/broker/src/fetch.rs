//! Fetch, fixing two gaps of tansu 0.6's FetchService (which still does the reading):
//!
//! 1. Mid-batch positions. tansu returns only batches whose *base* offset is at or after the
//!    fetch offset, so a consumer positioned inside a batch (a source restored from a
//!    checkpointed offset) never receives the rest of that batch and never reaches the end
//!    of the partition. Kafka returns the batch containing the offset and the client skips
//!    the records before it; this route prepends that batch.
//! 2. Aborted transactions. tansu stops a read_committed fetch at the last stable offset
//!    but always answers an empty `aborted_transactions` list, so clients would deliver the
//!    records of aborted transactions. This route fills the list the way Kafka's
//!    transaction index does: for each producer whose transactional records appear in the
//!    response, the first offset of every run that ends in an ABORT marker (looking past
//!    the response, below the last stable offset, when the marker is not in it).

use std::collections::BTreeMap;

use rama::{Context, Service};
use tansu_sans_io::{
    BatchAttribute, ControlBatch, FetchRequest, FetchResponse, IsolationLevel,
    fetch_response::AbortedTransaction,
    record::{
        deflated::{self, Frame},
        inflated,
    },
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
        let isolation = if read_committed { IsolationLevel::ReadCommitted } else { IsolationLevel::ReadUncommitted };
        let requested = req.topics.clone().unwrap_or_default();
        let mut response = FetchService.serve(ctx.clone(), req).await?;
        for (index, topic) in response.responses.iter_mut().flatten().enumerate() {
            let Some(name) = topic_name(ctx.state(), topic.topic.clone(), topic.topic_id).await? else {
                continue;
            };
            let asked = requested.get(index).and_then(|t| t.partitions.clone()).unwrap_or_default();
            for partition in topic.partitions.iter_mut().flatten() {
                let tp = Topition::new(name.clone(), partition.partition_index);
                let fetch_offset =
                    asked.iter().find(|p| p.partition == partition.partition_index).map(|p| p.fetch_offset);
                if let Some(fetch_offset) = fetch_offset {
                    let first_base = partition
                        .records
                        .as_ref()
                        .and_then(|frame| frame.batches.first())
                        .map(|batch| batch.base_offset);
                    if first_base.is_none_or(|base| base > fetch_offset)
                        && let Some(batch) = containing_batch(ctx.state(), &tp, fetch_offset, isolation).await?
                    {
                        debug!(?tp, fetch_offset, base = batch.base_offset, "mid-batch fetch");
                        let frame = partition.records.get_or_insert_with(|| Frame { batches: Vec::new() });
                        frame.batches.insert(0, batch);
                    }
                }
                if !read_committed {
                    continue;
                }
                let Some(frame) = partition.records.as_ref() else {
                    continue;
                };
                let aborted = aborted_runs(ctx.state(), &tp, &frame.batches).await?;
                debug!(?tp, ?aborted, "read_committed aborted transactions");
                partition.aborted_transactions = Some(aborted);
            }
        }
        Ok(response)
    }
}

/// The batch whose offset range holds `offset` when no batch starts there: a binary search
/// over "first batch at or after p" probes (each a one-batch storage read).
async fn containing_batch<G: Storage>(
    storage: &G,
    tp: &Topition,
    offset: i64,
    isolation: IsolationLevel,
) -> Result<Option<deflated::Batch>, Error> {
    let stage = storage.offset_stage(tp).await?;
    let limit = match isolation {
        IsolationLevel::ReadCommitted => stage.last_stable(),
        IsolationLevel::ReadUncommitted => stage.high_watermark(),
    };
    if offset < stage.log_start() || offset >= limit {
        return Ok(None);
    }
    let (mut lo, mut hi) = (stage.log_start(), offset);
    let mut best = None;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let first = storage.fetch(tp, mid, 0, 1, isolation).await?.into_iter().next();
        match first {
            Some(batch) if batch.base_offset <= offset => {
                lo = batch.base_offset + 1;
                best = Some(batch);
            }
            _ => hi = mid - 1,
        }
    }
    Ok(best.filter(|batch| batch.base_offset + i64::from(batch.last_offset_delta) >= offset))
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
