//! Barrier alignment, as a pure state machine. A task with several input channels stops
//! reading a channel once it delivered barrier N, until every channel has; then the task
//! snapshots and forwards N. An ended channel counts as having delivered every barrier.

use super::message::Barrier;

/// What the task should do after an input event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alignment {
    /// Stop reading this channel until alignment completes.
    Block(usize),
    /// Every channel delivered the barrier: snapshot, forward it, unblock every channel.
    Aligned(Barrier),
    /// Nothing to do.
    Wait,
}

/// Tracks one alignment at a time over `n` channels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BarrierAligner {
    received: Vec<bool>,
    ended: Vec<bool>,
    current: Option<Barrier>,
}

impl BarrierAligner {
    /// An aligner for `channels` input channels.
    pub fn new(channels: usize) -> BarrierAligner {
        BarrierAligner { received: vec![false; channels], ended: vec![false; channels], current: None }
    }

    /// The barrier being aligned, if any.
    pub fn current(&self) -> Option<Barrier> {
        self.current
    }

    /// Whether channel `ch` is blocked (it delivered the current barrier).
    pub fn is_blocked(&self, ch: usize) -> bool {
        self.current.is_some() && self.received[ch]
    }

    fn complete_if_aligned(&mut self) -> Alignment {
        match self.current {
            Some(b) if self.received.iter().zip(&self.ended).all(|(r, e)| *r || *e) => {
                self.current = None;
                self.received.iter_mut().for_each(|r| *r = false);
                Alignment::Aligned(b)
            }
            _ => Alignment::Wait,
        }
    }

    /// Channel `ch` delivered `barrier`.
    pub fn on_barrier(&mut self, ch: usize, barrier: Barrier) -> Alignment {
        match self.current {
            Some(cur) if barrier.id < cur.id => return Alignment::Wait, // stale: already superseded
            Some(cur) if barrier.id > cur.id => {
                // A newer barrier: the current checkpoint can no longer align here (it will
                // time out at the coordinator). Start over with the newer one.
                tracing::warn!(abandoned = %cur.id, newer = %barrier.id, "abandoning barrier alignment");
                self.received.iter_mut().for_each(|r| *r = false);
                self.current = Some(barrier);
            }
            None => self.current = Some(barrier),
            Some(_) => {}
        }
        self.received[ch] = true;
        match self.complete_if_aligned() {
            Alignment::Wait => Alignment::Block(ch),
            done => done,
        }
    }

    /// Channel `ch` ended.
    pub fn on_end(&mut self, ch: usize) -> Alignment {
        self.ended[ch] = true;
        self.complete_if_aligned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::message::BarrierKind;
    use sluice_crds::CheckpointId;

    fn b(id: u64) -> Barrier {
        Barrier { id: CheckpointId(id), kind: BarrierKind::Checkpoint }
    }

    /// Feeds `order` (channel indices) as barrier deliveries; returns when alignment completed.
    fn run(channels: usize, order: &[usize]) -> Vec<Alignment> {
        let mut a = BarrierAligner::new(channels);
        order.iter().map(|&ch| a.on_barrier(ch, b(1))).collect()
    }

    #[test]
    fn two_inputs_align_in_either_order() {
        for order in [[0, 1], [1, 0]] {
            let steps = run(2, &order);
            assert_eq!(steps[0], Alignment::Block(order[0]));
            assert_eq!(steps[1], Alignment::Aligned(b(1)));
        }
    }

    #[test]
    fn three_inputs_align_only_after_the_last_in_every_interleaving() {
        let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        for order in perms {
            let mut a = BarrierAligner::new(3);
            assert_eq!(a.on_barrier(order[0], b(7)), Alignment::Block(order[0]));
            assert!(a.is_blocked(order[0]) && !a.is_blocked(order[1]));
            assert_eq!(a.on_barrier(order[1], b(7)), Alignment::Block(order[1]));
            assert_eq!(a.on_barrier(order[2], b(7)), Alignment::Aligned(b(7)));
            assert!((0..3).all(|c| !a.is_blocked(c)), "everything unblocked after alignment");
            // The next checkpoint aligns independently.
            assert_eq!(a.on_barrier(order[2], b(8)), Alignment::Block(order[2]));
        }
    }

    #[test]
    fn an_ended_channel_counts_as_aligned() {
        let mut a = BarrierAligner::new(3);
        assert_eq!(a.on_barrier(0, b(1)), Alignment::Block(0));
        assert_eq!(a.on_end(2), Alignment::Wait);
        assert_eq!(a.on_barrier(1, b(1)), Alignment::Aligned(b(1)));
        let mut a = BarrierAligner::new(2);
        assert_eq!(a.on_barrier(0, b(1)), Alignment::Block(0));
        assert_eq!(a.on_end(1), Alignment::Aligned(b(1)));
    }

    #[test]
    fn a_newer_barrier_supersedes_an_unfinished_alignment() {
        let mut a = BarrierAligner::new(2);
        assert_eq!(a.on_barrier(0, b(1)), Alignment::Block(0));
        assert_eq!(a.on_barrier(1, b(2)), Alignment::Block(1));
        assert_eq!(a.on_barrier(0, b(1)), Alignment::Wait, "stale barrier ignored");
        assert_eq!(a.on_barrier(0, b(2)), Alignment::Aligned(b(2)));
    }
}
