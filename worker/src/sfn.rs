//! The worker's own [`Activities`] adapter over the real `aws-sdk-sfn` client.
//!
//! Two clients share one configuration: the poll client's operation timeout bounds a hung
//! `GetActivityTask` (AWS holds a poll for up to 60 s, so it must be ≥ 65 s on AWS), the other
//! bounds heartbeats and results. The SDK's own retries are off: the agent retries
//! [`PortError::is_retryable`] errors itself, with backoff.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use common::ports::{Activities, ActivityTask, PortError};

/// Operation timeout of every call but `GetActivityTask`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default operation timeout of `GetActivityTask` (AWS answers within 60 s).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(70);

/// Step Functions activities through `aws-sdk-sfn`.
#[derive(Debug, Clone)]
pub struct SfnActivityClient {
    poll: aws_sdk_sfn::Client,
    call: aws_sdk_sfn::Client,
}

impl SfnActivityClient {
    /// Builds the clients from a loaded AWS configuration, pointing them at `endpoint_url` when
    /// given (local mode, tests).
    pub fn new(
        shared: &aws_config::SdkConfig,
        endpoint_url: Option<&str>,
        poll_timeout: Duration,
    ) -> SfnActivityClient {
        let build = |timeout: Duration| {
            let mut b = aws_sdk_sfn::config::Builder::from(shared)
                .retry_config(RetryConfig::disabled())
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(10))
                        .operation_timeout(timeout)
                        .build(),
                );
            if let Some(u) = endpoint_url {
                b = b.endpoint_url(u);
            }
            aws_sdk_sfn::Client::from_conf(b.build())
        };
        SfnActivityClient {
            poll: build(poll_timeout),
            call: build(CALL_TIMEOUT),
        }
    }
}

/// Maps an SDK error to a port error: throttling and 5xx/timeouts/connection errors are
/// retryable, a dead task token is [`PortError::TaskGone`].
pub fn port_error<E>(e: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &e {
        SdkError::TimeoutError(_) => PortError::Transient("request timed out".into()),
        SdkError::DispatchFailure(d) => PortError::Transient(format!("connection failed: {d:?}")),
        SdkError::ResponseError(_) => PortError::Transient("unreadable response".into()),
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("").to_string();
            let msg = s.err().message().unwrap_or("").to_string();
            let text = format!("{code}: {msg}");
            let status = s.raw().status().as_u16();
            match code.as_str() {
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded" => PortError::Throttled(text),
                "TaskTimedOut" | "InvalidToken" | "TaskDoesNotExist" => PortError::TaskGone(text),
                "ServiceUnavailable"
                | "InternalFailure"
                | "InternalServerError"
                | "ServiceUnavailableException" => PortError::Transient(text),
                _ if (500..600).contains(&status) => {
                    PortError::Transient(format!("server error {text}"))
                }
                _ => PortError::Other(text),
            }
        }
        _ => PortError::Other(format!("{e:?}")),
    }
}

#[async_trait]
impl Activities for SfnActivityClient {
    async fn get_task(
        &self,
        activity_arn: &str,
        worker_name: &str,
    ) -> Result<Option<ActivityTask>, PortError> {
        let out = self
            .poll
            .get_activity_task()
            .activity_arn(activity_arn)
            .worker_name(worker_name)
            .send()
            .await
            .map_err(port_error)?;
        Ok(match out.task_token() {
            Some(t) if !t.is_empty() => Some(ActivityTask {
                token: t.to_string(),
                input: out.input().unwrap_or("{}").to_string(),
            }),
            _ => None,
        })
    }

    async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
        self.call
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn succeed(&self, token: &str, output: &str) -> Result<(), PortError> {
        self.call
            .send_task_success()
            .task_token(token)
            .output(output)
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }

    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError> {
        self.call
            .send_task_failure()
            .task_token(token)
            .error(error)
            .cause(cause)
            .send()
            .await
            .map_err(port_error)?;
        Ok(())
    }
}
