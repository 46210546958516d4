//! Prints the StreamJob CustomResourceDefinition as YAML: `cargo run -p sluice-crds --bin crdgen > crds/streamjob.yaml`.

fn main() {
    print!("{}", sluice_crds::stream_job::crd_yaml());
}
