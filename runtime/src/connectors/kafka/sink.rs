//! The exactly-once Kafka sink: one Kafka transaction per subtask per checkpoint.
//!
//! Each subtask owns a small, fixed pool of transactional ids ([`TxnIdPool`]: job, node,
//! subtask, slot) and one librdkafka producer per slot in use. A transaction begins with the
//! first record after a barrier, is flushed at the barrier (pre-commit: durable on the broker,
//! invisible to read_committed readers) and committed once the checkpoint completes. The
//! committable stored in the checkpoint names the transactional id and the producer id/epoch
//! (read from the header of the transaction's first record batch), so recovery can finish it
//! with the raw protocol even though the producer that wrote it is gone.
//!
//! librdkafka keeps a producer's epoch across transactions, and EndTxn names a transaction only
//! by (transactional id, producer id, epoch). So a slot whose transaction the latest completed
//! checkpoint lists stays *reserved* — no new transaction on it — until a later checkpoint
//! completes: otherwise recovery's idempotent re-commit of that listed transaction would commit
//! the slot's next, still uncommitted, transaction instead.

use serde::{Deserialize, Serialize};
use sluice_crds::CheckpointId;
use sluice_crds::contract::kafka::KafkaSinkSpec;

use rdkafka::producer::Producer;

use super::TxnIdPool;
use super::io::block_on;
use super::producer::{self, Encoder, PRODUCER_TIMEOUT, TrackedProducer, client_config, create_producer, flush};
use super::security::Cluster;
use super::{ProducerIdentity, first_batch_identity};
use crate::connectors::two_phase::TwoPhaseCommit;
use crate::ops::{OpContext, OpError};
use crate::record::Batch;

/// Transactional ids per subtask for a job allowing `max_concurrent` checkpoints in flight:
/// the open transaction, one pre-committed per checkpoint in flight, those the latest completed
/// checkpoint lists (reserved, see [`KafkaTxnSink`]), and spare room for checkpoints that fail.
pub fn txn_slots(max_concurrent: u32) -> u32 {
    (max_concurrent.max(1) + 3).max(4)
}

/// The transactional id pool of a sink node.
pub fn pool_for(job: &str, node: &str, spec: &KafkaSinkSpec, max_concurrent: u32) -> TxnIdPool {
    let slots = txn_slots(max_concurrent);
    match &spec.transactional_id_prefix {
        Some(p) => TxnIdPool::with_prefix(p, slots),
        None => TxnIdPool::new(job, node, slots),
    }
}

/// One subtask of the exactly-once Kafka sink.
pub struct KafkaTxnSink {
    node: String,
    spec: KafkaSinkSpec,
    cluster: Cluster,
    subtask: u32,
    pool: TxnIdPool,
    producers: Vec<Option<TrackedProducer>>,
    busy: Vec<bool>,
    /// Slots each snapshot listed, by checkpoint id, until that checkpoint completes.
    listed: std::collections::BTreeMap<u64, Vec<u32>>,
    /// Slots the latest completed checkpoint lists.
    reserved: Vec<u32>,
    encoder: Encoder,
    /// Where the raw-protocol calls run (the job's I/O runtime).
    io: Option<tokio::runtime::Handle>,
}

/// An open transaction: the slot whose producer holds it.
pub struct KafkaTxn {
    slot: usize,
}

/// A pre-committed transaction, as the checkpoint records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaCommittable {
    /// The transactional id.
    pub transactional_id: String,
    /// Producer id and epoch the transaction was written with (`None`: nothing was written).
    pub identity: Option<ProducerIdentity>,
    /// The first record written: `(partition, offset)`.
    pub first: Option<(i32, i64)>,
    /// The slot within this subtask's pool (to reuse the live producer on commit).
    pub slot: u32,
}

impl KafkaTxnSink {
    /// The sink subtask `ctx` of node `ctx.node`, writing to `cluster` (built from the spec's
    /// bootstrap servers and properties).
    pub fn new(spec: &KafkaSinkSpec, cluster: Cluster, ctx: &OpContext) -> KafkaTxnSink {
        let pool = pool_for(&ctx.job, &ctx.node, spec, ctx.max_concurrent_checkpoints);
        let slots = pool.slots() as usize;
        KafkaTxnSink {
            node: ctx.node.clone(),
            spec: spec.clone(),
            cluster,
            subtask: ctx.subtask,
            pool,
            producers: (0..slots).map(|_| None).collect(),
            busy: vec![false; slots],
            listed: std::collections::BTreeMap::new(),
            reserved: Vec::new(),
            encoder: Encoder::default(),
            io: ctx.io.clone(),
        }
    }

    fn err(&self, message: String) -> OpError {
        OpError::External { node: self.node.clone(), message }
    }

    /// The producer of `slot`, created (and its id fenced by `init_transactions`) on first use.
    fn producer(&mut self, slot: usize) -> Result<&TrackedProducer, OpError> {
        if self.producers[slot].is_none() {
            let id = self.pool.slot_id(self.subtask, slot as u32);
            let mut config = client_config(&self.spec.bootstrap_servers, &self.spec.properties);
            config
                .set("transactional.id", &id)
                .set("transaction.timeout.ms", self.spec.transaction_timeout.as_millis().to_string())
                .set("enable.idempotence", "true");
            if !self.spec.properties.contains_key("linger.ms") {
                config.set("linger.ms", "5");
            }
            let producer = create_producer(&self.node, &config)?;
            producer
                .init_transactions(PRODUCER_TIMEOUT)
                .map_err(|e| self.err(format!("init_transactions {id}: {e}")))?;
            self.producers[slot] = Some(producer);
        }
        self.producers[slot]
            .as_ref()
            .ok_or_else(|| OpError::External { node: self.node.clone(), message: "no producer".into() })
    }
}

impl TwoPhaseCommit for KafkaTxnSink {
    type Txn = KafkaTxn;
    type Committable = KafkaCommittable;

    fn begin(&mut self) -> Result<KafkaTxn, OpError> {
        let free = |slot: usize| !self.busy[slot] && !self.reserved.contains(&(slot as u32));
        let Some(slot) = (0..self.busy.len()).find(|&s| free(s)) else {
            return Err(self.err(format!(
                "all {} transactional ids of subtask {} hold pending or reserved transactions: checkpoints keep failing to complete",
                self.busy.len(),
                self.subtask
            )));
        };
        let producer = self.producer(slot)?;
        producer.context().reset();
        producer
            .begin_transaction()
            .map_err(|e| OpError::External { node: self.node.clone(), message: format!("begin transaction: {e}") })?;
        self.busy[slot] = true;
        Ok(KafkaTxn { slot })
    }

    fn write(&mut self, txn: &mut KafkaTxn, batch: &Batch) -> Result<(), OpError> {
        let producer =
            self.producers[txn.slot].as_ref().ok_or_else(|| self.err("transaction without producer".into()))?;
        self.encoder.send_batch(&self.node, producer, &self.spec.topic, batch)
    }

    fn pre_commit(&mut self, txn: KafkaTxn) -> Result<KafkaCommittable, OpError> {
        let transactional_id = self.pool.slot_id(self.subtask, txn.slot as u32);
        let producer =
            self.producers[txn.slot].as_ref().ok_or_else(|| self.err("transaction without producer".into()))?;
        flush(&self.node, producer, &self.spec.topic)?;
        let first = producer.context().first_delivery();
        let identity = match first {
            None => None,
            Some((partition, offset)) => {
                let (cluster, topic) = (self.cluster.clone(), self.spec.topic.clone());
                let identity = block_on(self.io.as_ref(), async move {
                    first_batch_identity(&cluster, &topic, partition, offset).await
                })
                .and_then(|identity| identity)
                .map_err(|e| self.err(format!("read producer id of {transactional_id}: {e}")))?;
                Some(identity)
            }
        };
        tracing::debug!(node = %self.node, subtask = self.subtask, id = %transactional_id, ?identity, ?first, "pre-committed");
        Ok(KafkaCommittable { transactional_id, identity, first, slot: txn.slot as u32 })
    }

    fn commit(&mut self, c: &KafkaCommittable) -> Result<(), OpError> {
        let slot = c.slot as usize;
        let producer = self.producers.get(slot).and_then(Option::as_ref).ok_or_else(|| {
            self.err(format!(
                "commit of {}: no live producer (recovery commits restored transactions)",
                c.transactional_id
            ))
        })?;
        // Not a data-loss error yet: the restart's recovery retries the commit from the
        // checkpoint and is the one to tell "lost" from "could not reach the broker".
        producer.commit_transaction(PRODUCER_TIMEOUT).map_err(|e| OpError::External {
            node: self.node.clone(),
            message: format!(
                "commit of transaction {} (producer {:?}, first record {:?}) failed: {e}; recovery will retry it",
                c.transactional_id, c.identity, c.first
            ),
        })?;
        self.busy[slot] = false;
        tracing::debug!(node = %self.node, subtask = self.subtask, id = %c.transactional_id, identity = ?c.identity, "committed");
        Ok(())
    }

    fn on_snapshot(&mut self, checkpoint: CheckpointId, listed: &[&KafkaCommittable]) {
        self.listed.insert(checkpoint.0, listed.iter().map(|c| c.slot).collect());
    }

    fn on_complete(&mut self, checkpoint: CheckpointId) {
        if let Some(slots) = self.listed.remove(&checkpoint.0) {
            self.reserved = slots;
        }
        tracing::debug!(node = %self.node, subtask = self.subtask, %checkpoint, reserved = ?self.reserved, "checkpoint complete");
        self.listed = self.listed.split_off(&checkpoint.0);
    }

    fn abort(&mut self, txn: KafkaTxn) -> Result<(), OpError> {
        if let Some(p) = &self.producers[txn.slot] {
            producer::abort_transaction(p).map_err(|e| self.err(format!("abort transaction: {e}")))?;
        }
        self.busy[txn.slot] = false;
        Ok(())
    }

    /// A pending slot's live producer still holds the pre-committed transaction (no new one
    /// begins on a busy slot): abort it there, so read_committed readers are not held back
    /// until the next run's recovery fences the id.
    fn abort_committable(&mut self, c: &KafkaCommittable) -> Result<bool, OpError> {
        let slot = c.slot as usize;
        let Some(p) = self.producers.get(slot).and_then(Option::as_ref) else { return Ok(false) };
        producer::abort_transaction(p)
            .map_err(|e| self.err(format!("abort pre-committed transaction {}: {e}", c.transactional_id)))?;
        self.busy[slot] = false;
        Ok(true)
    }
}
