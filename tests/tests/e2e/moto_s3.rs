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
    let objects = S3Objects(s3);
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
    let objects = S3Objects(s3);
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
    let objects = S3Objects(s3);
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
