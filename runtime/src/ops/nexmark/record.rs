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
use crate::value::{Fields, Schema, Value};

/// The four map shapes (`value::Schema`), made once per subtask and shared by its records (one
/// copy per subtask: shared by two threads, every count change would move the count's cache
/// line between cores).
pub(super) struct Shape {
    event: Schema,
    person: Schema,
    auction: Schema,
    bid: Schema,
}

fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Shape {
    /// Fresh shapes.
    pub(super) fn new() -> Shape {
        Shape {
            event: Schema::new(["event_type", "dateTime", "person", "auction", "bid"]),
            person: Schema::new(["id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"]),
            auction: Schema::new([
                "id",
                "itemName",
                "description",
                "initialBid",
                "reserve",
                "dateTime",
                "expires",
                "seller",
                "category",
                "extra",
            ]),
            bid: Schema::new(["auction", "bidder", "price", "channel", "url", "dateTime", "extra"]),
        }
    }

    /// The record value of `event`.
    pub(super) fn value(&self, event: Event) -> Value {
        let (kind, time, person, auction, bid) = match event {
            Event::Person(p) => (0, p.date_time, self.person(p), Value::Null, Value::Null),
            Event::Auction(a) => (1, a.date_time, Value::Null, self.auction(a), Value::Null),
            Event::Bid(b) => (2, b.date_time, Value::Null, Value::Null, self.bid(b)),
        };
        // Every map's values are listed in its schema's order, the names' byte order.
        map(&self.event, vec![auction, bid, Value::Int(time), Value::Int(kind), person])
    }

    fn person(&self, p: Person) -> Value {
        map(
            &self.person,
            vec![
                Value::Str(p.city),
                Value::Str(p.credit_card),
                Value::Int(p.date_time),
                Value::Str(p.email_address),
                Value::Str(p.extra),
                int(p.id),
                Value::Str(p.name),
                Value::Str(p.state),
            ],
        )
    }

    fn auction(&self, a: Auction) -> Value {
        map(
            &self.auction,
            vec![
                int(a.category),
                Value::Int(a.date_time),
                Value::Str(a.description),
                Value::Int(a.expires),
                Value::Str(a.extra),
                int(a.id),
                int(a.initial_bid),
                Value::Str(a.item_name),
                int(a.reserve),
                int(a.seller),
            ],
        )
    }

    fn bid(&self, b: Bid) -> Value {
        map(
            &self.bid,
            vec![
                int(b.auction),
                int(b.bidder),
                Value::Str(b.channel),
                Value::Int(b.date_time),
                Value::Str(b.extra),
                int(b.price),
                Value::Str(b.url),
            ],
        )
    }
}

fn map(schema: &Schema, values: Vec<Value>) -> Value {
    Value::Map(Arc::new(Fields::from_schema(schema, values)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values above are listed in each schema's order: the names sort as written.
    #[test]
    fn values_are_given_in_schema_order() {
        let s = Shape::new();
        let names = |schema: &Schema| schema.names().iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(names(&s.event), "auction,bid,dateTime,event_type,person");
        assert_eq!(names(&s.person), "city,creditCard,dateTime,emailAddress,extra,id,name,state");
        assert_eq!(
            names(&s.auction),
            "category,dateTime,description,expires,extra,id,initialBid,itemName,reserve,seller"
        );
        assert_eq!(names(&s.bid), "auction,bidder,channel,dateTime,extra,price,url");
    }
}
