//! Checks a savepoint `location` before anything starts: a storage URI this build can write.

/// Why `uri` cannot be a savepoint location, or `Ok` when this build can write there: an
/// absolute `file:///dir` or `/dir`, or `s3://bucket/prefix` (with the `s3` feature); no
/// whitespace or control characters, no `.`/`..` segments, no query or fragment.
pub fn check_location(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid savepoint location {uri:?}: {why}"));
    if uri.is_empty() {
        return bad("it is empty (leave `location` out for the default)");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace or control characters");
    }
    if uri.contains(['?', '#']) {
        return bad("a query or fragment is not part of a storage URI");
    }
    let path = if let Some(rest) = uri.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return bad("a file URI needs an absolute path: file:///dir");
        }
        rest
    } else if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return bad("an S3 URI needs a bucket: s3://bucket/prefix");
        }
        prefix
    } else if uri.starts_with('/') {
        uri
    } else {
        return bad("use file:///dir, /dir or s3://bucket/prefix");
    };
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return bad("`.` and `..` path segments are not allowed");
    }
    if path.trim_matches('/').is_empty() {
        return bad("it names the root of the file system or bucket; give a directory of its own");
    }
    sluice_storage::check_supported(uri).map_err(|e| format!("invalid savepoint location {uri:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writable_storage_uris_pass() {
        for ok in ["file:///tmp/sp", "/tmp/sp/", "s3://bucket/sp", "file:///a/b.c/d"] {
            assert_eq!(check_location(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("tmp/sp", "use file:///"),
            ("http://x/y", "use file:///"),
            ("file://tmp/sp", "absolute"),
            ("s3://", "bucket"),
            ("s3:///x", "bucket"),
            ("file:///", "root"),
            ("s3://b", "root"),
            ("file:///a/../b", "`..`"),
            ("/a/./b", "`..`"),
            ("/a b", "whitespace"),
            ("/a\nb", "whitespace"),
            ("/a?x=1", "query"),
        ] {
            let e = check_location(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
