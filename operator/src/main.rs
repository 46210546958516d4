//! `sluice-operator`: flags/env → config, JSON logs, HTTP server (health, metrics, job pages),
//! leader election, controller.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use sluice_operator::config::Config;
use sluice_operator::health::Health;
use sluice_operator::metrics::Metrics;
use sluice_operator::runtime_client::HttpRuntime;
use sluice_operator::store::KubeStores;
use sluice_operator::{Context, controller, http, job_page, leader, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(std::env::var("RUST_LOG").ok().as_deref());
    let client = kube::Client::try_default().await.context("connecting to the Kubernetes API")?;

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::default().register(&mut registry));
    let listener = tokio::net::TcpListener::bind(config.http_addr).await.context("binding the HTTP address")?;
    let health = Arc::new(Health::default());
    let pages = job_page::JobPages {
        client: client.clone(),
        runtime: Arc::new(HttpRuntime::new(config.runtime_timeout, config.stop_timeout)),
        namespace: config.watch_namespace.clone(),
        poll: std::time::Duration::from_secs(1),
        stop_timeout: config.stop_timeout,
        read_only: config.job_page_read_only,
    };
    let app = http::router(Arc::new(registry), health.clone()).merge(job_page::router(pages));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });

    let lock = leader::LeaseLock::new(
        client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        &config.identity,
        config.lease_duration,
    );
    tracing::info!(identity = %config.identity, "waiting for leadership");
    lock.acquire().await;
    tracing::info!("leading: starting the controller");

    let runtime = Arc::new(HttpRuntime::new(config.runtime_timeout, config.stop_timeout));
    let stores = Arc::new(KubeStores::new(client.clone(), config.credentials_dir.clone()));
    let ctx = Arc::new(Context::new(client, config, metrics, runtime, stores, health));
    tokio::select! {
        () = controller::run(ctx) => tracing::info!("controller stopped"),
        () = lock.hold() => anyhow::bail!("lost the leader Lease; exiting so a fresh replica can take over"),
    }
    // Shutting down: hand the Lease over now rather than when it expires.
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "could not release the leader Lease");
    }
    Ok(())
}
