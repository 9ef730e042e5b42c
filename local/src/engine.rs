//! The embedding API: [`Engine`], its configuration, the Lambda port, and execution handles.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};

use crate::asl::parse::{self, StateMachine};
use crate::broker::ActivityBroker;
use crate::error::{EngineError, StatesError};
use crate::history::{Counts, History, HistoryEvent};
use crate::interpreter::Run;

/// AWS payload quota (256 KiB) for state input/output, task results and execution input.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;
/// AWS history quota for a Standard workflow execution.
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// Engine configuration.
#[derive(Debug, Clone)]
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
        }
    }
}

impl EngineConfig {
    /// A duration of `secs` definition seconds, divided by the time scale.
    pub fn scaled(&self, d: Duration) -> Duration {
        let scale = if self.time_scale.is_finite() && self.time_scale > 0.0 {
            self.time_scale
        } else {
            1.0
        };
        Duration::from_secs_f64(d.as_secs_f64() / scale)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// The outcome of an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionResult {
    pub execution_arn: String,
    pub status: ExecutionStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub counts: Counts,
}

/// Like AWS `ListExecutions` items / `DescribeExecution`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionSummary {
    pub execution_arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub status: ExecutionStatus,
    pub start_date: DateTime<Utc>,
    pub stop_date: Option<DateTime<Utc>>,
    pub input: Value,
    pub output: Option<Value>,
}

pub(crate) struct Execution {
    pub(crate) arn: String,
    pub(crate) name: String,
    pub(crate) state_machine_arn: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) input: Value,
    pub(crate) history: History,
    done: watch::Sender<Option<ExecutionResult>>,
    finish_lock: Mutex<Option<DateTime<Utc>>>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Execution {
    fn summary(&self) -> ExecutionSummary {
        let res = self.done.borrow().clone();
        ExecutionSummary {
            execution_arn: self.arn.clone(),
            name: self.name.clone(),
            state_machine_arn: self.state_machine_arn.clone(),
            status: res.as_ref().map_or(ExecutionStatus::Running, |r| r.status),
            start_date: self.start,
            stop_date: *self.finish_lock.lock().unwrap_or_else(|p| p.into_inner()),
            input: self.input.clone(),
            output: res.and_then(|r| r.output),
        }
    }

    /// Records the terminal event and publishes the result, once.
    pub(crate) fn finish(&self, status: ExecutionStatus, outcome: Result<Value, StatesError>) {
        let mut stopped = self.finish_lock.lock().unwrap_or_else(|p| p.into_inner());
        if stopped.is_some() {
            return;
        }
        *stopped = Some(Utc::now());
        let prev = self.history.last_id();
        let (kind, output, error, cause) = match (&status, outcome) {
            (ExecutionStatus::Succeeded, Ok(v)) => ("ExecutionSucceeded", Some(v), None, None),
            (_, Ok(_)) => ("ExecutionFailed", None, None, None),
            (s, Err(e)) => (
                match s {
                    ExecutionStatus::TimedOut => "ExecutionTimedOut",
                    ExecutionStatus::Aborted => "ExecutionAborted",
                    _ => "ExecutionFailed",
                },
                None,
                Some(e.error),
                Some(e.cause),
            ),
        };
        let details = match &output {
            Some(o) => json!({"output": o.to_string()}),
            None => json!({"error": error, "cause": cause}),
        };
        self.history.record_final(prev, kind, details);
        tracing::info!(execution = %self.arn, ?status, "execution finished");
        let result = ExecutionResult {
            execution_arn: self.arn.clone(),
            status,
            output,
            error,
            cause,
            counts: self.history.counts(),
        };
        self.done.send_replace(Some(result));
    }
}

pub(crate) struct EngineInner {
    pub(crate) config: EngineConfig,
    pub(crate) lambdas: Arc<dyn LambdaInvoker>,
    pub(crate) broker: ActivityBroker,
    executions: Mutex<BTreeMap<String, Arc<Execution>>>,
    order: Mutex<Vec<String>>,
    endpoint: OnceCell<SocketAddr>,
}

/// The embedded Step Functions engine. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

/// A started execution.
#[derive(Debug, Clone)]
pub struct ExecutionHandle {
    arn: String,
    rx: watch::Receiver<Option<ExecutionResult>>,
}

impl ExecutionHandle {
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Waits for the execution to end.
    pub async fn wait(mut self) -> ExecutionResult {
        match self.rx.wait_for(Option::is_some).await {
            Ok(r) => r
                .clone()
                .unwrap_or_else(|| unreachable!("wait_for returned None")),
            // The sender lives in the execution record, which the engine keeps.
            Err(_) => ExecutionResult {
                execution_arn: self.arn.clone(),
                status: ExecutionStatus::Aborted,
                output: None,
                error: Some("States.Runtime".into()),
                cause: Some("the engine was dropped".into()),
                counts: Counts::default(),
            },
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Engine {
    pub fn new(config: EngineConfig, lambdas: Arc<dyn LambdaInvoker>) -> Self {
        let broker = ActivityBroker::new(&config.region, &config.account_id);
        Self {
            inner: Arc::new(EngineInner {
                config,
                lambdas,
                broker,
                executions: Mutex::new(BTreeMap::new()),
                order: Mutex::new(Vec::new()),
                endpoint: OnceCell::new(),
            }),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The activity broker (pending tasks per activity, claim notifications, direct claiming).
    pub fn broker(&self) -> &ActivityBroker {
        &self.inner.broker
    }

    /// Starts (once) the loopback activity endpoint and returns its address.
    pub async fn activity_endpoint(&self) -> std::io::Result<SocketAddr> {
        let broker = self.inner.broker.clone();
        let wait = self.inner.config.poll_wait;
        self.inner
            .endpoint
            .get_or_try_init(|| async move {
                crate::endpoint::serve(broker, wait, ([127, 0, 0, 1], 0).into())
                    .await
                    .map(|(addr, _task)| addr)
            })
            .await
            .copied()
    }

    /// The ARN of a state machine given its name (or the ARN itself).
    pub fn state_machine_arn(&self, arn_or_name: &str) -> String {
        if arn_or_name.starts_with("arn:") {
            arn_or_name.to_string()
        } else {
            format!(
                "arn:aws:states:{}:{}:stateMachine:{arn_or_name}",
                self.inner.config.region, self.inner.config.account_id
            )
        }
    }

    /// Starts an execution. `execution_name` defaults to a UUID. Must be called inside a Tokio
    /// runtime. The definition is parsed first; errors name the bad state and field.
    pub fn start_execution(
        &self,
        state_machine: &str,
        definition: &Value,
        execution_name: Option<&str>,
        input: Value,
    ) -> Result<ExecutionHandle, EngineError> {
        let machine: StateMachine = parse::parse_definition(definition)?;
        let sm_arn = self.state_machine_arn(state_machine);
        let sm_name = sm_arn.rsplit(':').next().unwrap_or_default().to_string();
        let name = execution_name
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if !valid_name(&name) {
            return Err(EngineError::InvalidName(name));
        }
        let input_len = input.to_string().len();
        if input_len > MAX_PAYLOAD_BYTES {
            return Err(EngineError::InvalidExecutionInput(format!(
                "input is {input_len} bytes, more than {MAX_PAYLOAD_BYTES}"
            )));
        }
        let arn = format!(
            "arn:aws:states:{}:{}:execution:{sm_name}:{name}",
            self.inner.config.region, self.inner.config.account_id
        );
        let mut activities = Vec::new();
        parse::activity_arns(&machine, &mut activities);
        for a in &activities {
            self.inner.broker.ensure_activity(a);
        }
        let (tx, rx) = watch::channel(None);
        let exec = Arc::new(Execution {
            arn: arn.clone(),
            name: name.clone(),
            state_machine_arn: sm_arn.clone(),
            start: Utc::now(),
            input: input.clone(),
            history: History::new(self.inner.config.max_history_events),
            done: tx,
            finish_lock: Mutex::new(None),
            abort: Mutex::new(None),
        });
        {
            let mut map = self
                .inner
                .executions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map.contains_key(&arn) {
                return Err(EngineError::ExecutionAlreadyExists(arn));
            }
            map.insert(arn.clone(), exec.clone());
            self.inner
                .order
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(arn.clone());
        }
        exec.history.observe_payload(input_len);
        let mut prev = 0;
        // Cannot overflow: first event.
        let _ = exec.history.record(
            &mut prev,
            "ExecutionStarted",
            json!({"input": input.to_string(), "stateMachineArn": sm_arn}),
        );
        tracing::info!(execution = %arn, "execution started");
        let run = Run::new(self.inner.clone(), exec.clone(), sm_name);
        let task = tokio::spawn(async move { run.run_execution(machine, input, prev).await });
        *exec.abort.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        Ok(ExecutionHandle { arn, rx })
    }

    fn get(&self, arn: &str) -> Result<Arc<Execution>, EngineError> {
        self.inner
            .executions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(arn)
            .cloned()
            .ok_or_else(|| EngineError::ExecutionDoesNotExist(arn.to_string()))
    }

    /// A handle to wait on an existing execution.
    pub fn handle(&self, execution_arn: &str) -> Result<ExecutionHandle, EngineError> {
        let e = self.get(execution_arn)?;
        Ok(ExecutionHandle {
            arn: e.arn.clone(),
            rx: e.done.subscribe(),
        })
    }

    /// Executions in start order, optionally only those with `status`.
    pub fn list_executions(&self, status: Option<ExecutionStatus>) -> Vec<ExecutionSummary> {
        let order = self
            .inner
            .order
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        order
            .iter()
            .filter_map(|a| self.get(a).ok())
            .map(|e| e.summary())
            .filter(|s| status.is_none_or(|st| s.status == st))
            .collect()
    }

    pub fn describe_execution(&self, execution_arn: &str) -> Result<ExecutionSummary, EngineError> {
        Ok(self.get(execution_arn)?.summary())
    }

    /// The execution's history so far (also while it runs).
    pub fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, EngineError> {
        Ok(self.get(execution_arn)?.history.events())
    }

    /// Stops a running execution (`ExecutionAborted`); outstanding activity tasks are closed.
    pub fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        let e = self.get(execution_arn)?;
        if let Some(h) = e.abort.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
        e.finish(
            ExecutionStatus::Aborted,
            Err(StatesError::new(error.unwrap_or(""), cause.unwrap_or(""))),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn engine_and_handles_are_shareable() {
        send_sync_clone::<Engine>();
        send_sync_clone::<ExecutionHandle>();
        send_sync_clone::<ActivityBroker>();
    }

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
