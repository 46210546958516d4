//! `bench` and `bench-state`: the benchmark figures `make bench` collects.

use anyhow::{Context, Result};

use crate::args::BenchArgs;
use crate::tools::bench;

/// `bench-state`: incremental bytes at 1 % / 10 % of keys changed, and restore time by size.
pub fn bench_state() -> Result<()> {
    for keys in [100_000u64, 1_000_000] {
        for changed in [0.01, 0.10] {
            let f = bench::delta_figure(keys, changed);
            println!(
                "DELTA keys={keys} changed={:.0}% fullBytes={} deltaBytes={} deltaOverFull={:.3}",
                changed * 100.0,
                f.full_bytes,
                f.delta_bytes,
                f.delta_bytes as f64 / f.full_bytes as f64
            );
        }
    }
    for keys in [100_000u64, 1_000_000, 5_000_000] {
        let f = bench::restore_figure(keys);
        println!("RESTORE keys={keys} bytes={} ms={:.0}", f.bytes, f.millis);
    }
    Ok(())
}

/// `bench`: one configuration of the shared workload; prints one `RESULT` line.
pub async fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs { records, parallelism, checkpoint_interval, dir, keys } = args;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    let cfg = bench::BenchConfig {
        records,
        parallelism,
        checkpoint_interval: checkpoint_interval.map(Into::into),
        dir,
        keys,
    };
    let r = bench::run(&cfg).await.context("benchmark run failed")?;
    println!(
        "RESULT engine=sluice p={parallelism} n={records} keys={keys} checkpoints={} steadyRecPerSec={:.0} recPerSecWall={:.0} ckptCompleted={} ckptP50Ms={} ckptP99Ms={} ckptMaxMs={} ckptBytes={} peakRssBytes={}",
        checkpoint_interval.map_or("off".to_string(), |i| i.to_string()),
        r.steady_rate,
        r.overall_rate,
        r.checkpoints,
        r.ckpt_p50_ms,
        r.ckpt_p99_ms,
        r.ckpt_max_ms,
        r.ckpt_bytes,
        r.peak_rss
    );
    Ok(())
}
