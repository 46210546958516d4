//! The runtime's modules depend one way (ARCHITECTURE.md, "Inside sluice-runtime"): a module
//! names only modules lower in [`ORDER`] through `crate::…` paths. Known debts, if any, are listed
//! in [`DEBTS`]; a new edge against the order, or a debt that is gone but still listed, fails.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first.
const ORDER: &[&str] = &[
    "value",
    "record",
    "fault",
    "storage",
    "error",
    "graph",
    "state",
    "engine",
    "ops",
    "connectors",
    "nodes",
    "checkpoint",
    "job",
    "control",
    "verify",
];

/// Edges against the order that ARCHITECTURE.md names as debts: (file, from, to). None left;
/// a new one must be named in ARCHITECTURE.md as well.
const DEBTS: &[(&str, &str, &str)] = &[];

fn rank(m: &str) -> Option<usize> {
    ORDER.iter().position(|&o| o == m)
}

/// Every `crate::module` named outside comments and test modules.
fn edges(src: &Path, dir: &Path, out: &mut BTreeSet<(String, String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if !path.ends_with("bin") {
                edges(src, &path, out);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(src).expect("under src").to_string_lossy().replace('\\', "/");
        let top = rel.split('/').next().unwrap_or("").trim_end_matches(".rs").to_string();
        if rank(&top).is_none() {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String =
                    line[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if name != top && rank(&name).is_some_and(|r| Some(r) > rank(&top)) {
                    out.insert((rel.clone(), top.clone(), name));
                }
            }
        }
    }
}

#[test]
fn modules_depend_only_downwards_except_the_named_debts() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeSet::new();
    edges(&src, &src, &mut found);
    let debts: BTreeSet<(String, String, String)> =
        DEBTS.iter().map(|&(f, a, b)| (f.to_string(), a.to_string(), b.to_string())).collect();
    let new: Vec<_> = found.difference(&debts).collect();
    assert!(new.is_empty(), "edges against the layering (ARCHITECTURE.md): {new:?}");
    let paid: Vec<_> = debts.difference(&found).collect();
    assert!(paid.is_empty(), "debts no longer there: remove them from DEBTS and ARCHITECTURE.md: {paid:?}");
}
