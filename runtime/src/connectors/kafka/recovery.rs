//! Recovery of an exactly-once Kafka sink, before any subtask starts:
//!
//! 1. check `transaction.timeout.ms` against the checkpoint cycle and the broker's
//!    `transaction.max.timeout.ms` (refuse to start, naming both values);
//! 2. commit every transaction the restored checkpoint lists, with the raw protocol (EndTxn
//!    with the recorded producer id/epoch) — also when the crash came after the checkpoint
//!    completed and before (or in the middle of) the sinks' own commits. A transaction the
//!    broker already aborted fails the job, naming checkpoint, transactional id and partition;
//!    Once they are all committed, the checkpoint id goes into a ledger in the checkpoint store:
//!    a later recovery from the same (or an older) checkpoint skips them, because the fencing
//!    below bumps the epochs and EndTxn could no longer tell "already committed" from "lost";
//! 3. fence (InitProducerId) every transactional id any attempt of this job may have used, so
//!    no transaction of a killed attempt lingers and blocks read_committed readers. The id
//!    range (subtasks × slots ever used) is written to the checkpoint store *before* this
//!    attempt's producers start, so a later recovery fences it even if this attempt never
//!    completes a checkpoint.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_crds::contract::job_config::JobConfig;
use sluice_crds::contract::kafka::{DeliveryGuarantee, KafkaSinkSpec};

use super::build::secured;
use super::security::Cluster;
use super::sink::{KafkaCommittable, pool_for};
use super::{
    Error, TimeoutBudget, TxnIdPool, TxnOutcome, check_transaction_timeout, end_transaction, init_producer_id,
};
use crate::connectors::two_phase::{RecoveryContext, SinkRecovery, committable_txn};
use crate::ops::OpError;
use crate::storage::layout;

/// The id range an attempt of the job may have used, kept in the checkpoint store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct IdRange {
    subtasks: u32,
    slots: u32,
}

/// The newest checkpoint whose listed transactions a recovery has committed.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Ledger {
    checkpoint: u64,
}

/// Recovery of an exactly-once Kafka sink node.
pub struct KafkaSinkRecovery {
    node: String,
    spec: KafkaSinkSpec,
    /// The cluster, or why its security settings cannot be used (reported by `recover`).
    cluster: Result<Cluster, String>,
    pool: TxnIdPool,
    budget: Option<TimeoutBudget>,
    job_prefix: String,
}

/// The recovery of `node` (a `kafkaSink`) of `job`; `None` unless it is exactly-once.
pub fn for_sink(node: &str, spec: &KafkaSinkSpec, job: &JobConfig) -> Option<Box<dyn SinkRecovery>> {
    if spec.semantic != DeliveryGuarantee::ExactlyOnce {
        return None;
    }
    let max_concurrent = job.checkpointing.as_ref().map_or(1, |c| c.max_concurrent);
    let mut spec = spec.clone();
    let cluster = secured("kafkaSink", &spec.bootstrap_servers, &mut spec.properties);
    Some(Box::new(KafkaSinkRecovery {
        node: node.into(),
        pool: pool_for(&job.name, node, &spec, max_concurrent),
        cluster,
        budget: job.checkpointing.as_ref().map(|c| TimeoutBudget {
            checkpoint_interval: c.interval,
            checkpoint_timeout: c.timeout,
            restart_time: spec.expected_restart_time,
        }),
        job_prefix: job.name.clone(),
        spec,
    }))
}

impl KafkaSinkRecovery {
    fn err(&self, message: String) -> OpError {
        OpError::External { node: self.node.clone(), message }
    }

    fn marker_key(&self) -> String {
        layout::sink_note_key(&self.node, "transactional-ids.json")
    }

    fn ledger_key(&self) -> String {
        layout::sink_note_key(&self.node, "committed-through.json")
    }

    /// The newest checkpoint whose transactions an earlier recovery committed.
    async fn committed_through(&self, ctx: &RecoveryContext<'_>) -> Result<Option<u64>, OpError> {
        let Some(store) = ctx.store else { return Ok(None) };
        let key = self.ledger_key();
        match store.get(&key).await {
            Ok(bytes) => serde_json::from_slice::<Ledger>(&bytes)
                .map(|l| Some(l.checkpoint))
                .map_err(|e| self.err(format!("{key} is corrupt: {e}"))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.err(format!("read {key}: {e}"))),
        }
    }

    async fn record_committed(&self, ctx: &RecoveryContext<'_>, checkpoint: u64) -> Result<(), OpError> {
        let Some(store) = ctx.store else { return Ok(()) };
        let key = self.ledger_key();
        let bytes = serde_json::to_vec(&Ledger { checkpoint }).map_err(|e| self.err(e.to_string()))?;
        store.put(&key, Bytes::from(bytes)).await.map_err(|e| self.err(format!("write {key}: {e}")))
    }

    async fn check_timeout(&self, cluster: &Cluster) -> Result<(), OpError> {
        // A broker that will not describe its configuration (ACLs) still refuses an over-long
        // timeout itself when the producer starts; the cycle check below holds either way.
        let max = match super::broker_config::transaction_max_timeout_ms(cluster).await {
            Ok(max) => max,
            Err(e) => {
                tracing::warn!(node = %self.node, error = %e, "cannot read the broker's transaction.max.timeout.ms; checking the checkpoint cycle only");
                None
            }
        };
        let budget = self.budget.unwrap_or(TimeoutBudget {
            checkpoint_interval: Duration::ZERO,
            checkpoint_timeout: Duration::ZERO,
            restart_time: Duration::ZERO,
        });
        let max = max.and_then(|ms| u64::try_from(ms).ok()).map(Duration::from_millis);
        check_transaction_timeout(self.spec.transaction_timeout, budget, max).map_err(|e| OpError::Config {
            node: self.node.clone(),
            message: format!("kafkaSink.transactionTimeout: {e}"),
        })
    }

    /// Commits the listed transactions pre-committed after checkpoint `done` (older ones an
    /// earlier recovery already committed); returns how many, and the newest checkpoint id
    /// whose transactions are now all committed.
    async fn commit_listed(
        &self,
        ctx: &RecoveryContext<'_>,
        cluster: &Cluster,
        committables: &[serde_json::Value],
        done: u64,
    ) -> Result<(usize, u64), OpError> {
        let mut committed = 0;
        let mut newest = done;
        for v in committables {
            let (checkpoint, c): (u64, KafkaCommittable) = committable_txn(&self.node, v)?;
            newest = newest.max(checkpoint);
            let Some(identity) = c.identity else { continue };
            if checkpoint <= done {
                tracing::debug!(node = %self.node, checkpoint, id = %c.transactional_id, done, "already committed by an earlier recovery");
                continue;
            }
            match end_transaction(cluster, &c.transactional_id, identity, TxnOutcome::Commit).await {
                Ok(()) => {
                    tracing::debug!(node = %self.node, checkpoint, id = %c.transactional_id, ?identity, "recovery committed");
                    committed += 1
                }
                Err(e @ Error::TransactionLost { .. }) => {
                    return Err(OpError::Commit {
                        node: self.node.clone(),
                        checkpoint,
                        message: format!(
                            "transaction {} of completed checkpoint {checkpoint} (producer {} epoch {}, first record at {}/{:?}) cannot be committed: {e}. Its records are lost: the broker aborted it (transaction timeout or fencing)",
                            c.transactional_id, identity.producer_id, identity.producer_epoch, self.spec.topic, c.first
                        ),
                    });
                }
                Err(e) => {
                    return Err(
                        self.err(format!("commit transaction {} of checkpoint {checkpoint}: {e}", c.transactional_id))
                    );
                }
            }
            ctx.faults.hit("sink.mid_recovery");
        }
        Ok((committed, newest))
    }

    /// Reads, widens and writes back the id range; returns what must be fenced.
    async fn id_range(&self, ctx: &RecoveryContext<'_>) -> Result<IdRange, OpError> {
        let mine = IdRange { subtasks: ctx.parallelism, slots: self.pool.slots() };
        let Some(store) = ctx.store else { return Ok(mine) };
        let key = self.marker_key();
        let recorded = match store.get(&key).await {
            Ok(bytes) => {
                serde_json::from_slice::<IdRange>(&bytes).map_err(|e| self.err(format!("{key} is corrupt: {e}")))?
            }
            Err(e) if e.is_not_found() => IdRange::default(),
            Err(e) => return Err(self.err(format!("read {key}: {e}"))),
        };
        let range = IdRange { subtasks: recorded.subtasks.max(mine.subtasks), slots: recorded.slots.max(mine.slots) };
        if range != recorded {
            let bytes = serde_json::to_vec(&range).map_err(|e| self.err(e.to_string()))?;
            store.put(&key, Bytes::from(bytes)).await.map_err(|e| self.err(format!("write {key}: {e}")))?;
        }
        Ok(range)
    }

    async fn fence(&self, cluster: &Cluster, range: IdRange) -> Result<usize, OpError> {
        let pool = TxnIdPool::with_prefix(self.pool.prefix(), range.slots);
        let timeout_ms = i32::try_from(self.spec.transaction_timeout.as_millis()).unwrap_or(i32::MAX);
        let mut tasks = tokio::task::JoinSet::new();
        for subtask in 0..range.subtasks {
            for slot in 0..range.slots {
                let id = pool.slot_id(subtask, slot);
                let cluster = cluster.clone();
                tasks.spawn(async move {
                    let result = init_producer_id(&cluster, &id, timeout_ms).await;
                    (id, result)
                });
            }
        }
        let mut fenced = 0;
        while let Some(joined) = tasks.join_next().await {
            let (id, result) = joined.map_err(|e| self.err(format!("fencing task: {e}")))?;
            result.map_err(|e| self.err(format!("fence transactional id {id}: {e}")))?;
            fenced += 1;
        }
        Ok(fenced)
    }
}

#[async_trait::async_trait]
impl SinkRecovery for KafkaSinkRecovery {
    async fn recover(
        &self,
        ctx: &RecoveryContext<'_>,
        committables: &[serde_json::Value],
    ) -> Result<(usize, usize), OpError> {
        let cluster =
            self.cluster.as_ref().map_err(|m| OpError::External { node: self.node.clone(), message: m.clone() })?;
        self.check_timeout(cluster).await?;
        let done = self.committed_through(ctx).await?.unwrap_or(0);
        let (committed, newest) = self.commit_listed(ctx, cluster, committables, done).await?;
        if newest > done {
            self.record_committed(ctx, newest).await?;
        }
        // Committed (or skipped), not yet fenced: a crash here must leave nothing inconsistent.
        ctx.faults.hit("sink.mid_recovery");
        let range = self.id_range(ctx).await?;
        let fenced = self.fence(cluster, range).await?;
        tracing::info!(node = %self.node, job = %self.job_prefix, committed, fenced, ?range, "Kafka sink recovered");
        Ok((committed, fenced))
    }
}
