//! Sluice's test broker: tansu (Kafka protocol, in-memory storage) with the transaction
//! routes tansu 0.6 lacks, for integration tests only.
//!
//! Usage: `sluice-test-broker [--listen 127.0.0.1:0] [--addr-file PATH]
//! [--transaction-max-timeout-ms N] [--advertise HOST:PORT]`. It binds the listener, writes
//! `127.0.0.1:PORT` to the address file (when given) once it accepts connections, and serves
//! until SIGTERM/SIGINT. `--advertise` makes Metadata and FindCoordinator name another address
//! than the listener's: a TLS-terminating proxy in front of it (tests/tests/kafka_tls.rs).

mod configs;
mod end_txn;
mod fetch;
mod routes;
mod txns;

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context as _, bail};
use rama::{Context, Layer as _, Service as _};
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_service::{BytesFrameLayer, TcpBytesLayer, TcpContext, TcpContextLayer};
use tansu_storage::{BrokerRegistrationRequest, Storage as _, StorageContainer};
use tokio::{net::TcpListener, signal::unix::SignalKind};
use tracing::{debug, info, warn};
use url::Url;
use uuid::Uuid;

const CLUSTER_ID: &str = "sluice-test";
const NODE_ID: i32 = 111;

struct Args {
    listen: SocketAddr,
    addr_file: Option<PathBuf>,
    transaction_max_timeout_ms: i64,
    advertise: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        addr_file: None,
        // Apache Kafka's default for transaction.max.timeout.ms (15 minutes).
        transaction_max_timeout_ms: 900_000,
        advertise: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => args.listen = value.parse().context("--listen")?,
            "--addr-file" => args.addr_file = Some(value.into()),
            "--advertise" => args.advertise = Some(value),
            "--transaction-max-timeout-ms" => {
                args.transaction_max_timeout_ms = value.parse().context("--transaction-max-timeout-ms")?;
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if !args.listen.ip().is_loopback() {
        bail!("the test broker binds loopback only, got {}", args.listen);
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = parse_args()?;

    let listener = TcpListener::bind(args.listen).await.context("bind listener")?;
    let addr = listener.local_addr().context("listener address")?;
    let advertised = args.advertise.clone().unwrap_or_else(|| addr.to_string());
    let advertised = Url::parse(&format!("tcp://{advertised}")).context("--advertise")?;

    let storage = StorageContainer::builder()
        .cluster_id(CLUSTER_ID)
        .node_id(NODE_ID)
        .advertised_listener(advertised)
        .storage(Url::parse("memory://tansu/").context("storage url")?)
        .silent(true)
        .build()
        .await
        .context("build storage")?;
    storage
        .register_broker(BrokerRegistrationRequest {
            broker_id: NODE_ID,
            cluster_id: CLUSTER_ID.into(),
            incarnation_id: Uuid::new_v4(),
            rack: None,
        })
        .await
        .context("register broker")?;
    let groups = Controller::with_storage(storage.clone()).context("group coordinator")?;
    let ended = end_txn::EndedTxns::default();
    let txns = txns::Coordinator::default();

    if let Some(path) = &args.addr_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{addr}\n")).context("write address file")?;
        std::fs::rename(&tmp, path).context("publish address file")?;
    }
    info!(%addr, "sluice test broker ready");

    let mut terminate = tokio::signal::unix::signal(SignalKind::terminate()).context("SIGTERM")?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => { warn!(%error, "accept"); continue; }
                };
                let _ = stream.set_nodelay(true);
                let router = routes::router(storage.clone(), groups.clone(), ended.clone(), txns.clone(), args.transaction_max_timeout_ms)
                    .context("build routes")?;
                let service = (
                    TcpContextLayer::new(TcpContext::default().cluster_id(Some(CLUSTER_ID.into()))),
                    TcpBytesLayer::default(),
                    BytesFrameLayer::default(),
                )
                    .into_layer(router);
                tokio::spawn(async move {
                    match service.serve(Context::default(), stream).await {
                        Ok(_) => debug!(%peer, "connection closed"),
                        Err(error) => debug!(%peer, ?error, "connection ended"),
                    }
                });
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info!("sluice test broker stopped");
    Ok(())
}
