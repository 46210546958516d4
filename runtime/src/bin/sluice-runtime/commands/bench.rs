//! `bench` and `bench-state`: the benchmark figures `make bench` collects.

use std::path::Path;

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

/// The file `bench` writes into the directory it creates: a later run empties only a
/// directory that has it.
pub const BENCH_MARKER: &str = ".sluice-bench";

/// Makes `dir` an empty directory of `bench`'s: a new or empty one gets the marker; one with
/// the marker is emptied; any other directory with files in it is refused, untouched.
fn prepare_dir(dir: &Path) -> Result<()> {
    let marker = dir.join(BENCH_MARKER);
    match std::fs::read_dir(dir) {
        Ok(_) if marker.is_file() => {
            std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?
        }
        Ok(mut entries) => {
            if entries.next().is_some() {
                anyhow::bail!(
                    "--dir {} is not empty and was not created by `sluice-runtime bench` (it has no {BENCH_MARKER} file): refusing to delete it; give a new or empty directory",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&marker, "created by `sluice-runtime bench`, whose next run with this --dir empties it\n")
        .with_context(|| format!("writing {}", marker.display()))
}

/// `bench`: one configuration of the shared workload; prints one `RESULT` line.
pub async fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs { records, parallelism, checkpoint_interval, dir, keys, job } = args;
    let document = match &job {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(sluice_crds::JobConfig::from_yaml(&text).with_context(|| format!("job document {}", path.display()))?)
        }
        None => None,
    };
    prepare_dir(&dir)?;
    let dir = std::fs::canonicalize(&dir)?;
    let cfg = bench::BenchConfig {
        records,
        parallelism,
        checkpoint_interval: checkpoint_interval.map(Into::into),
        dir,
        keys,
        document,
    };
    let r = bench::run(&cfg).await.context("benchmark run failed")?;
    let name = job.as_ref().and_then(|j| j.file_stem()).map_or("shared".into(), |s| s.to_string_lossy().into_owned());
    println!(
        "RESULT engine=sluice job={name} p={parallelism} n={} keys={keys} checkpoints={} steadyRecPerSec={:.0} recPerSecWall={:.0} recPerCpuSec={:.0} cpuSec={:.1} ckptCompleted={} ckptP50Ms={} ckptP99Ms={} ckptMaxMs={} ckptBytes={} peakRssBytes={}",
        r.records,
        checkpoint_interval.map_or("off".to_string(), |i| i.to_string()),
        r.steady_rate,
        r.overall_rate,
        r.records as f64 / r.cpu_seconds.max(0.01),
        r.cpu_seconds,
        r.checkpoints,
        r.ckpt_p50_ms,
        r.ckpt_p99_ms,
        r.ckpt_max_ms,
        r.ckpt_bytes,
        r.peak_rss
    );
    Ok(())
}
