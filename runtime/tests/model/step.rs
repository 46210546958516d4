//! The model's transitions: which steps are possible in a state, and what each one does.

use std::collections::{BTreeMap, VecDeque};

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::latest_restorable;
use sluice_runtime::checkpoint::restore::first_checkpoint_id;
use sluice_runtime::checkpoint::{Action as CoordAction, Coordinator, CoordinatorConfig, Input};
use sluice_runtime::connectors::two_phase::ready_to_commit;
use sluice_runtime::engine::barrier::{Alignment, BarrierAligner};
use sluice_runtime::engine::{Barrier, TaskAck, TaskId};
use stateright::{Model, Property};

use super::state::{
    Attempt, Coord, Ctl, Event, Item, Manifest, Phase, Run, Seen, Sink, Snap, Source, State, Txn, TxnStatus,
};
use super::{ProtocolModel, Variant, properties};

/// Checkpoint interval of the modelled coordinator (the clock moves in these steps).
const INTERVAL_MS: u64 = 100;

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
}

impl Action {
    /// Whether this step is a fault or the passing of time rather than protocol progress.
    pub fn is_environment(&self) -> bool {
        matches!(self, Action::Crash(_) | Action::Zombie | Action::Tick(_))
    }
}

fn coordinator_config() -> CoordinatorConfig {
    CoordinatorConfig {
        interval_ms: Some(INTERVAL_MS),
        timeout_ms: u64::MAX / 4,
        min_pause_ms: 0,
        max_concurrent: 1,
        tolerable_failures: 0,
    }
}

/// Whether a running attempt has nothing left to do: input ended everywhere and every
/// transaction committed.
pub fn finished(run: &Run) -> bool {
    run.sources.iter().all(|s| s.ended && s.control.is_empty())
        && run.sinks.iter().all(|s| s.ended && s.pending.is_empty() && s.committing == 0 && s.control.is_empty())
        && run.publishing.is_empty()
        && run.results.is_empty()
}

fn running(a: &Attempt) -> Option<&Run> {
    match &a.phase {
        Phase::Running(r) if a.alive => Some(r),
        _ => None,
    }
}

impl ProtocolModel {
    fn run_actions(&self, a: usize, r: &Run, out: &mut Vec<Action>) {
        for (id, _) in &r.publishing {
            out.push(Action::PublishWrite(a, *id));
        }
        for (id, _) in &r.results {
            out.push(Action::PublishResult(a, *id));
        }
        for (i, s) in r.sources.iter().enumerate() {
            if s.offset < self.records && !s.ended {
                out.push(Action::SourceEmit(a, i));
            }
            if !s.control.is_empty() {
                out.push(Action::SourceControl(a, i));
            }
        }
        for (ch, q) in r.inputs.iter().enumerate() {
            if !q.is_empty() && !r.aligner.is_blocked(ch) {
                out.push(Action::OpRead(a, ch));
            }
        }
        for (j, s) in r.sinks.iter().enumerate() {
            if !r.outputs[j].is_empty() {
                out.push(Action::SinkRead(a, j));
            }
            if s.committing > 0 {
                out.push(Action::SinkCommit(a, j));
            } else if !s.control.is_empty() {
                out.push(Action::SinkControl(a, j));
            }
        }
    }

    fn new_run(&self, restored: &Option<(CheckpointId, Manifest)>, first_id: CheckpointId) -> Run {
        let offsets = restored.as_ref().map(|(_, m)| m.offsets.clone()).unwrap_or_else(|| vec![0; self.sources]);
        Run {
            coord: Coord(Coordinator::new(coordinator_config(), self.tasks(), self.sources, first_id)),
            now: 0,
            publishing: Vec::new(),
            results: Vec::new(),
            snaps: BTreeMap::new(),
            sources: offsets
                .into_iter()
                .map(|offset| Source { offset, reported: false, ended: false, control: VecDeque::new() })
                .collect(),
            inputs: vec![VecDeque::new(); self.sources],
            aligner: BarrierAligner::new(self.sources),
            inputs_ended: vec![false; self.sources],
            outputs: vec![VecDeque::new(); self.sinks],
            sinks: (0..self.sinks)
                .map(|_| Sink {
                    open: None,
                    pending: Vec::new(),
                    committing: 0,
                    ended: false,
                    control: VecDeque::new(),
                })
                .collect(),
        }
    }

    /// Feeds the engine's coordinator and carries out what it decides. Returns `false` when
    /// the attempt must stop (`Fail`).
    fn coordinate(&self, a: usize, r: &mut Run, input: Input) -> bool {
        let now = r.now;
        for action in r.coord.0.step(input, now) {
            match action {
                CoordAction::Trigger(id, kind) => {
                    r.sources.iter_mut().for_each(|s| s.control.push_back(Ctl::Trigger(Barrier { id, kind })));
                }
                CoordAction::Publish { id, .. } => {
                    let offsets = (0..self.sources)
                        .map(|i| match r.snaps.remove(&(id, i)) {
                            Some(Snap::Source(o)) => o,
                            other => panic!("publish {id} without source {i}'s snapshot: {other:?}"),
                        })
                        .collect();
                    r.snaps.remove(&(id, self.op_task()));
                    let committables = (0..self.sinks)
                        .map(|j| match r.snaps.remove(&(id, self.sink_task(j))) {
                            Some(Snap::Sink(c)) => c,
                            other => panic!("publish {id} without sink {j}'s snapshot: {other:?}"),
                        })
                        .collect();
                    r.publishing.push((id, Manifest { offsets, committables, by: a }));
                    if self.variant == Variant::CommitBeforePublish {
                        r.sinks.iter_mut().for_each(|s| s.control.push_back(Ctl::Complete(id)));
                    }
                }
                CoordAction::NotifyComplete(id, _) => {
                    if self.variant != Variant::CommitBeforePublish {
                        r.sinks.iter_mut().for_each(|s| s.control.push_back(Ctl::Complete(id)));
                    }
                }
                CoordAction::Abort(id, _) => r.snaps.retain(|(c, _), _| *c != id),
                CoordAction::EndInput => r.sources.iter_mut().for_each(|s| s.control.push_back(Ctl::EndInput)),
                CoordAction::Fail(_) => return false,
            }
        }
        true
    }

    /// A task's report reaches the coordinator (reports commute: the coordinator only counts
    /// them, so they are delivered at once instead of in every order).
    fn report(&self, a: usize, r: &mut Run, e: Event) -> bool {
        let input = match e {
            Event::Ack(id, task) => Input::Ack(TaskAck {
                checkpoint: id,
                task: TaskId { chain: task, subtask: 0 },
                states: Vec::new(),
                alignment_us: 0,
            }),
            Event::SourceFinished(i) => Input::SourceFinished(TaskId { chain: i, subtask: 0 }),
        };
        self.coordinate(a, r, input)
    }

    /// A task snapshots for checkpoint `id` and acks. The upload and the ack are one step: a
    /// crash between capture and ack loses only memory, which every crash loses anyway, so it
    /// is the same as a crash just before the step (the external world cannot tell them apart).
    fn snapshot(&self, a: usize, r: &mut Run, id: CheckpointId, task: usize, snap: Snap) -> bool {
        r.snaps.insert((id, task), snap);
        self.report(a, r, Event::Ack(id, task))
    }

    fn restore(&self, s: &mut State, a: usize) {
        let newest = latest_restorable(s.manifests.keys().copied().collect()).first().copied();
        let restored = newest.and_then(|id| s.manifests.get(&id).map(|m| (id, m.clone())));
        let existing = s.manifests.keys().last().copied();
        let mut first_id = first_checkpoint_id(existing, newest);
        if self.variant == Variant::ClaimBeforeRecovery {
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
    fn put_manifest(&self, s: &mut State, id: CheckpointId, m: Manifest) -> bool {
        if s.manifests.contains_key(&id) && self.variant != Variant::PublishOverwrites {
            return false;
        }
        s.manifests.insert(id, m);
        *s.publishes.entry(id).or_default() += 1;
        true
    }

    /// Commits transaction `t`; `false` when it was aborted (the commit fails: the attempt stops).
    fn commit(s: &mut State, t: usize) -> bool {
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
        let mut run = self.new_run(&restored, first_id);
        for i in 0..self.sources {
            if !self.report_if_exhausted(a, &mut run, i) {
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
        s.attempts[a].alive = false;
        s.attempts[a].phase = Phase::Restoring;
        s.crashes += 1;
    }

    /// A source with no more data tells the coordinator (once).
    fn report_if_exhausted(&self, a: usize, r: &mut Run, i: usize) -> bool {
        if r.sources[i].offset < self.records || r.sources[i].reported {
            return true;
        }
        r.sources[i].reported = true;
        self.report(a, r, Event::SourceFinished(i))
    }

    /// Moves records that head an unblocked channel on at once (a partial-order reduction):
    /// reading a record commutes with every other task's step, and a record is invisible until
    /// a barrier behind it is handled. Barriers and ends stay queued for steps of their own, so
    /// every interleaving of barriers, control messages, publishes, commits and crashes remains.
    fn settle(&self, s: &mut State, a: usize, r: &mut Run) -> bool {
        loop {
            let op = (0..self.sources)
                .find(|&ch| matches!(r.inputs[ch].front(), Some(Item::Rec(_))) && !r.aligner.is_blocked(ch));
            if let Some(ch) = op {
                if !self.run_step(s, a, r, Action::OpRead(a, ch)) {
                    return false;
                }
                continue;
            }
            let sink = (0..self.sinks).find(|&j| matches!(r.outputs[j].front(), Some(Item::Rec(_))));
            match sink {
                Some(j) if !self.sink_read(s, a, r, j) => return false,
                Some(_) => {}
                None => {
                    let held = |ch: usize| r.inputs[ch].iter().any(|i| matches!(i, Item::Rec(_)));
                    s.seen.aligned_with_block |= (0..self.sources).any(|ch| r.aligner.is_blocked(ch) && held(ch));
                    return true;
                }
            }
        }
    }

    /// One step of a running attempt; `false` when the attempt must stop.
    fn run_step(&self, s: &mut State, a: usize, r: &mut Run, action: Action) -> bool {
        match action {
            Action::Tick(_) => {
                s.ticks += 1;
                r.now += INTERVAL_MS;
                self.coordinate(a, r, Input::Tick)
            }
            Action::PublishWrite(_, id) => {
                let Some(k) = r.publishing.iter().position(|(c, _)| *c == id) else { return true };
                let (_, m) = r.publishing.remove(k);
                let won = self.put_manifest(s, id, m);
                r.results.push((id, won));
                true
            }
            Action::PublishResult(_, id) => {
                let Some(k) = r.results.iter().position(|(c, _)| *c == id) else { return true };
                let (_, won) = r.results.remove(k);
                if won {
                    self.coordinate(a, r, Input::Published(id))
                } else {
                    s.seen.publish_race_lost = true;
                    self.coordinate(a, r, Input::PublishFailed(id, "already published".into(), true))
                }
            }
            Action::SourceEmit(_, i) => {
                let src = &mut r.sources[i];
                r.inputs[i].push_back(Item::Rec((i as u8, src.offset)));
                src.offset += 1;
                self.report_if_exhausted(a, r, i)
            }
            Action::SourceControl(_, i) => {
                match r.sources[i].control.pop_front() {
                    Some(Ctl::Trigger(b)) => {
                        r.inputs[i].push_back(Item::Barrier(b));
                        let offset = r.sources[i].offset;
                        return self.snapshot(a, r, b.id, i, Snap::Source(offset));
                    }
                    Some(Ctl::EndInput) => {
                        r.inputs[i].push_back(Item::End);
                        r.sources[i].ended = true;
                    }
                    Some(Ctl::Complete(_)) | None => {}
                }
                true
            }
            Action::OpRead(_, ch) => {
                let alignment = match r.inputs[ch].pop_front() {
                    Some(Item::Rec(rec)) => {
                        r.outputs.iter_mut().for_each(|q| q.push_back(Item::Rec(rec)));
                        Alignment::Wait
                    }
                    Some(Item::Barrier(b)) => r.aligner.on_barrier(ch, b),
                    Some(Item::End) => {
                        r.inputs_ended[ch] = true;
                        r.aligner.on_end(ch)
                    }
                    None => Alignment::Wait,
                };
                let mut alive = true;
                match alignment {
                    Alignment::Aligned(b) => {
                        r.outputs.iter_mut().for_each(|q| q.push_back(Item::Barrier(b)));
                        alive = self.snapshot(a, r, b.id, self.op_task(), Snap::Op);
                    }
                    Alignment::Block(_) | Alignment::Wait => {}
                }
                if r.inputs_ended.iter().all(|e| *e) && r.aligner.current().is_none() {
                    r.outputs.iter_mut().for_each(|q| q.push_back(Item::End));
                    r.inputs_ended.iter_mut().for_each(|e| *e = false); // End is forwarded once
                }
                alive
            }
            Action::SinkRead(_, j) => self.sink_read(s, a, r, j),
            Action::SinkControl(_, j) => {
                let sink = &mut r.sinks[j];
                if let Some(Ctl::Complete(c)) = sink.control.pop_front() {
                    sink.committing = ready_to_commit(sink.pending.iter().map(|(id, _)| *id), c);
                }
                true
            }
            Action::SinkCommit(_, j) => {
                let sink = &mut r.sinks[j];
                let (_, t) = sink.pending.remove(0);
                sink.committing -= 1;
                Self::commit(s, t)
            }
            _ => true,
        }
    }

    fn sink_read(&self, s: &mut State, a: usize, r: &mut Run, j: usize) -> bool {
        let fenced = s.fence[j] > a;
        let sink = &mut r.sinks[j];
        match r.outputs[j].pop_front() {
            Some(Item::Rec(rec)) => {
                if fenced {
                    s.seen.fenced = true;
                    return false;
                }
                let t = match sink.open {
                    Some(t) => t,
                    None => {
                        s.txns.push(Txn { sink: j, attempt: a, records: Vec::new(), status: TxnStatus::Open });
                        *sink.open.insert(s.txns.len() - 1)
                    }
                };
                s.txns[t].records.push(rec);
            }
            Some(Item::Barrier(b)) => {
                if let Some(t) = sink.open.take() {
                    if fenced || s.txns[t].status != TxnStatus::Open {
                        s.seen.fenced = true;
                        return false;
                    }
                    s.txns[t].status = TxnStatus::PreCommitted;
                    sink.pending.push((b.id, t));
                }
                let snap = Snap::Sink(sink.pending.clone());
                return self.snapshot(a, r, b.id, self.sink_task(j), snap);
            }
            Some(Item::End) => {
                sink.ended = true;
                // `finish()`: records after the final checkpoint are committed directly.
                if let Some(t) = sink.open.take() {
                    if fenced {
                        return false;
                    }
                    s.txns[t].status = TxnStatus::PreCommitted;
                    sink.pending.push((CheckpointId(u64::MAX), t));
                    if sink.pending.iter().all(|(id, _)| id.0 == u64::MAX) {
                        sink.committing = sink.pending.len();
                    }
                }
            }
            None => {}
        }
        true
    }
}

impl Model for ProtocolModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            attempts: vec![Attempt { alive: true, zombie: false, phase: Phase::Restoring }],
            manifests: BTreeMap::new(),
            publishes: BTreeMap::new(),
            txns: Vec::new(),
            fence: vec![0; self.sinks],
            crashes: 0,
            zombies: 0,
            ticks: 0,
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
                Phase::Restoring => out.push(Action::Restore(a)),
                Phase::Recovering { .. } => out.push(Action::RecoverSink(a)),
                Phase::Running(r) => {
                    if finished(r) {
                        continue; // the process exits
                    }
                    self.run_actions(a, r, out);
                    if s.ticks < self.ticks {
                        out.push(Action::Tick(a));
                    }
                }
            }
            if s.crashes < self.crashes {
                out.push(Action::Crash(a));
            }
        }
        let can_launch = s.attempts.len() < self.max_attempts();
        let last = &s.attempts[current];
        if can_launch && !last.alive {
            out.push(Action::Relaunch);
        }
        // The old attempt lives on once it runs (a pod on a lost node, a slow termination). An
        // attempt replaced before it even restored is a different hazard (see the report in
        // `mod.rs`): the operator must not launch a new attempt while an old one may still start.
        if can_launch && s.zombies < self.zombies && running(last).is_some_and(|r| !finished(r)) {
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
                s.attempts.push(Attempt { alive: true, zombie: false, phase: Phase::Restoring });
            }
            Action::Relaunch => s.attempts.push(Attempt { alive: true, zombie: false, phase: Phase::Restoring }),
            Action::Restore(a) => self.restore(&mut s, a),
            Action::RecoverSink(a) => self.recover_sink(&mut s, a),
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
                let Phase::Running(mut r) = std::mem::replace(&mut s.attempts[a].phase, Phase::Restoring) else {
                    return None;
                };
                if self.run_step(&mut s, a, &mut r, other) && self.settle(&mut s, a, &mut r) {
                    s.attempts[a].phase = Phase::Running(r);
                } else {
                    s.attempts[a].alive = false;
                }
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
