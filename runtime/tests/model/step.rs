//! The model's transitions: which steps are possible in a state, and what each one does.

use std::collections::BTreeMap;

use sluice_crds::CheckpointId;
use sluice_runtime::checkpoint::restore::first_checkpoint_id;
use sluice_runtime::storage::manifests::latest_restorable;
use stateright::{Model, Property};

use super::run::finished;
use super::state::{Attempt, Manifest, Phase, Run, Seen, State, TxnStatus};
use super::{ProtocolModel, Variant, properties};

/// One step of the system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Attempt `.0` crashes.
    Crash(usize),
    /// The operator relaunches while the current attempt keeps running.
    Zombie,
    /// The operator relaunches after the current attempt died.
    Relaunch,
    /// Attempt `.0` reads the store and picks its restore point.
    Restore(usize),
    /// Attempt `.0` recovers its next sink.
    RecoverSink(usize),
    /// Attempt `.0`'s clock moves one interval.
    Tick(usize),
    /// Attempt `.0` writes the manifest of a checkpoint.
    PublishWrite(usize, CheckpointId),
    /// Attempt `.0`'s coordinator learns how a publish went.
    PublishResult(usize, CheckpointId),
    /// Source `.1` of attempt `.0` reads a record.
    SourceEmit(usize, usize),
    /// Source `.1` of attempt `.0` handles a command.
    SourceControl(usize, usize),
    /// The operator of attempt `.0` reads input `.1`.
    OpRead(usize, usize),
    /// Sink `.1` of attempt `.0` reads its input.
    SinkRead(usize, usize),
    /// Sink `.1` of attempt `.0` handles a command.
    SinkControl(usize, usize),
    /// Sink `.1` of attempt `.0` commits its oldest ready transaction.
    SinkCommit(usize, usize),
    /// The worker-1 process of attempt `.1` handshakes with attempt `.0`'s worker 0.
    Join(usize, usize),
    /// Worker `.1` of attempt `.0` crashes alone.
    CrashWorker(usize, usize),
    /// The connection between the two workers of attempt `.0` drops.
    Drop(usize),
    /// Worker `.1` of attempt `.0` notices the lost connection (a read or write fails, or
    /// heartbeats stop) and fails: worker 0's coordinator aborts the attempt, worker 1 stops.
    Notice(usize, usize),
}

impl Action {
    /// Whether this step is a fault or the passing of time rather than protocol progress.
    pub fn is_environment(&self) -> bool {
        matches!(self, Action::Crash(_) | Action::Zombie | Action::Tick(_) | Action::CrashWorker(..) | Action::Drop(_))
    }
}

fn running(a: &Attempt) -> Option<&Run> {
    match &a.phase {
        Phase::Running(r) if a.alive => Some(r),
        _ => None,
    }
}

impl ProtocolModel {
    /// A new attempt: its processes start.
    fn launch(&self) -> Attempt {
        Attempt { alive: true, zombie: false, member: None, phase: Phase::Restoring }
    }

    fn restore(&self, s: &mut State, a: usize) {
        let newest = latest_restorable(s.manifests.keys().copied().collect()).first().copied();
        let restored = newest.and_then(|id| s.manifests.get(&id).map(|m| (id, m.clone())));
        let existing = s.manifests.keys().last().copied();
        let mut first_id = first_checkpoint_id(existing, newest);
        if self.variant == Variant::Engine {
            let copy = restored.as_ref().map(|(_, m)| Manifest { by: a, ..m.clone() }).unwrap_or(Manifest {
                offsets: vec![0; self.sources],
                committables: vec![Vec::new(); self.sinks],
                by: a,
            });
            if !self.put_manifest(s, first_id, copy) {
                s.attempts[a].alive = false;
                return;
            }
            first_id = first_id.next();
        }
        s.attempts[a].phase = Phase::Recovering { restored, first_id, next: 0 };
    }

    /// The store's manifest write; `false` when the id was taken (create-if-absent).
    pub(super) fn put_manifest(&self, s: &mut State, id: CheckpointId, m: Manifest) -> bool {
        if s.manifests.contains_key(&id) && self.variant != Variant::PublishOverwrites {
            return false;
        }
        s.manifests.insert(id, m);
        *s.publishes.entry(id).or_default() += 1;
        true
    }

    /// Commits transaction `t`; `false` when it was aborted (the commit fails: the attempt stops).
    pub(super) fn commit(s: &mut State, t: usize) -> bool {
        match s.txns[t].status {
            TxnStatus::Aborted => {
                s.seen.commit_of_aborted = true;
                false
            }
            _ => {
                s.txns[t].status = TxnStatus::Committed;
                true
            }
        }
    }

    fn recover_sink(&self, s: &mut State, a: usize) {
        let Phase::Recovering { restored, first_id, next } = s.attempts[a].phase.clone() else { return };
        let listed: Vec<usize> =
            restored.as_ref().map(|(_, m)| m.committables[next].iter().map(|(_, t)| *t).collect()).unwrap_or_default();
        for &t in &listed {
            let was_pending = s.txns[t].status == TxnStatus::PreCommitted;
            if !Self::commit(s, t) {
                s.attempts[a].alive = false;
                return;
            }
            s.seen.recovery_commit |= was_pending;
        }
        if self.variant != Variant::RecoveryWithoutAbort {
            for (t, txn) in s.txns.iter_mut().enumerate() {
                let open = matches!(txn.status, TxnStatus::Open | TxnStatus::PreCommitted);
                if txn.sink == next && open && !listed.contains(&t) {
                    s.seen.recovery_abort_precommitted |= txn.status == TxnStatus::PreCommitted;
                    txn.status = TxnStatus::Aborted;
                }
            }
        }
        s.fence[next] = s.fence[next].max(a);
        if next + 1 < self.sinks {
            s.attempts[a].phase = Phase::Recovering { restored, first_id, next: next + 1 };
            return;
        }
        // Worker 0 sends `Start`; worker 1 restores its share and wires (`member.rs`).
        let mut run = self.new_run(&restored, first_id, s.attempts[a].member.unwrap_or(a));
        for i in 0..self.sources {
            if self.report_if_exhausted(s, a, &mut run, i).is_err() {
                s.attempts[a].alive = false;
                return;
            }
        }
        s.attempts[a].phase = Phase::Running(Box::new(run));
    }

    fn crash(&self, s: &mut State, a: usize) {
        let listed_uncommitted = |sink: usize, s: &State| {
            s.manifests
                .values()
                .any(|m| m.committables[sink].iter().any(|(_, t)| s.txns[*t].status != TxnStatus::Committed))
        };
        if s.manifests
            .values()
            .any(|m| m.committables.iter().flatten().any(|(_, t)| s.txns[*t].status == TxnStatus::PreCommitted))
        {
            s.seen.crash_after_publish_before_commit = true;
        }
        if self.sinks >= 2 && !listed_uncommitted(0, s) && listed_uncommitted(1, s) {
            s.seen.crash_between_sinks = true;
        }
        if matches!(s.attempts[a].phase, Phase::Recovering { next, .. } if next > 0) {
            s.seen.crash_during_recovery = true;
        }
        // Worker 0 died before worker 1's process joined: that process may still be starting.
        if self.workers > 1 && s.attempts[a].member.is_none() && s.late.is_none() {
            s.late = Some(a);
        }
        s.attempts[a].alive = false;
        s.attempts[a].phase = Phase::Restoring;
        s.crashes += 1;
    }
}

impl Model for ProtocolModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            attempts: vec![self.launch()],
            manifests: BTreeMap::new(),
            publishes: BTreeMap::new(),
            txns: Vec::new(),
            fence: vec![0; self.sinks],
            crashes: 0,
            zombies: 0,
            ticks: 0,
            worker_crashes: 0,
            drops: 0,
            late: None,
            seen: Seen::default(),
        }]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        let current = s.attempts.len() - 1;
        for (a, att) in s.attempts.iter().enumerate() {
            if !att.alive {
                continue;
            }
            match &att.phase {
                Phase::Restoring if self.workers > 1 && att.member.is_none() => {
                    out.push(Action::Join(a, a));
                    if let Some(late) = s.late.filter(|&l| l < a) {
                        out.push(Action::Join(a, late));
                    }
                }
                Phase::Restoring => out.push(Action::Restore(a)),
                Phase::Recovering { .. } => out.push(Action::RecoverSink(a)),
                Phase::Running(r) => {
                    for w in (0..self.workers).filter(|&w| r.up[w] && !r.conn) {
                        out.push(Action::Notice(a, w));
                    }
                    if finished(r) {
                        continue; // the processes exit
                    }
                    self.run_actions(a, r, out);
                    if s.ticks < self.ticks && r.conn {
                        out.push(Action::Tick(a));
                    }
                    self.worker_faults(s, a, r, out);
                }
            }
            if s.crashes < self.crashes {
                out.push(Action::Crash(a));
            }
        }
        let can_launch = s.attempts.len() < self.max_attempts();
        let last = &s.attempts[current];
        // A worker lost fails the attempt: the supervisor relaunches every worker, while the
        // rest of the old attempt may still run until it notices.
        let failed = !last.alive || matches!(&last.phase, Phase::Running(r) if r.up.contains(&false));
        if can_launch && failed {
            out.push(Action::Relaunch);
        }
        // The old attempt lives on once it runs (a pod on a lost node, a slow termination). An
        // attempt replaced before it even restored is a different hazard (see the report in
        // `mod.rs`): the operator must not launch a new attempt while an old one may still start.
        if can_launch && !failed && s.zombies < self.zombies && running(last).is_some_and(|r| !finished(r)) {
            out.push(Action::Zombie);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Crash(a) => self.crash(&mut s, a),
            Action::Zombie => {
                let current = s.attempts.len() - 1;
                s.attempts[current].zombie = true;
                s.zombies += 1;
                s.attempts.push(self.launch());
            }
            Action::Relaunch => s.attempts.push(self.launch()),
            Action::Restore(a) => self.restore(&mut s, a),
            Action::RecoverSink(a) => self.recover_sink(&mut s, a),
            Action::Join(a, by) => self.join(&mut s, a, by),
            Action::CrashWorker(a, w) | Action::Notice(a, w) => {
                if matches!(action, Action::CrashWorker(..)) {
                    s.worker_crashes += 1;
                }
                self.on_run(&mut s, a, |m, s, r| {
                    m.fail_worker(s, r, w);
                    Ok(())
                });
            }
            Action::Drop(a) => {
                s.drops += 1;
                self.on_run(&mut s, a, |m, s, r| {
                    m.drop_conn(s, r);
                    Ok(())
                });
            }
            other => {
                let a = match other {
                    Action::Tick(a)
                    | Action::PublishWrite(a, _)
                    | Action::PublishResult(a, _)
                    | Action::SourceEmit(a, _)
                    | Action::SourceControl(a, _)
                    | Action::OpRead(a, _)
                    | Action::SinkRead(a, _)
                    | Action::SinkControl(a, _)
                    | Action::SinkCommit(a, _) => a,
                    _ => return None,
                };
                s.seen.remnant_step |= a + 1 < s.attempts.len() && !s.attempts[a].zombie;
                self.on_run(&mut s, a, |m, s, r| m.run_step(s, a, r, other).and_then(|()| m.settle(s, a, r)));
            }
        }
        for att in s.attempts.iter_mut().filter(|att| !att.alive) {
            att.phase = Phase::Restoring; // a dead process keeps no state
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all(self)
    }
}
