//! What every reconcile needs: client, config, event recorder, metrics, runtime client, stores,
//! and the watches' health.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::runtime::events::{Recorder, Reporter};

use crate::config::{Config, FIELD_MANAGER};
use crate::health::Health;
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
    /// Health of the controller's watches (served on `/healthz`).
    pub health: Arc<Health>,
    /// The `resourceVersion` each StreamJob's status write returned, by uid: a watched copy
    /// with another version may predate that write and is read again from the API server.
    written: Mutex<HashMap<String, String>>,
}

impl Context {
    /// A context over `client`.
    pub fn new(
        client: kube::Client,
        config: Config,
        metrics: Arc<Metrics>,
        runtime: Arc<dyn RuntimeApi>,
        stores: Arc<dyn StoreFactory>,
        health: Arc<Health>,
    ) -> Context {
        let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(config.identity.clone()) };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            runtime,
            stores,
            health,
            written: Mutex::default(),
        }
    }

    /// The `resourceVersion` the last status write to the object `key` returned.
    pub fn last_written(&self, key: &str) -> Option<String> {
        self.written.lock().ok().and_then(|w| w.get(key).cloned())
    }

    /// Remembers the `resourceVersion` a status write to `key` returned (`None` forgets it).
    pub fn set_written(&self, key: &str, version: Option<String>) {
        if let Ok(mut w) = self.written.lock() {
            match version {
                Some(v) => w.insert(key.to_string(), v),
                None => w.remove(key),
            };
        }
    }
}
