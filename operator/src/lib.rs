//! The Sluice operator: reconciles StreamJobs into runtime pods, reports status, and recovers
//! failed attempts from the latest completed checkpoint.
//!
//! Each reconcile reads ([`reconcile::observe`]), decides with a pure planner
//! ([`reconcile::plan`]) and writes ([`reconcile::apply`] for child objects,
//! [`reconcile::status`] for `.status`).

pub mod build;
pub mod config;
pub mod context;
pub mod controller;
pub mod error;
pub mod health;
pub mod http;
pub mod job_page;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod recovery;
pub mod runtime_client;
pub mod savepoint;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod controller_api_tests;
#[cfg(test)]
mod controller_identity_tests;
#[cfg(test)]
mod controller_rollback_tests;
#[cfg(test)]
mod controller_savepoint_tests;
#[cfg(test)]
mod controller_tests;
#[cfg(test)]
mod controller_watch_tests;
#[cfg(test)]
mod controller_workers_tests;
#[cfg(test)]
mod fixtures;

pub use context::Context;
pub use error::Error;
