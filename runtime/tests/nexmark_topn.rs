//! Nexmark q18 (last bid per bidder and auction: `deduplicate`) and q19 (top 10 bids per
//! auction: `topN`) of `examples/nexmark/` against an independent reference, as
//! `nexmark_queries.rs` checks the others: each job document runs as written except for its
//! source settings (the checked-in reference sample: 2000 events at 1000 events/s), its sink (an
//! exactly-once file sink instead of `discard`) and its checkpoint storage; its committed output
//! must equal the query computed in plain Rust over the reference generator's sample. Both also
//! run through a SIGKILL and crashes at protocol fault points, restarting at parallelism 2, 3
//! and 1, so their keyed state is restored by key group each time.

mod common;
mod nexmark_sample;
#[path = "common/nexmark_queries.rs"]
mod queries;

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use self::queries::{Queries, Rows};

const Q: Queries = Queries { reference, normalise: queries::as_is, min_rows: 51 };

fn int(b: &Json, f: &str) -> i64 {
    b[f].as_i64().unwrap_or_else(|| panic!("bid {f} in {b}"))
}

/// A bid as the queries project it.
fn bid_row(b: &Json) -> Json {
    json!({"auction": b["auction"], "bidder": b["bidder"], "price": b["price"], "channel": b["channel"],
        "url": b["url"], "dateTime": b["date_time"], "extra": b["extra"]})
}

/// The query's result over the sample in plain Rust: `(event time, row)`, sorted.
fn reference(query: &str) -> Rows {
    let events = nexmark_sample::events();
    let bids: Vec<&Json> = events.iter().filter_map(|e| e.get("Bid")).collect();
    let ten_s = 10_000;
    let mut rows = Vec::new();
    match query {
        // Per (bidder, auction): bids cut into 10 s spans from the first; each span's last bid.
        "q18" => {
            let mut pairs: BTreeMap<(i64, i64), Vec<&Json>> = BTreeMap::new();
            for b in &bids {
                pairs.entry((int(b, "bidder"), int(b, "auction"))).or_default().push(b);
            }
            for (_, mut of_pair) in pairs {
                of_pair.sort_by_key(|b| int(b, "date_time"));
                let mut span: Option<(i64, &Json)> = None;
                for b in of_pair {
                    let t = int(b, "date_time");
                    span = match span {
                        Some((start, _)) if t < start + ten_s => Some((start, b)),
                        Some((start, last)) => {
                            rows.push((start + ten_s - 1, bid_row(last)));
                            Some((t, b))
                        }
                        None => Some((t, b)),
                    };
                }
                if let Some((start, last)) = span {
                    rows.push((start + ten_s - 1, bid_row(last)));
                }
            }
        }
        // Per auction and 10 s window: the 10 highest prices, the earlier bid first on a tie.
        "q19" => {
            let mut windows: BTreeMap<(i64, i64), Vec<&Json>> = BTreeMap::new();
            for b in &bids {
                let t = int(b, "date_time");
                windows.entry((int(b, "auction"), t - t.rem_euclid(ten_s))).or_default().push(b);
            }
            for ((_, start), mut of_window) in windows {
                of_window.sort_by_key(|b| (-int(b, "price"), int(b, "date_time")));
                for (rank, b) in of_window.into_iter().take(10).enumerate() {
                    let mut row = bid_row(b);
                    row["rank_number"] = json!(rank + 1);
                    rows.push((start + ten_s - 1, row));
                }
            }
        }
        other => panic!("no reference for {other}"),
    }
    rows.sort_by_key(|(ts, row)| (*ts, row.to_string()));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q18_keeps_the_last_bid_of_each_bidder_on_each_auction() {
    Q.run("q18", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q19_ranks_the_ten_highest_bids_of_each_auction() {
    Q.run("q19", 3).await;
}

/// q18 and q19 through a SIGKILL and crashes while a state file is written and right after a
/// checkpoint is published, restarting at parallelism 2, 3 and 1: still exactly the
/// reference's rows.
#[test]
fn q18_and_q19_are_exact_through_kills_and_restores() {
    for query in ["q18", "q19"] {
        Q.exact_through_kills(query, &["snapshot.mid_write@2", "coordinator.after_publish@2"]);
    }
}
