//! The krew plugin manifest template (`manifests/krew/sluice.yaml`): a krew `Plugin` named
//! `sluice` whose every platform installs the binary `kubectl-sluice`, with the release's URL,
//! version and checksums left as placeholders for the release to fill in.

use serde_yaml::Value;

#[test]
fn the_krew_manifest_installs_kubectl_sluice_on_every_platform() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/krew/sluice.yaml");
    let text = std::fs::read_to_string(path).expect("manifests/krew/sluice.yaml");
    let plugin: Value = serde_yaml::from_str(&text).expect("YAML");
    assert_eq!(plugin["apiVersion"].as_str(), Some("krew.googlecontainertools.github.com/v1alpha2"));
    assert_eq!(plugin["kind"].as_str(), Some("Plugin"));
    assert_eq!(plugin["metadata"]["name"].as_str(), Some("sluice"), "installs as `kubectl sluice`");
    assert_eq!(plugin["spec"]["version"].as_str(), Some("${VERSION}"));
    let short = plugin["spec"]["shortDescription"].as_str().expect("shortDescription");
    assert!(short.len() <= 50, "krew wants a short description: {short}");
    let platforms = plugin["spec"]["platforms"].as_sequence().expect("platforms");
    let mut seen = Vec::new();
    for p in platforms {
        let labels = &p["selector"]["matchLabels"];
        let (os, arch) = (labels["os"].as_str().expect("os"), labels["arch"].as_str().expect("arch"));
        seen.push(format!("{os}/{arch}"));
        assert_eq!(p["bin"].as_str(), Some("kubectl-sluice"), "{os}/{arch}");
        let uri = p["uri"].as_str().expect("uri");
        assert!(uri.starts_with("${RELEASE_URL}/kubectl-sluice-${VERSION}-") && uri.ends_with(".tar.gz"), "{uri}");
        let sha = p["sha256"].as_str().expect("sha256");
        assert_eq!(sha, format!("${{SHA256_{}_{}}}", os.to_uppercase(), arch.to_uppercase()));
        assert_eq!(p["files"][0]["from"].as_str(), Some("kubectl-sluice"));
    }
    assert_eq!(seen, ["linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"]);
}
