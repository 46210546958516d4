//! Two-phase commit for exactly-once sinks, as Flink's `TwoPhaseCommitSinkFunction`:
//!
//! 1. `begin` a transaction lazily when the first record after a barrier arrives;
//! 2. at a barrier, `pre_commit` it (flush, make durable, keep invisible) and put the
//!    committable into the checkpoint — with every earlier committable not yet committed;
//! 3. when the checkpoint completes, `commit` every pending committable up to it (idempotent);
//! 4. on restore, [`SinkRecovery::recover`] commits the restored checkpoint's committables and
//!    aborts everything else the job may have left behind, before any subtask starts.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_crds::CheckpointId;

use crate::fault::Faults;
use crate::ops::{OpError, OpSnapshot, Operator, SnapshotMode};
use crate::record::Batch;
use crate::storage::ObjectStore;

/// The transaction lifecycle of one sink subtask.
pub trait TwoPhaseCommit: Send {
    /// An open transaction.
    type Txn: Send;
    /// What the checkpoint stores to finish a pre-committed transaction later.
    type Committable: Serialize + DeserializeOwned + Send;
    /// Opens a transaction.
    fn begin(&mut self) -> Result<Self::Txn, OpError>;
    /// Writes records into the open transaction.
    fn write(&mut self, txn: &mut Self::Txn, batch: &Batch) -> Result<(), OpError>;
    /// Makes the transaction durable but invisible; returns how to commit it.
    fn pre_commit(&mut self, txn: Self::Txn) -> Result<Self::Committable, OpError>;
    /// Makes a pre-committed transaction visible. Must be idempotent.
    fn commit(&mut self, committable: &Self::Committable) -> Result<(), OpError>;
    /// Throws an open transaction away.
    fn abort(&mut self, txn: Self::Txn) -> Result<(), OpError>;
    /// Throws away a pre-committed transaction no published checkpoint lists (the job is
    /// cancelled). `Ok(false)`: this sink cannot, the next run's recovery aborts it.
    fn abort_committable(&mut self, committable: &Self::Committable) -> Result<bool, OpError> {
        let _ = committable;
        Ok(false)
    }
    /// Checkpoint `checkpoint` records `listed` as its pending transactions.
    fn on_snapshot(&mut self, checkpoint: CheckpointId, listed: &[&Self::Committable]) {
        let _ = (checkpoint, listed);
    }
    /// Checkpoint `checkpoint` completed (called before its transactions are committed).
    fn on_complete(&mut self, checkpoint: CheckpointId) {
        let _ = checkpoint;
    }
}

/// What a sink's recovery may need besides the committables.
pub struct RecoveryContext<'a> {
    /// The job's checkpoint store, when it takes checkpoints (sinks may keep notes there).
    pub store: Option<&'a dyn ObjectStore>,
    /// The checkpoint being restored (its committables are the ones passed), if any.
    pub checkpoint: Option<CheckpointId>,
    /// The node's parallelism in the attempt about to start.
    pub parallelism: u32,
    /// Crash points (recovery itself can be interrupted).
    pub faults: &'a Faults,
}

/// Resolves a sink's transactions after a restart; run once per sink node before tasks start.
#[async_trait::async_trait]
pub trait SinkRecovery: Send + Sync {
    /// Commits `committables` (from the restored checkpoint) and aborts every other transaction
    /// the job left open. Returns how many were committed and how many aborted.
    async fn recover(
        &self,
        ctx: &RecoveryContext<'_>,
        committables: &[serde_json::Value],
    ) -> Result<(usize, usize), OpError>;

    /// Committed output this sink already holds outside the checkpoint store, for people
    /// (e.g. "3 committed files in /out"), or `None`. A run that finds no checkpoint manifest
    /// refuses to start fresh over it (see `checkpoint::fallback`). Sinks that keep their notes
    /// in the checkpoint store (`sinks/`) need not say anything here.
    fn committed_output(&self) -> Option<String> {
        None
    }
}

/// Adapts a [`TwoPhaseCommit`] implementation to the [`Operator`] lifecycle.
pub struct TwoPhaseCommitSink<T: TwoPhaseCommit> {
    inner: T,
    node: String,
    current: Option<T::Txn>,
    pending: Vec<(CheckpointId, T::Committable)>,
    checkpointing: bool,
    faults: Faults,
}

impl<T: TwoPhaseCommit> TwoPhaseCommitSink<T> {
    /// Wraps a sink. Without checkpointing, everything commits when input ends.
    pub fn new(inner: T, node: &str, checkpointing: bool, faults: Faults) -> Self {
        TwoPhaseCommitSink { inner, node: node.into(), current: None, pending: Vec::new(), checkpointing, faults }
    }

    fn commit_up_to(&mut self, checkpoint: CheckpointId) -> Result<(), OpError> {
        let ready = ready_to_commit(self.pending.iter().map(|(id, _)| *id), checkpoint);
        for (_, c) in &self.pending[..ready] {
            self.inner.commit(c)?;
            // Some transactions (of this sink, or of this job's other sinks) are committed, not all.
            self.faults.hit("sink.mid_commit");
        }
        self.pending.drain(..ready);
        Ok(())
    }
}

impl<T: TwoPhaseCommit> Operator for TwoPhaseCommitSink<T> {
    fn process(&mut self, batch: Batch, _out: &mut Batch) -> Result<(), OpError> {
        if batch.is_empty() {
            return Ok(());
        }
        let txn = match self.current.as_mut() {
            Some(t) => t,
            None => self.current.insert(self.inner.begin()?),
        };
        self.inner.write(txn, &batch)
    }

    fn snapshot(&mut self, checkpoint: CheckpointId, _mode: SnapshotMode) -> Result<OpSnapshot, OpError> {
        if let Some(txn) = self.current.take() {
            self.faults.hit("sink.before_precommit");
            let c = self.inner.pre_commit(txn)?;
            self.pending.push((checkpoint, c));
        }
        tracing::debug!(node = %self.node, %checkpoint, pending = self.pending.len(), "sink snapshot");
        let listed: Vec<&T::Committable> = self.pending.iter().map(|(_, c)| c).collect();
        self.inner.on_snapshot(checkpoint, &listed);
        let committables = self
            .pending
            .iter()
            .map(|(id, c)| {
                serde_json::to_value(c).map(|v| serde_json::json!({"checkpoint": id.0, "txn": v})).map_err(|e| {
                    OpError::Serialize {
                        node: self.node.clone(),
                        what: "a pre-committed transaction",
                        message: format!("checkpoint {id}: {e}"),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(OpSnapshot { committables, ..OpSnapshot::default() })
    }

    fn checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OpError> {
        self.inner.on_complete(checkpoint);
        self.commit_up_to(checkpoint)
    }

    fn cancel(&mut self, keep_up_to: Option<CheckpointId>) -> Result<(), OpError> {
        let open = self.current.take().map(|txn| self.inner.abort(txn)).transpose()?.is_some();
        let (mut aborted, mut left) = (0, 0);
        for (id, c) in std::mem::take(&mut self.pending) {
            if keep_up_to.is_none_or(|k| id > k) && self.inner.abort_committable(&c)? {
                aborted += 1;
            } else {
                left += 1;
                self.pending.push((id, c));
            }
        }
        tracing::debug!(node = %self.node, open, aborted, left_for_recovery = left, "sink cancelled");
        Ok(())
    }

    fn finish(&mut self, _out: &mut Batch) -> Result<(), OpError> {
        if let Some(txn) = self.current.take() {
            if self.checkpointing {
                tracing::warn!(node = %self.node, "records after the final checkpoint: committing them directly");
            }
            let c = self.inner.pre_commit(txn)?;
            self.pending.push((CheckpointId(u64::MAX), c));
        }
        if !self.checkpointing || self.pending.iter().all(|(id, _)| id.0 == u64::MAX) {
            self.commit_up_to(CheckpointId(u64::MAX))?;
        }
        Ok(())
    }
}

/// How many of the pending transactions (oldest first, by the checkpoint that pre-committed
/// them) checkpoint `completed`'s completion commits: every one up to and including it.
pub fn ready_to_commit(pending: impl IntoIterator<Item = CheckpointId>, completed: CheckpointId) -> usize {
    pending.into_iter().take_while(|id| *id <= completed).count()
}

/// Unwraps the `{checkpoint, txn}` envelope [`TwoPhaseCommitSink`] stores committables in.
pub fn committable_txn<C: DeserializeOwned>(node: &str, v: &serde_json::Value) -> Result<(u64, C), OpError> {
    let checkpoint = v.get("checkpoint").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let txn = v.get("txn").cloned().unwrap_or(serde_json::Value::Null);
    serde_json::from_value(txn)
        .map(|c| (checkpoint, c))
        .map_err(|e| OpError::Restore { node: node.into(), message: format!("committable: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_commits_every_pending_transaction_up_to_its_checkpoint() {
        let pending = [CheckpointId(3), CheckpointId(4), CheckpointId(6)];
        assert_eq!(ready_to_commit(pending, CheckpointId(2)), 0);
        assert_eq!(ready_to_commit(pending, CheckpointId(4)), 2, "an older pending one commits too");
        assert_eq!(ready_to_commit(pending, CheckpointId(5)), 2);
        assert_eq!(ready_to_commit(pending, CheckpointId(9)), 3);
    }

    /// Transactions are numbers; records what happened to them.
    #[derive(Default)]
    struct Log {
        next: u64,
        aborted: Vec<u64>,
        committed: Vec<u64>,
    }

    impl TwoPhaseCommit for Log {
        type Txn = u64;
        type Committable = u64;
        fn begin(&mut self) -> Result<u64, OpError> {
            self.next += 1;
            Ok(self.next)
        }
        fn write(&mut self, _txn: &mut u64, _batch: &Batch) -> Result<(), OpError> {
            Ok(())
        }
        fn pre_commit(&mut self, txn: u64) -> Result<u64, OpError> {
            Ok(txn)
        }
        fn commit(&mut self, c: &u64) -> Result<(), OpError> {
            self.committed.push(*c);
            Ok(())
        }
        fn abort(&mut self, txn: u64) -> Result<(), OpError> {
            self.aborted.push(txn);
            Ok(())
        }
        fn abort_committable(&mut self, c: &u64) -> Result<bool, OpError> {
            self.aborted.push(*c);
            Ok(true)
        }
    }

    fn one_record() -> Batch {
        std::iter::once(crate::record::Record {
            key: crate::value::Value::Null,
            ts: 0,
            value: crate::value::Value::Int(1),
        })
        .collect()
    }

    /// Pre-commits transactions 1, 2, 3 for checkpoints 1, 2, 3 and leaves 4 open.
    fn sink_with_three_pending() -> TwoPhaseCommitSink<Log> {
        let mut sink = TwoPhaseCommitSink::new(Log::default(), "out", true, Faults::default());
        for id in 1..=3 {
            sink.process(one_record(), &mut Batch::new()).expect("write");
            sink.snapshot(CheckpointId(id), SnapshotMode::Full).expect("snapshot");
        }
        sink.process(one_record(), &mut Batch::new()).expect("write");
        sink
    }

    #[test]
    fn cancel_aborts_the_open_and_every_unpublished_pre_committed_transaction() {
        let mut sink = sink_with_three_pending();
        sink.checkpoint_complete(CheckpointId(1)).expect("complete");
        sink.cancel(None).expect("cancel");
        assert_eq!(sink.inner.committed, vec![1]);
        assert_eq!(sink.inner.aborted, vec![4, 2, 3]);
        assert!(sink.pending.is_empty());
    }

    /// A committable serde cannot turn into JSON: a map with non-string keys.
    struct Unserialisable;

    impl TwoPhaseCommit for Unserialisable {
        type Txn = ();
        type Committable = std::collections::BTreeMap<(u8, u8), u8>;
        fn begin(&mut self) -> Result<(), OpError> {
            Ok(())
        }
        fn write(&mut self, _txn: &mut (), _batch: &Batch) -> Result<(), OpError> {
            Ok(())
        }
        fn pre_commit(&mut self, _txn: ()) -> Result<Self::Committable, OpError> {
            Ok([((1, 2), 3)].into_iter().collect())
        }
        fn commit(&mut self, _c: &Self::Committable) -> Result<(), OpError> {
            Ok(())
        }
        fn abort(&mut self, _txn: ()) -> Result<(), OpError> {
            Ok(())
        }
    }

    #[test]
    fn a_committable_that_does_not_serialise_fails_the_checkpoint_not_a_commit() {
        let mut sink = TwoPhaseCommitSink::new(Unserialisable, "out", true, Faults::default());
        sink.process(one_record(), &mut Batch::new()).expect("write");
        let err = sink.snapshot(CheckpointId(5), SnapshotMode::Full).err().expect("the committable cannot be stored");
        assert!(matches!(err, OpError::Serialize { .. }), "{err}");
        assert_eq!(err.kind(), crate::error::ErrorKind::Retryable, "nothing committed is at stake: {err}");
        assert!(!err.to_string().contains("commit of checkpoint"), "{err}");
    }

    #[test]
    fn cancel_leaves_transactions_a_published_manifest_may_list_for_recovery() {
        let mut sink = sink_with_three_pending();
        sink.cancel(Some(CheckpointId(2))).expect("cancel");
        assert_eq!(sink.inner.aborted, vec![4, 3], "checkpoint 2's manifest may be published: 1 and 2 stay");
        assert_eq!(sink.pending.iter().map(|(_, c)| *c).collect::<Vec<_>>(), vec![1, 2]);
        assert!(sink.inner.committed.is_empty(), "a cancel never commits");
    }
}
