//! One running attempt: its sources, aligning operator, two-phase-commit sinks and the
//! engine's coordinator, stepped one task action at a time.

use std::collections::{BTreeMap, VecDeque};

use sluice_crds::CheckpointId;
use sluice_runtime::checkpoint::{Action as CoordAction, Coordinator, CoordinatorConfig, Input};
use sluice_runtime::connectors::two_phase::ready_to_commit;
use sluice_runtime::engine::barrier::{Alignment, BarrierAligner};
use sluice_runtime::engine::{Barrier, TaskAck, TaskId};

use super::state::{Coord, Ctl, Event, Item, Manifest, Run, Sink, Snap, Source, State, Txn, TxnStatus};
use super::step::Action;
use super::workers::Step;
use super::{ProtocolModel, Variant};

/// Checkpoint interval of the modelled coordinator (the clock moves in these steps).
const INTERVAL_MS: u64 = 100;

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

impl ProtocolModel {
    pub(super) fn run_actions(&self, a: usize, r: &Run, out: &mut Vec<Action>) {
        if r.up[0] {
            for (id, _) in &r.publishing {
                out.push(Action::PublishWrite(a, *id));
            }
            for (id, _) in &r.results {
                out.push(Action::PublishResult(a, *id));
            }
        }
        // Once the connection dropped, a source or operator step either fails its task (a
        // send on a crossing channel: the operator forwards everything to sink 0 across) or
        // changes nothing outside its worker and cannot complete a checkpoint (the operator
        // acks only after every source did, and it can no longer forward its barrier): the
        // same as no step, or as the worker noticing the loss. Only the coordinator's and the
        // sinks' steps, which reach the store and the transactions, remain.
        for (i, s) in r.sources.iter().enumerate() {
            if !r.up[self.source_worker(i)] || !r.conn {
                continue;
            }
            if s.offset < self.records && !s.ended {
                out.push(Action::SourceEmit(a, i));
            }
            if !s.control.is_empty() {
                out.push(Action::SourceControl(a, i));
            }
        }
        for (ch, q) in r.inputs.iter().enumerate() {
            if r.up[0] && r.conn && !q.is_empty() && !r.aligner.is_blocked(ch) {
                out.push(Action::OpRead(a, ch));
            }
        }
        for (j, s) in r.sinks.iter().enumerate() {
            if !r.up[self.sink_worker(j)] {
                continue;
            }
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

    /// Attempt `member`'s process fills worker 1's slot (with two workers).
    pub(super) fn new_run(
        &self,
        restored: &Option<(CheckpointId, Manifest)>,
        first_id: CheckpointId,
        member: usize,
    ) -> Run {
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
            op_ended: false,
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
            up: vec![true; self.workers],
            conn: true,
            member,
        }
    }

    /// Feeds the engine's coordinator (on worker 0) and carries out what it decides; its
    /// commands to worker 1's tasks are lost on a dropped connection. `Err(0)` when it aborts
    /// the attempt (`Fail`).
    pub(super) fn coordinate(&self, a: usize, r: &mut Run, input: Input) -> Step {
        let now = r.now;
        for action in r.coord.0.step(input, now) {
            match action {
                CoordAction::Trigger(id, kind) => self.to_sources(r, Ctl::Trigger(Barrier { id, kind })),
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
                        self.to_sinks(r, Ctl::Complete(id));
                    }
                }
                CoordAction::NotifyComplete(id, _) => {
                    if self.variant != Variant::CommitBeforePublish {
                        self.to_sinks(r, Ctl::Complete(id));
                    }
                }
                CoordAction::Abort(id, _) => r.snaps.retain(|(c, _), _| *c != id),
                CoordAction::EndInput => self.to_sources(r, Ctl::EndInput),
                CoordAction::Fail(_) => return Err(0),
            }
        }
        Ok(())
    }

    fn to_sources(&self, r: &mut Run, ctl: Ctl) {
        for (i, src) in r.sources.iter_mut().enumerate() {
            if r.conn || self.source_worker(i) == 0 {
                src.control.push_back(ctl);
            }
        }
    }

    fn to_sinks(&self, r: &mut Run, ctl: Ctl) {
        for (j, sink) in r.sinks.iter_mut().enumerate() {
            if r.conn || self.sink_worker(j) == 0 {
                sink.control.push_back(ctl);
            }
        }
    }

    /// A task's report reaches the coordinator (reports commute: the coordinator only counts
    /// them, so they are delivered at once instead of in every order). A report of a task on
    /// worker 1 goes over the control link: lost when the connection dropped; one from a worker
    /// process of another attempt is marked (it must never happen).
    pub(super) fn report(&self, s: &mut State, a: usize, r: &mut Run, e: Event) -> Step {
        let task = match e {
            Event::Ack(_, task) => task,
            Event::SourceFinished(i) => i,
        };
        if self.task_worker(task) != 0 {
            if !r.conn {
                return Ok(());
            }
            s.seen.foreign_ack |= r.member != a && matches!(e, Event::Ack(..));
        }
        let input = match e {
            Event::Ack(id, task) => Input::Ack(TaskAck {
                checkpoint: id,
                task: TaskId { chain: task, subtask: 0 },
                states: Vec::new(),
                alignment_us: 0,
                records: 0,
            }),
            Event::SourceFinished(i) => Input::SourceFinished(TaskId { chain: i, subtask: 0 }),
        };
        self.coordinate(a, r, input)
    }

    /// A task snapshots for checkpoint `id` and acks. The upload and the ack are one step: a
    /// crash between capture and ack loses only memory, which every crash loses anyway, so it
    /// is the same as a crash just before the step (the external world cannot tell them apart).
    pub(super) fn snapshot(
        &self,
        s: &mut State,
        a: usize,
        r: &mut Run,
        id: CheckpointId,
        task: usize,
        snap: Snap,
    ) -> Step {
        if r.conn || self.task_worker(task) == 0 {
            r.snaps.insert((id, task), snap);
        }
        self.report(s, a, r, Event::Ack(id, task))
    }

    /// A source with no more data tells the coordinator (once).
    pub(super) fn report_if_exhausted(&self, s: &mut State, a: usize, r: &mut Run, i: usize) -> Step {
        if r.sources[i].offset < self.records || r.sources[i].reported {
            return Ok(());
        }
        r.sources[i].reported = true;
        self.report(s, a, r, Event::SourceFinished(i))
    }

    /// Moves records that head an unblocked channel on at once (a partial-order reduction):
    /// reading a record commutes with every other task's step, and a record is invisible until
    /// a barrier behind it is handled. Barriers and ends stay queued for steps of their own, so
    /// every interleaving of barriers, control messages, publishes, commits and crashes remains.
    pub(super) fn settle(&self, s: &mut State, a: usize, r: &mut Run) -> Step {
        loop {
            let op = (0..self.sources).find(|&ch| {
                r.up[0] && r.conn && matches!(r.inputs[ch].front(), Some(Item::Rec(_))) && !r.aligner.is_blocked(ch)
            });
            if let Some(ch) = op {
                self.run_step(s, a, r, Action::OpRead(a, ch))?;
                continue;
            }
            let sink = (0..self.sinks)
                .find(|&j| r.up[self.sink_worker(j)] && matches!(r.outputs[j].front(), Some(Item::Rec(_))));
            match sink {
                Some(j) => self.sink_read(s, a, r, j)?,
                None => {
                    let held = |ch: usize| r.inputs[ch].iter().any(|i| matches!(i, Item::Rec(_)));
                    s.seen.aligned_with_block |= (0..self.sources).any(|ch| r.aligner.is_blocked(ch) && held(ch));
                    return Ok(());
                }
            }
        }
    }

    /// One step of a running attempt; `Err(worker)` when that worker fails.
    pub(super) fn run_step(&self, s: &mut State, a: usize, r: &mut Run, action: Action) -> Step {
        match action {
            Action::Tick(_) => {
                s.ticks += 1;
                r.now += INTERVAL_MS;
                self.coordinate(a, r, Input::Tick)
            }
            Action::PublishWrite(_, id) => {
                let Some(k) = r.publishing.iter().position(|(c, _)| *c == id) else { return Ok(()) };
                let (_, m) = r.publishing.remove(k);
                let won = self.put_manifest(s, id, m);
                r.results.push((id, won));
                Ok(())
            }
            Action::PublishResult(_, id) => {
                let Some(k) = r.results.iter().position(|(c, _)| *c == id) else { return Ok(()) };
                let (_, won) = r.results.remove(k);
                if won {
                    self.coordinate(a, r, Input::Published(id))
                } else {
                    s.seen.publish_race_lost = true;
                    self.coordinate(a, r, Input::PublishFailed(id, "already published".into(), true))
                }
            }
            Action::SourceEmit(_, i) => {
                let rec = (i as u8, r.sources[i].offset);
                self.push_input(r, i, Item::Rec(rec))?;
                r.sources[i].offset += 1;
                self.report_if_exhausted(s, a, r, i)
            }
            Action::SourceControl(_, i) => {
                match r.sources[i].control.pop_front() {
                    Some(Ctl::Trigger(b)) => {
                        self.push_input(r, i, Item::Barrier(b))?;
                        let offset = r.sources[i].offset;
                        return self.snapshot(s, a, r, b.id, i, Snap::Source(offset));
                    }
                    Some(Ctl::EndInput) => {
                        self.push_input(r, i, Item::End)?;
                        r.sources[i].ended = true;
                    }
                    Some(Ctl::Complete(_)) | None => {}
                }
                Ok(())
            }
            Action::OpRead(_, ch) => {
                let alignment = match r.inputs[ch].pop_front() {
                    Some(Item::Rec(rec)) => {
                        self.push_outputs(r, Item::Rec(rec))?;
                        Alignment::Wait
                    }
                    Some(Item::Barrier(b)) => r.aligner.on_barrier(ch, b),
                    Some(Item::End) => {
                        r.inputs_ended[ch] = true;
                        r.aligner.on_end(ch)
                    }
                    None => Alignment::Wait,
                };
                let mut step = Ok(());
                match alignment {
                    Alignment::Aligned(b) => {
                        self.push_outputs(r, Item::Barrier(b))?;
                        step = self.snapshot(s, a, r, b.id, self.op_task(), Snap::Op);
                    }
                    Alignment::Block(_) | Alignment::Wait => {}
                }
                if !r.op_ended && r.inputs_ended.iter().all(|e| *e) && r.aligner.current().is_none() {
                    self.push_outputs(r, Item::End)?;
                    r.op_ended = true;
                }
                step
            }
            Action::SinkRead(_, j) => self.sink_read(s, a, r, j),
            Action::SinkControl(_, j) => {
                let sink = &mut r.sinks[j];
                if let Some(Ctl::Complete(c)) = sink.control.pop_front() {
                    sink.committing = ready_to_commit(sink.pending.iter().map(|(id, _)| *id), c);
                }
                Ok(())
            }
            Action::SinkCommit(_, j) => {
                let sink = &mut r.sinks[j];
                let (_, t) = sink.pending.remove(0);
                sink.committing -= 1;
                if Self::commit(s, t) { Ok(()) } else { Err(self.sink_worker(j)) }
            }
            _ => Ok(()),
        }
    }

    /// Sink `j` reads its input; `Err(worker)` when it fails (fenced).
    pub(super) fn sink_read(&self, s: &mut State, a: usize, r: &mut Run, j: usize) -> Step {
        let w = self.sink_worker(j);
        let fenced = s.fence[j] > a;
        let sink = &mut r.sinks[j];
        match r.outputs[j].pop_front() {
            Some(Item::Rec(rec)) => {
                if fenced {
                    s.seen.fenced = true;
                    return Err(w);
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
                        return Err(w);
                    }
                    s.txns[t].status = TxnStatus::PreCommitted;
                    sink.pending.push((b.id, t));
                }
                let snap = Snap::Sink(sink.pending.clone());
                return self.snapshot(s, a, r, b.id, self.sink_task(j), snap);
            }
            Some(Item::End) => {
                sink.ended = true;
                // `finish()`: records after the final checkpoint are committed directly.
                if let Some(t) = sink.open.take() {
                    if fenced {
                        return Err(w);
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
        Ok(())
    }
}
