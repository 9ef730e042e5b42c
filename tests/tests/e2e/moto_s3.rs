//! The S3 adapter (`S3Objects`) through the real aws-sdk-s3 client against moto_server.

use aws_sdk_s3::primitives::ByteStream;
use boa_aws::adapters::S3Objects;
use boa_aws::ports::{Objects, PortError};
use e2e_tests::moto::Moto;

#[tokio::test]
async fn exists_is_true_for_a_present_object_and_false_for_a_missing_one() {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("downloads").send().await.unwrap();
    s3.put_object()
        .bucket("downloads")
        .key("source/hhvm-4.28.2.tar.gz")
        .body(ByteStream::from_static(b"tarball"))
        .send()
        .await
        .unwrap();
    let objects = S3Objects::from_client(s3);
    assert!(
        objects
            .exists("downloads", "source/hhvm-4.28.2.tar.gz")
            .await
            .unwrap()
    );
    assert!(
        !objects
            .exists("downloads", "source/hhvm-4.28.3.tar.gz")
            .await
            .unwrap()
    );
    // A missing bucket answers 404 as well: not done, not an error.
    assert!(!objects.exists("nobucket", "k").await.unwrap());
}

/// Task records and results are read back with `get`: the body written, `None` for a missing
/// key, an error naming the bucket for a missing bucket.
#[tokio::test]
async fn get_reads_back_what_put_wrote_and_none_for_a_missing_key() {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("artifacts").send().await.unwrap();
    let objects = S3Objects::from_client(s3);
    let key = "runs/run-1/tasks/Build/version=1.0.0.json";
    objects
        .put("artifacts", key, br#"{"status":"succeeded"}"#)
        .await
        .unwrap();
    assert_eq!(
        objects.get("artifacts", key).await.unwrap().as_deref(),
        Some(&br#"{"status":"succeeded"}"#[..])
    );
    assert_eq!(
        objects
            .get("artifacts", "runs/run-1/nothing")
            .await
            .unwrap(),
        None
    );
    let listed = objects
        .list("artifacts", "runs/run-1/tasks/")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, key);
    match objects.get("nobucket", "k").await {
        Ok(None) | Err(_) => {}
        Ok(Some(b)) => panic!("a missing bucket gave a body: {b:?}"),
    }
}

#[tokio::test]
async fn a_presigned_url_fetches_the_object_until_it_expires() {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("artifacts").send().await.unwrap();
    s3.put_object()
        .bucket("artifacts")
        .key("scripts/init.sh")
        .body(ByteStream::from_static(b"#!/bin/sh\necho init\n"))
        .send()
        .await
        .unwrap();
    let objects = S3Objects::from_client(s3);
    let url = objects
        .presign_get("artifacts", "scripts/init.sh", 300)
        .await
        .unwrap();
    assert!(url.starts_with(&moto.endpoint_url()), "{url}");
    assert!(url.contains("X-Amz-Expires=300"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let body = reqwest::get(&url).await.unwrap();
    assert!(body.status().is_success(), "{}", body.status());
    assert_eq!(body.text().await.unwrap(), "#!/bin/sh\necho init\n");
    // More than S3's 7-day maximum is refused before any request.
    match objects
        .presign_get("artifacts", "scripts/init.sh", 8 * 24 * 3600)
        .await
    {
        Err(PortError::Other(m)) => assert!(m.contains("at most 7 days"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn records_are_written_counted_listed_and_created_only_once() {
    let moto = Moto::start();
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("artifacts").send().await.unwrap();
    let objects = S3Objects::from_client(s3);
    let prefix = "demo/runs/run-1/attempts/Build/version=1.2.3/";
    for (i, entered) in ["2025-01-02T10:00:00.000Z", "2025-01-02T10:05:00.000Z"]
        .iter()
        .enumerate()
    {
        objects
            .put("artifacts", &format!("{prefix}{entered}"), b"run-1")
            .await
            .unwrap();
        assert_eq!(
            objects.count("artifacts", prefix).await.unwrap(),
            i as u64 + 1
        );
    }
    // Writing the same record again (a retried invocation) counts once.
    objects
        .put(
            "artifacts",
            &format!("{prefix}2025-01-02T10:05:00.000Z"),
            b"run-1",
        )
        .await
        .unwrap();
    assert_eq!(objects.count("artifacts", prefix).await.unwrap(), 2);
    assert_eq!(
        objects
            .count("artifacts", "demo/runs/run-2/")
            .await
            .unwrap(),
        0
    );

    // If-None-Match: the first create wins, the second is told the key exists.
    let lock = "demo/locks/build-on-aws-demo-Publish/000000000001";
    assert!(objects.create("artifacts", lock, b"t").await.unwrap());
    assert!(!objects.create("artifacts", lock, b"t").await.unwrap());
    let listed = objects
        .list("artifacts", "demo/locks/build-on-aws-demo-Publish/")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, lock);
    assert!(listed[0].last_modified.is_some());
    // A missing bucket is an error with its name, not an empty answer.
    let e = objects.create("nobucket", "k", b"x").await.unwrap_err();
    assert!(!matches!(e, PortError::Throttled(_)), "{e:?}");
}

/// Records the `x-amz-expected-bucket-owner` header of every request the client sends.
#[derive(Debug, Default, Clone)]
struct OwnerHeaders(std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>);

impl aws_sdk_s3::config::Intercept for OwnerHeaders {
    fn name(&self) -> &'static str {
        "OwnerHeaders"
    }
    fn read_before_transmit(
        &self,
        ctx: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _rc: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let h = ctx.request().headers().get("x-amz-expected-bucket-owner");
        self.0.lock().unwrap().push(h.map(str::to_string));
        Ok(())
    }
}

#[tokio::test]
async fn calls_on_the_stacks_bucket_name_its_owner_and_others_do_not() {
    let moto = Moto::start();
    let seen = OwnerHeaders::default();
    let conf = aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
        .force_path_style(true)
        .interceptor(seen.clone())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    for b in ["artifacts", "releases"] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    seen.0.lock().unwrap().clear();
    // moto's account owns every bucket it creates (moto does not enforce the condition; S3 does,
    // with a 403 for a bucket of another account).
    let objects = S3Objects::from_client(s3).with_owner("artifacts", "123456789012");
    objects.put("artifacts", "runs/r1/a", b"1").await.unwrap();
    assert!(
        objects
            .create("artifacts", "locks/x/000000000001", b"l")
            .await
            .unwrap()
    );
    assert!(objects.exists("artifacts", "runs/r1/a").await.unwrap());
    assert_eq!(objects.list("artifacts", "runs/").await.unwrap().len(), 1);
    let stack_calls = std::mem::take(&mut *seen.0.lock().unwrap());
    assert_eq!(stack_calls.len(), 4, "{stack_calls:?}");
    assert!(
        stack_calls
            .iter()
            .all(|h| h.as_deref() == Some("123456789012")),
        "{stack_calls:?}"
    );
    // A done_when bucket of another account is checked without the condition.
    assert!(!objects.exists("releases", "4.28.2/x.tar.gz").await.unwrap());
    assert_eq!(*seen.0.lock().unwrap(), [None]);
}

/// The duration history (record-result writes it, provisioning reads it) through the S3
/// adapter: kept under `<prefix>/durations/`, beside the runs, and its median read back.
#[tokio::test]
async fn duration_history_is_written_and_read_through_the_s3_adapter() {
    use boa_aws::durations::{expected_duration, read_history, record_duration};
    use boa_core::Pipeline;
    use boa_core::history::{DEFAULT_EXPECTED_DURATION, duration_key};
    use boa_core::stack::StackConfig;
    use std::time::Duration;

    let moto = Moto::start();
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("artifacts").send().await.unwrap();
    let objects = S3Objects::from_client(s3);
    let cfg = StackConfig::new(
        "build-on-aws-demo",
        "us-east-1",
        "123456789012",
        "s3://artifacts/demo",
    );
    let p = Pipeline::parse(
        r#"
name = "demo"
[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'
[[step]]
name = "Build"
script = "build.sh"
expected_duration = "20m"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let step = p.step("Build").unwrap();
    let item: boa_core::Item = [("version".to_string(), "1.2.3".to_string())].into();

    // Nothing yet: the step's setting, and no object was created by reading.
    assert!(
        read_history(&objects, &cfg, "Build", &item)
            .await
            .unwrap()
            .elapsed_s
            .is_empty()
    );
    assert_eq!(
        expected_duration(&objects, &cfg, step, &item).await,
        Duration::from_secs(20 * 60)
    );
    assert!(objects.list("artifacts", "demo/").await.unwrap().is_empty());

    for s in [60.0, 600.0, 90.0] {
        record_duration(&objects, &cfg, "Build", &item, s)
            .await
            .unwrap();
    }
    let key = format!("demo/{}", duration_key("Build", &item));
    assert!(key.starts_with("demo/durations/Build/"), "{key}");
    let listed = objects.list("artifacts", "demo/").await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        [key.as_str()]
    );
    let h = read_history(&objects, &cfg, "Build", &item).await.unwrap();
    assert_eq!(h.elapsed_s, vec![60.0, 600.0, 90.0]);
    assert_eq!(
        expected_duration(&objects, &cfg, step, &item).await,
        Duration::from_secs(90),
        "the median"
    );
    // A step without the setting and without history: the documented fallback.
    let other: boa_core::Item = [("version".to_string(), "9.9.9".to_string())].into();
    let mut bare = step.clone();
    bare.expected_duration = None;
    assert_eq!(
        expected_duration(&objects, &cfg, &bare, &other).await,
        DEFAULT_EXPECTED_DURATION
    );

    // The step's hand-over history (each Prepare's time, kept by start-workers) beside it:
    // nothing before any Prepare, then the median of what was kept.
    use boa_aws::durations::{expected_hand_over, record_hand_over};
    assert_eq!(
        expected_hand_over(&objects, &cfg, "Build").await,
        Duration::ZERO
    );
    for s in [10.0, 50.0, 20.0] {
        record_hand_over(&objects, &cfg, "Build", s).await.unwrap();
    }
    assert_eq!(
        expected_hand_over(&objects, &cfg, "Build").await,
        Duration::from_secs(20)
    );
    let mut keys: Vec<String> = objects
        .list("artifacts", "demo/durations/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [key.clone(), "demo/durations/hand-over/Build.json".into()]
    );
}
