//! The embedding API: [`Engine`] (start, list, describe, stop executions; their history) and
//! execution handles.

use std::net::SocketAddr;
use std::sync::Arc;

use boa_core::history_event::EventType;
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{OnceCell, watch};

use crate::asl::parse::{self, StateMachine};
use crate::broker::ActivityBroker;
use crate::config::{EngineConfig, LambdaInvoker};
use crate::error::{EngineError, StatesError};
use crate::execution::{
    Execution, ExecutionResult, ExecutionStatus, ExecutionSummary, MapRunSummary, Registry,
};
use crate::history::{Counts, History, HistoryEvent};
use crate::interpreter::{Run, Services};
use crate::quotas::{MAX_PAYLOAD_BYTES, valid_name};

struct EngineInner {
    services: Arc<Services>,
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
                own_counts: Counts::default(),
            },
        }
    }
}

impl Engine {
    pub fn new(config: EngineConfig, lambdas: Arc<dyn LambdaInvoker>) -> Self {
        let broker = ActivityBroker::new(&config.region, &config.account_id);
        Self {
            inner: Arc::new(EngineInner {
                services: Arc::new(Services {
                    config,
                    lambdas,
                    broker,
                    registry: Registry::default(),
                }),
                endpoint: OnceCell::new(),
            }),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.services.config
    }

    /// The activity broker (pending tasks per activity, claim notifications, direct claiming).
    pub fn broker(&self) -> &ActivityBroker {
        &self.inner.services.broker
    }

    /// Starts (once) the loopback activity endpoint and returns its address.
    pub async fn activity_endpoint(&self) -> std::io::Result<SocketAddr> {
        let broker = self.inner.services.broker.clone();
        let wait = self.inner.services.config.poll_wait;
        let key = self.inner.services.config.endpoint_access_key.clone();
        self.inner
            .endpoint
            .get_or_try_init(|| async move {
                crate::endpoint::serve(broker, wait, key, ([127, 0, 0, 1], 0).into())
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
                self.config().region,
                self.config().account_id
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
        let input_text: Arc<str> = Arc::from(input.to_string());
        let input_len = input_text.len();
        if input_len > MAX_PAYLOAD_BYTES {
            return Err(EngineError::InvalidExecutionInput(format!(
                "input is {input_len} bytes, more than {MAX_PAYLOAD_BYTES}"
            )));
        }
        let arn = format!(
            "arn:aws:states:{}:{}:execution:{sm_name}:{name}",
            self.config().region,
            self.config().account_id
        );
        let mut activities = Vec::new();
        parse::activity_arns(&machine, &mut activities);
        for a in &activities {
            self.broker().ensure_activity(a);
        }
        let (tx, rx) = watch::channel(None);
        let exec = Arc::new(Execution::new(
            arn.clone(),
            name.clone(),
            sm_arn.clone(),
            Utc::now(),
            input_text.clone(),
            History::new(self.config().max_history_events),
            tx,
        ));
        if !self.inner.services.registry.insert(exec.clone()) {
            return Err(EngineError::ExecutionAlreadyExists(arn));
        }
        exec.history.observe_payload(input_len);
        let mut prev = 0;
        // Cannot overflow: first event.
        let _ = exec.history.record_shared(
            &mut prev,
            EventType::ExecutionStarted,
            json!({"input": null, "stateMachineArn": sm_arn}),
            Some(("input", input_text.clone())),
        );
        tracing::info!(execution = %arn, "execution started");
        let run = Run::new(self.inner.services.clone(), exec.clone(), sm_name);
        let machine = Arc::new(machine);
        let task = tokio::spawn(async move {
            run.run_execution(machine, input, Some(input_text), prev)
                .await
        });
        exec.set_abort(task.abort_handle());
        Ok(ExecutionHandle { arn, rx })
    }

    fn get(&self, arn: &str) -> Result<Arc<Execution>, EngineError> {
        self.inner
            .services
            .registry
            .get(arn)
            .ok_or_else(|| EngineError::ExecutionDoesNotExist(arn.to_string()))
    }

    /// A handle to wait on an existing execution.
    pub fn handle(&self, execution_arn: &str) -> Result<ExecutionHandle, EngineError> {
        let e = self.get(execution_arn)?;
        Ok(ExecutionHandle {
            arn: e.arn.clone(),
            rx: e.subscribe(),
        })
    }

    /// Top-level executions in start order, optionally only those with `status`. Child
    /// executions of Distributed Maps are not listed (see
    /// [`Engine::list_executions_including_children`] and [`Engine::child_executions`]).
    pub fn list_executions(&self, status: Option<ExecutionStatus>) -> Vec<ExecutionSummary> {
        self.list(status, false)
    }

    /// Every execution in start order, child workflow executions of Distributed Maps included
    /// (their `map_run_arn` is set), optionally only those with `status`.
    pub fn list_executions_including_children(
        &self,
        status: Option<ExecutionStatus>,
    ) -> Vec<ExecutionSummary> {
        self.list(status, true)
    }

    fn list(&self, status: Option<ExecutionStatus>, children: bool) -> Vec<ExecutionSummary> {
        self.inner
            .services
            .registry
            .list(children)
            .iter()
            .map(|e| e.summary())
            .filter(|s| status.is_none_or(|st| s.status == st))
            .collect()
    }

    /// The Map Runs the Distributed Maps of an execution started, in start order (like AWS
    /// `ListMapRuns`).
    pub fn map_runs(&self, execution_arn: &str) -> Result<Vec<MapRunSummary>, EngineError> {
        self.get(execution_arn)?;
        Ok(self
            .inner
            .services
            .registry
            .map_runs_of(execution_arn)
            .iter()
            .map(|r| r.summary())
            .collect())
    }

    /// One Map Run (like AWS `DescribeMapRun`).
    pub fn describe_map_run(&self, map_run_arn: &str) -> Result<MapRunSummary, EngineError> {
        self.inner
            .services
            .registry
            .map_run(map_run_arn)
            .map(|r| r.summary())
            .ok_or_else(|| EngineError::MapRunDoesNotExist(map_run_arn.to_string()))
    }

    /// The child workflow executions of a Map Run in item order (like AWS `ListExecutions`
    /// with `mapRunArn`); items not started yet have none. Each child's history is
    /// [`Engine::history`] of its ARN.
    pub fn child_executions(
        &self,
        map_run_arn: &str,
    ) -> Result<Vec<ExecutionSummary>, EngineError> {
        self.inner
            .services
            .registry
            .map_run(map_run_arn)
            .map(|r| r.children().iter().map(|c| c.summary()).collect())
            .ok_or_else(|| EngineError::MapRunDoesNotExist(map_run_arn.to_string()))
    }

    pub fn describe_execution(&self, execution_arn: &str) -> Result<ExecutionSummary, EngineError> {
        Ok(self.get(execution_arn)?.summary())
    }

    /// The execution's history so far (also while it runs).
    pub fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, EngineError> {
        Ok(self.get(execution_arn)?.history.events())
    }

    /// Stops a running execution (`ExecutionAborted`); outstanding activity tasks are closed,
    /// and the running Map Runs of its Distributed Maps are aborted with their child executions
    /// (status ABORTED).
    pub fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), EngineError> {
        let e = self.get(execution_arn)?;
        if e.is_running() {
            self.inner
                .services
                .registry
                .abort_map_runs_of(execution_arn);
        }
        e.abort();
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
}
