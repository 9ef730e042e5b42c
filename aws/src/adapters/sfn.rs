//! [`Executions`] and [`Activities`] over `aws_sdk_sfn::Client`.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::config::timeout::TimeoutConfig;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent as SfnEvent};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use boa_core::history_event::EventType;

use super::{common_kind, to_chrono};
use crate::ports::{
    Activities, ActivityTask, ExecutionSummary, Executions, HistoryEvent, PortError,
};

/// GetActivityTask long-polls for up to 60 s: the poll client waits longer than that.
pub const GET_TASK_TIMEOUT: Duration = Duration::from_secs(70);
/// Operation timeout of every activity call but `GetActivityTask`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The service as error messages name it.
pub const SERVICE: &str = "SFN";

/// Maps any Step Functions error to a [`PortError`]: the one place its error codes are read.
pub fn map_error<E>(operation: &str, e: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match common_kind(SERVICE, operation, &e) {
        Err(pe) => pe,
        Ok((code, message)) => match code.as_str() {
            "TaskTimedOut" | "InvalidToken" | "TaskDoesNotExist" => {
                PortError::TaskGone(format!("{SERVICE} {operation} {code}: {message}"))
            }
            "ExecutionDoesNotExist"
            | "ActivityDoesNotExist"
            | "StateMachineDoesNotExist"
            | "ResourceNotFound" => {
                PortError::NotFound(format!("{SERVICE} {operation} {code}: {message}"))
            }
            _ => PortError::call(SERVICE, operation, &code, message),
        },
    }
}

/// Step Functions executions (the health check's view).
#[derive(Debug, Clone)]
pub struct SfnExecutions(pub Client);

impl SfnExecutions {
    /// With the SDK's standard retry (see the module's table).
    pub fn new(shared: &SdkConfig) -> SfnExecutions {
        SfnExecutions(Client::new(shared))
    }

    /// The child executions of an execution's Distributed Maps (every Map Run's, any status),
    /// oldest first. An execution with no Distributed Map has none.
    pub async fn children(&self, execution_arn: &str) -> Result<Vec<ExecutionSummary>, PortError> {
        self.children_with(execution_arn, None).await
    }

    async fn children_with(
        &self,
        execution_arn: &str,
        status: Option<ExecutionStatus>,
    ) -> Result<Vec<ExecutionSummary>, PortError> {
        let mut runs = self
            .0
            .list_map_runs()
            .execution_arn(execution_arn)
            .into_paginator()
            .send();
        let mut map_runs = vec![];
        while let Some(page) = runs.next().await {
            let page = page.map_err(|e| map_error("ListMapRuns", e))?;
            map_runs.extend(page.map_runs().iter().map(|m| m.map_run_arn().to_string()));
        }
        let mut out = vec![];
        for m in map_runs {
            let mut pages = self
                .0
                .list_executions()
                .map_run_arn(&m)
                .set_status_filter(status.clone())
                .into_paginator()
                .send();
            let mut of_run = vec![];
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| map_error("ListExecutions", e))?;
                of_run.extend(page.executions().iter().map(summary));
            }
            // ListExecutions answers most recent first.
            of_run.reverse();
            out.extend(of_run);
        }
        Ok(out)
    }

    /// The execution's history followed by the histories of its Distributed Maps' child
    /// executions, each child's event ids shifted past the events before it (so every
    /// `previous_event_id` chain stays within its own execution): what a run's progress and
    /// report read. Without a Distributed Map, the same as [`Executions::history`].
    pub async fn history_with_children(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<HistoryEvent>, PortError> {
        let mut out = self.history(execution_arn).await?;
        for c in self.children(execution_arn).await? {
            let offset = out.iter().map(|e| e.id).max().unwrap_or(0);
            out.extend(self.history(&c.arn).await?.into_iter().map(|mut e| {
                e.id += offset;
                if e.previous_event_id != 0 {
                    e.previous_event_id += offset;
                }
                e
            }));
        }
        Ok(out)
    }
}

/// Step Functions activities (the worker's view). Two clients share one configuration: the poll
/// client's operation timeout bounds a hung `GetActivityTask` (AWS holds a poll for up to 60 s,
/// so it must be ≥ 65 s on AWS), the other bounds heartbeats and results. The SDK's retries are
/// off: the worker retries with `Backoff::WORKER`.
#[derive(Debug, Clone)]
pub struct SfnActivities {
    poll: Client,
    call: Client,
}

impl SfnActivities {
    /// The clients over `shared`, pointed at `endpoint_url` when given (local mode, tests).
    pub fn new(
        shared: &SdkConfig,
        endpoint_url: Option<&str>,
        poll_timeout: Duration,
    ) -> SfnActivities {
        let shared = super::without_sdk_retries(shared);
        let build = |timeout: Duration| {
            let mut b = aws_sdk_sfn::config::Builder::from(&shared).timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_timeout(timeout)
                    .build(),
            );
            if let Some(u) = endpoint_url {
                b = b.endpoint_url(u);
            }
            Client::from_conf(b.build())
        };
        SfnActivities {
            poll: build(poll_timeout),
            call: build(CALL_TIMEOUT),
        }
    }
}

/// Reduces an AWS history event to what we read.
pub fn convert_event(e: &SfnEvent) -> HistoryEvent {
    let mut out = HistoryEvent {
        id: e.id(),
        previous_event_id: e.previous_event_id(),
        kind: EventType::parse(e.r#type().as_str()),
        timestamp: to_chrono(e.timestamp()),
        resource: None,
        state_name: None,
        payload: None,
        error: None,
        cause: None,
    };
    let ec = |err: Option<&str>, cause: Option<&str>| {
        (err.map(str::to_string), cause.map(str::to_string))
    };
    if let Some(d) = e.activity_scheduled_event_details() {
        out.resource = Some(d.resource().to_string());
        out.payload = d.input().map(str::to_string);
    } else if let Some(d) = e.state_entered_event_details() {
        out.state_name = Some(d.name().to_string());
        out.payload = d.input().map(str::to_string);
    } else if let Some(d) = e.state_exited_event_details() {
        out.state_name = Some(d.name().to_string());
        out.payload = d.output().map(str::to_string);
    } else if let Some(d) = e.activity_succeeded_event_details() {
        out.payload = d.output().map(str::to_string);
    } else if let Some(d) = e.activity_failed_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.activity_timed_out_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.activity_schedule_failed_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.task_failed_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.execution_failed_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.execution_started_event_details() {
        out.payload = d.input().map(str::to_string);
    } else if let Some(d) = e.execution_succeeded_event_details() {
        out.payload = d.output().map(str::to_string);
    } else if let Some(d) = e.execution_aborted_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.execution_timed_out_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.lambda_function_scheduled_event_details() {
        out.resource = Some(d.resource().to_string());
        out.payload = d.input().map(str::to_string);
    } else if let Some(d) = e.lambda_function_succeeded_event_details() {
        out.payload = d.output().map(str::to_string);
    } else if let Some(d) = e.lambda_function_failed_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.lambda_function_timed_out_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    } else if let Some(d) = e.map_run_failed_event_details() {
        (out.error, out.cause) = ec(d.error(), d.cause());
    }
    out
}

fn summary(e: &aws_sdk_sfn::types::ExecutionListItem) -> ExecutionSummary {
    ExecutionSummary {
        arn: e.execution_arn().to_string(),
        name: e.name().to_string(),
        start: to_chrono(e.start_date()),
    }
}

#[async_trait]
impl Executions for SfnExecutions {
    async fn running(&self, state_machine_arn: &str) -> Result<Vec<ExecutionSummary>, PortError> {
        let mut pages = self
            .0
            .list_executions()
            .state_machine_arn(state_machine_arn)
            .status_filter(ExecutionStatus::Running)
            .into_paginator()
            .send();
        let mut out = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_error("ListExecutions", e))?;
            out.extend(page.executions().iter().map(summary));
        }
        out.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(out)
    }

    async fn is_running(&self, execution_arn: &str) -> Result<bool, PortError> {
        let d = self
            .0
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| map_error("DescribeExecution", e))?;
        Ok(d.status() == &ExecutionStatus::Running)
    }

    async fn running_children(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<ExecutionSummary>, PortError> {
        let mut out = self
            .children_with(execution_arn, Some(ExecutionStatus::Running))
            .await?;
        out.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(out)
    }

    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<Option<String>, PortError> {
        match self
            .0
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.execution_arn().to_string())),
            Err(e) => match map_error("StartExecution", e) {
                PortError::Call { code, .. } if code == "ExecutionAlreadyExists" => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, PortError> {
        let mut pages = self
            .0
            .get_execution_history()
            .execution_arn(execution_arn)
            .max_results(1000)
            .into_paginator()
            .send();
        let mut out = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_error("GetExecutionHistory", e))?;
            out.extend(page.events().iter().map(convert_event));
        }
        out.sort_by_key(|e| e.id);
        Ok(out)
    }
}

#[async_trait]
impl Activities for SfnActivities {
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
            .map_err(|e| map_error("GetActivityTask", e))?;
        match out.task_token() {
            Some(t) if !t.is_empty() => Ok(Some(ActivityTask {
                token: t.to_string(),
                input: out.input().unwrap_or("{}").to_string(),
            })),
            _ => Ok(None),
        }
    }

    async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
        self.call
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map_err(|e| map_error("SendTaskHeartbeat", e))?;
        Ok(())
    }

    async fn succeed(&self, token: &str, output: &str) -> Result<(), PortError> {
        self.call
            .send_task_success()
            .task_token(token)
            .output(output)
            .send()
            .await
            .map_err(|e| map_error("SendTaskSuccess", e))?;
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
            .map_err(|e| map_error("SendTaskFailure", e))?;
        Ok(())
    }
}
