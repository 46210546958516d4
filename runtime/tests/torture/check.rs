//! Compares each sink's committed output with the reference, and looks for temp files left.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::job::{Func, KafkaOut};
use super::reference::{Expect, canon};

fn names(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(e) => e.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Every committed line of a file sink directory, as parsed JSON.
pub fn committed(dir: &Path) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    for name in names(dir).into_iter().filter(|n| n.starts_with("part-")) {
        let text = std::fs::read_to_string(dir.join(&name)).map_err(|e| format!("reading {name}: {e}"))?;
        for l in text.lines() {
            out.push(serde_json::from_str(l).map_err(|e| format!("bad line in {name}: {e}: {l}"))?);
        }
    }
    Ok(out)
}

/// Lines present in one multiset and not the other, for a message.
fn diff(expected: &HashMap<String, usize>, got: &HashMap<String, usize>) -> String {
    let (mut missing, mut extra) = (Vec::new(), Vec::new());
    let (mut n_missing, mut n_extra) = (0usize, 0usize);
    for (l, &n) in expected {
        let g = got.get(l).copied().unwrap_or(0);
        if g < n {
            n_missing += n - g;
            if missing.len() < 5 {
                missing.push(format!("{l} ×{}", n - g));
            }
        }
    }
    for (l, &g) in got {
        let n = expected.get(l).copied().unwrap_or(0);
        if g > n {
            n_extra += g - n;
            if extra.len() < 5 {
                extra.push(format!("{l} ×{}", g - n));
            }
        }
    }
    format!(
        "{n_missing} lines missing (e.g. {}), {n_extra} unexpected or duplicated (e.g. {})",
        missing.join(", "),
        extra.join(", ")
    )
}

fn sorted_ints(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

/// Checks one key's running-aggregate outputs against its inputs (any order of processing).
fn check_running(f: Func, key: &str, inputs: &[(i64, i64)], outputs: &[(i64, i64)]) -> Result<(), String> {
    let ctx = |m: String| format!("aggregate key {key}: {m}");
    if inputs.len() != outputs.len() {
        return Err(ctx(format!("{} outputs for {} inputs", outputs.len(), inputs.len())));
    }
    let ts_in = sorted_ints(inputs.iter().map(|x| x.0).collect());
    let ts_out = sorted_ints(outputs.iter().map(|x| x.0).collect());
    if ts_in != ts_out {
        return Err(ctx("the outputs' event times are not the inputs' (a record lost or counted twice)".into()));
    }
    let values = sorted_ints(outputs.iter().map(|x| x.1).collect());
    let ins = sorted_ints(inputs.iter().map(|x| x.1).collect());
    let ok = match f {
        Func::Count => values.iter().enumerate().all(|(i, v)| *v == i as i64 + 1),
        // Running sums of non-negative inputs in some order: the steps between consecutive
        // sorted sums are exactly the inputs.
        Func::Sum => {
            let steps = values.iter().scan(0i64, |prev, v| {
                let d = v - *prev;
                *prev = *v;
                Some(d)
            });
            sorted_ints(steps.collect()) == ins
        }
        Func::Min => {
            values.first() == ins.first()
                && values.iter().all(|v| ins.binary_search(v).is_ok())
                && values.last() <= ins.last()
        }
        Func::Max => {
            values.last() == ins.last()
                && values.iter().all(|v| ins.binary_search(v).is_ok())
                && values.first() >= ins.first()
        }
    };
    if ok { Ok(()) } else { Err(ctx(format!("running {f:?} values {values:?} do not fit the inputs {ins:?}"))) }
}

/// Every committed record of the Kafka window sink (read_committed, to each partition's end),
/// after checking that no transaction on the topic is left open.
#[cfg(feature = "kafka")]
fn committed_kafka(k: &KafkaOut) -> Result<Vec<serde_json::Value>, String> {
    use sluice_runtime::verify::kafka as verify;
    let open = verify::open_transactions_named(&k.brokers, &k.topic, std::time::Duration::from_secs(10))
        .map_err(|e| format!("topic {}: {e}", k.topic))?;
    if !open.is_empty() {
        return Err(format!("topic {}: transactions left open: {open}", k.topic));
    }
    let records = verify::read_committed(&k.brokers, &k.topic).map_err(|e| format!("topic {}: {e}", k.topic))?;
    records
        .into_iter()
        .map(|(_, v)| serde_json::to_value(&v).map_err(|e| format!("topic {}: record as JSON: {e}", k.topic)))
        .collect()
}

#[cfg(not(feature = "kafka"))]
fn committed_kafka(k: &KafkaOut) -> Result<Vec<serde_json::Value>, String> {
    Err(format!("topic {}: built without the kafka feature", k.topic))
}

/// The expected lines' `value` fields (canonical JSON → count): what a Kafka sink writes.
fn payloads(lines: &HashMap<String, usize>) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for (l, n) in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or(serde_json::Value::Null);
        *out.entry(canon(&v["value"])).or_default() += n;
    }
    out
}

/// Checks a sink's committed lines against its expectation; returns how many there are.
pub fn check_sink(lines: Vec<serde_json::Value>, expect: &Expect) -> Result<usize, String> {
    let n = lines.len();
    match expect {
        Expect::Lines(expected) => {
            let mut got: HashMap<String, usize> = HashMap::new();
            for l in &lines {
                *got.entry(canon(l)).or_default() += 1;
            }
            if &got != expected {
                return Err(diff(expected, &got));
            }
        }
        Expect::Running(f, per_key) => {
            let mut got: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
            for l in &lines {
                let (Some(ts), Some(v)) = (l["ts"].as_i64(), l["value"].as_i64()) else {
                    return Err(format!("aggregate line without integer ts/value: {l}"));
                };
                got.entry(canon(&l["key"])).or_default().push((ts, v));
            }
            for k in got.keys() {
                if !per_key.contains_key(k) {
                    return Err(format!("aggregate output for unknown key {k}"));
                }
            }
            for (k, inputs) in per_key {
                check_running(*f, k, inputs, got.get(k).map_or(&[][..], Vec::as_slice))?;
            }
        }
    }
    Ok(n)
}

/// Checks every sink (the window's in Kafka when `kafka` says so); returns lines read, or
/// every problem found.
pub fn check_all(
    out: &Path,
    kafka: Option<&KafkaOut>,
    expect: &BTreeMap<&'static str, Expect>,
) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let mut total = 0;
    for (sink, e) in expect {
        let result = match (kafka, e) {
            // A Kafka record's payload is the window's value (key, start, end, result): compare
            // those, which still name every window once.
            (Some(k), Expect::Lines(lines)) if *sink == "win" => {
                committed_kafka(k).and_then(|got| check_sink(got, &Expect::Lines(payloads(lines))))
            }
            _ => committed(&out.join(sink)).and_then(|l| check_sink(l, e)),
        };
        match result {
            Ok(n) => total += n,
            Err(m) => problems.push(format!("sink {sink}: {m}")),
        }
    }
    if problems.is_empty() { Ok(total) } else { Err(problems) }
}

/// Temp files left anywhere under `dir` (sink `.inprogress` files, storage `.sluice-tmp-*`).
pub fn temp_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".inprogress") || name.contains(".sluice-tmp") {
                found.push(path.display().to_string());
            }
        }
    }
    found
}
