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

/// Which fields of each map are made, as indices into its whole schema (ascending, so in the
/// order of the narrowed schema too); `None`: the column is not read at all.
struct Projection {
    event: Vec<u8>,
    person: Option<Vec<u8>>,
    auction: Option<Vec<u8>>,
    bid: Option<Vec<u8>>,
    strings: Wanted,
}

/// The names of `schema` at `kept` (all when `None`).
fn narrowed(schema: &Schema, kept: Option<&[u8]>) -> Schema {
    match kept {
        Some(kept) => Schema::new(kept.iter().map(|&i| &schema.names()[usize::from(i)])),
        None => schema.clone(),
    }
}

/// The indices of the names of `schema` that `reads` reads.
fn kept(schema: &Schema, reads: impl Fn(&str) -> bool) -> Vec<u8> {
    (0u8..).zip(schema.names()).filter(|(_, n)| reads(n)).map(|(i, _)| i).collect()
}

impl Projection {
    /// The fields of the schemas that `reads` reads.
    fn new(reads: &Reads, event: &Schema, person: &Schema, auction: &Schema, bid: &Schema) -> Projection {
        let column = |name: &str, schema: &Schema| reads.field(name).map(|r| kept(schema, |n| r.reads(n)));
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
        let event = kept(event, |n| reads.reads(n));
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
        // Every map's fields are numbered in its whole schema's order, the names' byte order.
        let mut columns = [auction, bid, person];
        build(&self.event, &p.event, |i| match i {
            0 => std::mem::take(&mut columns[0]),
            1 => std::mem::take(&mut columns[1]),
            2 => Value::Int(time),
            3 => Value::Int(kind),
            _ => std::mem::take(&mut columns[2]),
        })
    }

    fn person(&self, p: Person) -> Value {
        let Person { id, mut name, mut email_address, mut credit_card, mut city, mut state, date_time, mut extra } = p;
        let kept = self.project.person.as_deref().unwrap_or_default();
        build(&self.person, kept, |i| match i {
            0 => text(city.take()),
            1 => text(credit_card.take()),
            2 => Value::Int(date_time),
            3 => text(email_address.take()),
            4 => text(extra.take()),
            5 => int(id),
            6 => text(name.take()),
            _ => text(state.take()),
        })
    }

    fn auction(&self, a: Auction) -> Value {
        let Auction {
            id,
            mut item_name,
            mut description,
            initial_bid,
            reserve,
            date_time,
            expires,
            seller,
            category,
            mut extra,
        } = a;
        let kept = self.project.auction.as_deref().unwrap_or_default();
        build(&self.auction, kept, |i| match i {
            0 => int(category),
            1 => Value::Int(date_time),
            2 => text(description.take()),
            3 => Value::Int(expires),
            4 => text(extra.take()),
            5 => int(id),
            6 => int(initial_bid),
            7 => text(item_name.take()),
            8 => int(reserve),
            _ => int(seller),
        })
    }

    fn bid(&self, b: Bid) -> Value {
        let Bid { auction, bidder, price, mut channel, mut url, date_time, mut extra } = b;
        let kept = self.project.bid.as_deref().unwrap_or_default();
        build(&self.bid, kept, |i| match i {
            0 => int(auction),
            1 => int(bidder),
            2 => text(channel.take()),
            3 => Value::Int(date_time),
            4 => text(extra.take()),
            5 => int(price),
            _ => text(url.take()),
        })
    }
}

/// The map of `schema` (the fields at `kept` of a whole schema) with the value `field` gives
/// for each kept index, in order.
#[inline]
fn build(schema: &Schema, kept: &[u8], mut field: impl FnMut(u8) -> Value) -> Value {
    let mut values = Vec::with_capacity(kept.len());
    for &i in kept {
        values.push(field(i));
    }
    Value::Map(Arc::new(Fields::from_schema(schema, values)))
}

#[cfg(test)]
mod tests {
    use sluice_crds::contract::pipeline::NexmarkSpec;

    use super::super::config::GenConfig;
    use super::*;
    use crate::test_seq::Seq;

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
