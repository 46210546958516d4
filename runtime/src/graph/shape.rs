//! What observers show of a job's graph (the job page, `GET /v1/job`): each node's kind,
//! parallelism and the task it runs in, and the edges as written in the job document.

use sluice_crds::contract::pipeline::{Edge, Pipeline};

use super::PhysicalPlan;

/// One node as observers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeNode {
    /// Node id.
    pub id: String,
    /// Its block's name (`generator`, `window`, …).
    pub kind: &'static str,
    /// Parallelism (that of its chain).
    pub parallelism: u32,
    /// Index of the first node of its chain: the task that runs it.
    pub task: usize,
}

/// A job's graph as observers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobShape {
    /// The job's name.
    pub name: String,
    /// Nodes in pipeline order.
    pub nodes: Vec<ShapeNode>,
    /// Edges in pipeline order.
    pub edges: Vec<Edge>,
}

impl JobShape {
    /// The shape of job `name`, whose `pipeline` runs as `plan`.
    pub fn new(name: &str, pipeline: &Pipeline, plan: &PhysicalPlan) -> JobShape {
        let mut nodes: Vec<ShapeNode> = pipeline
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ShapeNode {
                id: n.id.clone(),
                kind: n.kind().map_or("unknown", |k| k.name()),
                parallelism: 1,
                task: i,
            })
            .collect();
        for chain in &plan.chains {
            let head = chain.nodes.first().copied().unwrap_or_default();
            for &i in &chain.nodes {
                if let Some(n) = nodes.get_mut(i) {
                    (n.parallelism, n.task) = (chain.parallelism, head);
                }
            }
        }
        JobShape { name: name.to_string(), nodes, edges: pipeline.edges.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::JobConfig;

    #[test]
    fn chained_nodes_name_their_chain_head_as_their_task() {
        let job = JobConfig::from_yaml(
            r#"
name: t
pipeline:
  parallelism: 2
  nodes:
    - {id: gen, generator: {count: 10}}
    - {id: key, keyBy: {field: x}}
    - {id: win, window: {size: 1s, function: count}, parallelism: 3}
    - {id: out, fileSink: {path: /tmp/x}, parallelism: 3}
  edges:
    - {from: gen, to: key}
    - {from: key, to: win, partition: hash}
    - {from: win, to: out}
"#,
        )
        .expect("valid");
        let shape = JobShape::new(&job.name, &job.pipeline, &PhysicalPlan::build(&job.pipeline));
        let got: Vec<_> = shape.nodes.iter().map(|n| (n.id.as_str(), n.kind, n.parallelism, n.task)).collect();
        assert_eq!(
            got,
            [("gen", "generator", 2, 0), ("key", "keyBy", 2, 0), ("win", "window", 3, 2), ("out", "fileSink", 3, 2)]
        );
        assert_eq!(shape.edges.len(), 3);
    }
}
