//! The real kube-runtime `Controller` (`controller::run`) over the mock API server: one
//! StreamJob the operator cannot deserialize does not stop the others, and a watch that cannot
//! list shows on `/healthz` and heals when listing works again.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use sluice_storage::memory::MemoryStore;
use std::sync::Arc;

use crate::context::Context;
use crate::fixtures::{ApiServerVerifier, Seen};
use crate::health::WATCH_GRACE;

const JOBS: &str = "/apis/sluice.dev/v1alpha1/streamjobs";

fn job_json(name: &str, node_selector: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "StreamJob",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "5", "generation": 1},
        "spec": {
            "image": "sluice-runtime:dev",
            "podTemplate": {"spec": {"nodeSelector": node_selector}},
            "pipeline": {
                "nodes": [{"id": "numbers", "generator": {}}, {"id": "print", "stdout": {}}],
                "edges": [{"from": "numbers", "to": "print"}]
            }
        }
    })
}

fn list(kind: &str, items: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "10"}, "items": items})
}

type Held = Vec<tower_test::mock::SendResponse<http::Response<kube::client::Body>>>;

/// Answers the initial list of the pod, ConfigMap and Service watches (empty) and holds their
/// watches open; gives back any other request (the StreamJob list and watch among them).
fn serve_children(seen: Seen, held: &mut Held) -> Option<Seen> {
    let child = ["/api/v1/pods", "/api/v1/configmaps", "/api/v1/services"].contains(&seen.path());
    match (child, seen.uri.contains("watch=true")) {
        (true, true) => {
            seen.hold(held);
            None
        }
        (true, false) => {
            seen.reply(list("PartialObjectMetadataList", vec![]));
            None
        }
        (false, _) => Some(seen),
    }
}

async fn next(api: &mut ApiServerVerifier) -> Seen {
    tokio::time::timeout(Duration::from_secs(20), api.next())
        .await
        .expect("the controller sent no request within 20 s")
        .expect("client gone")
}

#[tokio::test]
async fn an_unreadable_streamjob_gets_a_warning_and_the_others_are_still_reconciled() {
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let controller = tokio::spawn(crate::controller::run(ctx.clone()));
    let bad = job_json("bad", json!({"gpu": true}));
    let good = job_json("good", json!({"gpu": "true"}));
    let mut held = Vec::new();
    let (mut finalized_good, mut warned_bad) = (false, false);
    while !(finalized_good && warned_bad) {
        let Some(seen) = serve_children(next(&mut api).await, &mut held) else { continue };
        match (seen.method.clone(), seen.path()) {
            (Method::GET, JOBS) if seen.uri.contains("watch=true") => seen.hold(&mut held),
            (Method::GET, JOBS) => seen.reply(list("StreamJobList", vec![bad.clone(), good.clone()])),
            (Method::GET, "/apis/sluice.dev/v1alpha1/namespaces/ns/streamjobs/good") => seen.reply(good.clone()),
            (Method::PATCH, "/apis/sluice.dev/v1alpha1/namespaces/ns/streamjobs/good") => {
                assert!(seen.body.to_string().contains(sluice_crds::FINALIZER), "{}", seen.body);
                finalized_good = true;
                let mut with_finalizer = good.clone();
                with_finalizer["metadata"]["finalizers"] = json!([sluice_crds::FINALIZER]);
                seen.reply(with_finalizer);
            }
            (Method::POST, "/apis/events.k8s.io/v1/namespaces/ns/events") => {
                assert_eq!(seen.body["regarding"]["name"], "bad", "{}", seen.body);
                assert_eq!(
                    (seen.body["type"].as_str(), seen.body["reason"].as_str()),
                    (Some("Warning"), Some("UnreadableObject"))
                );
                let note = seen.body["note"].as_str().expect("note").to_string();
                assert!(
                    note.contains("cannot read this StreamJob") && note.to_lowercase().contains("expected a string"),
                    "{note}"
                );
                warned_bad = true;
                seen.echo();
            }
            (m, _) => panic!("unexpected request {m} {}", seen.uri),
        }
    }
    controller.abort();
    assert!(ctx.health.check_at(Instant::now() + 2 * WATCH_GRACE).is_ok());
}

#[tokio::test]
async fn a_watch_that_cannot_list_fails_healthz_until_listing_works_again() {
    let (ctx, mut api) = Context::test(None, Arc::new(MemoryStore::new()));
    let controller = tokio::spawn(crate::controller::run(ctx.clone()));
    let far = || Instant::now() + 2 * WATCH_GRACE;
    let mut held = Vec::new();
    let mut lists = 0;
    loop {
        let Some(seen) = serve_children(next(&mut api).await, &mut held) else { continue };
        assert_eq!((&seen.method, seen.path()), (&Method::GET, JOBS), "{}", seen.uri);
        if seen.uri.contains("watch=true") {
            // Listing worked: the watch is healthy again.
            assert!(ctx.health.check_at(far()).is_ok(), "{:?}", ctx.health.check_at(far()));
            seen.hold(&mut held);
            break;
        }
        lists += 1;
        if lists == 1 {
            seen.fail(
                403,
                "Forbidden",
                "streamjobs.sluice.dev is forbidden: User \"system:serviceaccount:sluice-system:sluice-operator\" \
                 cannot list resource \"streamjobs\" in API group \"sluice.dev\" at the cluster scope",
            );
        } else {
            // The retry after the backoff: by now the failure is on record.
            let err = ctx.health.check_at(far()).expect_err("a watch that cannot list is unhealthy").to_string();
            assert!(err.contains("streamjobs") && err.contains("forbidden"), "{err}");
            seen.reply(list("StreamJobList", vec![]));
        }
    }
    controller.abort();
}
