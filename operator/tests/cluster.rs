//! Tests against a real API server (`kubectl` context from the environment). Run with
//! `cargo test -p sluice-operator --test cluster -- --ignored` on a kind cluster.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use sluice_crds::StreamJob;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch("streamjobs.sluice.dev", &PatchParams::apply("sluice-test").force(), &Patch::Apply(StreamJob::crd()))
        .await
        .expect("the API server accepts the CRD, CEL rules included (cost budget)");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
#[ignore = "needs cluster"]
async fn the_api_server_rejects_every_invalid_fixture_and_accepts_the_examples() {
    let client = Client::try_default().await.expect("a cluster (kubeconfig)");
    install_crd(&client).await;
    for dir in ["manifests/examples", "crds/tests/fixtures/invalid"] {
        for entry in std::fs::read_dir(repo().join(dir)).expect("dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            // Examples may ship other objects next to the StreamJob (a PVC for a file sink).
            let mut value = serde_yaml::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
                .find(|v: &serde_json::Value| v["kind"] == "StreamJob")
                .expect("a StreamJob");
            value["metadata"]["namespace"] = "default".into();
            let result = client
                .request::<serde_json::Value>(
                    http::Request::post(
                        "/apis/sluice.dev/v1alpha1/namespaces/default/streamjobs?dryRun=All&fieldValidation=Strict",
                    )
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&value).expect("json"))
                    .expect("request"),
                )
                .await;
            let expected = text.lines().find_map(|l| l.strip_prefix("# expect: "));
            match (expected, result) {
                (None, Ok(_)) => {}
                (None, Err(e)) => panic!("{}: rejected: {e}", path.display()),
                (Some(_), Ok(_)) => panic!("{}: accepted but should be rejected", path.display()),
                (Some(_), Err(e)) => eprintln!("{}: rejected as expected: {e}", path.display()),
            }
        }
    }
    let _ =
        Api::<CustomResourceDefinition>::all(client).delete("streamjobs.sluice.dev", &DeleteParams::default()).await;
}
