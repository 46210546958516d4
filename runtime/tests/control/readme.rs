//! The README's curl examples, read from README.md and run against a live job: each must be
//! answered 2xx with the fields its `# → {…}` comment shows (and the literal values it gives).

use sluice_runtime::control::client::ControlClient;

use super::*;

/// One `curl` line of the README.
#[derive(Debug)]
struct Curl {
    line: String,
    method: String,
    headers: Vec<(String, String)>,
    path: String,
    body: Option<String>,
    /// The `# → …` comment: what the answer looks like.
    expect: Option<String>,
}

/// Splits a shell line into words (single and double quotes, no escapes), up to a `#` comment;
/// returns the words and the comment.
fn shell_words(line: &str) -> (Vec<String>, Option<String>) {
    let (mut words, mut cur, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for (i, ch) in line.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => (quote, in_word) = (Some(ch), true),
            (None, '#') if !in_word => return (words, Some(line[i + 1..].trim().to_string())),
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                }
                in_word = false;
            }
            (None, c) => (cur.push(c), in_word = true).1,
        }
    }
    if in_word {
        words.push(cur);
    }
    (words, None)
}

fn parse_curl(line: &str) -> Curl {
    let (words, comment) = shell_words(line);
    let (mut method, mut headers, mut url, mut body) = (None, Vec::new(), None, None);
    let mut it = words.into_iter().skip(1);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" | "-S" | "-sS" => {}
            "-X" => method = it.next(),
            "-H" => {
                let h = it.next().unwrap_or_default();
                let (k, v) = h.split_once(':').unwrap_or_else(|| panic!("header {h:?} in {line:?}"));
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "-d" | "--data" => body = it.next(),
            w if w.starts_with("-X") => method = Some(w[2..].to_string()),
            w if w.starts_with('-') => panic!("curl option {w:?} the test does not know, in {line:?}"),
            w => url = Some(w.to_string()),
        }
    }
    let url = url.unwrap_or_else(|| panic!("no URL in {line:?}"));
    let url = url.trim_start_matches("http://");
    let path = url.find('/').map_or("/".to_string(), |i| url[i..].to_string());
    let method = method.unwrap_or_else(|| if body.is_some() { "POST".into() } else { "GET".into() });
    let expect = comment.and_then(|c| c.strip_prefix('→').map(|e| e.trim().to_string()));
    Curl { line: line.to_string(), method, headers, path, body, expect }
}

/// The curl lines of README.md's "Control endpoint" section.
fn readme_curls() -> Vec<Curl> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let start = readme.find("## Control endpoint").expect("a Control endpoint section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end].lines().map(str::trim).filter(|l| l.starts_with("curl ")).map(parse_curl).collect()
}

/// The `"key":"value"` pairs (value `None` when not a plain string) of an example answer.
fn expected_fields(example: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = example;
    while let Some(i) = rest.find('"') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('"') else { break };
        let key = &after[..j];
        let tail = &after[j + 1..];
        let Some(value_part) = tail.strip_prefix(':') else {
            rest = tail;
            continue;
        };
        let value = value_part.strip_prefix('"').and_then(|v| v.find('"').map(|k| v[..k].to_string()));
        out.push((key.to_string(), value.filter(|v| !v.contains('…'))));
        rest = value_part;
    }
    out
}

async fn run_examples(c: &ControlClient, curls: &[Curl]) {
    let mut savepoint_id: Option<String> = None;
    for curl in curls {
        let path = match &savepoint_id {
            Some(id) => curl.path.replace("sp-…", id.as_str()),
            None => curl.path.clone(),
        };
        let body = curl.body.clone().map(String::into_bytes);
        let mut answer = c.raw(&curl.method, &path, &curl.headers, body.clone()).await.expect("answer");
        let started = Instant::now();
        // A savepoint's status: wait for it to leave `pending`, as a person re-running it would.
        while answer.body.contains(r#""state":"pending""#) && path.starts_with("/v1/savepoints/") {
            assert!(started.elapsed() < Duration::from_secs(60), "savepoint pending for a minute");
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = c.raw(&curl.method, &path, &curl.headers, body.clone()).await.expect("answer");
        }
        assert!((200..300).contains(&answer.status), "README example {:?} answered {answer:?}", curl.line);
        let doc: serde_json::Value = serde_json::from_str(&answer.body).expect("a JSON answer");
        if curl.method == "POST" && path == "/v1/savepoints" {
            savepoint_id = doc["id"].as_str().map(str::to_string);
        }
        for (key, value) in expected_fields(curl.expect.as_deref().unwrap_or("")) {
            let got = doc.get(&key).unwrap_or_else(|| panic!("{:?}: no {key:?} in {doc}", curl.line));
            if let Some(v) = value {
                assert_eq!(got.as_str(), Some(v.as_str()), "{:?}: {key} in {doc}", curl.line);
            }
        }
    }
}

#[test]
fn the_parser_reads_curl_lines_as_a_shell_would() {
    let c =
        parse_curl(r#"curl -s -XPOST -H 'Content-Type: application/json' localhost:9090/v1/stop -d '{"a": 1}' # x"#);
    assert_eq!((c.method.as_str(), c.path.as_str(), c.body.as_deref()), ("POST", "/v1/stop", Some(r#"{"a": 1}"#)));
    assert_eq!(c.headers, [("Content-Type".to_string(), "application/json".to_string())]);
    let c =
        parse_curl(r#"curl -s localhost:9090/v1/savepoints/sp-…   # → {"state":"completed","location":"file:///…"}"#);
    assert_eq!((c.method.as_str(), c.path.as_str(), c.body), ("GET", "/v1/savepoints/sp-…", None));
    let fields = expected_fields(c.expect.as_deref().unwrap_or(""));
    assert_eq!(fields, [("state".to_string(), Some("completed".to_string())), ("location".to_string(), None)]);
}

#[test]
fn the_readme_curl_examples_work_against_a_running_job() {
    let curls = readme_curls();
    let methods: Vec<_> = curls.iter().map(|c| (c.method.as_str(), c.path.as_str())).collect();
    assert!(methods.len() >= 5, "the README lost its curl examples: {methods:?}");
    assert_eq!(methods.last(), Some(&("POST", "/v1/stop")), "the examples end with the stop");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut job = start(tmp.path(), &[]);
    job.wait_checkpoints(1);
    let client = ControlClient::new(&job.addr, Duration::from_secs(60));
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(run_examples(&client, &curls));
    assert_eq!(job.status().state, JobState::Finished, "stopped with a savepoint");
    assert!(job.finish().success());
}
