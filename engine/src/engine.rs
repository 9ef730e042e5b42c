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
use crate::error::{DefinitionError, EngineError, StatesError};
use crate::execution::{
    Execution, ExecutionResult, ExecutionStatus, ExecutionSummary, MapRunSummary, Registry,
};
use crate::history::{Counts, History, HistoryEvent};
use crate::interpreter::{Run, Services};
use crate::machines::{Created, ExecutionMachine, Machines, StateMachineInfo};
use crate::quotas::{MAX_PAYLOAD_BYTES, valid_name};

pub(crate) struct EngineInner {
    services: Arc<Services>,
    endpoint: OnceCell<SocketAddr>,
    machines: Machines,
    /// Control-plane requests the endpoints answered, by operation.
    api_calls: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
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
                machines: Machines::default(),
                api_calls: Default::default(),
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

    /// Starts (once) the engine's loopback endpoint and returns its address. It serves the Step
    /// Functions API: the activity operations workers use and the control plane (state
    /// machines, executions, history, Map Runs); see [`crate::api`].
    pub async fn activity_endpoint(&self) -> std::io::Result<SocketAddr> {
        let this = self.clone();
        self.inner
            .endpoint
            .get_or_try_init(|| async move {
                this.serve_api(([127, 0, 0, 1], 0).into())
                    .await
                    .map(|(addr, _task)| addr)
            })
            .await
            .copied()
    }

    /// Serves the Step Functions API on `addr` (another endpoint than
    /// [`Engine::activity_endpoint`]'s; `engine serve` binds the port it is given). The server
    /// holds the engine weakly: once every [`Engine`] clone is dropped it answers errors.
    pub async fn serve_api(
        &self,
        addr: SocketAddr,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let s = &self.inner.services;
        crate::endpoint::serve(
            s.broker.clone(),
            s.config.poll_wait,
            s.config.endpoint_access_key.clone(),
            Some(Arc::new(crate::api::ControlPlane::new(self))),
            addr,
        )
        .await
    }

    /// The control-plane requests (StartExecution, DescribeExecution, GetExecutionHistory…) its
    /// endpoints have answered, by operation, errors included: how an embedder tells that a
    /// client drives executions through the API. The activity operations are not counted.
    pub fn api_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner
            .api_calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub(crate) fn count_api_call(&self, op: &str) {
        if let Ok(mut c) = self.inner.api_calls.lock() {
            *c.entry(op.to_string()).or_insert(0) += 1;
        }
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<EngineInner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(w: &std::sync::Weak<EngineInner>) -> Option<Engine> {
        w.upgrade().map(|inner| Engine { inner })
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
    /// runtime. The definition is parsed first; errors name the bad state and field. The state
    /// machine is registered under that name with this definition (created, or updated when it
    /// had another), so the API lists and describes it.
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
        let text: Arc<str> = Arc::from(definition.to_string());
        let revision = self.inner.machines.upsert(&sm_arn, &sm_name, text.clone());
        self.start_parsed(machine, &sm_arn, execution_name, input, (text, revision))
    }

    fn start_parsed(
        &self,
        machine: StateMachine,
        sm_arn: &str,
        execution_name: Option<&str>,
        input: Value,
        started_with: (Arc<str>, String),
    ) -> Result<ExecutionHandle, EngineError> {
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
            sm_arn.to_string(),
            Utc::now(),
            input_text.clone(),
            History::new(self.config().max_history_events),
            tx,
        ));
        if !self.inner.services.registry.insert(exec.clone()) {
            return Err(EngineError::ExecutionAlreadyExists(arn));
        }
        self.inner
            .machines
            .started(&arn, started_with.0, started_with.1);
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

    /// Creates a state machine from its definition text (like AWS `CreateStateMachine`):
    /// idempotent for the same name and definition, `StateMachineAlreadyExists` for the same
    /// name with another definition. The definition is validated as executions parse it.
    pub fn create_state_machine(
        &self,
        name: &str,
        definition: &str,
        role_arn: &str,
    ) -> Result<StateMachineInfo, EngineError> {
        if !valid_name(name) {
            return Err(EngineError::InvalidName(name.to_string()));
        }
        validate_definition(definition)?;
        let arn = self.state_machine_arn(name);
        let info = StateMachineInfo {
            arn: arn.clone(),
            name: name.to_string(),
            definition: Arc::from(definition),
            role_arn: role_arn.to_string(),
            kind: "STANDARD".into(),
            creation_date: Utc::now(),
            update_date: None,
            revision_id: uuid::Uuid::new_v4().to_string(),
        };
        match self.inner.machines.create(info) {
            Created::New(m) | Created::Same(m) => Ok(m),
            Created::Conflict => Err(EngineError::StateMachineAlreadyExists(arn)),
        }
    }

    pub fn describe_state_machine(&self, arn: &str) -> Result<StateMachineInfo, EngineError> {
        check_arn(arn, "stateMachine")?;
        self.inner
            .machines
            .get(arn)
            .ok_or_else(|| EngineError::StateMachineDoesNotExist(arn.to_string()))
    }

    /// Every state machine, by ARN.
    pub fn list_state_machines(&self) -> Vec<StateMachineInfo> {
        self.inner.machines.list()
    }

    /// Changes a state machine's definition and/or role (like AWS `UpdateStateMachine`);
    /// running executions keep the definition they started with.
    pub fn update_state_machine(
        &self,
        arn: &str,
        definition: Option<&str>,
        role_arn: Option<&str>,
    ) -> Result<StateMachineInfo, EngineError> {
        check_arn(arn, "stateMachine")?;
        if let Some(d) = definition {
            validate_definition(d)?;
        }
        self.inner
            .machines
            .update(arn, |m| {
                if let Some(d) = definition {
                    m.definition = Arc::from(d);
                    m.revision_id = uuid::Uuid::new_v4().to_string();
                }
                if let Some(r) = role_arn {
                    m.role_arn = r.to_string();
                }
                m.update_date = Some(Utc::now());
            })
            .ok_or_else(|| EngineError::StateMachineDoesNotExist(arn.to_string()))
    }

    /// Deletes a state machine (no error if it does not exist); its running executions go on.
    pub fn delete_state_machine(&self, arn: &str) -> Result<(), EngineError> {
        check_arn(arn, "stateMachine")?;
        self.inner.machines.delete(arn);
        Ok(())
    }

    /// Starts an execution of a created state machine (like AWS `StartExecution`): `input` is
    /// JSON text (default `{}`). A name already used answers the running execution when its
    /// input is the same, and `ExecutionAlreadyExists` otherwise (or once it has ended).
    /// Returns the execution and whether it was started by this call.
    pub fn start_execution_of(
        &self,
        state_machine_arn: &str,
        execution_name: Option<&str>,
        input: Option<&str>,
    ) -> Result<(ExecutionSummary, bool), EngineError> {
        check_arn(state_machine_arn, "stateMachine")?;
        let m =
            self.inner.machines.get(state_machine_arn).ok_or_else(|| {
                EngineError::StateMachineDoesNotExist(state_machine_arn.to_string())
            })?;
        let input: Value = serde_json::from_str(input.unwrap_or("{}"))
            .map_err(|e| EngineError::InvalidExecutionInput(format!("input is not JSON: {e}")))?;
        if let Some(name) = execution_name {
            let arn = format!(
                "arn:aws:states:{}:{}:execution:{}:{name}",
                self.config().region,
                self.config().account_id,
                m.name
            );
            if let Some(e) = self.inner.services.registry.get(&arn) {
                // https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html:
                // the same name and input while the first runs is idempotent.
                if e.is_running() && *e.input == *input.to_string() {
                    return Ok((e.summary(), false));
                }
                return Err(EngineError::ExecutionAlreadyExists(arn));
            }
        }
        let def: Value = serde_json::from_str(&m.definition)
            .map_err(|e| DefinitionError::new(format!("the definition is not JSON: {e}")))?;
        let machine = parse::parse_definition(&def)?;
        let h = self.start_parsed(
            machine,
            &m.arn,
            execution_name,
            input,
            (m.definition.clone(), m.revision_id.clone()),
        )?;
        Ok((self.describe_execution(h.arn())?, true))
    }

    /// The state machine an execution started from, with the definition it started with (like
    /// AWS `DescribeStateMachineForExecution`).
    pub fn state_machine_for_execution(
        &self,
        execution_arn: &str,
    ) -> Result<ExecutionMachine, EngineError> {
        let e = self.get(execution_arn)?;
        let (definition, revision_id) = self
            .inner
            .machines
            .started_with(execution_arn)
            .or_else(|| {
                // A Distributed Map child: its parent's machine.
                let parent = e.map_run_arn.as_ref().and_then(|r| {
                    self.inner
                        .services
                        .registry
                        .map_run(r)
                        .map(|r| r.execution_arn.clone())
                })?;
                self.inner.machines.started_with(&parent)
            })
            .ok_or_else(|| EngineError::StateMachineDoesNotExist(e.state_machine_arn.clone()))?;
        let machine = self
            .inner
            .machines
            .get(&e.state_machine_arn)
            .unwrap_or_else(|| StateMachineInfo {
                arn: e.state_machine_arn.clone(),
                name: e
                    .state_machine_arn
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                definition: definition.clone(),
                role_arn: String::new(),
                kind: "STANDARD".into(),
                creation_date: e.start,
                update_date: None,
                revision_id: revision_id.clone(),
            });
        Ok(ExecutionMachine {
            machine,
            definition,
            revision_id,
        })
    }

    fn get(&self, arn: &str) -> Result<Arc<Execution>, EngineError> {
        check_arn(arn, "execution")?;
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

    /// The execution's result, once it has ended.
    pub fn result(&self, execution_arn: &str) -> Result<Option<ExecutionResult>, EngineError> {
        Ok(self.get(execution_arn)?.result())
    }

    /// The execution's history so far (also while it runs).
    pub fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, EngineError> {
        Ok(self.get(execution_arn)?.history.events())
    }

    /// One page of an execution's history: the events with ids `first..=last` (1-based,
    /// clamped), and how many events the history has.
    pub fn history_page(
        &self,
        execution_arn: &str,
        first: usize,
        last: usize,
    ) -> Result<(Vec<HistoryEvent>, usize), EngineError> {
        let h = &self.get(execution_arn)?.history;
        // The count first: an event appended meanwhile is in the next page.
        let len = usize::try_from(h.last_id()).unwrap_or(0);
        Ok((h.events_between(first, last.min(len)), len))
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
        // The interpreter is cancelled first: a Map state that saw its children aborted could
        // otherwise fail the execution before the stop is recorded. Then its Map Runs are
        // aborted (`MapRunAborted`), and `ExecutionAborted` ends the history, as on AWS.
        let running = e.is_running();
        e.abort();
        if running {
            self.inner
                .services
                .registry
                .abort_map_runs_of(execution_arn);
        }
        e.finish(
            ExecutionStatus::Aborted,
            Err(StatesError::new(error.unwrap_or(""), cause.unwrap_or(""))),
        );
        Ok(())
    }
}

/// `InvalidArn` unless `arn` is a Step Functions ARN of `kind` (`stateMachine`, `execution`…).
pub(crate) fn check_arn(arn: &str, kind: &str) -> Result<(), EngineError> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() >= 7 && parts[0] == "arn" && parts[2] == "states" && parts[5] == kind {
        Ok(())
    } else {
        Err(EngineError::InvalidArn(arn.to_string()))
    }
}

/// Parses definition text as an execution would (`InvalidDefinition` names the problem).
fn validate_definition(text: &str) -> Result<StateMachine, EngineError> {
    let def: Value = serde_json::from_str(text)
        .map_err(|e| DefinitionError::new(format!("the definition is not JSON: {e}")))?;
    Ok(parse::parse_definition(&def)?)
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
