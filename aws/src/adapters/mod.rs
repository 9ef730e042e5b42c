//! Adapters: the ports over the real `aws-sdk-*` clients, one per service, and the only code of
//! build-on-aws that calls AWS. Each service maps its errors to [`PortError`] in one function
//! ([`ec2::map_error`], [`sfn::map_error`], [`s3::map_error`], [`logs::map_error`]) over
//! `common_kind`, which takes throttling and transient codes from the SDK's own lists.
//! Coverage against moto_server: see `README-coverage.md` beside this file.
//!
//! # Who retries what
//!
//! Every call has exactly one retry owner; the other is off:
//!
//! | calls | owner | why |
//! | --- | --- | --- |
//! | EC2 ([`Ec2Fleet`]): RunInstances, DescribeInstances, CreateTags, TerminateInstances | ours: [`crate::backoff::retry`] with `Backoff::LAUNCH` (Lambdas) or `Backoff::WORKER` (worker tags); the client's retries are off ([`without_sdk_retries`]) | a capacity error must move on to the next type at once, and throttling is bounded by the Lambda's time, not the SDK's 3 tries stacked under ours |
//! | the worker's Step Functions activity calls ([`SfnActivities`]) and CloudWatch Logs ([`CloudWatchLogs`]) | ours, `Backoff::WORKER`; client retries off | the worker outlives long outages (8 tries up to 20 s apart) and must not lose a result |
//! | S3 ([`S3Objects`]), the health check's and the CLI's Step Functions calls ([`SfnExecutions`], StartExecution, DescribeExecution…) | the SDK's standard retry (3 tries, its own throttling and transient lists); never wrapped in ours | one-shot reads and writes where the SDK's policy is enough; the caller fails, or tries again next round |

pub mod ec2;
pub mod logs;
pub mod s3;
pub mod sfn;

pub use ec2::Ec2Fleet;
pub use logs::CloudWatchLogs;
pub use s3::S3Objects;
pub use sfn::{SfnActivities, SfnExecutions};

/// The SDK configuration every adapter is built from (re-exported so that embedders need not name
/// the SDK).
pub use aws_config::SdkConfig;
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;

use crate::ports::PortError;

/// The shared configuration of a process: region and credentials from the default chain
/// (Lambda's environment, the instance profile, the user's profile).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The HTTPS client of every AWS call: the SDK's own (hyper 1, rustls) with ring as its crypto
/// and the system's certificate authorities. Chosen here rather than by the SDK's default
/// feature, which builds aws-lc from C on the test build's critical path.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    rustls_client(aws_smithy_http_client::tls::TlsContext::default())
}

/// The SDK's hyper 1 + rustls client with ring, trusting what `tls` trusts.
fn rustls_client(
    tls: aws_smithy_http_client::tls::TlsContext,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https()
}

/// The worker's configuration: `region`; with a local `endpoint` (one that checks no
/// signature), placeholder credentials, which avoids a slow search of the default chain ending at
/// IMDS, and over plain HTTP [`local_http_client`].
pub async fn load_worker_sdk_config(region: &str, endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()));
    loader = loader.http_client(match endpoint {
        Some(url) if url.starts_with("http://") => local_http_client(),
        _ => https_client(),
    });
    if endpoint.is_some() && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            "local",
            "local",
            None,
            None,
            "build-on-aws-local",
        ));
    }
    loader.load().await
}

/// The HTTP client of a process that talks only to local endpoints (`http://127.0.0.1:…`): the
/// SDK's own client, trusting no certificate authority. The default client parses every
/// certificate of the system's store when it is first used: a few milliseconds on an instance's
/// own CPU on AWS, but a local run starts hundreds of workers on the machine's shared cores,
/// where that parsing delayed the results of the tasks already running. Only for `http://`
/// endpoints: an `https://` one is refused (no certificate can be verified).
pub fn local_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let no_roots = tls::TlsContext::builder()
        .with_trust_store(tls::TrustStore::empty().with_native_roots(false))
        .build()
        .expect("an empty trust store is a valid TLS context");
    rustls_client(no_roots)
}

/// The configuration of a client of a local Step Functions endpoint (the embedded engine's):
/// `endpoint_url`, region `region`, and `access_key` as the access key id, which such an endpoint
/// may require (a local run's per-run secret); the secret key is not checked. Nothing is read from
/// the environment's credential chain.
pub async fn local_endpoint_config(
    endpoint_url: &str,
    region: &str,
    access_key: &str,
) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint_url)
        .http_client(local_http_client())
        .credentials_provider(aws_credential_types::Credentials::new(
            access_key,
            "local",
            None,
            None,
            "build-on-aws-local",
        ))
        .load()
        .await
}

/// `shared` with the SDK's retries off, for the clients whose calls we retry ourselves.
pub fn without_sdk_retries(shared: &SdkConfig) -> SdkConfig {
    shared
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

/// Error codes of a passing service fault (a 5xx status is one too).
const SERVER_FAULTS: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
];

/// The part of error mapping every service shares: transport failures and timeouts are
/// `Transient`, throttling codes `Throttled`, server faults `Transient`; every message names
/// `service` and `operation`. `Ok` = a service error the service's own table must decide: its
/// error code (`HTTP <status>` when the answer carried none, as for a HEAD) and message.
pub(crate) fn common_kind<E>(
    service: &str,
    operation: &str,
    e: &SdkError<E, HttpResponse>,
) -> Result<(String, String), PortError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Err(PortError::Transient(format!(
                "{service} {operation}: {detail}"
            )))
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status();
            let code = match se.err().code() {
                Some(c) if !c.is_empty() => c.to_string(),
                _ => format!("HTTP {}", status.as_u16()),
            };
            let message = se
                .err()
                .message()
                .filter(|m| !m.is_empty())
                .map_or(detail, str::to_string);
            if THROTTLING_ERRORS.contains(&code.as_str()) {
                Err(PortError::Throttled(format!(
                    "{service} {operation} {code}: {message}"
                )))
            } else if SERVER_FAULTS.contains(&code.as_str())
                || TRANSIENT_ERRORS.contains(&code.as_str())
                || status.is_server_error()
            {
                Err(PortError::Transient(format!(
                    "{service} {operation} {code}: {message}"
                )))
            } else {
                Ok((code, message))
            }
        }
        _ => Err(PortError::Other(format!("{service} {operation}: {detail}"))),
    }
}

/// Converts an SDK timestamp.
fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use crate::ports::PortError;
    use boa_core::errors::ErrorName;

    fn refused<E>(
        make: impl Fn(ErrorMetadata) -> E,
        status: u16,
        code: Option<&str>,
    ) -> SdkError<E, HttpResponse> {
        let mut meta = ErrorMetadata::builder().message("Access Denied");
        if let Some(c) = code {
            meta = meta.code(c);
        }
        SdkError::service_error(
            make(meta.build()),
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn a_refused_call_names_the_service_the_operation_and_the_code() {
        use aws_sdk_s3::operation::head_object::HeadObjectError;
        let e = super::s3::map_error(
            "HeadObject",
            refused(HeadObjectError::generic, 403, Some("AccessDenied")),
        );
        assert_eq!(
            e,
            PortError::call("S3", "HeadObject", "AccessDenied", "Access Denied")
        );
        assert_eq!(e.to_string(), "S3 HeadObject AccessDenied: Access Denied");
        assert_eq!(e.name(), ErrorName::AwsCallFailed);
        assert!(!e.is_retryable());

        use aws_sdk_sfn::operation::list_executions::ListExecutionsError;
        let e = super::sfn::map_error(
            "ListExecutions",
            refused(ListExecutionsError::generic, 400, Some("InvalidArn")),
        );
        assert_eq!(
            e.to_string(),
            "SFN ListExecutions InvalidArn: Access Denied"
        );
        assert_eq!(e.name(), ErrorName::AwsCallFailed);

        use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
        let e = super::logs::map_error(
            "PutLogEvents",
            refused(
                PutLogEventsError::generic,
                400,
                Some("AccessDeniedException"),
            ),
        );
        assert_eq!(
            e.to_string(),
            "CloudWatchLogs PutLogEvents AccessDeniedException: Access Denied"
        );
    }

    #[test]
    fn an_answer_without_a_code_is_named_by_its_status() {
        use aws_sdk_s3::operation::head_object::HeadObjectError;
        let e = super::s3::map_error("HeadObject", refused(HeadObjectError::generic, 403, None));
        assert_eq!(e.code(), Some("HTTP 403"));
        assert!(e.to_string().starts_with("S3 HeadObject HTTP 403: "), "{e}");
        // A bare 404 is "not found", as S3 answers a HEAD of a missing key.
        let e = super::s3::map_error("HeadObject", refused(HeadObjectError::generic, 404, None));
        assert!(matches!(e, PortError::NotFound(_)), "{e:?}");
    }

    #[test]
    fn throttling_and_faults_keep_their_kind_and_name_the_call() {
        use aws_sdk_ec2::operation::run_instances::RunInstancesError;
        let e = super::ec2::map_error(
            "RunInstances",
            refused(
                RunInstancesError::generic,
                503,
                Some("RequestLimitExceeded"),
            ),
        );
        assert!(
            matches!(&e, PortError::Throttled(m) if m.starts_with("EC2 RunInstances RequestLimitExceeded")),
            "{e:?}"
        );
        let e = super::ec2::map_error(
            "RunInstances",
            refused(RunInstancesError::generic, 500, Some("InternalError")),
        );
        assert!(
            matches!(&e, PortError::Transient(m) if m.starts_with("EC2 RunInstances InternalError")),
            "{e:?}"
        );
        let e = super::ec2::map_error(
            "RunInstances",
            refused(
                RunInstancesError::generic,
                400,
                Some("InvalidAMIID.NotFound"),
            ),
        );
        assert_eq!(e.code(), Some("InvalidAMIID.NotFound"));
        // A refused launch stays Ec2.LaunchFailed; any other refused call is Aws.CallFailed.
        assert_eq!(e.launch_name(), ErrorName::Ec2LaunchFailed);
        assert_eq!(e.name(), ErrorName::AwsCallFailed);
    }
}

#[cfg(test)]
mod http_client_tests {
    /// The SDK's default HTTPS client is not built (no `default-https-client` feature): a
    /// configuration without one of ours would fail every call at run time.
    #[tokio::test]
    async fn every_configuration_carries_an_http_client() {
        let on_aws = super::load_worker_sdk_config("us-east-1", None).await;
        assert!(on_aws.http_client().is_some());
        let local = super::load_worker_sdk_config("us-east-1", Some("http://127.0.0.1:1")).await;
        assert!(local.http_client().is_some());
        let engine = super::local_endpoint_config("http://127.0.0.1:1", "us-east-1", "key").await;
        assert!(engine.http_client().is_some());
    }
}
