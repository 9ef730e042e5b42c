//! The one table of error names.
//!
//! Every Lambda error (`error_type`), every worker failure (`SendTaskFailure.error`), every
//! `ErrorEquals` the generator writes and every error the local engine raises comes from here.

use serde::{Deserialize, Serialize};

/// A stable, named error of build-on-aws. The string form is what Step Functions sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorName {
    /// The build input is malformed or names something the pipeline does not have. Never retried.
    #[serde(rename = "Input.Invalid")]
    InputInvalid,
    /// An AWS API throttled us after our own retries.
    #[serde(rename = "Aws.Throttled")]
    AwsThrottled,
    /// No instance type / market had capacity.
    #[serde(rename = "Ec2.NoCapacity")]
    Ec2NoCapacity,
    /// EC2 refused the launch for another reason (bad AMI, subnet, permissions…).
    #[serde(rename = "Ec2.LaunchFailed")]
    Ec2LaunchFailed,
    /// Any other failed AWS call (service, operation and AWS code in the cause).
    #[serde(rename = "Aws.CallFailed")]
    AwsCallFailed,
    /// The step's script exited non-zero.
    #[serde(rename = "Worker.ScriptFailed")]
    WorkerScriptFailed,
    /// The worker was interrupted (spot notice, SIGTERM, shutdown): retried at once, outside the failure budget.
    #[serde(rename = "Worker.Interrupted")]
    WorkerInterrupted,
    /// A test-mode failure that must never be retried.
    #[serde(rename = "Test.NoRetry")]
    TestNoRetry,
    /// Raised by CheckForFailures when any task failed. Never retried.
    #[serde(rename = "Build.Failed")]
    BuildFailed,
}

impl ErrorName {
    /// Every name, in table order.
    pub const ALL: [ErrorName; 9] = [
        ErrorName::InputInvalid,
        ErrorName::AwsThrottled,
        ErrorName::Ec2NoCapacity,
        ErrorName::Ec2LaunchFailed,
        ErrorName::AwsCallFailed,
        ErrorName::WorkerScriptFailed,
        ErrorName::WorkerInterrupted,
        ErrorName::TestNoRetry,
        ErrorName::BuildFailed,
    ];

    /// The name as Step Functions sees it, e.g. `Worker.ScriptFailed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorName::InputInvalid => "Input.Invalid",
            ErrorName::AwsThrottled => "Aws.Throttled",
            ErrorName::Ec2NoCapacity => "Ec2.NoCapacity",
            ErrorName::Ec2LaunchFailed => "Ec2.LaunchFailed",
            ErrorName::AwsCallFailed => "Aws.CallFailed",
            ErrorName::WorkerScriptFailed => "Worker.ScriptFailed",
            ErrorName::WorkerInterrupted => "Worker.Interrupted",
            ErrorName::TestNoRetry => "Test.NoRetry",
            ErrorName::BuildFailed => "Build.Failed",
        }
    }

    /// Parses a name as Step Functions reports it.
    pub fn parse(s: &str) -> Option<ErrorName> {
        ErrorName::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether a retrier may ever retry this error.
    pub const fn is_retryable(self) -> bool {
        !matches!(
            self,
            ErrorName::InputInvalid | ErrorName::TestNoRetry | ErrorName::BuildFailed
        )
    }
}

impl std::fmt::Display for ErrorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Step Functions' own error names that we match on.
pub mod states {
    pub const ALL: &str = "States.ALL";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const TASK_FAILED: &str = "States.TaskFailed";
}

/// An error with a stable name and a human-readable message: what a Lambda handler returns.
///
/// `boa_aws::lambda::diagnostic` makes the name the Lambda `errorType`, which is what Step
/// Functions matches `ErrorEquals` against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct NamedError {
    pub name: ErrorName,
    pub message: String,
}

impl NamedError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        NamedError {
            name,
            message: message.into(),
        }
    }
    pub fn input(message: impl Into<String>) -> Self {
        NamedError::new(ErrorName::InputInvalid, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_string_and_serde() {
        for e in ErrorName::ALL {
            assert_eq!(ErrorName::parse(e.as_str()), Some(e));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.as_str()));
        }
        assert_eq!(ErrorName::parse("Worker.Scriptfailed"), None);
    }

    #[test]
    fn only_the_final_errors_are_not_retryable() {
        let never: Vec<_> = ErrorName::ALL
            .into_iter()
            .filter(|e| !e.is_retryable())
            .collect();
        assert_eq!(
            never,
            [
                ErrorName::InputInvalid,
                ErrorName::TestNoRetry,
                ErrorName::BuildFailed
            ]
        );
    }
}
