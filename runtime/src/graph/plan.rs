//! From the logical pipeline to tasks: forward edges between nodes of equal parallelism, where
//! the upstream has one output and the downstream one input, are chained into a single task
//! (records pass between chained operators as batches, without a channel).

use sluice_crds::contract::pipeline::{EdgeOutput, Partitioning, Pipeline};

/// Nodes run together in one task per subtask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Node indices (into `pipeline.nodes`), head first.
    pub nodes: Vec<usize>,
    /// Parallelism shared by every node of the chain.
    pub parallelism: u32,
    /// Indices into [`PhysicalPlan::edges`] that feed the head.
    pub inputs: Vec<usize>,
    /// Indices into [`PhysicalPlan::edges`] leaving the tail, in pipeline order.
    pub outputs: Vec<usize>,
}

/// An edge between two chains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEdge {
    /// Upstream chain.
    pub from: usize,
    /// Downstream chain.
    pub to: usize,
    /// Distribution over the downstream subtasks.
    pub partition: Partitioning,
    /// Which output of the upstream chain's tail the edge carries.
    pub output: EdgeOutput,
    /// Which input of the downstream chain's head the edge feeds (a join's right side is 1;
    /// see `Node::input_of`).
    pub input: usize,
}

/// The executable shape of a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhysicalPlan {
    /// Chains in topological order (every chain after all its upstream chains).
    pub chains: Vec<Chain>,
    /// Edges between chains.
    pub edges: Vec<ChainEdge>,
}

impl PhysicalPlan {
    /// Builds the plan of a validated pipeline.
    pub fn build(p: &Pipeline) -> PhysicalPlan {
        let n = p.nodes.len();
        let index = |id: &str| p.nodes.iter().position(|node| node.id == id);
        // A late-output edge is never chained: it leaves the tail of its chain.
        let chainable = |e: &sluice_crds::contract::pipeline::Edge| match e.output {
            EdgeOutput::Main => e.partition,
            EdgeOutput::Late => Partitioning::Rebalance,
        };
        let mut outs: Vec<Vec<(usize, Partitioning)>> = vec![Vec::new(); n];
        let mut ins: Vec<Vec<(usize, Partitioning)>> = vec![Vec::new(); n];
        for e in &p.edges {
            if let (Some(f), Some(t)) = (index(&e.from), index(&e.to)) {
                outs[f].push((t, chainable(e)));
                ins[t].push((f, chainable(e)));
            }
        }
        let par = |i: usize| p.parallelism_of(&p.nodes[i]);
        let chained_next = |i: usize| -> Option<usize> {
            match outs[i].as_slice() {
                [(t, Partitioning::Forward)] if ins[*t].len() == 1 && par(*t) == par(i) => Some(*t),
                _ => None,
            }
        };
        let is_chained_into = |t: usize| -> bool {
            matches!(ins[t].as_slice(), [(f, Partitioning::Forward)] if chained_next(*f) == Some(t))
        };
        // Topological order of nodes (the pipeline is validated acyclic).
        let mut indeg: Vec<usize> = ins.iter().map(Vec::len).collect();
        let mut order = Vec::with_capacity(n);
        let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).rev().collect();
        while let Some(i) = ready.pop() {
            order.push(i);
            for &(t, _) in outs[i].iter().rev() {
                indeg[t] -= 1;
                if indeg[t] == 0 {
                    ready.push(t);
                }
            }
        }
        let mut chain_of = vec![usize::MAX; n];
        let mut chains = Vec::new();
        for &head in &order {
            if is_chained_into(head) {
                continue;
            }
            let mut nodes = vec![head];
            let mut cur = head;
            while let Some(next) = chained_next(cur) {
                nodes.push(next);
                cur = next;
            }
            for &node in &nodes {
                chain_of[node] = chains.len();
            }
            chains.push(Chain { nodes, parallelism: par(head), inputs: Vec::new(), outputs: Vec::new() });
        }
        let mut edges = Vec::new();
        for e in &p.edges {
            let (Some(f), Some(t)) = (index(&e.from), index(&e.to)) else { continue };
            let (cf, ct) = (chain_of[f], chain_of[t]);
            if cf == ct {
                continue; // chained
            }
            chains[cf].outputs.push(edges.len());
            chains[ct].inputs.push(edges.len());
            let input = p.nodes[t].input_of(&e.from);
            edges.push(ChainEdge { from: cf, to: ct, partition: e.partition, output: e.output, input });
        }
        PhysicalPlan { chains, edges }
    }

    /// Total number of tasks (chains × parallelism): the acks a checkpoint waits for.
    pub fn task_count(&self) -> usize {
        self.chains.iter().map(|c| c.parallelism as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::JobConfig;

    fn plan(yaml: &str) -> PhysicalPlan {
        PhysicalPlan::build(&JobConfig::from_yaml(yaml).expect("valid").pipeline)
    }

    #[test]
    fn forward_edges_chain_and_fan_out_breaks_the_chain() {
        let p = plan(
            r#"
name: t
pipeline:
  parallelism: 2
  nodes:
    - {id: gen, generator: {count: 10}}
    - {id: key, keyBy: {field: x}}
    - {id: win, window: {size: 1s, function: count}}
    - {id: out, fileSink: {path: /tmp/x}}
    - {id: pass, discard: {}}
  edges:
    - {from: gen, to: key}
    - {from: key, to: win, partition: hash}
    - {from: win, to: out}
    - {from: key, to: pass}
"#,
        );
        let names: Vec<Vec<usize>> = p.chains.iter().map(|c| c.nodes.clone()).collect();
        assert_eq!(names, vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert_eq!(p.edges.len(), 2);
        assert_eq!(p.task_count(), 6);
        assert_eq!(p.chains[0].outputs, vec![0, 1]);
    }

    #[test]
    fn a_joins_edges_say_which_side_they_feed() {
        let p = plan(
            r#"
name: t
pipeline:
  nodes:
    - {id: a, generator: {count: 10}}
    - {id: b, generator: {count: 10}}
    - {id: j, join: {left: b, right: a, ttl: 1s}}
    - {id: out, discard: {}}
  edges:
    - {from: a, to: j, partition: hash}
    - {from: b, to: j, partition: hash}
    - {from: j, to: out}
"#,
        );
        let sides: Vec<(usize, usize)> = p.edges.iter().map(|e| (e.from, e.input)).collect();
        assert_eq!(sides, vec![(0, 1), (1, 0)], "a is the right side, b the left (the sink is chained)");
    }
}
