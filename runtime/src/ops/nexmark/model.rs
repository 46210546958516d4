//! Persons, auctions and bids, each a pure function of its event number, following the Nexmark
//! generator's `PersonGenerator`, `AuctionGenerator`, `BidGenerator`, `PriceGenerator` and
//! `StringsGenerator`. Every event draws from its own random stream seeded by its number, in
//! the order the Rust port of the generator draws (see `rng.rs`), so the port's output checks
//! this one.

use std::sync::Arc;

use super::config::{FIRST_AUCTION_ID, FIRST_CATEGORY_ID, FIRST_PERSON_ID, GenConfig, HOT_BATCH, Kind, NUM_CATEGORIES};
use super::rng::EventRng;
use super::tables::{LAST_NAMES, Tables};

/// A string field: `None` where it was not wanted ([`Wanted`]).
pub(crate) type Text = Option<Arc<str>>;

/// A new person.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Person {
    pub(crate) id: u64,
    pub(crate) name: Text,
    pub(crate) email_address: Text,
    pub(crate) credit_card: Text,
    pub(crate) city: Text,
    pub(crate) state: Text,
    pub(crate) date_time: i64,
    pub(crate) extra: Text,
}

/// A new auction.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Auction {
    pub(crate) id: u64,
    pub(crate) item_name: Text,
    pub(crate) description: Text,
    pub(crate) initial_bid: u64,
    pub(crate) reserve: u64,
    pub(crate) date_time: i64,
    pub(crate) expires: i64,
    pub(crate) seller: u64,
    pub(crate) category: u64,
    pub(crate) extra: Text,
}

/// A bid on an auction.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bid {
    pub(crate) auction: u64,
    pub(crate) bidder: u64,
    pub(crate) price: u64,
    pub(crate) channel: Text,
    pub(crate) url: Text,
    pub(crate) date_time: i64,
    pub(crate) extra: Text,
}

/// One event of the auction system.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    /// See [`Person`].
    Person(Person),
    /// See [`Auction`].
    Auction(Auction),
    /// See [`Bid`].
    Bid(Bid),
}

/// Which of an event's strings to make; the others are `None`. A random one not wanted is drawn
/// past all the same (the event's later fields come out unchanged); `extra`, drawn last, is not
/// drawn at all. For a job that reads only some fields (`Shape`'s projection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub(crate) name: bool,
    pub(crate) email_address: bool,
    pub(crate) credit_card: bool,
    pub(crate) city: bool,
    pub(crate) state: bool,
    pub(crate) person_extra: bool,
    pub(crate) item_name: bool,
    pub(crate) description: bool,
    pub(crate) auction_extra: bool,
    pub(crate) channel: bool,
    pub(crate) url: bool,
    pub(crate) bid_extra: bool,
}

impl Wanted {
    /// Every string.
    #[cfg(test)]
    pub(crate) const ALL: Wanted = Wanted {
        name: true,
        email_address: true,
        credit_card: true,
        city: true,
        state: true,
        person_extra: true,
        item_name: true,
        description: true,
        auction_extra: true,
        channel: true,
        url: true,
        bid_extra: true,
    };
}

/// Makes events from event numbers; holds the vocabularies and a reusable string buffer.
pub(crate) struct Model {
    pub(crate) config: GenConfig,
    tables: Tables,
    buf: String,
}

impl Model {
    /// A model of `config`.
    pub(crate) fn new(config: GenConfig) -> Model {
        Model { config, tables: Tables::new(), buf: String::with_capacity(1024) }
    }

    /// Event number `n`.
    #[cfg(test)]
    pub(crate) fn event(&mut self, n: u64) -> Event {
        self.event_with(n, &Wanted::ALL)
    }

    /// Event number `n` with the strings `wanted` built, the others empty.
    pub(crate) fn event_with(&mut self, n: u64, wanted: &Wanted) -> Event {
        let time = self.config.timestamp(n);
        let mut rng = EventRng::seeded(n);
        match self.config.kind(n) {
            Kind::Person => Event::Person(self.person(n, time, &mut rng, wanted)),
            Kind::Auction => Event::Auction(self.auction(n, time, &mut rng, wanted)),
            Kind::Bid => Event::Bid(self.bid(n, time, &mut rng, wanted)),
        }
    }

    fn person(&mut self, n: u64, time: i64, rng: &mut EventRng, wanted: &Wanted) -> Person {
        let t = &self.tables;
        let first = rng.below_u32(11) as usize;
        let last = rng.below_u32(LAST_NAMES.len() as u32) as usize;
        let name = &t.names[first * LAST_NAMES.len() + last];
        // "aaaaaaa@aaaaa.com" and "dddd dddd dddd dddd": their lengths are fixed.
        const EMAIL_LEN: usize = 7 + 1 + 5 + 4;
        const CARD_LEN: usize = 4 * 4 + 3;
        let email_address = if wanted.email_address {
            self.buf.clear();
            rng.letters(7, &mut self.buf);
            self.buf.push('@');
            rng.letters(5, &mut self.buf);
            self.buf.push_str(".com");
            Some(Arc::from(self.buf.as_str()))
        } else {
            rng.skip_letters(7 + 5);
            None
        };
        let credit_card = if wanted.credit_card {
            self.buf.clear();
            for i in 0..4 {
                if i > 0 {
                    self.buf.push(' ');
                }
                let v = rng.below_u32(10_000);
                for digit in [v / 1000, v / 100 % 10, v / 10 % 10, v % 10] {
                    self.buf.push(char::from(b'0' + digit as u8));
                }
            }
            Some(Arc::from(self.buf.as_str()))
        } else {
            for _ in 0..4 {
                rng.below_u32(10_000);
            }
            None
        };
        let city = &t.cities[rng.below_u32(t.cities.len() as u32) as usize];
        let state = &t.states[rng.below_u32(t.states.len() as u32) as usize];
        let size = 8 + name.len() + EMAIL_LEN + CARD_LEN + city.len() + state.len();
        let (name, city, state) = (want(wanted.name, name), want(wanted.city, city), want(wanted.state, state));
        let extra = wanted.person_extra.then(|| self.extra(rng, size, self.config.avg_person_bytes));
        Person {
            id: self.config.last_person(n) + FIRST_PERSON_ID,
            name,
            email_address,
            credit_card,
            city,
            state,
            date_time: time,
            extra,
        }
    }

    fn auction(&mut self, n: u64, time: i64, rng: &mut EventRng, wanted: &Wanted) -> Auction {
        const ITEM_NAME_LEN: usize = 20;
        const DESCRIPTION_LEN: usize = 100;
        let item_name = self.letters_if(wanted.item_name, rng, ITEM_NAME_LEN);
        let description = self.letters_if(wanted.description, rng, DESCRIPTION_LEN);
        let initial_bid = price(rng);
        let reserve = initial_bid + price(rng);
        let horizon = self.config.auction_horizon(n) - time;
        let expires = time + 1 + rng.below_u64((horizon * 2).max(1) as u64) as i64;
        let c = &self.config;
        let seller = if rng.below_u64(c.hot_sellers_ratio) > 0 {
            // The first person of the latest batch of HOT_BATCH.
            c.last_person(n) / HOT_BATCH * HOT_BATCH
        } else {
            c.random_person(n, rng)
        };
        let category = FIRST_CATEGORY_ID + rng.below_u64(NUM_CATEGORIES);
        let size = 8 + ITEM_NAME_LEN + DESCRIPTION_LEN + 8 + 8 + 8 + 8 + 8;
        let average = c.avg_auction_bytes;
        let extra = wanted.auction_extra.then(|| self.extra(rng, size, average));
        Auction {
            id: self.config.last_auction(n).max(0) as u64 + FIRST_AUCTION_ID,
            item_name,
            description,
            initial_bid,
            reserve,
            date_time: time,
            expires,
            seller: seller + FIRST_PERSON_ID,
            category,
            extra,
        }
    }

    fn bid(&mut self, n: u64, time: i64, rng: &mut EventRng, wanted: &Wanted) -> Bid {
        let c = &self.config;
        let auction = if rng.below_u64(c.hot_auction_ratio) > 0 {
            // The first auction of the latest batch of HOT_BATCH.
            c.last_auction(n).max(0) as u64 / HOT_BATCH * HOT_BATCH
        } else {
            c.random_auction(n, rng)
        };
        let bidder = if rng.below_u64(c.hot_bidders_ratio) > 0 {
            // The second person of the latest batch, so hot bidders are not hot sellers.
            c.last_person(n) / HOT_BATCH * HOT_BATCH + 1
        } else {
            c.random_person(n, rng)
        };
        let price = price(rng);
        let t = &self.tables;
        let (channel, url) = if rng.below_u64(2) > 0 {
            &t.hot[rng.below_u64(t.hot.len() as u64) as usize]
        } else {
            &t.channels[rng.below_u32(t.channels.len() as u32) as usize]
        };
        let (channel, url) = (want(wanted.channel, channel), want(wanted.url, url));
        let extra = wanted.bid_extra.then(|| self.extra(rng, 32, self.config.avg_bid_bytes));
        Bid {
            auction: auction + FIRST_AUCTION_ID,
            bidder: bidder + FIRST_PERSON_ID,
            price,
            channel,
            url,
            date_time: time,
            extra,
        }
    }

    /// `len` random letters.
    fn letters(&mut self, rng: &mut EventRng, len: usize) -> Arc<str> {
        self.buf.clear();
        rng.letters(len, &mut self.buf);
        Arc::from(self.buf.as_str())
    }

    /// `len` random letters, or past them to `None` when not `wanted`.
    fn letters_if(&mut self, wanted: bool, rng: &mut EventRng, len: usize) -> Text {
        if wanted {
            return Some(self.letters(rng, len));
        }
        rng.skip_letters(len);
        None
    }

    /// Random letters that pad an event of `size` bytes to `average` bytes on average (±20 %).
    fn extra(&mut self, rng: &mut EventRng, size: usize, average: usize) -> Arc<str> {
        if size > average {
            return self.tables.empty.clone();
        }
        let wanted = average - size;
        let delta = (wanted + 2) / 5; // wanted · 0.2, rounded
        let len = wanted - delta + if delta == 0 { 0 } else { rng.below_u64(2 * delta as u64) as usize };
        if len == 0 {
            return self.tables.empty.clone();
        }
        self.letters(rng, len)
    }
}

/// `s` if `wanted`.
fn want(wanted: bool, s: &Arc<str>) -> Text {
    wanted.then(|| s.clone())
}

/// A price in cents, log-uniform between 1 and 10⁸ cents.
fn price(rng: &mut EventRng) -> u64 {
    (10.0f32.powf(rng.unit_f32() * 6.0) * 100.0).round() as u64
}

#[cfg(test)]
mod tests {
    use sluice_crds::contract::pipeline::NexmarkSpec;

    use super::*;

    fn model() -> Model {
        Model::new(GenConfig::new(&NexmarkSpec::default()))
    }

    #[test]
    fn an_event_depends_on_its_number_only() {
        let (mut a, mut b) = (model(), model());
        let forward: Vec<Event> = (0..500).map(|n| a.event(n)).collect();
        let backward: Vec<Event> = (0..500).rev().map(|n| b.event(n)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
    }

    #[test]
    fn ids_follow_the_generators_offsets_and_hot_ratios() {
        let mut m = model();
        let (mut hot_auction, mut bids) = (0, 0);
        for n in 0..50_000 {
            match m.event(n) {
                Event::Person(p) => assert_eq!(p.id, n / 50 + 1000),
                Event::Auction(a) => {
                    assert_eq!(a.id, n / 50 * 3 + n % 50 - 1 + 1000);
                    assert!((10..15).contains(&a.category) && a.reserve >= a.initial_bid && a.expires > a.date_time);
                    assert!(a.seller >= 1000 && a.seller <= n / 50 + 1010);
                }
                Event::Bid(b) => {
                    bids += 1;
                    let last_auction = n / 50 * 3 + 2 + 1000;
                    hot_auction += u32::from(b.auction == (last_auction - 1000) / 100 * 100 + 1000);
                    assert!(b.auction <= last_auction + 10 && b.bidder >= 1000, "{b:?}");
                    let len = b.extra.as_deref().map_or(0, str::len);
                    assert!((54..82).contains(&len), "{len}");
                }
            }
        }
        // Hot auctions take half the bids (hotAuctionRatio 2), and a few more by chance.
        let share = f64::from(hot_auction) / f64::from(bids);
        assert!((0.49..0.53).contains(&share), "{share}");
    }
}
