//! Ports: the small traits through which handlers, the worker and the health check use AWS.
//!
//! Each has an adapter over the real `aws-sdk-*` client (see [`crate::adapters`]), fakes in tests,
//! and local implementations in the embedded engine.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use boa_core::errors::{ErrorName, NamedError};
use boa_core::history_event::EventType;

/// Errors any port can return. Adapters map AWS errors to these in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Throttled (RequestLimitExceeded, ThrottlingException…): retry with backoff.
    #[error("throttled: {0}")]
    Throttled(String),
    /// No capacity for this instance type / market (InsufficientInstanceCapacity, spot capacity).
    #[error("no capacity: {0}")]
    NoCapacity(String),
    /// A transient network or service error: retry.
    #[error("transient: {0}")]
    Transient(String),
    /// The task token is no longer valid (TaskTimedOut, InvalidToken, TaskDoesNotExist).
    #[error("task gone: {0}")]
    TaskGone(String),
    /// Not found (e.g. an execution or object).
    #[error("not found: {0}")]
    NotFound(String),
    /// An AWS call the service refused with an error code no retry fixes (AccessDenied,
    /// InvalidParameterValue…): names the service, the operation and the code, e.g.
    /// "S3 HeadObject AccessDenied: Access Denied".
    #[error("{service} {operation} {code}: {message}")]
    Call {
        /// e.g. `S3`, `EC2`, `SFN`, `CloudWatchLogs`.
        service: String,
        /// The API operation, e.g. `HeadObject`.
        operation: String,
        /// The AWS error code, e.g. `AccessDenied` (`HTTP <status>` when the answer had none).
        code: String,
        message: String,
    },
    /// Anything else: final.
    #[error("{0}")]
    Other(String),
}

impl PortError {
    /// A refused call of `service` `operation` with AWS error `code`.
    pub fn call(service: &str, operation: &str, code: &str, message: impl Into<String>) -> Self {
        PortError::Call {
            service: service.to_string(),
            operation: operation.to_string(),
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The AWS error code of a refused call.
    pub fn code(&self) -> Option<&str> {
        match self {
            PortError::Call { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A refusal (403): how S3 also answers a GetObject of a missing key to a caller that may
    /// not list the bucket.
    pub fn is_access_denied(&self) -> bool {
        self.code()
            .is_some_and(|c| c == "AccessDenied" || c == "HTTP 403")
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, PortError::Throttled(_) | PortError::Transient(_))
    }

    /// The stable error name a Lambda reports for this error.
    pub fn name(&self) -> ErrorName {
        match self {
            PortError::Throttled(_) => ErrorName::AwsThrottled,
            PortError::NoCapacity(_) => ErrorName::Ec2NoCapacity,
            _ => ErrorName::AwsCallFailed,
        }
    }

    /// The stable error name of a failed RunInstances: a refusal that no retry can fix (bad AMI,
    /// not authorized, invalid parameter…) is `Ec2.LaunchFailed`.
    pub fn launch_name(&self) -> ErrorName {
        match self {
            PortError::Throttled(_) => ErrorName::AwsThrottled,
            PortError::NoCapacity(_) => ErrorName::Ec2NoCapacity,
            PortError::Transient(_) => ErrorName::AwsCallFailed,
            _ => ErrorName::Ec2LaunchFailed,
        }
    }

    /// Whether a failed RunInstances is a refusal that retrying cannot fix.
    pub fn is_permanent_launch_error(&self) -> bool {
        self.launch_name() == ErrorName::Ec2LaunchFailed
    }
}

impl From<PortError> for NamedError {
    fn from(e: PortError) -> Self {
        NamedError::new(e.name(), e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// EC2

/// Spot or on-demand, for one launch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purchase {
    Spot,
    OnDemand,
}

/// One RunInstances request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub count: u32,
    pub instance_type: String,
    pub purchase: Purchase,
    /// Idempotency token: the same token never launches twice.
    pub client_token: String,
    pub ami: String,
    pub disk_gb: u32,
    /// IMDSv2 PUT response hop limit (1: containers on the instance cannot reach IMDS).
    pub imds_hop_limit: u32,
    /// Instance profile name; empty = none.
    pub instance_profile: String,
    pub subnet: Option<String>,
    pub security_groups: Vec<String>,
    /// Plain text; the adapter base64-encodes it.
    pub user_data: String,
    pub tags: BTreeMap<String, String>,
}

/// EC2 instance states we care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Stopping,
    Stopped,
    Terminated,
}

impl InstanceState {
    /// Pending or running: counts as a worker.
    pub fn is_live(self) -> bool {
        matches!(self, InstanceState::Pending | InstanceState::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub instance_type: String,
    pub launch_time: Option<DateTime<Utc>>,
    pub tags: BTreeMap<String, String>,
}

/// What we use of EC2.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// One RunInstances call; returns the ids launched (possibly fewer than asked).
    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<String>, PortError>;
    /// Instances (any state but terminated) carrying all the given tags.
    async fn instances(&self, tags: &[(String, String)]) -> Result<Vec<Instance>, PortError>;
    async fn tag(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), PortError>;
    async fn terminate(&self, instance_ids: &[String]) -> Result<(), PortError>;
}

// ---------------------------------------------------------------------------------------------
// Step Functions: executions (health check) and activities (worker)

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    pub arn: String,
    pub name: String,
    pub start: Option<DateTime<Utc>>,
}

/// A history event, reduced to what we read. `kind` is AWS's event type (serialized as its name,
/// e.g. `"ActivityScheduled"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub id: i64,
    pub previous_event_id: i64,
    pub kind: EventType,
    pub timestamp: Option<DateTime<Utc>>,
    /// For `ActivityScheduled`: the activity ARN.
    pub resource: Option<String>,
    /// For `*StateEntered`/`*StateExited`: the state name.
    pub state_name: Option<String>,
    /// State input/output or task output, when the event has one.
    pub payload: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// What we use of Step Functions executions.
#[async_trait]
pub trait Executions: Send + Sync {
    async fn running(&self, state_machine_arn: &str) -> Result<Vec<ExecutionSummary>, PortError>;
    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, PortError>;
    /// The RUNNING child executions of an execution's Distributed Maps (every Map Run's). An
    /// execution with no Distributed Map has none.
    async fn running_children(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<ExecutionSummary>, PortError>;
    /// Whether an execution still runs: false once it has ended (succeeded, failed, timed out
    /// or aborted).
    async fn is_running(&self, execution_arn: &str) -> Result<bool, PortError>;
    /// Starts an execution of `state_machine_arn` named `name` with `input` (JSON text) and
    /// returns its ARN. A name already used is not an error (`Ok(None)`): execution names are
    /// how callers make a retried start idempotent.
    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<Option<String>, PortError>;
}

/// A task handed out by GetActivityTask.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTask {
    pub token: String,
    /// The task input: a JSON document as a string.
    pub input: String,
}

/// What a worker uses of Step Functions activities.
#[async_trait]
pub trait Activities: Send + Sync {
    /// Long poll; `None` when no task came within the poll time.
    async fn get_task(
        &self,
        activity_arn: &str,
        worker_name: &str,
    ) -> Result<Option<ActivityTask>, PortError>;
    async fn heartbeat(&self, token: &str) -> Result<(), PortError>;
    async fn succeed(&self, token: &str, output: &str) -> Result<(), PortError>;
    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError>;
}

// ---------------------------------------------------------------------------------------------
// S3

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub last_modified: Option<DateTime<Utc>>,
}

/// What we use of S3.
#[async_trait]
pub trait Objects: Send + Sync {
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, PortError>;
    /// An object's body; `Ok(None)` when there is no such key.
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, PortError>;
    /// Writes (or overwrites) a small object.
    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), PortError>;
    /// How many objects have keys starting with `prefix` (every page counted).
    async fn count(&self, bucket: &str, prefix: &str) -> Result<u64, PortError> {
        Ok(self.list(bucket, prefix).await?.len() as u64)
    }
    /// Writes an object only if no object has that key (`If-None-Match: *`): `Ok(true)` when
    /// this call created it, `Ok(false)` when it existed (or a concurrent write won).
    async fn create(&self, bucket: &str, key: &str, body: &[u8]) -> Result<bool, PortError>;
    /// The objects whose keys start with `prefix` (every page), in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, PortError>;
    /// A presigned GET URL valid for `expires_s` seconds.
    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_s: u64,
    ) -> Result<String, PortError>;
}

// ---------------------------------------------------------------------------------------------
// Tags

pub use boa_core::names::tags;

/// Where a worker's log goes: a local file, or a CloudWatch Logs stream
/// ([`crate::adapters::CloudWatchLogs`]).
#[async_trait]
pub trait LogSink: Send + Sync {
    /// Records one line (without its newline). Never blocks on the network.
    fn line(&self, at: DateTime<Utc>, text: &str);
    /// Pushes every buffered line out.
    async fn flush(&self);
}
