//! The checked-in reference sample of the Nexmark generator (`data/nexmark/`, see its
//! README) and the `nexmark` settings it was written with.

#![allow(dead_code)]

use std::path::Path;

use serde_json::Value as Json;
use sluice_crds::contract::pipeline::NexmarkSpec;

/// Events in the sample.
pub const EVENTS: u64 = 2000;

/// The sample's settings: base time 1 700 000 000 000 ms, 1000 events/s (so event `n` is at
/// base + `n` ms), every other setting at the Nexmark default.
pub fn spec() -> NexmarkSpec {
    NexmarkSpec { events: Some(EVENTS), events_per_second: 1000, base_time_ms: 1_700_000_000_000, ..Default::default() }
}

/// The sample's events, in event-number order, as the reference generator serialised them:
/// `{"Person": {…}}`, `{"Auction": {…}}` or `{"Bid": {…}}` with snake_case fields.
pub fn events() -> Vec<Json> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nexmark/reference-2000.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}
