//! The plugin depends on the contract crate only: it acts through the StreamJob, never through
//! the runtime, the operator or checkpoint storage (ARCHITECTURE.md, "Crates").

#[test]
fn the_plugin_depends_on_no_sluice_crate_but_the_contract() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).expect("reads");
    let named: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split(['=', '.', ' ']).next())
        .filter(|name| name.starts_with("sluice-"))
        .collect();
    assert_eq!(named, ["sluice-crds"], "kubectl-sluice may depend on sluice-crds only");
}
