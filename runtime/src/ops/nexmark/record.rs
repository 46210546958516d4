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
//!
//! Only the fields the job reads are made (`ops::reads`); every other field is `null`, and a
//! column not read at all (`person` when only bids are read) is `null` in every event, its
//! event not even generated. What the job reads comes out as the whole event would give it.

use std::sync::Arc;

use super::config::Kind;
use super::model::{Auction, Bid, Event, Model, Person, Wanted};
use crate::ops::reads::Reads;
use crate::value::{Fields, Schema, Value};

/// The four map shapes (`value::Schema`) of the fields made, made once per subtask and shared by
/// its records (one copy per subtask: shared by two threads, every count change would move the
/// count's cache line between cores).
pub(super) struct Shape {
    event: Schema,
    person: Schema,
    auction: Schema,
    bid: Schema,
    project: Projection,
}

/// Which fields of each map are made, in the order of its whole schema; `None`: the column is
/// not read at all.
struct Projection {
    event: Vec<bool>,
    person: Option<Vec<bool>>,
    auction: Option<Vec<bool>>,
    bid: Option<Vec<bool>>,
    strings: Wanted,
}

/// The names of `schema` that `made` keeps (all when `None`).
fn narrowed(schema: &Schema, made: Option<&[bool]>) -> Schema {
    match made {
        Some(made) => Schema::new(schema.names().iter().zip(made).filter(|(_, m)| **m).map(|(n, _)| n)),
        None => schema.clone(),
    }
}

impl Projection {
    /// The fields of the schemas that `reads` reads.
    fn new(reads: &Reads, event: &Schema, person: &Schema, auction: &Schema, bid: &Schema) -> Projection {
        let column = |name: &str, schema: &Schema| {
            reads.field(name).map(|r| schema.names().iter().map(|n| r.reads(n)).collect::<Vec<bool>>())
        };
        let (person_fields, auction_fields, bid_fields) =
            (column("person", person), column("auction", auction), column("bid", bid));
        let wants = |column: &str, field: &str| reads.field(column).is_some_and(|r| r.reads(field));
        let strings = Wanted {
            name: wants("person", "name"),
            email_address: wants("person", "emailAddress"),
            credit_card: wants("person", "creditCard"),
            city: wants("person", "city"),
            state: wants("person", "state"),
            person_extra: wants("person", "extra"),
            item_name: wants("auction", "itemName"),
            description: wants("auction", "description"),
            auction_extra: wants("auction", "extra"),
            channel: wants("bid", "channel"),
            url: wants("bid", "url"),
            bid_extra: wants("bid", "extra"),
        };
        let event = event.names().iter().map(|n| reads.reads(n)).collect();
        Projection { event, person: person_fields, auction: auction_fields, bid: bid_fields, strings }
    }
}

/// A string field's value: `null` where it was not made.
fn text(s: Option<Arc<str>>) -> Value {
    s.map_or(Value::Null, Value::Str)
}

fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Shape {
    /// Fresh shapes, making the fields `reads` reads.
    pub(super) fn new(reads: &Reads) -> Shape {
        let person = Schema::new(["id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"]);
        let auction = Schema::new([
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
        ]);
        let bid = Schema::new(["auction", "bidder", "price", "channel", "url", "dateTime", "extra"]);
        let event = Schema::new(["event_type", "dateTime", "person", "auction", "bid"]);
        let p = Projection::new(reads, &event, &person, &auction, &bid);
        Shape {
            event: narrowed(&event, Some(&p.event)),
            person: narrowed(&person, p.person.as_deref()),
            auction: narrowed(&auction, p.auction.as_deref()),
            bid: narrowed(&bid, p.bid.as_deref()),
            project: p,
        }
    }

    /// The record value of event number `n` of `model`.
    pub(super) fn value(&self, model: &mut Model, n: u64) -> Value {
        let p = &self.project;
        let (kind, made) = match model.config.kind(n) {
            Kind::Person => (0, p.person.is_some()),
            Kind::Auction => (1, p.auction.is_some()),
            Kind::Bid => (2, p.bid.is_some()),
        };
        let (time, person, auction, bid) = match made.then(|| model.event_with(n, &p.strings)) {
            None => (model.config.timestamp(n), Value::Null, Value::Null, Value::Null),
            Some(Event::Person(e)) => (e.date_time, self.person(e), Value::Null, Value::Null),
            Some(Event::Auction(e)) => (e.date_time, Value::Null, self.auction(e), Value::Null),
            Some(Event::Bid(e)) => (e.date_time, Value::Null, Value::Null, self.bid(e)),
        };
        // Every map's values are listed in its whole schema's order, the names' byte order.
        project(&self.event, Some(&p.event), [auction, bid, Value::Int(time), Value::Int(kind), person])
    }

    fn person(&self, p: Person) -> Value {
        project(
            &self.person,
            self.project.person.as_deref(),
            [
                text(p.city),
                text(p.credit_card),
                Value::Int(p.date_time),
                text(p.email_address),
                text(p.extra),
                int(p.id),
                text(p.name),
                text(p.state),
            ],
        )
    }

    fn auction(&self, a: Auction) -> Value {
        project(
            &self.auction,
            self.project.auction.as_deref(),
            [
                int(a.category),
                Value::Int(a.date_time),
                text(a.description),
                Value::Int(a.expires),
                text(a.extra),
                int(a.id),
                int(a.initial_bid),
                text(a.item_name),
                int(a.reserve),
                int(a.seller),
            ],
        )
    }

    fn bid(&self, b: Bid) -> Value {
        project(
            &self.bid,
            self.project.bid.as_deref(),
            [
                int(b.auction),
                int(b.bidder),
                text(b.channel),
                Value::Int(b.date_time),
                text(b.extra),
                int(b.price),
                text(b.url),
            ],
        )
    }
}

fn map(schema: &Schema, values: Vec<Value>) -> Value {
    Value::Map(Arc::new(Fields::from_schema(schema, values)))
}

/// The map of `schema` (the fields `made` keeps of a whole schema, all when `None`) with those of
/// `values` (the whole schema's, in its order).
fn project<const N: usize>(schema: &Schema, made: Option<&[bool]>, values: [Value; N]) -> Value {
    let values = match made {
        Some(made) => {
            let mut kept = Vec::with_capacity(schema.len());
            kept.extend(values.into_iter().zip(made).filter(|(_, m)| **m).map(|(v, _)| v));
            kept
        }
        None => values.into(),
    };
    map(schema, values)
}

#[cfg(test)]
mod tests {
    use sluice_crds::contract::pipeline::NexmarkSpec;

    use super::super::config::GenConfig;
    use super::*;

    /// The values above are listed in each schema's order: the names sort as written.
    #[test]
    fn values_are_given_in_schema_order() {
        let s = Shape::new(&Reads::Whole);
        let names = |schema: &Schema| schema.names().iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(names(&s.event), "auction,bid,dateTime,event_type,person");
        assert_eq!(names(&s.person), "city,creditCard,dateTime,emailAddress,extra,id,name,state");
        assert_eq!(
            names(&s.auction),
            "category,dateTime,description,expires,extra,id,initialBid,itemName,reserve,seller"
        );
        assert_eq!(names(&s.bid), "auction,bidder,channel,dateTime,extra,price,url");
    }

    /// A fixed-seed SplitMix64 stream.
    struct Seq(u64);

    impl Seq {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.next() % 100 < percent
        }
    }

    /// A random part of the record: each column unread, whole, or some of its fields.
    fn random_reads(seq: &mut Seq) -> Reads {
        let whole = Shape::new(&Reads::Whole);
        let columns = [("person", &whole.person), ("auction", &whole.auction), ("bid", &whole.bid)];
        if seq.chance(3) {
            return Reads::Whole;
        }
        let mut reads = Reads::nothing();
        for top in ["event_type", "dateTime"] {
            if seq.chance(50) {
                reads.add(Reads::path(&[top]));
            }
        }
        for (column, schema) in columns {
            match seq.next() % 4 {
                0 => {}
                1 => reads.add(Reads::path(&[column])),
                _ => {
                    for f in schema.names().iter().filter(|_| seq.chance(40)) {
                        reads.add(Reads::path(&[column, f]));
                    }
                }
            }
        }
        reads
    }

    /// `got` gives every part `reads` reads as `full` gives it; the parts not read are absent,
    /// `null` or as in `full`. Checked by walking the two values, not by the projection's code.
    fn agrees(full: &Value, got: &Value, reads: &Reads, at: &str) {
        let (Reads::Fields(read), Value::Map(f), Value::Map(g)) = (reads, full, got) else {
            assert_eq!(got, full, "{at}: read whole");
            return;
        };
        assert!(g.keys().all(|n| f.contains_key(n)), "{at}: a field the whole event lacks");
        for (name, fv) in f.iter() {
            match (read.get(name), g.get(name)) {
                (Some(below), Some(gv)) => agrees(fv, gv, below, &format!("{at}.{name}")),
                (Some(_), None) => panic!("{at}.{name} is read but missing"),
                (None, gv) => assert!(gv.is_none_or(|gv| gv == &Value::Null || gv == fv), "{at}.{name}: {gv:?}"),
            }
        }
    }

    /// Every projection gives what it reads as the whole events give it: strings not made are
    /// still drawn past, so the fields after them come out the same (teeth: drawing none for an
    /// unread `itemName` shifts `description`, prices and `seller`).
    #[test]
    fn a_projection_gives_what_it_reads_as_the_whole_event() {
        let config = || GenConfig::new(&NexmarkSpec::default());
        let whole = Shape::new(&Reads::Whole);
        let (mut full_model, mut model) = (Model::new(config()), Model::new(config()));
        let mut seq = Seq(7);
        for round in 0..200 {
            let reads = random_reads(&mut seq);
            let shape = Shape::new(&reads);
            for _ in 0..60 {
                let n = seq.next() % 1_000_000;
                let (full, got) = (whole.value(&mut full_model, n), shape.value(&mut model, n));
                agrees(&full, &got, &reads, &format!("round {round}, event {n}, {reads:?}"));
            }
        }
    }
}
