//! Upload throughput and checkpoint-publish latency against the local S3 test server
//! (`scripts/services/s3.sh start`). Prints figures, asserts nothing.
//!
//! `cargo run -p sluice-runtime --example s3_bench -- [SIZE_MB ...]` (default 10 100 1000).
//! For each size: a full snapshot (one object of SIZE, multipart from 8 MiB), an incremental one
//! (a delta object of 1 % of SIZE), each followed by its manifest published with
//! `put_if_absent`, then a read-back of the full object.

#[cfg(not(feature = "s3"))]
fn main() {
    eprintln!("s3_bench needs the `s3` feature of sluice-runtime");
}

#[cfg(feature = "s3")]
fn main() -> anyhow::Result<()> {
    bench::main()
}

#[cfg(feature = "s3")]
mod bench {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result, bail};
    use bytes::Bytes;
    use sluice_runtime::storage::ObjectStore;
    use sluice_runtime::storage::s3::{S3Config, S3Credentials, S3Location, S3Options, S3Store};

    /// Reads a variable from the environment or from the env file `s3.sh` writes.
    fn var(name: &str) -> Result<String> {
        if let Ok(v) = std::env::var(name) {
            return Ok(v);
        }
        let tools = std::env::var_os("SLUICE_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
        let file = tools.join("run/s3.env");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("{} missing: run scripts/services/s3.sh start", file.display()))?;
        for line in text.lines() {
            if let Some((k, v)) = line.trim().strip_prefix("export ").and_then(|l| l.split_once('='))
                && k == name
            {
                return Ok(v.to_string());
            }
        }
        bail!("{name} not set and not in {}", file.display())
    }

    fn mb_per_s(bytes: usize, took: Duration) -> f64 {
        bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
    }

    /// Bytes that do not compress or repeat (a misplaced part would show in a checksum).
    fn data(len: usize, seed: u64) -> Bytes {
        let mut out = Vec::with_capacity(len + 8);
        let mut x = seed | 1;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        Bytes::from(out)
    }

    #[tokio::main]
    pub async fn main() -> Result<()> {
        let sizes: Vec<usize> =
            match std::env::args().skip(1).map(|a| a.parse::<usize>()).collect::<Result<Vec<_>, _>>()? {
                s if s.is_empty() => vec![10, 100, 1000],
                s => s,
            };
        let bucket = var("SLUICE_TEST_S3_BUCKET")?;
        let uri = format!("s3://{bucket}/bench/{}", uuid::Uuid::new_v4().simple());
        let options = S3Options::default();
        println!(
            "S3 bench against {} (part {} MiB, {} parts in flight)",
            var("SLUICE_TEST_S3_ENDPOINT")?,
            options.part_size >> 20,
            options.max_parts_in_flight
        );
        let store = S3Store::connect(S3Config {
            location: S3Location::parse(&uri)?,
            endpoint: Some(var("SLUICE_TEST_S3_ENDPOINT")?),
            region: var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            path_style: true,
            credentials: S3Credentials::new(var("AWS_ACCESS_KEY_ID")?, var("AWS_SECRET_ACCESS_KEY")?),
            options,
        })
        .await?;
        println!(
            "{:>8} {:>14} {:>12} {:>16} {:>14} {:>12}",
            "size", "full ckpt ms", "upload MB/s", "incr(1%) ckpt ms", "publish ms", "read MB/s"
        );
        for (i, mb) in sizes.iter().enumerate() {
            let len = mb * 1_000_000;
            let full = data(len, i as u64 + 1);
            let delta = full.slice(..(len / 100).max(1));
            let manifest = Bytes::from(vec![b'm'; 2048]);
            let key = format!("state/chk-{i}/full.state");

            let start = Instant::now();
            store.put(&key, full.clone()).await?;
            let upload = start.elapsed();
            let publish_start = Instant::now();
            store.put_if_absent(&format!("manifests/full-{i}.json"), manifest.clone()).await?;
            let publish = publish_start.elapsed();
            let full_ckpt = start.elapsed();

            let start = Instant::now();
            store.put(&format!("state/chk-{i}/delta.state"), delta).await?;
            store.put_if_absent(&format!("manifests/incr-{i}.json"), manifest).await?;
            let incr_ckpt = start.elapsed();

            let start = Instant::now();
            let back = store.get(&key).await?;
            let read = start.elapsed();
            if back != full {
                bail!("read-back of {mb} MB differs");
            }
            println!(
                "{:>6}MB {:>14} {:>12.1} {:>16} {:>14} {:>12.1}",
                mb,
                full_ckpt.as_millis(),
                mb_per_s(len, upload),
                incr_ckpt.as_millis(),
                publish.as_millis(),
                mb_per_s(len, read)
            );
            let keys: Vec<String> = store.list("").await?.into_iter().map(|o| o.key).collect();
            store.delete(&keys).await?;
        }
        Ok(())
    }
}
