//! What every reconcile needs: client, config, event recorder, metrics, runtime client, stores.

use std::sync::Arc;

use kube::runtime::events::{Recorder, Reporter};

use crate::config::{Config, FIELD_MANAGER};
use crate::metrics::Metrics;
use crate::runtime_client::RuntimeApi;
use crate::store::StoreFactory;

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Settings.
    pub config: Config,
    /// Event recorder.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Runtime control-endpoint client.
    pub runtime: Arc<dyn RuntimeApi>,
    /// Checkpoint storage.
    pub stores: Arc<dyn StoreFactory>,
}

impl Context {
    /// A context over `client`.
    pub fn new(
        client: kube::Client,
        config: Config,
        metrics: Arc<Metrics>,
        runtime: Arc<dyn RuntimeApi>,
        stores: Arc<dyn StoreFactory>,
    ) -> Context {
        let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(config.identity.clone()) };
        Context { recorder: Recorder::new(client.clone(), reporter), client, config, metrics, runtime, stores }
    }
}
