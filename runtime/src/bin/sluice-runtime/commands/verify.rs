//! `verify …`: the exactly-once verifier's commands (files always; Kafka with the `kafka`
//! feature).

use anyhow::{Context, Result};

use crate::args::VerifyCommand;
use sluice_runtime::verify as verify_files;

/// Runs one verifier command; an imperfect check is an error.
pub async fn verify(cmd: VerifyCommand) -> Result<()> {
    match cmd {
        VerifyCommand::ProduceFile { path, count } => {
            verify_files::produce_file(&path, count).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {count} sequence-numbered records to {}", path.display());
            Ok(())
        }
        VerifyCommand::Files { dir, count, field } => {
            let report = verify_files::check_file_sink(&dir, &field, count)
                .with_context(|| format!("reading {}", dir.display()))?;
            println!("{report}");
            if report.is_exactly_once() { Ok(()) } else { anyhow::bail!("output is not exactly-once") }
        }
        #[cfg(feature = "kafka")]
        VerifyCommand::ProduceKafka { target, count, keys, partitions, start_ms } => {
            kafka::produce(target, count, keys, partitions, start_ms).await
        }
        #[cfg(feature = "kafka")]
        VerifyCommand::KafkaLatency { bootstrap, input, output, rate, seconds } => {
            kafka::latency(bootstrap, input, output, rate, seconds).await
        }
        #[cfg(feature = "kafka")]
        VerifyCommand::Kafka { target, count, field } => kafka::check(target, count, field).await,
    }
}

#[cfg(feature = "kafka")]
mod kafka {
    use anyhow::{Context, Result};
    use sluice_runtime::verify::kafka as verify;

    use crate::args::KafkaTopic;

    /// `verify produce-kafka`.
    pub async fn produce(t: KafkaTopic, count: u64, keys: u64, partitions: i32, start_ms: i64) -> Result<()> {
        tokio::task::spawn_blocking(move || {
            verify::create_topic(&t.bootstrap, &t.topic, partitions)?;
            verify::produce(&t.bootstrap, &t.topic, count, keys, start_ms)?;
            println!("produced {count} sequence-numbered records to {}", t.topic);
            anyhow::Ok(())
        })
        .await
        .context("producer thread")?
    }

    /// `verify kafka-latency`.
    pub async fn latency(bootstrap: String, input: String, output: String, rate: u64, seconds: u64) -> Result<()> {
        let b = bootstrap.clone();
        let reader = tokio::task::spawn_blocking(move || verify::measure_latency(&b, &output, seconds + 5));
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let sent = tokio::task::spawn_blocking(move || verify::produce_live(&bootstrap, &input, rate, seconds))
            .await
            .context("producer thread")??;
        let mut delays = reader.await.context("consumer thread")??;
        delays.sort_unstable();
        let pct = |q: f64| delays.get(((delays.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(-1);
        println!(
            "LATENCY sent={sent} received={} p50={}ms p90={}ms p99={}ms max={}ms",
            delays.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            pct(1.0)
        );
        Ok(())
    }

    /// `verify kafka`.
    pub async fn check(t: KafkaTopic, count: u64, field: String) -> Result<()> {
        tokio::task::spawn_blocking(move || {
            let open = verify::open_transactions_named(&t.bootstrap, &t.topic, std::time::Duration::from_secs(10))?;
            if !open.is_empty() {
                println!("transactions left open: {open}");
            }
            let report = verify::check_topic(&t.bootstrap, &t.topic, &field, count)?;
            println!("{report}");
            if report.is_exactly_once() && open.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("output is not exactly-once")
            }
        })
        .await
        .context("consumer thread")?
    }
}
