//! The generator's settings and the arithmetic on event numbers that follows the Nexmark
//! generator's `GeneratorConfig`, `PersonGenerator` and `AuctionGenerator`: which kind event `n`
//! is, its timestamp, the last person and auction ids created by then, and the random choice of
//! an active person or an in-flight auction.

use sluice_crds::contract::pipeline::NexmarkSpec;

use super::rng::EventRng;

/// Person ids start here (so queries find matches even on small event counts).
pub(super) const FIRST_PERSON_ID: u64 = 1000;
/// Auction ids start here.
pub(super) const FIRST_AUCTION_ID: u64 = 1000;
/// Category ids start here.
pub(super) const FIRST_CATEGORY_ID: u64 = 10;
/// Number of categories.
pub(super) const NUM_CATEGORIES: u64 = 5;
/// Persons (auctions) a random choice may pick beyond the last one created.
const ID_LEAD: u64 = 10;
/// Hot sellers, bidders and auctions are the first (second) of each batch of this many.
pub(super) const HOT_BATCH: u64 = 100;

/// The kind of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A new person (`event_type` 0).
    Person,
    /// A new auction (`event_type` 1).
    Auction,
    /// A bid (`event_type` 2).
    Bid,
}

/// The settings of one `nexmark` node, with what derives from them.
#[derive(Clone, Debug)]
pub(crate) struct GenConfig {
    person_proportion: u64,
    auction_proportion: u64,
    total_proportion: u64,
    /// Microseconds of event time between consecutive events.
    inter_event_delay_us: f64,
    base_time_ms: i64,
    pub(super) hot_auction_ratio: u64,
    pub(super) hot_sellers_ratio: u64,
    pub(super) hot_bidders_ratio: u64,
    pub(super) avg_person_bytes: usize,
    pub(super) avg_auction_bytes: usize,
    pub(super) avg_bid_bytes: usize,
    active_people: u64,
    in_flight_auctions: u64,
    /// Events until `numInFlightAuctions` more auctions have been created.
    auction_horizon_events: u64,
}

impl GenConfig {
    /// The configuration of `spec` (validated: every proportion and ratio ≥ 1).
    pub(crate) fn new(spec: &NexmarkSpec) -> GenConfig {
        let at_least_one = |v: u32| u64::from(v.max(1));
        let (person, auction, bid) = (
            at_least_one(spec.person_proportion),
            at_least_one(spec.auction_proportion),
            at_least_one(spec.bid_proportion),
        );
        let total = person + auction + bid;
        let in_flight = u64::from(spec.num_in_flight_auctions);
        GenConfig {
            person_proportion: person,
            auction_proportion: auction,
            total_proportion: total,
            inter_event_delay_us: 1_000_000.0 / spec.events_per_second.max(1) as f64,
            base_time_ms: i64::try_from(spec.base_time_ms).unwrap_or(i64::MAX),
            hot_auction_ratio: at_least_one(spec.hot_auction_ratio),
            hot_sellers_ratio: at_least_one(spec.hot_sellers_ratio),
            hot_bidders_ratio: at_least_one(spec.hot_bidders_ratio),
            avg_person_bytes: spec.avg_person_byte_size as usize,
            avg_auction_bytes: spec.avg_auction_byte_size as usize,
            avg_bid_bytes: spec.avg_bid_byte_size as usize,
            active_people: u64::from(spec.num_active_people),
            in_flight_auctions: in_flight,
            auction_horizon_events: in_flight * total / auction,
        }
    }

    /// The kind of event `n`.
    #[inline]
    pub(crate) fn kind(&self, n: u64) -> Kind {
        let rem = n % self.total_proportion;
        if rem < self.person_proportion {
            Kind::Person
        } else if rem < self.person_proportion + self.auction_proportion {
            Kind::Auction
        } else {
            Kind::Bid
        }
    }

    /// The event time of event `n`, ms since the epoch: the base time plus `n` inter-event
    /// delays, truncated to whole microseconds and then to whole milliseconds (as the Java
    /// generator's `timestampForEvent`).
    #[inline]
    pub(crate) fn timestamp(&self, n: u64) -> i64 {
        let micros = (n as f64 * self.inter_event_delay_us) as i64;
        self.base_time_ms.saturating_add(micros / 1000)
    }

    /// The last person id (from 0) created by event `n`: `n`'s own when `n` is a person.
    #[inline]
    pub(super) fn last_person(&self, n: u64) -> u64 {
        let (epoch, offset) = (n / self.total_proportion, n % self.total_proportion);
        epoch * self.person_proportion + offset.min(self.person_proportion - 1)
    }

    /// The last auction id (from 0) created by event `n`: `n`'s own when `n` is an auction;
    /// −1 before the first auction.
    #[inline]
    pub(super) fn last_auction(&self, n: u64) -> i64 {
        let (epoch, offset) = ((n / self.total_proportion) as i64, n % self.total_proportion);
        let (epoch, offset) = if offset < self.person_proportion {
            (epoch - 1, self.auction_proportion - 1)
        } else if offset >= self.person_proportion + self.auction_proportion {
            (epoch, self.auction_proportion - 1)
        } else {
            (epoch, offset - self.person_proportion)
        };
        epoch * self.auction_proportion as i64 + offset as i64
    }

    /// A random person id (from 0) among the active persons at event `n`, plus a few not yet
    /// created.
    pub(super) fn random_person(&self, n: u64, rng: &mut EventRng) -> u64 {
        let people = self.last_person(n) + 1;
        let active = people.min(self.active_people);
        people - active + rng.below_u64(active + ID_LEAD)
    }

    /// A random auction id (from 0) among those likely in flight at event `n` (a bid), plus a
    /// few not yet created.
    pub(super) fn random_auction(&self, n: u64, rng: &mut EventRng) -> u64 {
        let last = self.last_auction(n).max(0) as u64;
        let first = last.saturating_sub(self.in_flight_auctions);
        first + rng.below_u64(last - first + 1 + ID_LEAD)
    }

    /// The event time of the auction created `numInFlightAuctions` auctions after event `n`:
    /// auction lengths average the time until then.
    pub(super) fn auction_horizon(&self, n: u64) -> i64 {
        self.timestamp(n.saturating_add(self.auction_horizon_events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(events_per_second: u64) -> GenConfig {
        GenConfig::new(&NexmarkSpec { events_per_second, ..Default::default() })
    }

    #[test]
    fn one_person_three_auctions_forty_six_bids_per_fifty_events() {
        let c = config(10_000);
        let kinds: Vec<Kind> = (0..100).map(|n| c.kind(n)).collect();
        for cycle in kinds.chunks(50) {
            assert_eq!(cycle[0], Kind::Person);
            assert!(cycle[1..4].iter().all(|&k| k == Kind::Auction));
            assert!(cycle[4..].iter().all(|&k| k == Kind::Bid));
        }
    }

    #[test]
    fn ids_count_the_persons_and_auctions_created_so_far() {
        let c = config(10_000);
        assert_eq!((c.last_person(0), c.last_person(49), c.last_person(50)), (0, 0, 1));
        assert_eq!((c.last_auction(0), c.last_auction(1), c.last_auction(3), c.last_auction(4)), (-1, 0, 2, 2));
        assert_eq!((c.last_auction(50), c.last_auction(51)), (2, 3));
    }

    #[test]
    fn timestamps_truncate_like_the_java_generator() {
        // 10 000 events/s: 100 µs apart, so event 19 is at 1.9 ms → 1 ms.
        let c = config(10_000);
        assert_eq!((c.timestamp(0), c.timestamp(9), c.timestamp(10), c.timestamp(19)), (0, 0, 1, 1));
        // 3 events/s: 333 333.33 µs apart; event 2 is at 666 666.67 µs → 666 ms.
        assert_eq!(config(3).timestamp(2), 666);
    }
}
