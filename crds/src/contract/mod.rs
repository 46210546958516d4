//! What the operator and the runtime exchange. Every document carries a `version` field.

pub mod control;
mod field_errors;
pub mod job_config;
pub mod job_view;
pub mod join;
pub mod kafka;
pub mod kafka_security;
mod kafka_validate;
pub mod manifest;
pub mod nexmark;
pub mod pipeline;
pub mod ranking;
pub mod validate;
pub mod window;
