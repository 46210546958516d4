//! Which worker runs which subtask: a pure function of the plan and the worker count, so every
//! worker of an attempt computes the same answer without being told. Subtask `i` of every chain
//! runs on worker `i % workers`: a forward edge (same subtask index on both sides) never leaves
//! its worker, and every worker gets a share of every node as far as its parallelism allows.
//! Where keyed state lives is still decided by key groups (`graph::key_groups`), not by the
//! worker: a checkpoint restores at any worker count.

use std::collections::BTreeSet;

use sluice_crds::contract::pipeline::Pipeline;

use super::super::wiring::Placement;
use crate::engine::channel::ChannelId;
use crate::engine::message::TaskId;
use crate::engine::net::Locate;
use crate::graph::PhysicalPlan;

/// The worker that runs `task` in an attempt of `workers` workers.
pub fn worker_of(task: TaskId, workers: usize) -> usize {
    task.subtask as usize % workers.max(1)
}

/// Every task of the plan, chains in order, subtasks ascending.
pub fn all_tasks(plan: &PhysicalPlan) -> impl Iterator<Item = TaskId> + '_ {
    plan.chains
        .iter()
        .enumerate()
        .flat_map(|(chain, c)| (0..c.parallelism).map(move |subtask| TaskId { chain, subtask }))
}

/// The tasks worker `worker` runs.
pub fn tasks_of(plan: &PhysicalPlan, worker: usize, workers: usize) -> Vec<TaskId> {
    all_tasks(plan).filter(|&t| worker_of(t, workers) == worker).collect()
}

/// Worker `worker`'s [`Placement`].
pub fn placement(plan: &PhysicalPlan, worker: usize, workers: usize) -> Placement {
    Placement::Only(tasks_of(plan, worker, workers).into_iter().collect::<BTreeSet<_>>())
}

/// Whether `task` runs a source (its chain starts with a source node).
pub fn is_source(plan: &PhysicalPlan, pipeline: &Pipeline, task: TaskId) -> bool {
    plan.chains[task.chain].nodes.first().is_some_and(|&n| pipeline.nodes[n].kind().is_some_and(|k| k.is_source()))
}

/// Where each channel's ends run, for the network exchange: the same function, applied to the
/// upstream and the downstream subtask of the channel's edge.
pub struct ChannelLocator {
    /// `(upstream chain, downstream chain)` by chain edge.
    edges: Vec<(usize, usize)>,
    workers: usize,
}

impl ChannelLocator {
    /// The locator of `plan` over `workers` workers.
    pub fn new(plan: &PhysicalPlan, workers: usize) -> ChannelLocator {
        ChannelLocator { edges: plan.edges.iter().map(|e| (e.from, e.to)).collect(), workers }
    }
}

impl Locate for ChannelLocator {
    fn workers(&self, c: ChannelId) -> (usize, usize) {
        // An edge the plan does not have is located nowhere valid: the exchange refuses it.
        let Some(&(from, to)) = self.edges.get(c.edge) else { return (usize::MAX, usize::MAX) };
        (
            worker_of(TaskId { chain: from, subtask: c.from }, self.workers),
            worker_of(TaskId { chain: to, subtask: c.to }, self.workers),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> PhysicalPlan {
        let job = sluice_crds::JobConfig::from_yaml(
            r#"
name: p
pipeline:
  maxParallelism: 64
  parallelism: 3
  nodes:
    - {id: gen, generator: {count: 10, keys: 5}}
    - {id: k, keyBy: {field: x}}
    - {id: w, window: {size: 1s, function: count}, parallelism: 5}
    - {id: out, parallelism: 1, fileSink: {path: /tmp/unused}}
  edges:
    - {from: gen, to: k}
    - {from: k, to: w, partition: hash}
    - {from: w, to: out, partition: rebalance}
"#,
        )
        .expect("job");
        PhysicalPlan::build(&job.pipeline)
    }

    #[test]
    fn every_task_runs_on_exactly_one_worker_whatever_the_count() {
        let plan = plan();
        let total = all_tasks(&plan).count();
        for workers in 1..=6 {
            let mut seen = BTreeSet::new();
            for w in 0..workers {
                for t in tasks_of(&plan, w, workers) {
                    assert!(seen.insert(t), "{t} placed twice with {workers} workers");
                    assert!(placement(&plan, w, workers).runs_here(t));
                }
            }
            assert_eq!(seen.len(), total, "{workers} workers");
        }
    }

    #[test]
    fn a_forward_channel_stays_on_its_worker_and_channels_are_located_by_their_subtasks() {
        let plan = plan();
        let loc = ChannelLocator::new(&plan, 3);
        for (edge, e) in plan.edges.iter().enumerate() {
            for from in 0..plan.chains[e.from].parallelism {
                for to in 0..plan.chains[e.to].parallelism {
                    let (up, down) = loc.workers(ChannelId { edge, from, to });
                    assert_eq!(up, from as usize % 3);
                    assert_eq!(down, to as usize % 3);
                    if from == to {
                        assert_eq!(up, down);
                    }
                }
            }
        }
        assert_eq!(loc.workers(ChannelId { edge: 99, from: 0, to: 0 }), (usize::MAX, usize::MAX));
    }
}
