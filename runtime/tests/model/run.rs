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

    pub(super) fn new_run(&self, restored: &Option<(CheckpointId, Manifest)>, first_id: CheckpointId) -> Run {
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
    pub(super) fn coordinate(&self, a: usize, r: &mut Run, input: Input) -> bool {
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
    pub(super) fn report(&self, a: usize, r: &mut Run, e: Event) -> bool {
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
    pub(super) fn snapshot(&self, a: usize, r: &mut Run, id: CheckpointId, task: usize, snap: Snap) -> bool {
        r.snaps.insert((id, task), snap);
        self.report(a, r, Event::Ack(id, task))
    }

    /// A source with no more data tells the coordinator (once).
    pub(super) fn report_if_exhausted(&self, a: usize, r: &mut Run, i: usize) -> bool {
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
    pub(super) fn settle(&self, s: &mut State, a: usize, r: &mut Run) -> bool {
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
    pub(super) fn run_step(&self, s: &mut State, a: usize, r: &mut Run, action: Action) -> bool {
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

    pub(super) fn sink_read(&self, s: &mut State, a: usize, r: &mut Run, j: usize) -> bool {
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
