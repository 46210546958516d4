//! Several hosts on one machine: network namespaces joined by veth links, created by the test
//! itself, for worker processes that must reach each other over a real (and breakable) network.
//!
//! The topology is a star: a hub namespace holding a bridge, and one namespace per worker whose
//! `eth0` (10.77.0.<index + 1>/24) is a veth link to the hub. Every interface lives in a namespace
//! made here; nothing touches the machine's own namespace, and the addresses are reachable only
//! from inside these namespaces. Faults are made on one worker's link:
//! - **partition**: the hub side of the link down (nothing passes either way);
//! - **slow and lossy**: a token-bucket rate limit (`tc … tbf`, queueing delay) on both ends and a
//!   random drop of a share of the packets in both directions (nftables `numgen random`). This
//!   kernel has no `sch_netem`, so `tc netem` is used where it exists and this otherwise.
//!
//! Everything made is removed on drop (deleting a namespace deletes its links).

use std::path::PathBuf;
use std::process::Command;

/// The namespaces of one test: a hub and `workers` worker namespaces.
pub struct Net {
    prefix: String,
    workers: usize,
}

/// Runs `ip ARGS`, returning its error output on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!("{cmd:?}: {e}")),
    }
}

/// Where `nft` is: `SLUICE_NFT` (scripts/services/netfault.sh installs nftables), else the usual place.
fn nft() -> PathBuf {
    std::env::var_os("SLUICE_NFT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/sbin/nft"))
}

impl Net {
    /// Creates the namespaces and links, or says why it cannot (no `ip`, no right to make
    /// namespaces): the caller skips with that message.
    pub fn create(tag: &str, workers: usize) -> Result<Net, String> {
        // Short names: interface and namespace names are bounded, and tests run side by side.
        let prefix = format!("sl{}{tag}", std::process::id() % 100_000);
        let net = Net { prefix, workers: 0 };
        ip(&["netns", "add", &net.hub()])?;
        let mut net = net;
        ip(&["-n", &net.hub(), "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &net.hub(), "link", "set", "br0", "up"])?;
        for i in 0..workers {
            let ns = net.ns(i);
            ip(&["netns", "add", &ns])?;
            net.workers = i + 1;
            let hub_end = format!("h{i}");
            ip(&["-n", &net.hub(), "link", "add", &hub_end, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(&["-n", &net.hub(), "link", "set", &hub_end, "master", "br0", "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", net.addr(i)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn hub(&self) -> String {
        format!("{}hub", self.prefix)
    }

    /// The namespace of worker `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("{}w{i}", self.prefix)
    }

    /// The address of worker `i` (inside the namespaces only).
    pub fn addr(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// A command that runs `program` inside worker `i`'s namespace (`ip netns exec` replaces
    /// itself with the program: the child's pid is the program's).
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(i), program]);
        cmd
    }

    /// Cuts worker `i` off (`up = false`) or joins it again.
    pub fn link(&self, i: usize, up: bool) -> Result<(), String> {
        ip(&["-n", &self.hub(), "link", "set", &format!("h{i}"), if up { "up" } else { "down" }])
    }

    /// Makes worker `i`'s link slow and lossy in both directions: at most `rate` (tc's units,
    /// e.g. `20mbit`) with up to `queue_ms` of queueing delay, and `loss_percent` of the packets
    /// dropped at random.
    pub fn degrade(&self, i: usize, rate: &str, queue_ms: u32, loss_percent: u32) -> Result<(), String> {
        let latency = format!("{queue_ms}ms");
        for (ns, dev) in [(self.hub(), format!("h{i}")), (self.ns(i), "eth0".to_string())] {
            run(Command::new("ip")
                .args(["netns", "exec", &ns, "tc", "qdisc", "add", "dev", &dev, "root", "tbf"])
                .args(["rate", rate, "burst", "32kb", "latency", &latency]))?;
        }
        let ns = self.ns(i);
        let nft = nft();
        let nft = nft.to_str().unwrap_or("nft");
        let rule = |args: &[&str]| run(Command::new("ip").args(["netns", "exec", &ns, nft]).args(args));
        rule(&["add", "table", "inet", "fault"])?;
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            rule(&["add", "chain", "inet", "fault", chain, &format!("{{ type filter hook {hook} priority 0; }}")])?;
            rule(&[
                "add",
                "rule",
                "inet",
                "fault",
                chain,
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                &loss_percent.to_string(),
                "counter",
                "drop",
            ])?;
        }
        Ok(())
    }
}

/// What the faults on one link did so far.
#[derive(Debug, Default)]
pub struct FaultStats {
    /// Packets dropped on purpose, both directions.
    pub dropped: u64,
    /// Times a packet had to wait for the rate limit (queueing delay), both ends.
    pub throttled: u64,
}

/// Every number that follows `word` in `text`, summed (`counter packets 12 …`, `overlimits 3 …`).
fn sum_after(text: &str, word: &str) -> u64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == word)
        .filter_map(|w| w[1].trim_end_matches([',', ')']).parse::<u64>().ok())
        .sum()
}

fn output(cmd: &mut Command) -> String {
    cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default()
}

impl Net {
    /// The drops and throttling on worker `i`'s link made by [`Net::degrade`].
    pub fn fault_stats(&self, i: usize) -> FaultStats {
        let nft = nft();
        let rules = output(
            Command::new("ip").args(["netns", "exec", &self.ns(i)]).arg(nft).args(["list", "table", "inet", "fault"]),
        );
        let mut throttled = 0;
        for (ns, dev) in [(self.hub(), format!("h{i}")), (self.ns(i), "eth0".to_string())] {
            let stats =
                output(Command::new("ip").args(["netns", "exec", &ns, "tc", "-s", "qdisc", "show", "dev", &dev]));
            throttled += sum_after(&stats, "overlimits");
        }
        FaultStats { dropped: sum_after(&rules, "packets"), throttled }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.workers {
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["netns", "del", &self.hub()]);
    }
}
