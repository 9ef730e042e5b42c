//! What an embedder configures: the engine's settings and its Lambda functions.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::objects::ObjectStore;
use crate::quotas::MAX_HISTORY_EVENTS;

/// Engine configuration.
#[derive(Clone)]
pub struct EngineConfig {
    /// Every wait (Wait states, retry intervals, TimeoutSeconds, HeartbeatSeconds, execution
    /// TimeoutSeconds) is divided by this. `100.0` turns a 60 s retry into 0.6 s.
    pub time_scale: f64,
    /// Seed of the RNG used for retry jitter (combined with the execution name).
    pub seed: u64,
    pub region: String,
    pub account_id: String,
    /// How long `GetActivityTask` holds a request when no task is pending (real time, not
    /// scaled). AWS uses 60 s; local runs want about 1 s.
    pub poll_wait: Duration,
    /// History event limit (AWS: 25,000).
    pub max_history_events: usize,
    /// Evaluate a retried Parallel's Parameters once, on its first attempt, and hand every retry
    /// that first result (so `$$.State.RetryCount` stays 0 in them), as some Step Functions
    /// implementations do. Off by default; the tests run the generated machine both ways.
    pub parallel_parameters_once: bool,
    /// When set, the loopback endpoint answers only requests signed with this access key id
    /// (the `Credential=` of their SigV4 `Authorization` header): a per-run secret handed to the
    /// run's own workers, so other users of the machine cannot take or complete its tasks.
    pub endpoint_access_key: Option<String>,
    /// Where a Distributed Map's `ItemReader` reads and its `ResultWriter` writes (the S3 calls
    /// `getObject`, `listObjectsV2`, `putObject`). `None`: such a Map fails the execution with
    /// `States.Runtime`. [`crate::FolderObjects`] keeps objects in a folder.
    pub objects: Option<Arc<dyn ObjectStore>>,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("time_scale", &self.time_scale)
            .field("seed", &self.seed)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .field("poll_wait", &self.poll_wait)
            .field("max_history_events", &self.max_history_events)
            .field("parallel_parameters_once", &self.parallel_parameters_once)
            .field(
                "endpoint_access_key",
                &self.endpoint_access_key.as_ref().map(|_| "<set>"),
            )
            .field("objects", &self.objects.as_ref().map(|_| "<object store>"))
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            seed: 0,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            poll_wait: Duration::from_secs(60),
            max_history_events: MAX_HISTORY_EVENTS,
            parallel_parameters_once: false,
            endpoint_access_key: None,
            objects: None,
        }
    }
}

impl EngineConfig {
    /// A duration of `secs` definition seconds, divided by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        boa_core::duration::scaled(d, self.time_scale)
    }
}

/// A failed Lambda invocation: its error name (`errorType`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

/// The embedder's Lambda functions.
#[async_trait::async_trait]
pub trait LambdaInvoker: Send + Sync {
    /// `function` is the function NAME (last ARN segment). Err = a Lambda error with its error
    /// name (error_type) and message.
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskFailure>;
}

/// A Lambda port with no functions: every Lambda task fails with
/// `Lambda.ResourceNotFoundException`, the error Step Functions reports for a function that
/// does not exist (<https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html>,
/// <https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html#API_Invoke_Errors>).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLambdas;

impl TaskFailure {
    /// The failure of invoking a function that does not exist.
    pub fn function_not_found(function: &str) -> Self {
        Self {
            error: "Lambda.ResourceNotFoundException".into(),
            cause: format!(
                "Function not found: {function} (the local engine has no such function)"
            ),
        }
    }
}

#[async_trait::async_trait]
impl LambdaInvoker for NoLambdas {
    async fn invoke(&self, function: &str, _payload: Value) -> Result<Value, TaskFailure> {
        Err(TaskFailure::function_not_found(function))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_scale_divides_durations() {
        let c = EngineConfig {
            time_scale: 100.0,
            ..EngineConfig::default()
        };
        assert_eq!(
            c.scaled(Duration::from_secs(60)),
            Duration::from_millis(600)
        );
        let bad = EngineConfig {
            time_scale: 0.0,
            ..EngineConfig::default()
        };
        assert_eq!(bad.scaled(Duration::from_secs(2)), Duration::from_secs(2));
    }
}
