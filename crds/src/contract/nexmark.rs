//! The `nexmark` source block: the Nexmark benchmark's auction system (persons, auctions and
//! bids), generated deterministically from the event number, and its validation.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_errors::Errors;

/// The Nexmark benchmark's event generator: persons, auctions and bids in the proportions
/// `personProportion : auctionProportion : bidProportion`, each event a pure function of its
/// event number (so any split replays exactly from its checkpointed position). Event `n` has
/// event time `baseTimeMs + ⌊n · 10⁶ / eventsPerSecond⌋ µs` (in whole milliseconds). The
/// event numbers are cut into `splits` interleaved splits (split `s` emits `s`, `s+S`, …).
/// The other settings are the Nexmark generator's, with its defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NexmarkSpec {
    /// Total number of events; unbounded when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// The generator's event rate (Nexmark's `firstEventRate`): event time advances by
    /// 1/eventsPerSecond seconds per event. It does not pace the output (see `ratePerSecond`).
    #[serde(default = "default_events_per_second")]
    pub events_per_second: u64,
    /// Wall-clock limit on events emitted per second over the whole source; as fast as possible
    /// when absent (Nexmark's `maxEmitSpeed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u64>,
    /// Event time of event 0, in milliseconds since the epoch.
    #[serde(default)]
    pub base_time_ms: u64,
    /// Number of replayable splits (upper bound of useful parallelism).
    #[serde(default = "default_splits")]
    pub splits: u32,
    /// Persons in each cycle of `personProportion + auctionProportion + bidProportion` events.
    #[serde(default = "one")]
    pub person_proportion: u32,
    /// Auctions in each cycle of events.
    #[serde(default = "three")]
    pub auction_proportion: u32,
    /// Bids in each cycle of events.
    #[serde(default = "forty_six")]
    pub bid_proportion: u32,
    /// A bid is on a hot auction with probability 1 − 1/hotAuctionRatio.
    #[serde(default = "two")]
    pub hot_auction_ratio: u32,
    /// An auction is by a hot seller with probability 1 − 1/hotSellersRatio.
    #[serde(default = "four")]
    pub hot_sellers_ratio: u32,
    /// A bid is by a hot bidder with probability 1 − 1/hotBiddersRatio.
    #[serde(default = "four")]
    pub hot_bidders_ratio: u32,
    /// Average size of a person event in bytes; its `extra` field pads it to about this.
    #[serde(default = "default_person_bytes")]
    pub avg_person_byte_size: u32,
    /// Average size of an auction event in bytes; its `extra` field pads it to about this.
    #[serde(default = "default_auction_bytes")]
    pub avg_auction_byte_size: u32,
    /// Average size of a bid event in bytes; its `extra` field pads it to about this.
    #[serde(default = "default_bid_bytes")]
    pub avg_bid_byte_size: u32,
    /// How many of the latest persons are active (chosen as sellers and bidders).
    #[serde(default = "default_active_people")]
    pub num_active_people: u32,
    /// How many of the latest auctions are in flight (chosen for bids); also sets the average
    /// auction length.
    #[serde(default = "default_in_flight_auctions")]
    pub num_in_flight_auctions: u32,
}

impl Default for NexmarkSpec {
    fn default() -> Self {
        NexmarkSpec {
            events: None,
            events_per_second: default_events_per_second(),
            rate_per_second: None,
            base_time_ms: 0,
            splits: default_splits(),
            person_proportion: one(),
            auction_proportion: three(),
            bid_proportion: forty_six(),
            hot_auction_ratio: two(),
            hot_sellers_ratio: four(),
            hot_bidders_ratio: four(),
            avg_person_byte_size: default_person_bytes(),
            avg_auction_byte_size: default_auction_bytes(),
            avg_bid_byte_size: default_bid_bytes(),
            num_active_people: default_active_people(),
            num_in_flight_auctions: default_in_flight_auctions(),
        }
    }
}

fn default_events_per_second() -> u64 {
    10_000
}
fn default_splits() -> u32 {
    16
}
fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn four() -> u32 {
    4
}
fn forty_six() -> u32 {
    46
}
fn default_person_bytes() -> u32 {
    200
}
fn default_auction_bytes() -> u32 {
    500
}
fn default_bid_bytes() -> u32 {
    100
}
fn default_active_people() -> u32 {
    1000
}
fn default_in_flight_auctions() -> u32 {
    100
}

/// Checks a `nexmark` block at path `at`.
pub(crate) fn validate(n: &NexmarkSpec, at: &str, errs: &mut Errors) {
    let at_least_one: [(&str, u64); 9] = [
        ("eventsPerSecond", n.events_per_second),
        ("splits", n.splits.into()),
        ("personProportion", n.person_proportion.into()),
        ("auctionProportion", n.auction_proportion.into()),
        ("bidProportion", n.bid_proportion.into()),
        ("hotAuctionRatio", n.hot_auction_ratio.into()),
        ("hotSellersRatio", n.hot_sellers_ratio.into()),
        ("hotBiddersRatio", n.hot_bidders_ratio.into()),
        ("numActivePeople", n.num_active_people.into()),
    ];
    for (field, value) in at_least_one {
        if value < 1 {
            errs.add(format!("{at}.{field}"), "must be ≥ 1");
        }
    }
    if n.events_per_second > 1_000_000_000 {
        errs.add(format!("{at}.eventsPerSecond"), "must be ≤ 1000000000");
    }
    if n.rate_per_second == Some(0) {
        errs.add(format!("{at}.ratePerSecond"), "must be ≥ 1 (omit it for no limit)");
    }
    let cycle = u64::from(n.person_proportion) + u64::from(n.auction_proportion) + u64::from(n.bid_proportion);
    if cycle > 1_000_000 {
        errs.add(format!("{at}.bidProportion"), "the proportions must add up to at most 1000000");
    }
}

#[cfg(test)]
mod tests {
    use crate::JobConfig;

    fn doc(block: &str) -> String {
        format!(
            "name: nx\npipeline:\n  nodes:\n    - {{id: src, nexmark: {block}}}\n    - {{id: out, discard: {{}}}}\n  edges:\n    - {{from: src, to: out}}\n"
        )
    }

    #[test]
    fn defaults_are_the_nexmark_generators() {
        let job = JobConfig::from_yaml(&doc("{events: 10}")).expect("valid");
        let spec = job.pipeline.nodes[0].nexmark.clone().expect("nexmark block");
        assert_eq!(spec, super::NexmarkSpec { events: Some(10), ..Default::default() });
        assert_eq!((spec.person_proportion, spec.auction_proportion, spec.bid_proportion), (1, 3, 46));
        assert_eq!((spec.hot_auction_ratio, spec.hot_sellers_ratio, spec.hot_bidders_ratio), (2, 4, 4));
    }

    #[test]
    fn bad_settings_name_their_field() {
        let e = JobConfig::from_yaml(&doc("{eventsPerSecond: 0, hotAuctionRatio: 0, ratePerSecond: 0}"))
            .expect_err("invalid")
            .to_string();
        for field in ["eventsPerSecond: must be ≥ 1", "hotAuctionRatio: must be ≥ 1", "ratePerSecond: must be ≥ 1"]
        {
            assert!(e.contains(&format!("pipeline.nodes[0].nexmark.{field}")), "{e}");
        }
        let e = JobConfig::from_yaml(&doc("{event: 10}")).expect_err("unknown field").to_string();
        assert!(e.contains("pipeline.nodes[0].nexmark") && e.contains("event"), "{e}");
    }
}
