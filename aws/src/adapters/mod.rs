//! Adapters: the ports over the real `aws-sdk-*` clients, one per service, and the only code of
//! build-on-aws that calls AWS. Each service maps its errors to [`PortError`] in one function
//! ([`ec2::map_error`], [`sfn::map_error`], [`s3::map_error`], [`logs::map_error`]) over
//! [`common_kind`], which takes throttling and transient codes from the SDK's own lists.
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

use aws_config::SdkConfig;
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;

use crate::ports::PortError;

/// The shared configuration of a process: region and credentials from the default chain
/// (Lambda's environment, the instance profile, the user's profile).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The worker's configuration: `region`, and placeholder credentials when it talks to a local
/// endpoint that checks no signature (which avoids a slow search of the default chain ending at
/// IMDS).
pub async fn load_worker_sdk_config(region: &str, local_endpoint: bool) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()));
    if local_endpoint && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
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
/// `Transient`, throttling codes `Throttled`, server faults `Transient`. `None` = a service error
/// the service's own table must decide; `code` is then its error code.
pub(crate) fn common_kind<E>(e: &SdkError<E, HttpResponse>) -> Result<(String, String), PortError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Err(PortError::Transient(message))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default().to_string();
            if THROTTLING_ERRORS.contains(&code.as_str()) {
                Err(PortError::Throttled(message))
            } else if SERVER_FAULTS.contains(&code.as_str())
                || TRANSIENT_ERRORS.contains(&code.as_str())
                || se.raw().status().is_server_error()
            {
                Err(PortError::Transient(message))
            } else {
                Ok((code, message))
            }
        }
        _ => Err(PortError::Other(message)),
    }
}

/// Converts an SDK timestamp.
fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
