//! A real job wired in two halves, each half's channels through its own network exchange on
//! loopback, under one checkpoint coordinator (`job::run_split`): its output is exactly once, and
//! its hash edge really crossed the sockets; a connection cut mid-run fails the job with an error
//! naming the lost worker.

use std::collections::BTreeSet;
use std::sync::Arc;

use sluice_crds::JobConfig;
use sluice_runtime::engine::TaskId;
use sluice_runtime::engine::channel::{ChannelId, Exchange};
use sluice_runtime::engine::net::{NetConfig, NetExchange, NetMetrics};
use sluice_runtime::fault::Faults;
use sluice_runtime::graph::PhysicalPlan;
use sluice_runtime::job::{Placement, RestoreMode, RuntimeConfig, run_split};
use sluice_runtime::verify::check_file_sink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const RECORDS: u64 = 200_000;

/// The job; `rate` limits the generator (records per second over its subtasks), 0 for none.
fn job(dir: &std::path::Path, rate: u64) -> JobConfig {
    let rate = if rate == 0 { String::new() } else { format!(", ratePerSecond: {rate}") };
    JobConfig::from_yaml(&format!(
        r#"
name: split
checkpointing: {{interval: 50ms, storage: {{uri: "file://{d}/ckpt"}}}}
pipeline:
  maxParallelism: 32
  parallelism: 2
  nodes:
    - {{id: gen, generator: {{count: {RECORDS}, keys: 100, splits: 4{rate}}}}}
    - {{id: pass, filter: {{expr: "value >= 0"}}}}
    - {{id: out, parallelism: 3, fileSink: {{path: "{d}/out"}}}}
  edges:
    - {{from: gen, to: pass, partition: rebalance}}
    - {{from: pass, to: out, partition: hash}}
"#,
        d = dir.display()
    ))
    .expect("valid job")
}

/// Subtask `s` of every node runs on worker `s % 2`.
fn worker(t: TaskId) -> usize {
    (t.subtask % 2) as usize
}

/// Two exchanges for `plan`'s tasks placed by [`worker`], and the placements. With `via`,
/// worker 0 reaches worker 1 at that address instead of its own (a proxy the test can cut).
async fn exchanges(
    plan: &PhysicalPlan,
    via: Option<std::net::SocketAddr>,
) -> (Vec<NetExchange>, Vec<Placement>, NetMetrics, std::net::SocketAddr) {
    let edges: Arc<Vec<(usize, usize)>> = Arc::new(plan.edges.iter().map(|e| (e.from, e.to)).collect());
    let all: Vec<TaskId> = plan
        .chains
        .iter()
        .enumerate()
        .flat_map(|(chain, c)| (0..c.parallelism).map(move |subtask| TaskId { chain, subtask }))
        .collect();
    let mut listeners = Vec::new();
    for _ in 0..2 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().expect("addr")).collect();
    let metrics = NetMetrics::default();
    let mut exchanges = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let edges = edges.clone();
        let locate = move |c: ChannelId| {
            let (from, to) = edges[c.edge];
            (worker(TaskId { chain: from, subtask: c.from }), worker(TaskId { chain: to, subtask: c.to }))
        };
        let mut peers = addrs.clone();
        if let (0, Some(v)) = (i, via) {
            peers[1] = v;
        }
        let config = NetConfig::new(i, peers, "split/1");
        exchanges.push(NetExchange::with_listener(config, l, Box::new(locate), &metrics).expect("exchange"));
    }
    let placements = (0..2)
        .map(|w| Placement::Only(all.iter().copied().filter(|&t| worker(t) == w).collect::<BTreeSet<_>>()))
        .collect();
    (exchanges, placements, metrics, addrs[1])
}

fn config(job: JobConfig) -> RuntimeConfig {
    RuntimeConfig {
        job,
        restore: RestoreMode::Latest,
        run_id: "split-1".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_split_over_two_network_exchanges_writes_its_output_exactly_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let job = job(dir.path(), 0);
    let plan = PhysicalPlan::build(&job.pipeline);
    let (exchanges, placements, metrics, _) = exchanges(&plan, None).await;
    let parts: Vec<(Placement, &dyn Exchange)> =
        placements.into_iter().zip(exchanges.iter().map(|x| x as &dyn Exchange)).collect();
    let outcome = run_split(config(job), &parts).await.expect("the split job runs to its end");
    assert!(outcome.checkpoints.completed > 0, "{:?}", outcome.checkpoints);

    let report = check_file_sink(&dir.path().join("out"), "value", RECORDS).expect("read output");
    assert!(report.is_exactly_once(), "{report}");
    // Both workers sent batches to each other (the rebalance and hash edges cross).
    for (me, other) in [(0, 1), (1, 0)] {
        let sent = metrics.peer(other).batches_sent.get();
        assert!(sent > 0, "worker {me} sent no batch to worker {other}");
    }
    drop(parts);
    for x in exchanges {
        assert!(x.failure().is_none(), "{:?}", x.failure());
        x.shutdown().await;
    }
}

/// Forwards one connection to `to` until `cut_after` bytes went from the connecting side, then
/// drops both sockets.
async fn cutting_proxy(listener: TcpListener, to: std::net::SocketAddr, cut_after: usize) {
    let (mut a, _) = listener.accept().await.expect("accept");
    let mut b = tokio::net::TcpStream::connect(to).await.expect("connect");
    let (mut ar, mut aw) = a.split();
    let (mut br, mut bw) = b.split();
    let forward = async {
        let mut buf = vec![0u8; 64 << 10];
        let mut total = 0;
        while total < cut_after {
            let n = ar.read(&mut buf).await.expect("read");
            if n == 0 {
                return;
            }
            bw.write_all(&buf[..n]).await.expect("write");
            total += n;
        }
    };
    let back = tokio::io::copy(&mut br, &mut aw);
    tokio::select! {
        _ = forward => {}
        _ = back => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_run_fails_the_job_naming_the_worker() {
    let dir = tempfile::tempdir().expect("tmp");
    let job = job(dir.path(), 100_000);
    let plan = PhysicalPlan::build(&job.pipeline);
    let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let via = proxy.local_addr().expect("addr");
    let (exchanges, placements, _, one) = exchanges(&plan, Some(via)).await;
    tokio::spawn(cutting_proxy(proxy, one, 256 << 10));
    let parts: Vec<(Placement, &dyn Exchange)> =
        placements.into_iter().zip(exchanges.iter().map(|x| x as &dyn Exchange)).collect();
    let err = run_split(config(job), &parts).await.expect_err("the cut fails the job");
    let text = err.to_string();
    assert!(text.contains("an input was lost") && text.contains("from worker "), "{text}");
    assert!(exchanges.iter().any(|x| x.failure().is_some()));
}
