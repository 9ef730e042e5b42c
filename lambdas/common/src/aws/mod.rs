//! Adapters: the ports over the real `aws-sdk-*` clients, one per service. Each service maps its
//! errors to [`PortError`] in one function ([`ec2::map_error`], [`sfn::map_error`],
//! [`s3::map_error`]). Coverage against moto_server: see `README-coverage.md` beside this file.

pub mod ec2;
pub mod s3;
pub mod sfn;

pub use ec2::Ec2Fleet;
pub use s3::S3Objects;
pub use sfn::{SfnActivities, SfnExecutions};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::ports::PortError;

/// Error codes that mean "slow down", across services.
const THROTTLING: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "EC2ThrottledException",
];

/// Error codes of a passing service fault.
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
fn common_kind<E, R>(e: &SdkError<E, R>) -> Result<(String, String), PortError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let message = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Err(PortError::Transient(message))
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default().to_string();
            if THROTTLING.contains(&code.as_str()) {
                Err(PortError::Throttled(message))
            } else if SERVER_FAULTS.contains(&code.as_str()) {
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
