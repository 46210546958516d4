//! The record an event becomes: the row of Flink's Nexmark table, one map per event
//!
//! ```text
//! {"event_type": 0 | 1 | 2, "dateTime": ms,
//!  "person": {id, name, emailAddress, creditCard, city, state, dateTime, extra} | null,
//!  "auction": {id, itemName, description, initialBid, reserve, dateTime, expires, seller,
//!              category, extra} | null,
//!  "bid": {auction, bidder, price, channel, url, dateTime, extra} | null}
//! ```
//!
//! so a query filters on `value.event_type` and reads `value.bid.price` as Flink's SQL reads
//! `bid.price`. The field names are made once per subtask and shared by its records.

use std::sync::Arc;

use super::model::{Auction, Bid, Event, Person};
use crate::value::{Fields, Value};

/// Field names, one reference-counted copy per subtask (shared by two threads, every
/// count change would move the count's cache line between cores).
pub(super) struct Shape {
    names: Vec<Arc<str>>,
}

// Indices into `Shape::names`.
const EVENT_TYPE: usize = 0;
const DATE_TIME: usize = 1;
const PERSON: usize = 2;
const AUCTION: usize = 3;
const BID: usize = 4;
const ID: usize = 5;
const NAME: usize = 6;
const EMAIL: usize = 7;
const CREDIT_CARD: usize = 8;
const CITY: usize = 9;
const STATE: usize = 10;
const EXTRA: usize = 11;
const ITEM_NAME: usize = 12;
const DESCRIPTION: usize = 13;
const INITIAL_BID: usize = 14;
const RESERVE: usize = 15;
const EXPIRES: usize = 16;
const SELLER: usize = 17;
const CATEGORY: usize = 18;
const BID_AUCTION: usize = 19;
const BIDDER: usize = 20;
const PRICE: usize = 21;
const CHANNEL: usize = 22;
const URL: usize = 23;

const NAMES: [&str; 24] = [
    "event_type",
    "dateTime",
    "person",
    "auction",
    "bid",
    "id",
    "name",
    "emailAddress",
    "creditCard",
    "city",
    "state",
    "extra",
    "itemName",
    "description",
    "initialBid",
    "reserve",
    "expires",
    "seller",
    "category",
    "auction",
    "bidder",
    "price",
    "channel",
    "url",
];

fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Shape {
    /// Fresh field names.
    pub(super) fn new() -> Shape {
        Shape { names: NAMES.iter().map(|n| Arc::from(*n)).collect() }
    }

    fn map<const N: usize>(&self, fields: [(usize, Value); N]) -> Value {
        debug_assert!(fields.windows(2).all(|w| self.names[w[0].0] < self.names[w[1].0]), "fields in name order");
        let mut m = Fields::with_capacity(N);
        for (name, v) in fields {
            m.push_ordered(self.names[name].clone(), v);
        }
        Value::Map(Arc::new(m))
    }

    /// The record value of `event`.
    pub(super) fn value(&self, event: Event) -> Value {
        let (kind, time, person, auction, bid) = match event {
            Event::Person(p) => (0, p.date_time, self.person(p), Value::Null, Value::Null),
            Event::Auction(a) => (1, a.date_time, Value::Null, self.auction(a), Value::Null),
            Event::Bid(b) => (2, b.date_time, Value::Null, Value::Null, self.bid(b)),
        };
        // Every map's fields are listed in name order: each is then appended, not inserted.
        self.map([
            (AUCTION, auction),
            (BID, bid),
            (DATE_TIME, Value::Int(time)),
            (EVENT_TYPE, Value::Int(kind)),
            (PERSON, person),
        ])
    }

    fn person(&self, p: Person) -> Value {
        self.map([
            (CITY, Value::Str(p.city)),
            (CREDIT_CARD, Value::Str(p.credit_card)),
            (DATE_TIME, Value::Int(p.date_time)),
            (EMAIL, Value::Str(p.email_address)),
            (EXTRA, Value::Str(p.extra)),
            (ID, int(p.id)),
            (NAME, Value::Str(p.name)),
            (STATE, Value::Str(p.state)),
        ])
    }

    fn auction(&self, a: Auction) -> Value {
        self.map([
            (CATEGORY, int(a.category)),
            (DATE_TIME, Value::Int(a.date_time)),
            (DESCRIPTION, Value::Str(a.description)),
            (EXPIRES, Value::Int(a.expires)),
            (EXTRA, Value::Str(a.extra)),
            (ID, int(a.id)),
            (INITIAL_BID, int(a.initial_bid)),
            (ITEM_NAME, Value::Str(a.item_name)),
            (RESERVE, int(a.reserve)),
            (SELLER, int(a.seller)),
        ])
    }

    fn bid(&self, b: Bid) -> Value {
        self.map([
            (BID_AUCTION, int(b.auction)),
            (BIDDER, int(b.bidder)),
            (CHANNEL, Value::Str(b.channel)),
            (DATE_TIME, Value::Int(b.date_time)),
            (EXTRA, Value::Str(b.extra)),
            (PRICE, int(b.price)),
            (URL, Value::Str(b.url)),
        ])
    }
}
