//! Refused AWS calls are named by service, operation and AWS error code (`Aws.CallFailed`), through
//! the real aws-sdk-s3 client against a moto_server that checks every request against its IAM.

use aws_credential_types::Credentials;
use boa_aws::adapters::S3Objects;
use boa_aws::ports::{Objects, PortError};
use boa_core::errors::{ErrorName, NamedError};
use e2e_tests::moto::Moto;

/// One IAM query call, unsigned: moto answers it while its no-auth allowance lasts.
async fn iam(moto: &Moto, params: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = vec![("Version", "2010-05-08")];
    form.extend_from_slice(params);
    let r = reqwest::Client::new()
        .post(moto.endpoint_url())
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            form.iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        )
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status.is_success(), "{params:?}: {status} {body}");
    body
}

/// Percent-encodes a form value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn between<'a>(body: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = body
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {body}"))
        + open.len();
    let end = body[start..].find(&format!("</{tag}>")).unwrap() + start;
    &body[start..end]
}

#[tokio::test]
async fn a_done_check_without_permission_is_aws_call_failed_naming_s3_the_operation_and_the_code() {
    // Two buckets, a user who may read only `artifacts`: five requests without checks, then
    // moto checks each request against its IAM.
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "5")]);
    let admin = moto.s3().await;
    for b in ["artifacts", "releases"] {
        admin.create_bucket().bucket(b).send().await.unwrap();
    }
    iam(&moto, &[("Action", "CreateUser"), ("UserName", "worker")]).await;
    let key = iam(
        &moto,
        &[("Action", "CreateAccessKey"), ("UserName", "worker")],
    )
    .await;
    let policy = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::artifacts", "arn:aws:s3:::artifacts/*"]}]}"#;
    iam(
        &moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "worker"),
            ("PolicyName", "artifacts-only"),
            ("PolicyDocument", policy),
        ],
    )
    .await;
    let creds = Credentials::new(
        between(&key, "AccessKeyId"),
        between(&key, "SecretAccessKey"),
        None,
        None,
        "moto-iam",
    );
    let cfg = aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    let objects = S3Objects::from_client(aws_sdk_s3::Client::from_conf(cfg));

    // What the user may read answers as before: a missing key is "not done".
    assert!(
        !objects
            .exists("artifacts", "4.28.2/out.tar.gz")
            .await
            .unwrap()
    );
    // A done-check on the bucket it may not read is a refused call, not "not done", and not a
    // launch failure.
    let e = objects
        .exists("releases", "4.28.2/out.tar.gz")
        .await
        .expect_err("a HEAD without permission is refused");
    assert!(matches!(e, PortError::Call { .. }), "{e:?}");
    let named = NamedError::from(e.clone());
    assert_eq!(named.name, ErrorName::AwsCallFailed, "{named}");
    assert!(
        named.message.starts_with("S3 HeadObject "),
        "the cause names the service and the operation: {named}"
    );
    assert!(
        e.code().is_some_and(|c| !c.is_empty()),
        "the cause names the code: {e:?}"
    );
    // A GET has a body: the code is S3's own.
    let e = objects
        .get("releases", "4.28.2/out.tar.gz")
        .await
        .expect_err("a GET without permission is refused");
    assert_eq!(e.code(), Some("AccessDenied"), "{e:?}");
    assert!(
        e.to_string().starts_with("S3 GetObject AccessDenied: "),
        "{e}"
    );
    assert_eq!(e.name(), ErrorName::AwsCallFailed);
}
