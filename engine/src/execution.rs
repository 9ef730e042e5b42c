//! One execution's record: its status, result and summary, its history, and the one place its
//! terminal event is written.

use std::sync::Mutex;

use boa_core::history_event::EventType;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::error::StatesError;
use crate::history::{Counts, History};

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
    pub(crate) fn new(
        arn: String,
        name: String,
        state_machine_arn: String,
        start: DateTime<Utc>,
        input: Value,
        history: History,
        done: watch::Sender<Option<ExecutionResult>>,
    ) -> Self {
        Self {
            arn,
            name,
            state_machine_arn,
            start,
            input,
            history,
            done,
            finish_lock: Mutex::new(None),
            abort: Mutex::new(None),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<ExecutionResult>> {
        self.done.subscribe()
    }

    /// Remembers the task running the execution, for [`Execution::abort`].
    pub(crate) fn set_abort(&self, h: tokio::task::AbortHandle) {
        *self.abort.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
    }

    /// Stops the task running the execution (if still running).
    pub(crate) fn abort(&self) {
        if let Some(h) = self.abort.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
    }

    pub(crate) fn summary(&self) -> ExecutionSummary {
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
            (ExecutionStatus::Succeeded, Ok(v)) => {
                (EventType::ExecutionSucceeded, Some(v), None, None)
            }
            (_, Ok(_)) => (EventType::ExecutionFailed, None, None, None),
            (s, Err(e)) => (
                match s {
                    ExecutionStatus::TimedOut => EventType::ExecutionTimedOut,
                    ExecutionStatus::Aborted => EventType::ExecutionAborted,
                    _ => EventType::ExecutionFailed,
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
