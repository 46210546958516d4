//! The exactly-once sink's transactional ids: a bounded, deterministic pool per subtask,
//! derived from job, node and subtask index only, so a restarted or rescaled job can name
//! (and therefore commit or fence) every transaction any earlier attempt may have opened.

/// Names the transactional ids of one sink node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnIdPool {
    prefix: String,
    slots: u32,
}

impl TxnIdPool {
    /// The pool for sink `node` of `job`, with `slots` ids per subtask: one per checkpoint
    /// whose transaction may be pending at once (max concurrent checkpoints + 1 for the
    /// transaction being written). `slots` below 1 counts as 1.
    pub fn new(job: &str, node: &str, slots: u32) -> Self {
        Self::with_prefix(&format!("sluice-{job}-{node}"), slots)
    }

    /// The pool with an explicit prefix (`kafkaSink.transactionalIdPrefix`).
    pub fn with_prefix(prefix: &str, slots: u32) -> Self {
        Self { prefix: prefix.to_owned(), slots: slots.max(1) }
    }

    /// The prefix every id of the pool starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of ids per subtask.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// The id of `slot` of `subtask`.
    pub fn slot_id(&self, subtask: u32, slot: u32) -> String {
        format!("{}-{subtask}-{slot}", self.prefix)
    }

    /// The id a subtask uses for checkpoint `checkpoint_id`'s transaction: slots rotate
    /// with the checkpoint id, so consecutive pending transactions never share an id.
    pub fn id(&self, subtask: u32, checkpoint_id: u64) -> String {
        let slot = checkpoint_id % u64::from(self.slots);
        format!("{}-{subtask}-{slot}", self.prefix)
    }

    /// Every id of `subtask`.
    pub fn ids_of(&self, subtask: u32) -> Vec<String> {
        (0..u64::from(self.slots)).map(|slot| format!("{}-{subtask}-{slot}", self.prefix)).collect()
    }

    /// The ids subtask `me` of a job now running at `parallelism` must fence on restore, when
    /// earlier attempts ran at up to `previous_max_parallelism`: its own, plus those of every
    /// former subtask index `i >= parallelism` with `i % parallelism == me`, so each id of
    /// the job is fenced by exactly one subtask.
    pub fn ids_to_fence(&self, me: u32, parallelism: u32, previous_max_parallelism: u32) -> Vec<String> {
        let parallelism = parallelism.max(1);
        (0..previous_max_parallelism.max(parallelism))
            .filter(|former| former % parallelism == me)
            .flat_map(|former| self.ids_of(former))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn ids_are_stable_and_rotate_over_the_slots() {
        let pool = TxnIdPool::new("orders", "sink", 2);
        assert_eq!(pool.id(3, 10), "sluice-orders-sink-3-0");
        assert_eq!(pool.id(3, 11), "sluice-orders-sink-3-1");
        assert_eq!(pool.id(3, 12), pool.id(3, 10));
        assert_eq!(TxnIdPool::new("orders", "sink", 2), pool);
    }

    #[test]
    fn every_id_of_every_former_subtask_is_fenced_by_exactly_one_subtask() {
        let pool = TxnIdPool::new("j", "n", 3);
        for (previous, now) in [(4, 2), (2, 4), (5, 5), (7, 3)] {
            let mut fenced = Vec::new();
            for me in 0..now {
                fenced.extend(pool.ids_to_fence(me, now, previous));
            }
            let unique: BTreeSet<_> = fenced.iter().cloned().collect();
            assert_eq!(unique.len(), fenced.len(), "an id fenced twice ({previous} -> {now})");
            let expected: BTreeSet<_> = (0..previous.max(now)).flat_map(|s| pool.ids_of(s)).collect();
            assert_eq!(unique, expected, "{previous} -> {now}");
        }
    }
}
