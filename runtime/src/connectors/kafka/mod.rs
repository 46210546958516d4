//! Kafka connectors. This module holds the raw-protocol side the exactly-once sink needs
//! beyond what librdkafka offers: finishing (commit or abort) a transaction from its recorded
//! transactional id, producer id and epoch after a crash, learning a transaction's producer
//! id/epoch from its first record batch, and reading the broker's transaction limits.
//!
//! Everything here speaks the Kafka protocol with the `kafka-protocol` crate, over TCP or TLS
//! and SASL-authenticated as the block's `properties` say (`security`, `sasl`).

pub mod broker_config;
pub mod build;
pub mod codec;
pub mod error;
pub mod fetch;
pub mod io;
pub mod metadata;
pub mod plain_sink;
pub mod producer;
pub mod producer_identity;
pub mod recovery;
pub mod sasl;
pub mod security;
pub mod sink;
pub mod source;
pub mod timeout_check;
pub mod txn;
pub mod txn_admin;
pub mod txn_ids;
pub mod wire;

pub use error::Error;
pub use fetch::{Isolation, PartitionEnds, partition_ends};
pub use producer_identity::{ProducerIdentity, first_batch_identity};
pub use security::{Cluster, Security, SecurityError};
pub use timeout_check::{TimeoutBudget, TimeoutError, check_transaction_timeout};
pub use txn::{TxnOutcome, end_transaction, init_producer_id};
pub use txn_ids::TxnIdPool;
