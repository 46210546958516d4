//! One attempt over two worker processes (`runtime/src/job/workers/`): where the tasks run,
//! the connection between the workers, and what a lost worker or connection does.

use super::state::{Item, Phase, Run, State};
use super::step::Action;
use super::{ProtocolModel, Variant};

/// Whether a step of one worker went through, or that worker failed (`Err(worker)`).
pub type Step = Result<(), usize>;

impl ProtocolModel {
    /// The worker that runs source `i`: source `i` stands for subtask `i` of a parallel source,
    /// and subtask `i` runs on worker `i % workers` (`placement.rs`).
    pub fn source_worker(&self, i: usize) -> usize {
        i % self.workers
    }

    /// The worker that runs sink `j`: sink `j` stands for subtask `j + 1` of a parallel sink, so
    /// sink 0 runs on worker 1 and its input crosses the connection. The operator (subtask 0)
    /// runs on worker 0, with the coordinator.
    pub fn sink_worker(&self, j: usize) -> usize {
        (j + 1) % self.workers
    }

    /// The worker that runs task `task` (coordinator numbering: sources, operator, sinks).
    pub fn task_worker(&self, task: usize) -> usize {
        if task < self.sources {
            self.source_worker(task)
        } else if task == self.op_task() {
            0
        } else {
            self.sink_worker(task - self.op_task() - 1)
        }
    }

    /// Whether source `i`'s channel to the operator crosses the connection.
    pub fn input_crosses(&self, i: usize) -> bool {
        self.source_worker(i) != 0
    }

    /// Whether the operator's channel to sink `j` crosses the connection.
    pub fn output_crosses(&self, j: usize) -> bool {
        self.sink_worker(j) != 0
    }

    /// Puts `item` on source `i`'s channel. On a channel that crosses a dropped connection
    /// the engine's sender gets `Closed` and its task fails: `Err(worker)`.
    pub(super) fn push_input(&self, r: &mut Run, i: usize, item: Item) -> Step {
        if !r.conn && self.input_crosses(i) {
            return Err(self.source_worker(i));
        }
        r.inputs[i].push_back(item);
        Ok(())
    }

    /// Puts `item` on the operator's channel to sink `j` (fails as [`Self::push_input`] says).
    pub(super) fn push_output(&self, r: &mut Run, j: usize, item: Item) -> Step {
        if !r.conn && self.output_crosses(j) {
            return Err(0);
        }
        r.outputs[j].push_back(item);
        Ok(())
    }

    /// Puts `item` on every output of the operator.
    pub(super) fn push_outputs(&self, r: &mut Run, item: Item) -> Step {
        (0..self.sinks).try_for_each(|j| self.push_output(r, j, item))
    }

    /// Worker `w` of a running attempt fails (its process crashed, one of its tasks failed, or
    /// it noticed a lost connection): its tasks stop, and its end of the connection goes.
    /// Worker 0's coordinator aborts the attempt (the run fails, `Leader::finish` says goodbye);
    /// worker 1 stops its tasks (`member.rs`: `LostCoordinator`).
    pub(super) fn fail_worker(&self, s: &mut State, r: &mut Run, w: usize) {
        r.up[w] = false;
        self.drop_conn(s, r);
    }

    /// The connection between the workers drops: every message in flight on it is lost —
    /// the crossing channels' data, barriers and ends, the coordinator's commands to worker
    /// 1's tasks (a command delivered but not yet handled is the same as one handled just
    /// before the drop: handling a command has no effect outside the worker), and worker 1's
    /// reports. Each worker then notices on its own ([`super::step::Action::Notice`]).
    pub(super) fn drop_conn(&self, s: &mut State, r: &mut Run) {
        if !r.conn {
            return;
        }
        r.conn = false;
        for i in (0..self.sources).filter(|&i| self.input_crosses(i)) {
            s.seen.lost_in_flight |= !r.inputs[i].is_empty();
            r.inputs[i].clear();
            // The bug: the receiver takes the closed channel for its end.
            if self.variant == Variant::LostAsEnd && !r.inputs_ended[i] {
                r.inputs[i].push_back(Item::End);
            }
        }
        for j in (0..self.sinks).filter(|&j| self.output_crosses(j)) {
            s.seen.lost_in_flight |= !r.outputs[j].is_empty();
            r.outputs[j].clear();
            if self.variant == Variant::LostAsEnd && !r.sinks[j].ended {
                r.outputs[j].push_back(Item::End);
            }
        }
        for i in (0..self.sources).filter(|&i| self.source_worker(i) != 0) {
            s.seen.lost_in_flight |= !r.sources[i].control.is_empty();
            r.sources[i].control.clear();
        }
        for j in (0..self.sinks).filter(|&j| self.sink_worker(j) != 0) {
            s.seen.lost_in_flight |= !r.sinks[j].control.is_empty();
            r.sinks[j].control.clear();
        }
    }

    /// The worker-1 process of attempt `by` handshakes with attempt `a`'s worker 0 (`link.rs`:
    /// `connect`, `accept_all`). Worker 0 refuses a hello of another attempt id; the refused
    /// process exits. A late comer after the slot was taken is refused too.
    pub(super) fn join(&self, s: &mut State, a: usize, by: usize) {
        if by != a {
            s.late = None;
            if self.variant != Variant::JoinAnyAttempt {
                s.seen.join_refused = true;
                return;
            }
        }
        s.attempts[a].member = Some(by);
        if s.late.take().is_some() {
            s.seen.join_refused = true; // the slot is taken: a late comer is refused
        }
    }

    /// The faults a running attempt of two workers may suffer next.
    pub(super) fn worker_faults(&self, s: &State, a: usize, r: &Run, out: &mut Vec<Action>) {
        if self.workers < 2 {
            return;
        }
        if s.worker_crashes < self.worker_crashes {
            out.extend((0..self.workers).filter(|&w| r.up[w]).map(|w| Action::CrashWorker(a, w)));
        }
        if s.drops < self.drops && r.conn {
            out.push(Action::Drop(a));
        }
    }

    /// Runs `f` on attempt `a`'s running state; a worker it fails goes down, and the attempt
    /// is over once no worker is left.
    pub(super) fn on_run(&self, s: &mut State, a: usize, f: impl FnOnce(&Self, &mut State, &mut Run) -> Step) {
        let Phase::Running(mut r) = std::mem::replace(&mut s.attempts[a].phase, Phase::Restoring) else {
            return;
        };
        if let Err(w) = f(self, s, &mut r) {
            self.fail_worker(s, &mut r, w);
        }
        if !r.conn {
            self.reap(&mut r);
        }
        if r.up.contains(&true) {
            s.attempts[a].phase = Phase::Running(r);
        } else {
            s.attempts[a].alive = false;
        }
    }

    /// After a drop, a worker with no step left that reaches the store or a transaction is
    /// taken as down at once: its notice is bound to come and changes nothing else (the
    /// relaunch it allows may still wait), so the idle and the failed worker are one state.
    fn reap(&self, r: &mut Run) {
        for w in 0..self.workers {
            let sink_busy = (0..self.sinks).any(|j| {
                let k = &r.sinks[j];
                self.sink_worker(j) == w && (!r.outputs[j].is_empty() || !k.control.is_empty() || k.committing > 0)
            });
            let coordinator_busy = w == 0 && !(r.publishing.is_empty() && r.results.is_empty());
            if !sink_busy && !coordinator_busy {
                r.up[w] = false;
            }
        }
    }
}
