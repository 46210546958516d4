//! The endpoint as a client meets it, in process: every refusal is a JSON `ErrorResponse`
//! with the status that says what was wrong, and a refused request reaches nothing.

use std::time::Duration;

use sluice_crds::contract::control::{ErrorResponse, StopKind};
use tokio::sync::mpsc;

use super::*;
use crate::control::ControlCommand;
use crate::control::client::{ControlClient, RawResponse};

/// Serves a fresh state on a free port; returns the client, the state and the commands the
/// coordinator would get.
async fn serve() -> (ControlClient, Arc<ControlState>, mpsc::UnboundedReceiver<ControlCommand>) {
    let state = ControlState::new("t");
    let commands = state.take_commands().expect("receiver");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(serve_on(listener, state.clone(), std::future::pending()));
    (ControlClient::new(&addr, Duration::from_secs(10)), state, commands)
}

fn json_header() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into())]
}

/// Asserts a JSON error answer with `status` whose message contains `needle`.
fn assert_error(r: &RawResponse, status: u16, needle: &str) -> ErrorResponse {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");
    let e: ErrorResponse = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not an ErrorResponse: {e}: {r:?}"));
    assert_eq!(e.version, CONTROL_VERSION);
    assert!(e.error.contains(needle), "{needle:?} not in {:?}", e.error);
    e
}

#[tokio::test]
async fn paths_methods_and_content_types_are_refused_in_json() {
    let (c, _state, mut commands) = serve().await;
    let r = c.raw("GET", "/v1/nope", &[], None).await.expect("answer");
    assert_error(&r, 404, "/v1/nope");
    for (method, path) in
        [("GET", STOP), ("DELETE", STOP), ("PUT", SAVEPOINTS), ("POST", CHECKPOINTS), ("POST", HISTORY)]
    {
        let r = c.raw(method, path, &json_header(), Some(b"{}".to_vec())).await.expect("answer");
        assert_error(&r, 405, &format!("{method} is not allowed on {path}"));
    }
    let body = Some(br#"{"savepoint": false}"#.to_vec());
    let r = c.raw("POST", STOP, &[], body.clone()).await.expect("answer");
    assert_error(&r, 415, "no Content-Type given");
    for ct in ["text/plain", "application/x-www-form-urlencoded", "application/jsonp"] {
        let r = c.raw("POST", STOP, &[("Content-Type".into(), ct.into())], body.clone()).await.expect("answer");
        assert_error(&r, 415, ct);
    }
    let r = c.raw("GET", "/v1/savepoints/sp-none", &[], None).await.expect("answer");
    assert_error(&r, 404, "sp-none");
    let r = c.raw("GET", READYZ, &[], None).await.expect("answer");
    assert_error(&r, 503, "not ready");
    assert!(commands.try_recv().is_err(), "no refused request reached the coordinator");
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_problem_and_reach_nothing() {
    let (c, _state, mut commands) = serve().await;
    let cases: &[(&str, &str, &str)] = &[
        (STOP, "{", "EOF"),
        (STOP, "", "empty"),
        (STOP, "[1, false]", "JSON object"),
        (STOP, r#"{"savepont": true}"#, "unknown field `savepont`"),
        (STOP, r#"{"savepoint": "yes"}"#, "savepoint: invalid type"),
        (STOP, r#"{"savepoint": true, "savepoint": false}"#, "duplicate field"),
        (SAVEPOINTS, r#"{"location": 7}"#, "location: invalid type"),
        (SAVEPOINTS, r#"{"path": "file:///x"}"#, "unknown field `path`"),
        (SAVEPOINTS, r#"{"location": "relative/dir"}"#, "invalid savepoint location"),
        (SAVEPOINTS, r#"{"location": "file://host/dir"}"#, "absolute path"),
        (SAVEPOINTS, r#"{"location": "file:///sp/../../etc"}"#, "`..`"),
        (SAVEPOINTS, r#"{"location": ""}"#, "empty"),
    ];
    for (path, body, needle) in cases {
        let r = c.raw("POST", path, &json_header(), Some(body.as_bytes().to_vec())).await.expect("answer");
        assert_error(&r, 400, needle);
    }
    let huge = format!(r#"{{"location": "/{}"}}"#, "x".repeat(super::super::body::MAX_BODY_BYTES));
    let r = c.raw("POST", SAVEPOINTS, &json_header(), Some(huge.into_bytes())).await.expect("answer");
    assert_error(&r, 413, "larger than");
    assert!(commands.try_recv().is_err(), "no refused request reached the coordinator");
}

#[tokio::test]
async fn a_savepoint_during_a_stop_is_409_naming_the_stop() {
    let (c, state, mut commands) = serve().await;
    let stopping = tokio::spawn({
        let state = state.clone();
        async move { state.stop(StopKind::Savepoint).await }
    });
    let Some(ControlCommand::Stop { savepoint: true, reply }) = commands.recv().await else { panic!("the stop") };
    let r = c.raw("POST", SAVEPOINTS, &json_header(), Some(b"{}".to_vec())).await.expect("answer");
    let e = assert_error(&r, 409, "a stop is already in progress (stop with savepoint)");
    assert_eq!(e.stop_in_progress, Some(StopKind::Savepoint));
    let r = c.raw("POST", STOP, &json_header(), Some(br#"{"savepoint": false}"#.to_vec())).await.expect("answer");
    assert_error(&r, 409, "already in progress");
    let history = c.history().await.expect("history");
    assert_eq!(history.savepoints.len(), 1, "the stop's savepoint is listed: {history:?}");
    assert_eq!(history.savepoints[0].id, state.stop_savepoint_id());
    reply.send(Err("no storage".into())).expect("reply");
    assert!(stopping.await.expect("join").is_err());
    let after = c.history().await.expect("history");
    assert_eq!(after.savepoints[0].error.as_deref(), Some("no storage"), "{after:?}");
}

#[tokio::test]
async fn a_stop_after_the_job_ended_says_so_and_names_the_stop() {
    let (c, state, mut commands) = serve().await;
    let stopping = tokio::spawn({
        let state = state.clone();
        async move { state.stop(StopKind::Cancel).await }
    });
    let Some(ControlCommand::Stop { reply, .. }) = commands.recv().await else { panic!("the stop") };
    reply.send(Ok(None)).expect("reply");
    assert_eq!(stopping.await.expect("join"), Ok(None));
    state.set_job_state(JobState::Cancelled);
    let r = c.raw("POST", STOP, &json_header(), Some(br#"{"savepoint": true}"#.to_vec())).await.expect("answer");
    let e = assert_error(&r, 409, "a stop is already in progress (cancel), and the job has ended (cancelled)");
    assert_eq!(e.stop_in_progress, Some(StopKind::Cancel));
    assert_eq!(c.status().await.expect("status").state, JobState::Cancelled);
}

#[tokio::test]
async fn an_accepted_savepoint_is_listed_with_its_outcome() {
    let (c, state, mut commands) = serve().await;
    let sp = c.trigger_savepoint(Some("file:///tmp/sp-x".into())).await.expect("accepted");
    let Some(ControlCommand::Savepoint { id, location }) = commands.recv().await else { panic!("the savepoint") };
    assert_eq!((id.as_str(), location.as_deref()), (sp.id.as_str(), Some("file:///tmp/sp-x")));
    state.finish_savepoint(&id, Ok("file:///tmp/sp-x".into()));
    let h = c.history().await.expect("history");
    assert_eq!(h.savepoints[0].location.as_deref(), Some("file:///tmp/sp-x"));
    assert!(h.savepoints[0].duration_ms.is_some());
    assert!(h.checkpoints.is_empty(), "no job wired: no checkpoints");
}

/// A random `POST /v1/savepoints` body and whether it must be accepted, judged from how it was
/// built (not by the code under test): an object of known fields with the right types and a
/// location from the labelled list below.
fn random_savepoint_body(rng: &mut impl rand::Rng) -> (String, bool) {
    const LOCATIONS: &[(&str, bool)] = &[
        (r#""file:///tmp/sp""#, true),
        (r#""/data/sp""#, true),
        (r#""s3://bucket/sp""#, true),
        ("null", true),
        (r#""relative""#, false),
        (r#""file://h/sp""#, false),
        (r#""/a/../b""#, false),
        (r#""""#, false),
        ("7", false),
        ("[]", false),
    ];
    const VERSIONS: &[(&str, bool)] = &[("1", true), ("0", true), ("-1", false), (r#""1""#, false), ("1.5", false)];
    match rng.random_range(0..10) {
        0 => return ("[]".into(), false),
        1 => return (r#"{"location": "/x""#.into(), false),
        _ => {}
    }
    let mut fields = Vec::new();
    let mut ok = true;
    if rng.random_bool(0.5) {
        let (v, good) = VERSIONS[rng.random_range(0..VERSIONS.len())];
        fields.push(format!(r#""version": {v}"#));
        ok &= good;
    }
    if rng.random_bool(0.7) {
        let (v, good) = LOCATIONS[rng.random_range(0..LOCATIONS.len())];
        fields.push(format!(r#""location": {v}"#));
        ok &= good;
    }
    if rng.random_bool(0.2) {
        let unknown = ["Location", "path", "savepoint", "location "][rng.random_range(0..4)];
        fields.push(format!(r#""{unknown}": "/x""#));
        ok = false;
    }
    (format!("{{{}}}", fields.join(", ")), ok)
}

#[tokio::test]
async fn random_savepoint_bodies_are_accepted_exactly_when_valid() {
    use rand::SeedableRng;
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (c, _state, mut commands) = serve().await;
    for _ in 0..300 {
        let (body, valid) = random_savepoint_body(&mut rng);
        let r = c.raw("POST", SAVEPOINTS, &json_header(), Some(body.clone().into_bytes())).await.expect("answer");
        let expected = if valid { 202 } else { 400 };
        assert_eq!(r.status, expected, "seed {seed}: body {body} answered {r:?}");
        if valid {
            assert!(matches!(commands.try_recv(), Ok(ControlCommand::Savepoint { .. })), "seed {seed}: {body}");
        } else {
            assert_error(&r, 400, "");
            assert!(commands.try_recv().is_err(), "seed {seed}: refused {body} reached the coordinator");
        }
    }
}

#[tokio::test]
async fn the_job_page_is_served_self_contained_and_the_job_view_is_empty_before_wiring() {
    let (c, _state, _commands) = serve().await;
    for path in ["/", UI] {
        let r = c.raw("GET", path, &[], None).await.expect("answer");
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert!(r.content_type.as_deref().is_some_and(|t| t.starts_with("text/html")), "{path}: {r:?}");
        assert!(
            r.body.contains(r#"id="graph""#) && r.body.contains(r#""v1/job""#),
            "{path}: the page polls the job view"
        );
    }
    // Offline: nothing is loaded from elsewhere.
    for needle in ["http://", "https://", "//cdn", "<link", "src="] {
        let outside = JOB_PAGE.lines().filter(|l| l.contains(needle) && !l.contains("www.w3.org/2000/svg")).count();
        assert_eq!(outside, 0, "the page loads {needle:?}");
    }
    // Relative URLs only: the operator serves the page under /jobs/<ns>/<name>/, the API
    // server's service proxy under a longer prefix.
    for absolute in ["\"/v1", "'/v1", "`/v1", "\"/ui", "fetch(\"/"] {
        assert!(!JOB_PAGE.contains(absolute), "the page names {absolute}… from the root");
    }
    let r = c.raw("GET", JOB, &[], None).await.expect("answer");
    assert_eq!(r.status, 200, "{r:?}");
    let view: sluice_crds::contract::job_view::JobView = serde_json::from_str(&r.body).expect("a JobView");
    assert_eq!((view.run_id.as_str(), view.state, view.nodes.len(), view.window_ms), ("t", JobState::Running, 0, None));
    let r = c.raw("POST", JOB, &json_header(), Some(b"{}".to_vec())).await.expect("answer");
    assert_error(&r, 405, "POST is not allowed on /v1/job");
}
