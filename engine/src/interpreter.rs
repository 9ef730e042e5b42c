//! Runs one execution: state by state, with input/output processing in AWS order
//! (InputPath → Parameters → task → ResultSelector → ResultPath → OutputPath), Retry/Catch,
//! timeouts, Parallel branches and Map iterations, recording history as it goes.
//!
//! History choices (AWS does not document every sequence):
//! - `<Type>StateExited` is written when a state completes, including when a Catch routes it
//!   (with the Catch output); an uncaught error goes straight to the parent (branch/execution).
//! - Direct Lambda ARNs write `LambdaFunction*` events; `arn:aws:states:::lambda:invoke` writes
//!   `Task*` events (`TaskScheduled`/`TaskStarted`/`TaskSucceeded`/`TaskFailed`/`TaskTimedOut`)
//!   as AWS does for service integrations.
//! - Events inside a Parallel branch or Map iteration chain `previous_event_id` within that
//!   branch, starting from the `ParallelStateStarted` / `MapStateStarted` event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use boa_core::history_event::EventType;
use chrono::{SecondsFormat, Utc};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::asl::choice;
use crate::asl::parse::{Kind, Seconds, State, StateMachine, Text, WaitFor};
use crate::asl::paths::{self, IoPath};
use crate::asl::retry::{RetryState, SplitMix64, find_catcher};
use crate::asl::template::Template;
use crate::broker::{ActivityBroker, PendingTask, TaskSignal};
use crate::config::{EngineConfig, LambdaInvoker};
use crate::error::{StatesError, names};
use crate::execution::{Execution, ExecutionStatus, Registry};
use crate::quotas::MAX_PAYLOAD_BYTES;

mod distributed;

const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";

/// What every execution of an engine shares: its configuration, the embedder's Lambdas and the
/// activity broker, and the registry of executions.
pub(crate) struct Services {
    pub(crate) config: EngineConfig,
    pub(crate) lambdas: Arc<dyn LambdaInvoker>,
    pub(crate) broker: ActivityBroker,
    /// Every execution (top-level and Distributed Map children) and Map Run.
    pub(crate) registry: Registry,
}

/// The history events of a Lambda call: `LambdaFunction*` for a function ARN, `Task*` for the
/// `lambda:invoke` service integration.
struct LambdaEvents {
    scheduled: EventType,
    started: EventType,
    timed_out: EventType,
    succeeded: EventType,
    failed: EventType,
}

const FUNCTION_EVENTS: LambdaEvents = LambdaEvents {
    scheduled: EventType::LambdaFunctionScheduled,
    started: EventType::LambdaFunctionStarted,
    timed_out: EventType::LambdaFunctionTimedOut,
    succeeded: EventType::LambdaFunctionSucceeded,
    failed: EventType::LambdaFunctionFailed,
};

const INTEGRATION_EVENTS: LambdaEvents = LambdaEvents {
    scheduled: EventType::TaskScheduled,
    started: EventType::TaskStarted,
    timed_out: EventType::TaskTimedOut,
    succeeded: EventType::TaskSucceeded,
    failed: EventType::TaskFailed,
};

pub(crate) struct Run {
    services: Arc<Services>,
    exec: Arc<Execution>,
    sm_name: String,
    rng: Mutex<SplitMix64>,
    /// Put `Execution.Input` in the context object (only if the machine may read it).
    context_input: bool,
}

fn now_iso() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn ctx_with(ctx: &Value, key: &str, v: Value) -> Value {
    let mut c = ctx.clone();
    if let Value::Object(m) = &mut c {
        m.insert(key.to_string(), v);
    }
    c
}

impl Run {
    pub(crate) fn new(services: Arc<Services>, exec: Arc<Execution>, sm_name: String) -> Self {
        // FNV-1a of the execution name, so each execution has its own reproducible jitter.
        let h = exec.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let seed = services.config.seed ^ h;
        Self {
            services,
            exec,
            sm_name,
            rng: Mutex::new(SplitMix64::new(seed)),
            context_input: true,
        }
    }

    pub(crate) async fn run_execution(
        mut self,
        machine: Arc<StateMachine>,
        input: Value,
        input_text: Option<Arc<str>>,
        mut prev: i64,
    ) {
        self.context_input = machine.reads_execution_input;
        let run = self.run_machine(&machine, input, input_text, &mut prev);
        let outcome = match machine.timeout_seconds {
            Some(t) => {
                let d = self.services.config.scaled(Duration::from_secs(t));
                match tokio::time::timeout(d, run).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.exec.finish(
                            ExecutionStatus::TimedOut,
                            Err(StatesError::timeout(
                                "The execution timed out (TimeoutSeconds).",
                            )),
                        );
                        return;
                    }
                }
            }
            None => run.await,
        };
        match outcome {
            Ok(v) => self.exec.finish(ExecutionStatus::Succeeded, Ok(v)),
            Err(e) => self.exec.finish(ExecutionStatus::Failed, Err(e)),
        }
    }

    fn scaled_secs(&self, secs: f64) -> Duration {
        self.services
            .config
            .scaled(Duration::from_secs_f64(secs.max(0.0)))
    }

    fn record(&self, prev: &mut i64, kind: EventType, details: Value) -> Result<i64, StatesError> {
        self.exec.history.record(prev, kind, details)
    }

    /// Measures a payload; over the quota is `States.DataLimitExceeded`.
    fn check_payload(&self, v: &Value, what: &str, state: &str) -> Result<(), StatesError> {
        self.check_payload_len(v.to_string().len(), what, state)
    }

    /// [`Run::check_payload`] of a payload already serialized (for its history event).
    fn check_payload_text(&self, text: &str, what: &str, state: &str) -> Result<(), StatesError> {
        self.check_payload_len(text.len(), what, state)
    }

    fn check_payload_len(&self, n: usize, what: &str, state: &str) -> Result<(), StatesError> {
        self.exec.history.observe_payload(n);
        if n > MAX_PAYLOAD_BYTES {
            return Err(StatesError::new(
                names::DATA_LIMIT_EXCEEDED,
                format!(
                    "The {what} of state '{state}' is {n} bytes, more than the {MAX_PAYLOAD_BYTES} byte quota."
                ),
            ));
        }
        Ok(())
    }

    /// The context object `$$` of a state. `Execution.Input` is a copy of the whole execution
    /// input, so it is left out when no path of the machine can read it.
    fn context(&self, state: &str, entered: &str, retry_count: u32) -> Value {
        let mut execution = json!({
            "Id": self.exec.arn,
            "Name": self.exec.name,
            "StartTime": self.exec.start.to_rfc3339_opts(SecondsFormat::Millis, true),
            "RoleArn": format!("arn:aws:iam::{}:role/local-engine", self.services.config.account_id),
        });
        if self.context_input {
            execution["Input"] = self.exec.input_value();
        }
        json!({
            "Execution": execution,
            "StateMachine": {"Id": self.exec.state_machine_arn, "Name": self.sm_name},
            "State": {"Name": state, "EnteredTime": entered, "RetryCount": retry_count},
        })
    }

    fn run_machine<'a>(
        &'a self,
        m: &'a StateMachine,
        input: Value,
        input_text: Option<Arc<str>>,
        prev: &'a mut i64,
    ) -> BoxFuture<'a, Result<Value, StatesError>> {
        Box::pin(async move {
            let mut name = m.start_at.as_str();
            let mut input = input;
            // The JSON text of `input` when known (the previous state's output).
            let mut text = input_text;
            loop {
                let state = m.states.get(name).ok_or_else(|| {
                    StatesError::runtime(format!("state {name:?} does not exist"))
                })?;
                let (output, out_text, next) =
                    self.run_state(state, input, text.take(), prev).await?;
                match next {
                    Some(n) => {
                        name = m
                            .states
                            .get_key_value(n.as_str())
                            .map(|(k, _)| k.as_str())
                            .ok_or_else(|| {
                                StatesError::runtime(format!("state {n:?} does not exist"))
                            })?;
                        input = output;
                        text = Some(out_text);
                    }
                    None => return Ok(output),
                }
            }
        })
    }

    /// Runs one state entry; returns its output, the output's JSON text and the next state (None
    /// = end of machine). `raw_text` is `raw`'s JSON text when the caller has it.
    async fn run_state(
        &self,
        state: &State,
        raw: Value,
        raw_text: Option<Arc<str>>,
        prev: &mut i64,
    ) -> Result<(Value, Arc<str>, Option<String>), StatesError> {
        let (entered_event, exited_event) = state_events(&state.kind);
        let name = state.name.as_str();
        // Counted: one transition per state entered (retries are added below).
        self.exec.history.add_transition();
        let entered = now_iso();
        let input_text = raw_text.unwrap_or_else(|| Arc::from(raw.to_string()));
        let input_len = input_text.len();
        self.exec.history.record_shared(
            prev,
            entered_event,
            json!({"name": name}),
            Some(("input", input_text)),
        )?;
        self.check_payload_len(input_len, "input", name)?;
        tracing::debug!(execution = %self.exec.arn, state = name, "state entered");
        let ctx = self.context(name, &entered, 0);

        let (output, next) = match &state.kind {
            Kind::Pass { result } => {
                let eff = paths::apply_filter_path(&state.input_path, raw.clone(), &ctx)?;
                let eff = match &state.parameters {
                    Some(t) => t.evaluate(&eff, &ctx)?,
                    None => eff,
                };
                let res = result.clone().unwrap_or(eff);
                let out = paths::apply_result_path(&state.result_path, raw, res)?;
                let out = paths::apply_filter_path(&state.output_path, out, &ctx)?;
                (out, state.next.clone())
            }
            Kind::Choice { choices, default } => {
                let eff = paths::apply_filter_path(&state.input_path, raw, &ctx)?;
                let mut next = None;
                for (rule, n) in choices {
                    if choice::evaluate(rule, &eff, &ctx)? {
                        next = Some(n.clone());
                        break;
                    }
                }
                let next = next.or_else(|| default.clone()).ok_or_else(|| {
                    StatesError::new(
                        names::NO_CHOICE_MATCHED,
                        format!(
                            "No Choice Rule matched in state '{name}' and no Default was given."
                        ),
                    )
                })?;
                (
                    paths::apply_filter_path(&state.output_path, eff, &ctx)?,
                    Some(next),
                )
            }
            Kind::Wait(w) => {
                let eff = paths::apply_filter_path(&state.input_path, raw, &ctx)?;
                let d = match w {
                    WaitFor::Seconds(s) => {
                        self.scaled_secs(resolve_seconds(s, &eff, &ctx, "SecondsPath")? as f64)
                    }
                    WaitFor::Timestamp(t) => self.until(t.with_timezone(&Utc)),
                    WaitFor::TimestampPath(p) => {
                        let v = p.query(&eff, &ctx)?;
                        let t = v
                            .as_str()
                            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                            .ok_or_else(|| {
                                StatesError::runtime(format!(
                                    "TimestampPath {p} is not an ISO-8601 timestamp: {v}"
                                ))
                            })?;
                        self.until(t.with_timezone(&Utc))
                    }
                };
                tokio::time::sleep(d).await;
                (
                    paths::apply_filter_path(&state.output_path, eff, &ctx)?,
                    state.next.clone(),
                )
            }
            Kind::Succeed => {
                let eff = paths::apply_filter_path(&state.input_path, raw, &ctx)?;
                (
                    paths::apply_filter_path(&state.output_path, eff, &ctx)?,
                    None,
                )
            }
            Kind::Fail { error, cause } => {
                let text = |t: &Option<Text>, field: &str| -> Result<String, StatesError> {
                    Ok(match t {
                        None => String::new(),
                        Some(Text::Literal(s)) => s.clone(),
                        Some(Text::Expr(e)) => match e.evaluate(&raw, &ctx, field)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    })
                };
                return Err(StatesError::new(
                    text(error, "ErrorPath")?,
                    text(cause, "CausePath")?,
                ));
            }
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map { .. } => {
                return self.run_with_retry(state, raw, &entered, prev).await;
            }
        };
        let text: Arc<str> = Arc::from(output.to_string());
        self.check_payload_text(&text, "output", name)?;
        if let Some(exited_event) = exited_event {
            self.exec.history.record_shared(
                prev,
                exited_event,
                json!({"name": name}),
                Some(("output", text.clone())),
            )?;
        }
        Ok((output, text, next))
    }

    fn until(&self, t: chrono::DateTime<Utc>) -> Duration {
        let secs = (t - Utc::now()).num_milliseconds().max(0) as f64 / 1000.0;
        self.scaled_secs(secs)
    }

    async fn run_with_retry(
        &self,
        state: &State,
        raw: Value,
        entered: &str,
        prev: &mut i64,
    ) -> Result<(Value, Arc<str>, Option<String>), StatesError> {
        let exited_event = state_events(&state.kind)
            .1
            .unwrap_or_else(|| unreachable!("only Task, Parallel and Map are retried"));
        let mut retry = RetryState::new(&state.retry);
        loop {
            let ctx = self.context(&state.name, entered, retry.retry_count);
            let err = match self.attempt(state, &raw, ctx, prev).await {
                Ok((out, text)) => {
                    let text: Arc<str> = Arc::from(text);
                    self.exec.history.record_shared(
                        prev,
                        exited_event.clone(),
                        json!({"name": state.name}),
                        Some(("output", text.clone())),
                    )?;
                    return Ok((out, text, state.next.clone()));
                }
                Err(e) => e,
            };
            let delay = {
                let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                retry.next_delay(&state.retry, &err, &mut rng)
            };
            if let Some(d) = delay {
                // Counted: every retry attempt is one more state transition.
                self.exec.history.add_transition();
                tracing::debug!(state = %state.name, error = %err.error, retry = retry.retry_count, ?d, "retrying");
                tokio::time::sleep(self.services.config.scaled(d)).await;
                continue;
            }
            if let Some(c) = find_catcher(&state.catch, &err) {
                let out = paths::apply_result_path(&c.result_path, raw, err.to_value())?;
                let text: Arc<str> = Arc::from(out.to_string());
                self.check_payload_text(&text, "output", &state.name)?;
                self.exec.history.record_shared(
                    prev,
                    exited_event.clone(),
                    json!({"name": state.name}),
                    Some(("output", text.clone())),
                )?;
                return Ok((out, text, Some(c.next.clone())));
            }
            return Err(err);
        }
    }

    /// One attempt of a Task/Parallel/Map state, from raw input to final output (and its JSON
    /// text, for the exit event).
    async fn attempt(
        &self,
        state: &State,
        raw: &Value,
        mut ctx: Value,
        prev: &mut i64,
    ) -> Result<(Value, String), StatesError> {
        let token = match &state.kind {
            Kind::Task { resource, .. } if resource.contains(":activity:") => {
                let t = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                ctx = ctx_with(&ctx, "Task", json!({"Token": t}));
                Some(t)
            }
            _ => None,
        };
        let eff = paths::apply_filter_path(&state.input_path, raw.clone(), &ctx)?;
        let eff = match &state.parameters {
            Some(t)
                if self.services.config.parallel_parameters_once
                    && matches!(state.kind, Kind::Parallel { .. }) =>
            {
                // The first attempt's evaluation, for every retry.
                let first = ctx_with(&ctx, "State", {
                    let mut st = ctx["State"].clone();
                    st["RetryCount"] = json!(0);
                    st
                });
                t.evaluate(&eff, &first)?
            }
            Some(t) => t.evaluate(&eff, &ctx)?,
            None => eff,
        };
        self.check_payload(&eff, "input", &state.name)?;
        let result = match &state.kind {
            Kind::Task {
                resource,
                timeout,
                heartbeat,
            } => {
                let timeout = timeout
                    .as_ref()
                    .map(|s| resolve_seconds(s, &eff, &ctx, "TimeoutSecondsPath"))
                    .transpose()?;
                let heartbeat = heartbeat
                    .as_ref()
                    .map(|s| resolve_seconds(s, &eff, &ctx, "HeartbeatSecondsPath"))
                    .transpose()?;
                match token {
                    Some(token) => {
                        self.run_activity(state, resource, token, eff, timeout, heartbeat, prev)
                            .await?
                    }
                    None => self.run_lambda(resource, eff, timeout, prev).await?,
                }
            }
            Kind::Parallel { branches } => self.run_parallel(state, branches, eff, prev).await?,
            Kind::Map {
                items_path,
                item_selector,
                processor,
                max_concurrency,
                distributed: Some(dist),
            } => {
                let mc = resolve_seconds(max_concurrency, &eff, &ctx, "MaxConcurrencyPath")?;
                self.run_distributed(
                    distributed::MapArgs {
                        state,
                        items_path,
                        item_selector: item_selector.as_ref(),
                        processor,
                        max_concurrency: mc,
                        dist,
                    },
                    eff,
                    &ctx,
                    prev,
                )
                .await?
            }
            Kind::Map {
                items_path,
                item_selector,
                processor,
                max_concurrency,
                distributed: None,
            } => {
                let mc = resolve_seconds(max_concurrency, &eff, &ctx, "MaxConcurrencyPath")?;
                self.run_map(
                    state,
                    items_path,
                    item_selector.as_ref(),
                    processor,
                    mc,
                    eff,
                    &ctx,
                    prev,
                )
                .await?
            }
            _ => unreachable!("only Task, Parallel and Map are retried"),
        };
        self.check_payload(&result, "result", &state.name)?;
        let result = match &state.result_selector {
            Some(t) => t.evaluate(&result, &ctx)?,
            None => result,
        };
        let out = paths::apply_result_path(&state.result_path, raw.clone(), result)?;
        let out = paths::apply_filter_path(&state.output_path, out, &ctx)?;
        let text = out.to_string();
        self.check_payload_text(&text, "output", &state.name)?;
        Ok((out, text))
    }

    async fn run_lambda(
        &self,
        resource: &str,
        eff: Value,
        timeout: Option<u64>,
        prev: &mut i64,
    ) -> Result<Value, StatesError> {
        let integration = resource == LAMBDA_INVOKE;
        let (function, payload) = if integration {
            let f = eff
                .get("FunctionName")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    StatesError::runtime("lambda:invoke needs a string Parameters.FunctionName")
                })?;
            // Chosen: an absent Payload sends `{}`.
            (
                function_name(f),
                eff.get("Payload").cloned().unwrap_or_else(|| json!({})),
            )
        } else {
            let parts: Vec<&str> = resource.split(':').collect();
            if parts.len() < 7 || parts[2] != "lambda" || parts[5] != "function" {
                return Err(StatesError::runtime(format!(
                    "Resource {resource:?} is not supported by the local engine (Lambda function ARNs, \
                     arn:aws:states:::lambda:invoke and activity ARNs are)"
                )));
            }
            (parts[6].to_string(), eff)
        };
        let ev = if integration {
            &INTEGRATION_EVENTS
        } else {
            &FUNCTION_EVENTS
        };
        let mut details = if integration {
            json!({"resourceType": "lambda", "resource": "invoke", "region": self.services.config.region,
                   "parameters": json!({"FunctionName": function, "Payload": payload}).to_string()})
        } else {
            json!({"resource": resource, "input": payload.to_string()})
        };
        if let Some(t) = timeout {
            details["timeoutInSeconds"] = json!(t);
        }
        self.record(prev, ev.scheduled.clone(), details)?;
        self.record(prev, ev.started.clone(), json!({}))?;
        let call = self.services.lambdas.invoke(&function, payload);
        let res = match timeout {
            Some(t) => match tokio::time::timeout(self.scaled_secs(t as f64), call).await {
                Ok(r) => r,
                Err(_) => {
                    let e = StatesError::timeout(format!(
                        "Lambda function {function} timed out after {t} s"
                    ));
                    self.record(
                        prev,
                        ev.timed_out.clone(),
                        json!({"error": e.error, "cause": e.cause}),
                    )?;
                    return Err(e);
                }
            },
            None => call.await,
        };
        match res {
            Ok(v) => {
                let v = if integration {
                    json!({"Payload": v, "StatusCode": 200})
                } else {
                    v
                };
                self.record(prev, ev.succeeded.clone(), json!({"output": v.to_string()}))?;
                Ok(v)
            }
            Err(f) => {
                self.record(
                    prev,
                    ev.failed.clone(),
                    json!({"error": f.error, "cause": f.cause}),
                )?;
                Err(StatesError::new(f.error, f.cause))
            }
        }
    }

    /// Chosen where AWS is unclear: TimeoutSeconds runs from scheduling (an unclaimed task times
    /// out), HeartbeatSeconds runs from the moment a worker claims the task (an unclaimed task
    /// never gets `States.HeartbeatTimeout`), and each heartbeat restarts it.
    #[allow(clippy::too_many_arguments)]
    async fn run_activity(
        &self,
        state: &State,
        resource: &str,
        token: String,
        eff: Value,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
        prev: &mut i64,
    ) -> Result<Value, StatesError> {
        let input = eff.to_string();
        let mut details = json!({"resource": resource, "input": input});
        if let Some(t) = timeout {
            details["timeoutInSeconds"] = json!(t);
        }
        if let Some(h) = heartbeat {
            details["heartbeatInSeconds"] = json!(h);
        }
        self.record(prev, EventType::ActivityScheduled, details)?;
        let (_guard, mut rx) = self.services.broker.publish(
            token,
            input,
            PendingTask {
                activity_arn: resource.to_string(),
                execution_arn: self.exec.arn.clone(),
                state_name: state.name.clone(),
                scheduled_at: Utc::now(),
            },
        );
        let now = tokio::time::Instant::now();
        let timeout_at = timeout.map(|t| now + self.scaled_secs(t as f64));
        let mut heartbeat_at: Option<tokio::time::Instant> = None;
        loop {
            let deadline = match (timeout_at, heartbeat_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sig = match deadline {
                Some(d) => tokio::time::timeout_at(d, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            };
            match sig {
                Some(Some(TaskSignal::Started { worker_name })) => {
                    self.record(
                        prev,
                        EventType::ActivityStarted,
                        json!({"workerName": worker_name}),
                    )?;
                    heartbeat_at =
                        heartbeat.map(|h| tokio::time::Instant::now() + self.scaled_secs(h as f64));
                }
                Some(Some(TaskSignal::Heartbeat)) => {
                    if heartbeat_at.is_some() {
                        heartbeat_at = heartbeat
                            .map(|h| tokio::time::Instant::now() + self.scaled_secs(h as f64));
                    }
                }
                Some(Some(TaskSignal::Succeeded(v))) => {
                    self.record(
                        prev,
                        EventType::ActivitySucceeded,
                        json!({"output": v.to_string()}),
                    )?;
                    return Ok(v);
                }
                Some(Some(TaskSignal::Failed { error, cause })) => {
                    self.record(
                        prev,
                        EventType::ActivityFailed,
                        json!({"error": error, "cause": cause}),
                    )?;
                    return Err(StatesError::new(error, cause));
                }
                Some(None) => {
                    return Err(StatesError::runtime(
                        "the activity task was closed unexpectedly",
                    ));
                }
                None => {
                    let now = tokio::time::Instant::now();
                    let e = if timeout_at.is_some_and(|t| t <= now) {
                        StatesError::timeout(format!(
                            "Activity task of state '{}' timed out",
                            state.name
                        ))
                    } else {
                        StatesError::new(
                            names::HEARTBEAT_TIMEOUT,
                            format!(
                                "Activity task of state '{}' missed its heartbeat",
                                state.name
                            ),
                        )
                    };
                    self.record(
                        prev,
                        EventType::ActivityTimedOut,
                        json!({"error": e.error, "cause": e.cause}),
                    )?;
                    return Err(e);
                }
            }
        }
    }

    /// A failed branch surfaces as the branch's own error and cause (AWS behaviour); the other
    /// branches are cancelled.
    async fn run_parallel(
        &self,
        state: &State,
        branches: &[StateMachine],
        eff: Value,
        prev: &mut i64,
    ) -> Result<Value, StatesError> {
        let start = self.record(
            prev,
            EventType::ParallelStateStarted,
            json!({"name": state.name}),
        )?;
        let futs = branches.iter().map(|b| {
            let input = eff.clone();
            async move {
                let mut p = start;
                self.run_machine(b, input, None, &mut p).await
            }
        });
        match futures::future::try_join_all(futs).await {
            Ok(results) => {
                self.record(
                    prev,
                    EventType::ParallelStateSucceeded,
                    json!({"name": state.name}),
                )?;
                Ok(Value::Array(results))
            }
            Err(e) => {
                self.record(
                    prev,
                    EventType::ParallelStateFailed,
                    json!({"name": state.name, "error": e.error, "cause": e.cause}),
                )?;
                Err(e)
            }
        }
    }

    /// An INLINE Map. Results keep item order. `MaxConcurrency` 0 = unlimited. The first failed
    /// iteration fails the Map with its own error and cancels the rest.
    #[allow(clippy::too_many_arguments)]
    async fn run_map(
        &self,
        state: &State,
        items_path: &IoPath,
        item_selector: Option<&Template>,
        processor: &StateMachine,
        max_concurrency: u64,
        eff: Value,
        ctx: &Value,
        prev: &mut i64,
    ) -> Result<Value, StatesError> {
        let items = select_items(state, items_path, &eff, ctx)?;
        let n = items.len();
        let start = self.record(
            prev,
            EventType::MapStateStarted,
            json!({"name": state.name, "length": n}),
        )?;
        let limit = if max_concurrency == 0 {
            n.max(1)
        } else {
            max_concurrency as usize
        };
        let eff = &eff;
        let iterations = items.into_iter().enumerate().map(|(i, item)| async move {
            let mut p = start;
            self.record(
                &mut p,
                EventType::MapIterationStarted,
                json!({"name": state.name, "index": i}),
            )?;
            let input = match item_selector {
                Some(t) => {
                    let c = ctx_with(ctx, "Map", json!({"Item": {"Index": i, "Value": item}}));
                    t.evaluate(eff, &c)?
                }
                None => item,
            };
            match self.run_machine(processor, input, None, &mut p).await {
                Ok(v) => {
                    self.record(
                        &mut p,
                        EventType::MapIterationSucceeded,
                        json!({"name": state.name, "index": i}),
                    )?;
                    Ok(v)
                }
                Err(e) => {
                    // Best effort: the history may be full.
                    let _ = self.record(
                        &mut p,
                        EventType::MapIterationFailed,
                        json!({"name": state.name, "index": i, "error": e.error, "cause": e.cause}),
                    );
                    Err(e)
                }
            }
        });
        let res: Result<Vec<Value>, StatesError> = futures::stream::iter(iterations)
            .buffered(limit)
            .try_collect()
            .await;
        match res {
            Ok(v) => {
                self.record(
                    prev,
                    EventType::MapStateSucceeded,
                    json!({"name": state.name}),
                )?;
                Ok(Value::Array(v))
            }
            Err(e) => {
                self.record(
                    prev,
                    EventType::MapStateFailed,
                    json!({"name": state.name, "error": e.error, "cause": e.cause}),
                )?;
                Err(e)
            }
        }
    }
}

/// The array `ItemsPath` selects from the effective input.
fn select_items(
    state: &State,
    items_path: &IoPath,
    eff: &Value,
    ctx: &Value,
) -> Result<Vec<Value>, StatesError> {
    let items = match items_path {
        IoPath::Default | IoPath::Null => eff.clone(),
        IoPath::Path(p) => p.query(eff, ctx)?,
    };
    match items {
        Value::Array(items) => Ok(items),
        _ => Err(StatesError::runtime(format!(
            "Map state '{}': ItemsPath does not select an array",
            state.name
        ))),
    }
}

/// A state's `<Type>StateEntered` and `<Type>StateExited` events (a Fail state has no exit).
fn state_events(kind: &Kind) -> (EventType, Option<EventType>) {
    use EventType as E;
    let (entered, exited) = match kind {
        Kind::Task { .. } => (E::TaskStateEntered, E::TaskStateExited),
        Kind::Pass { .. } => (E::PassStateEntered, E::PassStateExited),
        Kind::Choice { .. } => (E::ChoiceStateEntered, E::ChoiceStateExited),
        Kind::Wait(_) => (E::WaitStateEntered, E::WaitStateExited),
        Kind::Succeed => (E::SucceedStateEntered, E::SucceedStateExited),
        Kind::Fail { .. } => return (E::FailStateEntered, None),
        Kind::Parallel { .. } => (E::ParallelStateEntered, E::ParallelStateExited),
        Kind::Map { .. } => (E::MapStateEntered, E::MapStateExited),
    };
    (entered, Some(exited))
}

/// `FunctionName` may be a name, a partial ARN `name:alias`, or a full ARN.
fn function_name(f: &str) -> String {
    if f.starts_with("arn:") {
        f.split(':').nth(6).unwrap_or(f).to_string()
    } else {
        f.split(':').next().unwrap_or(f).to_string()
    }
}

fn resolve_seconds(s: &Seconds, eff: &Value, ctx: &Value, field: &str) -> Result<u64, StatesError> {
    match s {
        Seconds::Fixed(n) => Ok(*n),
        Seconds::Path(p) => {
            let v = p.query(eff, ctx)?;
            v.as_u64().ok_or_else(|| {
                StatesError::runtime(format!(
                    "{field} {p} must select a non-negative integer, got {v}"
                ))
            })
        }
    }
}
