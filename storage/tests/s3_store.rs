//! The `ObjectStore` contract on a real S3 server (moto, started by `scripts/services/s3.sh`).
#![cfg(feature = "s3")]

mod s3_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_crds::contract::manifest::{self, CheckpointId, Manifest, SnapshotKind};
use sluice_storage::layout::manifest_key;
use sluice_storage::s3::{ConditionalWrites, S3Credentials, S3Store};
use sluice_storage::{self as storage, Error, ObjectStore, PutOutcome};

use s3_support::{S3Env, config, s3_env, unique_uri};

async fn connect(env: &S3Env, name: &str) -> S3Store {
    S3Store::connect(config(env, &unique_uri(env, name))).await.expect("connect to the S3 test server")
}

fn keys(objects: &[storage::ObjectMeta]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

#[tokio::test]
async fn put_get_list_and_delete_follow_the_store_contract() {
    let env = s3_env();
    let store = connect(&env, "contract").await;
    store.put("state/chk-2/b", Bytes::from_static(b"22")).await.expect("put");
    store.put("state/chk-1/a", Bytes::from_static(b"1")).await.expect("put");
    store.put("manifests/chk-1.json", Bytes::from_static(b"m")).await.expect("put");
    assert_eq!(store.get("state/chk-2/b").await.expect("get"), Bytes::from_static(b"22"));

    let listed = store.list("state/").await.expect("list");
    assert_eq!(keys(&listed), ["state/chk-1/a", "state/chk-2/b"]);
    assert_eq!(listed[1].size, 2);
    assert_eq!(
        keys(&store.list("").await.expect("list all")),
        ["manifests/chk-1.json", "state/chk-1/a", "state/chk-2/b"]
    );

    store.put("state/chk-2/b", Bytes::from_static(b"replaced")).await.expect("overwrite");
    assert_eq!(store.get("state/chk-2/b").await.expect("get"), Bytes::from_static(b"replaced"));

    store.delete(&["state/chk-1/a".into(), "state/never-written".into()]).await.expect("delete");
    store.delete(&["state/chk-1/a".into()]).await.expect("delete is idempotent");
    assert!(store.get("state/chk-1/a").await.expect_err("deleted").is_not_found());
    assert_eq!(keys(&store.list("state/").await.expect("list")), ["state/chk-2/b"]);
    assert!(matches!(store.get("../escape").await, Err(Error::Config(_))));
}

#[tokio::test]
async fn stores_with_neighbouring_prefixes_do_not_see_each_other() {
    let env = s3_env();
    let base = unique_uri(&env, "prefix");
    let a = S3Store::connect(config(&env, &format!("{base}/job"))).await.expect("connect a");
    let b = S3Store::connect(config(&env, &format!("{base}/job-2"))).await.expect("connect b");
    a.put("manifests/x", Bytes::from_static(b"a")).await.expect("put a");
    b.put("manifests/x", Bytes::from_static(b"b")).await.expect("put b");
    assert_eq!(keys(&a.list("").await.expect("list a")), ["manifests/x"]);
    assert_eq!(a.get("manifests/x").await.expect("get a"), Bytes::from_static(b"a"));
    assert_eq!(b.get("manifests/x").await.expect("get b"), Bytes::from_static(b"b"));
    a.delete(&["manifests/x".into()]).await.expect("delete a");
    assert_eq!(b.get("manifests/x").await.expect("b untouched"), Bytes::from_static(b"b"));
}

#[tokio::test]
async fn large_object_goes_up_in_parts_and_reads_back_identical() {
    let env = s3_env();
    let uri = unique_uri(&env, "multipart");
    let mut cfg = config(&env, &uri);
    cfg.options.part_size = 5 * 1024 * 1024;
    cfg.options.max_parts_in_flight = 2;
    cfg.options.attempt_timeout = Duration::from_secs(30);
    let store = S3Store::connect(cfg.clone()).await.expect("connect");
    // ~20 MB of non-repeating bytes: a misplaced part changes the checksum.
    let mut data = Vec::with_capacity(20_000_000);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while data.len() < 20_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let crc = crc32c::crc32c(&data);
    store.put("state/chk-1/big.state", Bytes::from(data)).await.expect("multipart put");
    let back = store.get("state/chk-1/big.state").await.expect("get");
    assert_eq!((back.len(), crc32c::crc32c(&back)), (20_000_000, crc));
    assert_eq!(store.list("state/").await.expect("list")[0].size, 20_000_000);

    // A multipart object's ETag ends in `-<parts>`: 20 MB in 5 MiB parts is 4 parts.
    let raw = raw_client(&env);
    let head = raw.head_object().bucket(&env.bucket).key(cfg.location.full_key("state/chk-1/big.state")).send().await;
    let etag = head.expect("head").e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-4"), "ETag {etag} is not a 4-part multipart ETag");
    let uploads = raw.list_multipart_uploads().bucket(&env.bucket).prefix(&cfg.location.prefix).send().await;
    assert!(uploads.expect("list uploads").uploads().is_empty(), "no unfinished uploads remain");
}

#[tokio::test]
async fn uploads_left_by_a_dead_writer_are_aborted() {
    let env = s3_env();
    let store = connect(&env, "leftover").await;
    let raw = raw_client(&env);
    let key = store.config().location.full_key("state/chk-9/dead-writer.state");
    let started = raw.create_multipart_upload().bucket(&env.bucket).key(&key).send().await.expect("create upload");
    let part = raw
        .upload_part()
        .bucket(&env.bucket)
        .key(&key)
        .upload_id(started.upload_id().expect("upload id"))
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"orphaned part"))
        .send()
        .await;
    part.expect("upload part");
    let prefix = store.config().location.prefix.clone();
    let pending = || async {
        let listed = raw.list_multipart_uploads().bucket(&env.bucket).prefix(&prefix).send().await;
        listed.expect("list uploads").uploads().len()
    };
    assert_eq!(pending().await, 1);

    // moto reports every upload as started in 2010, so sparing young uploads is unit-tested only.
    assert_eq!(store.abort_incomplete_uploads(Duration::ZERO).await.expect("sweep"), 1);
    assert_eq!(pending().await, 0, "the leftover upload is gone");
}

/// A multipart upload in flight in this process survives sweeps running meanwhile, even with no
/// age bound at all (moto dates every upload to 2010, so an age rule could not spare it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_flight_here_survives_concurrent_sweeps() {
    let env = s3_env();
    let mut cfg = config(&env, &unique_uri(&env, "live-upload"));
    cfg.options.part_size = 5 * 1024 * 1024;
    cfg.options.max_parts_in_flight = 1;
    cfg.options.attempt_timeout = Duration::from_secs(30);
    let store = Arc::new(S3Store::connect(cfg.clone()).await.expect("connect"));
    let raw = raw_client(&env);
    let prefix = cfg.location.prefix.clone();
    let data = Bytes::from((0..16_000_000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let upload = {
        let (store, data) = (store.clone(), data.clone());
        tokio::spawn(async move { store.put("state/chk-4/live.state", data).await })
    };
    let mut saw_it = 0;
    while !upload.is_finished() {
        let listed = raw.list_multipart_uploads().bucket(&env.bucket).prefix(&prefix).send().await;
        saw_it += listed.expect("list uploads").uploads().len();
        assert_eq!(store.abort_incomplete_uploads(Duration::ZERO).await.expect("sweep"), 0, "nothing abandoned");
    }
    upload.await.expect("upload task").expect("the live upload completes");
    assert!(saw_it > 0, "the sweeps ran while the upload was in flight");
    let back = store.get("state/chk-4/live.state").await.expect("get");
    assert_eq!(crc32c::crc32c(&back), crc32c::crc32c(&data));
}

#[tokio::test]
async fn list_paginates_and_delete_batches_past_a_thousand_keys() {
    let env = s3_env();
    let store = Arc::new(connect(&env, "many").await);
    let all: Vec<String> = (0..1100).map(|i| format!("state/chk-1/{i:05}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in all.chunks(69) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for key in chunk {
                store.put(&key, Bytes::from_static(b"x")).await.expect("put");
            }
        });
    }
    tasks.join_all().await;
    let listed = store.list("state/").await.expect("list");
    assert_eq!(keys(&listed), all.iter().map(String::as_str).collect::<Vec<_>>());
    store.delete(&all).await.expect("batched delete");
    assert!(store.list("state/").await.expect("list").is_empty());
}

#[tokio::test]
async fn racing_writers_of_one_manifest_key_never_both_win() {
    let env = s3_env();
    let uri = unique_uri(&env, "race");
    // Two independent clients, like an old pod still alive and its replacement.
    let old = Arc::new(S3Store::connect(config(&env, &uri)).await.expect("connect old"));
    let new = Arc::new(S3Store::connect(config(&env, &uri)).await.expect("connect new"));
    let mut rounds = tokio::task::JoinSet::new();
    for round in 0..60u64 {
        let (old, new) = (old.clone(), new.clone());
        rounds.spawn(async move {
            let key = manifest_key(CheckpointId(round));
            let a = Bytes::from(format!("old pod, round {round}"));
            let b = Bytes::from(format!("new pod, round {round}"));
            let (ra, rb) = tokio::join!(old.put_if_absent(&key, a.clone()), new.put_if_absent(&key, b.clone()));
            let (ra, rb) = (ra.expect("old writer"), rb.expect("new writer"));
            let stored = old.get(&key).await.expect("get winner");
            (round, ra, rb, stored == a, stored == b)
        });
    }
    for (round, ra, rb, stored_a, stored_b) in rounds.join_all().await {
        let winners = [ra, rb].iter().filter(|o| **o == PutOutcome::Created).count();
        assert_eq!(winners, 1, "round {round}: {ra:?} / {rb:?}");
        let expect_a = ra == PutOutcome::Created;
        assert_eq!((stored_a, stored_b), (expect_a, !expect_a), "round {round}: the winner's bytes are stored");
    }
}

#[tokio::test]
async fn probe_finds_that_the_test_server_honours_conditional_writes_and_cleans_up() {
    let env = s3_env();
    let store = connect(&env, "probe").await;
    assert_eq!(store.conditional_writes(), ConditionalWrites::Supported);
    assert!(store.list("").await.expect("list").is_empty(), "probe objects are removed");
}

#[tokio::test]
async fn best_effort_create_if_absent_mode_still_refuses_an_existing_key() {
    let env = s3_env();
    let mut cfg = config(&env, &unique_uri(&env, "best-effort"));
    cfg.options.conditional_writes = Some(ConditionalWrites::Unsupported);
    let store = S3Store::connect(cfg).await.expect("connect");
    assert_eq!(store.conditional_writes(), ConditionalWrites::Unsupported);
    let key = manifest_key(CheckpointId(1));
    let first = store.put_if_absent(&key, Bytes::from_static(b"first")).await.expect("first");
    let second = store.put_if_absent(&key, Bytes::from_static(b"second")).await.expect("second");
    assert_eq!((first, second), (PutOutcome::Created, PutOutcome::AlreadyExists));
    assert_eq!(store.get(&key).await.expect("get"), Bytes::from_static(b"first"));
}

#[tokio::test]
async fn wrong_secret_key_is_an_auth_error_naming_endpoint_and_bucket() {
    let env = s3_env();
    let mut cfg = s3_support::auth_config(&env, &unique_uri(&env, "auth"));
    cfg.credentials = S3Credentials::new(&env.access_key_id, "definitely-not-the-secret");
    let connected = tokio::time::timeout(Duration::from_secs(60), S3Store::connect(cfg)).await;
    let err = connected.expect("connect must not hang").expect_err("wrong secret is refused");
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains(&env.auth_endpoint) && text.contains(&env.bucket), "{text}");
    assert!(!text.contains("definitely-not-the-secret"), "the secret is never shown: {text}");
}

#[tokio::test]
async fn missing_bucket_is_a_non_retryable_error_naming_it() {
    let env = s3_env();
    let err = S3Store::connect(config(&env, "s3://no-such-bucket-sluice/x")).await.expect_err("no bucket");
    assert!(!err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("no-such-bucket-sluice"), "{err}");
}

#[tokio::test]
async fn open_dispatches_s3_uris_with_credentials_from_a_secret_directory() {
    let env = s3_env();
    let secret = tempfile::tempdir().expect("tempdir");
    std::fs::write(secret.path().join("accessKeyId"), format!("{}\n", env.access_key_id)).expect("write");
    std::fs::write(secret.path().join("secretAccessKey"), format!("{}\n", env.secret_access_key)).expect("write");
    let mut spec = s3_support::storage_spec(&env, &unique_uri(&env, "open"));
    spec.endpoint = Some(env.auth_endpoint.clone());
    spec.credentials_dir = Some(secret.path().display().to_string());
    let store = storage::open(&spec).await.expect("open s3://");
    assert!(store.describe().contains(&env.auth_endpoint));
    store.put("a", Bytes::from_static(b"x")).await.expect("put");
    assert_eq!(store.get("a").await.expect("get"), Bytes::from_static(b"x"));

    std::fs::write(secret.path().join("secretAccessKey"), "wrong").expect("write");
    let err = storage::open(&spec).await.expect_err("wrong secret in the Secret");
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
}

#[tokio::test]
async fn corrupted_manifest_is_returned_as_stored_and_rejected_by_decode() {
    let env = s3_env();
    let store = connect(&env, "corrupt").await;
    let manifest = Manifest {
        version: manifest::MANIFEST_VERSION,
        job: "demo".into(),
        checkpoint_id: CheckpointId(3),
        kind: SnapshotKind::Checkpoint,
        triggered_at_ms: 1,
        completed_at_ms: 2,
        max_parallelism: 128,
        tasks: vec![],
        run_id: None,
        records: None,
    };
    let key = manifest_key(CheckpointId(3));
    let good = manifest.encode();
    store.put(&key, Bytes::from(good.clone())).await.expect("put");
    assert_eq!(Manifest::decode(&store.get(&key).await.expect("get")).expect("decodes"), manifest);

    let mut flipped = good.clone();
    flipped[10] ^= 0x20;
    store.put(&key, Bytes::from(flipped.clone())).await.expect("put corrupted");
    let back = store.get(&key).await.expect("get corrupted");
    assert_eq!(back, Bytes::from(flipped), "the store returns bytes as stored");
    assert!(Manifest::decode(&back).is_err(), "a flipped byte is detected");

    let truncated = Bytes::copy_from_slice(&good[..good.len() / 2]);
    store.put(&key, truncated.clone()).await.expect("put truncated");
    let back = store.get(&key).await.expect("get truncated");
    assert_eq!(back, truncated);
    assert!(Manifest::decode(&back).is_err(), "a truncated manifest is detected");
}

/// A plain SDK client for inspecting what the store wrote.
fn raw_client(env: &S3Env) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(&env.access_key_id, &env.secret_access_key, None, None, "test");
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .http_client(sluice_storage::s3::http_client())
        .region(aws_sdk_s3::config::Region::new(env.region.clone()))
        .endpoint_url(&env.endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
