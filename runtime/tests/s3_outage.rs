//! Store-level outage: the S3 server is frozen (SIGSTOP) and resumed (SIGCONT). Operations fail
//! with a retryable error instead of hanging, and succeed again once the server is back.
//! In its own test binary because it freezes the server every other S3 test uses.

mod s3_support;

use std::time::Duration;

use bytes::Bytes;
use sluice_runtime::storage::ObjectStore;
use sluice_runtime::storage::s3::S3Store;

use s3_support::{Outage, config, s3_env, unique_uri};

/// Upper bound for one failing operation: far above the retry budget, only to fail instead of hang.
const HANG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn frozen_server_gives_retryable_errors_and_operations_recover_when_it_resumes() {
    let env = s3_env();
    let cfg = config(&env, &unique_uri(&env, "outage"));
    let store = S3Store::connect(cfg).await.expect("connect");
    store.put("state/before", Bytes::from_static(b"before")).await.expect("put before the outage");

    let outage = Outage::begin(&env);
    let put = tokio::time::timeout(HANG, store.put("state/during", Bytes::from_static(b"x"))).await;
    let err = put.expect("put must fail, not hang").expect_err("server is frozen");
    assert!(err.is_retryable(), "{err:?}");
    let get = tokio::time::timeout(HANG, store.get("state/before")).await;
    assert!(get.expect("get must fail, not hang").expect_err("server is frozen").is_retryable());
    let claim = tokio::time::timeout(HANG, store.put_if_absent("manifests/chk-1.json", Bytes::from_static(b"m"))).await;
    assert!(claim.expect("put_if_absent must fail, not hang").expect_err("server is frozen").is_retryable());
    let big = Bytes::from(vec![7u8; 9 * 1024 * 1024]);
    let multipart = tokio::time::timeout(HANG, store.put("state/big", big.clone())).await;
    assert!(multipart.expect("multipart must fail, not hang").expect_err("server is frozen").is_retryable());
    outage.end();

    store.put("state/after", Bytes::from_static(b"after")).await.expect("put after the outage");
    assert_eq!(store.get("state/before").await.expect("get"), Bytes::from_static(b"before"));
    store.put("state/big", big.clone()).await.expect("multipart after the outage");
    assert_eq!(store.get("state/big").await.expect("get big"), big);
    let keys: Vec<_> = store.list("state/").await.expect("list").into_iter().map(|o| o.key).collect();
    assert!(keys.contains(&"state/after".to_string()) && keys.contains(&"state/big".to_string()), "{keys:?}");
}
