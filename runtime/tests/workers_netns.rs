//! Network faults between worker processes, each in a network namespace of its own joined by
//! veth links (`common/netns.rs`; created by the test, removed after it):
//! - a partition of one worker (its link down) while a checkpoint is in flight: the attempt must
//!   fail (heartbeats are missed both ways), be relaunched whole from the latest completed
//!   checkpoint, and the committed output be exact;
//! - one link slow (rate-limited, queueing delay) and lossy (a share of packets dropped both
//!   ways): the job goes on over TCP's retransmissions and its output is exact.
//!
//! This test plays the supervisor (the operator's part): it starts every worker of an attempt,
//! and when one fails it kills the others, mends the network and starts a new attempt. Where
//! network namespaces cannot be created (no `ip`, no CAP_NET_ADMIN), each test says so and skips.

mod common;
#[path = "common/netns.rs"]
mod netns;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::KillJob;
use netns::Net;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-runtime");
const EXCHANGE_PORT: u16 = 7000;
const CONTROL_PORT: u16 = 7100;

/// Creates the namespaces, or prints why the test is skipped.
fn net_or_skip(tag: &str, workers: usize) -> Option<Net> {
    match Net::create(tag, workers) {
        Ok(net) => Some(net),
        Err(why) => {
            eprintln!("SKIPPED: network namespaces cannot be created here ({why})");
            None
        }
    }
}

/// One attempt's worker processes.
struct Attempt {
    id: String,
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

/// How an attempt ended.
enum End {
    /// Every worker exited successfully: the job finished.
    Finished,
    /// This worker failed first (the others were then killed).
    Failed(usize, String),
}

/// Starts every worker of attempt number `n` in its namespace. Each attempt uses ports of its
/// own, so a worker of an earlier attempt still closing cannot be mistaken for a peer.
fn launch(net: &Net, job: &KillJob, workers: usize, parallelism: u32, n: usize) -> Attempt {
    let yaml = job.write_yaml(parallelism);
    let id = format!("net-a{n}");
    let offset = u16::try_from(n).expect("attempt number") * 2;
    let peers: Vec<String> = (0..workers).map(|i| format!("{}:{}", net.addr(i), EXCHANGE_PORT + offset)).collect();
    let coordinator = format!("{}:{}", net.addr(0), CONTROL_PORT + offset);
    let mut children = Vec::new();
    let mut logs = Vec::new();
    for i in 0..workers {
        let log = job.dir.join(format!("{id}-w{i}.stderr"));
        let child = net
            .command(i, BIN)
            .arg("worker")
            .arg(&yaml)
            .args(["--index", &i.to_string(), "--peers", &peers.join(","), "--coordinator", &coordinator])
            .args(["--attempt", &id, "--no-control", "--connect-timeout", "20s"])
            .args(["--heartbeat", "200ms", "--heartbeat-timeout", "2s"])
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn,sluice_runtime::job=info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create a worker's log"))
            .spawn()
            .expect("spawn a worker in its namespace");
        children.push(child);
        logs.push(log);
    }
    Attempt { id, children, logs }
}

impl Attempt {
    /// Waits until the attempt finishes or a worker fails; a failure kills the other workers.
    fn wait(&mut self, limit: Duration) -> End {
        let start = Instant::now();
        let mut done = vec![false; self.children.len()];
        loop {
            for (i, child) in self.children.iter_mut().enumerate() {
                if done[i] {
                    continue;
                }
                if let Some(status) = child.try_wait().expect("try_wait") {
                    if !status.success() {
                        self.kill();
                        return End::Failed(i, status.to_string());
                    }
                    done[i] = true;
                }
            }
            if done.iter().all(|d| *d) {
                return End::Finished;
            }
            assert!(
                start.elapsed() < limit,
                "attempt {} neither finished nor failed within {limit:?}:\n{}",
                self.id,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every worker's log tail, for a failure message.
    fn logs(&self) -> String {
        self.logs
            .iter()
            .enumerate()
            .map(|(i, l)| {
                format!("--- worker {i} ---\n{}", common::tail(&std::fs::read_to_string(l).unwrap_or_default(), 25))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The newest checkpoint whose state is being written but whose manifest is not yet published,
/// under the local checkpoint directory `root`.
fn checkpoint_in_flight(root: &Path) -> Option<u64> {
    let ids = |dir: &Path, strip: fn(&str) -> Option<u64>| -> Vec<u64> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries.filter_map(|e| e.ok()).filter_map(|e| strip(&e.file_name().to_string_lossy())).collect()
            })
            .unwrap_or_default()
    };
    let state = ids(&root.join("state"), |n| n.strip_prefix("chk-")?.parse().ok());
    let published = ids(&root.join("manifests"), |n| n.strip_prefix("chk-")?.strip_suffix(".json")?.parse().ok());
    let newest = *state.iter().max()?;
    let written = std::fs::read_dir(root.join("state").join(format!("chk-{newest}")))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    (written && !published.contains(&newest)).then_some(newest)
}

/// Waits (up to `limit`) until some checkpoint is in flight.
fn wait_for_checkpoint_in_flight(root: &Path, limit: Duration) -> Option<u64> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(id) = checkpoint_in_flight(root) {
            return Some(id);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

fn job(dir: &Path, count: u64, rate: u64) -> KillJob {
    KillJob::local(dir, count, 50, rate)
}

#[test]
fn a_worker_partitioned_mid_checkpoint_fails_the_attempt_and_the_relaunch_commits_exactly_once() {
    let workers = 3;
    let Some(net) = net_or_skip("p", workers) else { return };
    let seed = common::kill_seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job(dir.path(), 200_000, 15_000);
    let root = dir.path().join("checkpoints");
    let mut schedule = Vec::new();
    let partitions = 3;
    for n in 0..=partitions {
        let parallelism = rng.random_range(2..=4);
        let mut attempt = launch(&net, &job, workers, parallelism, n);
        if n == partitions {
            // The last attempt runs to the end, on a whole network.
            match attempt.wait(Duration::from_secs(240)) {
                End::Finished => break,
                End::Failed(i, status) => {
                    panic!(
                        "seed {seed}: the last attempt failed at worker {i} ({status}): {}\n{}",
                        schedule.join("; "),
                        attempt.logs()
                    )
                }
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1200)));
        let Some(checkpoint) = wait_for_checkpoint_in_flight(&root, Duration::from_secs(20)) else {
            panic!("seed {seed}: no checkpoint in flight within 20 s in attempt {n}:\n{}", attempt.logs());
        };
        // Subtask i runs on worker i % workers: at a parallelism below the worker count the
        // last workers run nothing and have ended already; cut off one that runs subtasks.
        let victim = rng.random_range(0..workers.min(parallelism as usize));
        net.link(victim, false).expect("partition");
        schedule.push(format!("attempt {n} p={parallelism}: worker {victim} cut off during checkpoint {checkpoint}"));
        let end = attempt.wait(Duration::from_secs(60));
        net.link(victim, true).expect("heal");
        let End::Failed(first, status) = end else {
            panic!("seed {seed}: attempt {n} finished although worker {victim} was cut off: {}", schedule.join("; "))
        };
        schedule.push(format!("worker {first} failed first ({status})"));
        // The worker that failed first names a worker across the cut: the one cut off, or
        // (the one cut off itself) one it lost.
        let text = attempt.log(first);
        let across: Vec<usize> =
            if first == victim { (0..workers).filter(|w| *w != victim).collect() } else { vec![victim] };
        assert!(
            across.iter().any(|w| text.contains(&format!("worker {w}"))),
            "seed {seed}: worker {first}, failing first, names none of workers {across:?}:\n{}",
            common::tail(&text, 20)
        );
        drop(attempt);
    }
    eprintln!("schedule (SLUICE_KILL_SEED={seed}): {}", schedule.join("; "));
    job.verify();
}

#[test]
fn a_slow_lossy_link_between_workers_loses_nothing_and_duplicates_nothing() {
    let workers = 3;
    let Some(net) = net_or_skip("l", workers) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let job = job(dir.path(), 60_000, 30_000);
    // Worker 1's link: 1 Mbit/s with up to 200 ms of queueing, 3 % of packets lost both ways.
    net.degrade(1, "1mbit", 200, 3).expect("degrade worker 1's link (tc tbf, nftables)");
    let mut relaunches = 0;
    for n in 0..5 {
        let mut attempt = launch(&net, &job, workers, 3, n);
        match attempt.wait(Duration::from_secs(240)) {
            End::Finished => {
                let stats = net.fault_stats(1);
                eprintln!("finished after {relaunches} relaunches; worker 1's link: {stats:?}");
                // The faults were real: packets were dropped and delayed on the way.
                assert!(stats.dropped > 0 && stats.throttled > 0, "the link was not degraded: {stats:?}");
                job.verify();
                return;
            }
            End::Failed(i, status) => {
                eprintln!("attempt {n}: worker {i} failed ({status}); relaunching:\n{}", attempt.logs());
                relaunches += 1;
            }
        }
    }
    panic!("the job did not finish in 5 attempts over a slow, lossy link");
}
