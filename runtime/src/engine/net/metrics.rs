//! The network exchange's metrics, per peer worker. Each connection takes its handles once
//! ([`NetMetrics::peer`]): `Arc`'d atomics, so sends and receives take no lock.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of a per-peer metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The other worker's index.
    pub peer: u32,
}

type SecondsFamily = Family<PeerLabels, Counter<f64, AtomicU64>>;

/// The exchange's metric families (clones share the values).
#[derive(Clone, Debug, Default)]
pub struct NetMetrics {
    bytes_sent: Family<PeerLabels, Counter>,
    bytes_received: Family<PeerLabels, Counter>,
    batches_sent: Family<PeerLabels, Counter>,
    batches_received: Family<PeerLabels, Counter>,
    credit_wait: SecondsFamily,
    connections: Family<PeerLabels, Counter>,
    connect_failures: Family<PeerLabels, Counter>,
    lost: Family<PeerLabels, Counter>,
}

/// The handles of one peer.
#[derive(Clone, Debug)]
pub struct PeerMetrics {
    /// Bytes written to the peer's connection.
    pub bytes_sent: Counter,
    /// Bytes read from it.
    pub bytes_received: Counter,
    /// Data frames (batches) sent.
    pub batches_sent: Counter,
    /// Data frames (batches) received.
    pub batches_received: Counter,
    /// Seconds senders waited for credit from the peer (backpressure).
    pub credit_wait: Counter<f64, AtomicU64>,
    /// Connections established (more than one would be a restart).
    pub connections: Counter,
    /// Connection attempts that failed (the peer was not up yet, or refused).
    pub connect_failures: Counter,
    /// Connections lost before the exchange was shut down.
    pub lost: Counter,
}

impl NetMetrics {
    /// The handles of peer worker `peer`.
    pub fn peer(&self, peer: usize) -> PeerMetrics {
        let l = PeerLabels { peer: peer as u32 };
        PeerMetrics {
            bytes_sent: self.bytes_sent.get_or_create_owned(&l),
            bytes_received: self.bytes_received.get_or_create_owned(&l),
            batches_sent: self.batches_sent.get_or_create_owned(&l),
            batches_received: self.batches_received.get_or_create_owned(&l),
            credit_wait: self.credit_wait.get_or_create_owned(&l),
            connections: self.connections.get_or_create_owned(&l),
            connect_failures: self.connect_failures.get_or_create_owned(&l),
            lost: self.lost.get_or_create_owned(&l),
        }
    }

    /// Registers every family in `r` (expected to carry the `sluice_runtime` prefix).
    pub fn register(&self, r: &mut Registry) {
        r.register("exchange_sent_bytes", "Bytes sent to a peer worker", self.bytes_sent.clone());
        r.register("exchange_received_bytes", "Bytes received from a peer worker", self.bytes_received.clone());
        r.register("exchange_sent_batches", "Batches sent to a peer worker", self.batches_sent.clone());
        r.register("exchange_received_batches", "Batches received from a peer worker", self.batches_received.clone());
        r.register(
            "exchange_credit_wait_seconds",
            "Time senders waited for credit from a peer worker (backpressure)",
            self.credit_wait.clone(),
        );
        r.register("exchange_connections", "Connections to a peer worker established", self.connections.clone());
        r.register(
            "exchange_connect_failures",
            "Connection attempts to a peer worker that failed",
            self.connect_failures.clone(),
        );
        r.register("exchange_connections_lost", "Connections to a peer worker lost", self.lost.clone());
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn handles_feed_the_registered_families() {
        let m = NetMetrics::default();
        let p = m.peer(2);
        p.bytes_sent.inc_by(10);
        p.credit_wait.inc_by(0.5);
        m.peer(2).bytes_sent.inc_by(5);
        let mut r = Registry::with_prefix("sluice_runtime");
        m.register(&mut r);
        let mut text = String::new();
        encode(&mut text, &r).expect("encodes");
        assert!(text.contains("sluice_runtime_exchange_sent_bytes_total{peer=\"2\"} 15"), "{text}");
        assert!(text.contains("sluice_runtime_exchange_credit_wait_seconds_total{peer=\"2\"} 0.5"), "{text}");
    }

    #[test]
    fn the_jobs_metrics_export_the_exchange() {
        let job = crate::engine::metrics::JobMetrics::new(vec![("src".into(), 1)]);
        job.net().peer(1).bytes_received.inc_by(3);
        let mut r = Registry::with_prefix("sluice_runtime");
        job.register(&mut r, 0);
        let mut text = String::new();
        encode(&mut text, &r).expect("encodes");
        assert!(text.contains("sluice_runtime_exchange_received_bytes_total{peer=\"1\"} 3"), "{text}");
    }
}
