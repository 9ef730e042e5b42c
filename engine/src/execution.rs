//! One execution's record: its status, result and summary, its history, and the one place its
//! terminal event is written; the Map Runs of Distributed Maps and the registry of every
//! execution (top-level and child) of an engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    /// What the whole run consumed: this execution's own counts **plus those of every child
    /// workflow execution its Distributed Maps started** (recursively; AWS bills the state
    /// transitions of Standard child executions too). Without Distributed Maps it equals
    /// `own_counts`.
    pub counts: Counts,
    /// This execution's own history only (what its 25,000-event limit applies to).
    pub own_counts: Counts,
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
    /// For a child workflow execution of a Distributed Map: its Map Run (`None` for top-level
    /// executions).
    pub map_run_arn: Option<String>,
}

pub(crate) struct Execution {
    pub(crate) arn: String,
    pub(crate) name: String,
    pub(crate) state_machine_arn: String,
    pub(crate) start: DateTime<Utc>,
    /// The input as JSON text (shared with the `ExecutionStarted` event).
    pub(crate) input: Arc<str>,
    pub(crate) history: History,
    done: watch::Sender<Option<ExecutionResult>>,
    finish_lock: Mutex<Option<DateTime<Utc>>>,
    abort: Mutex<Option<tokio::task::AbortHandle>>,
    /// A child execution's Map Run and parent (whose counts include the child's).
    pub(crate) map_run_arn: Option<String>,
    parent: Option<Arc<Execution>>,
    child_counts: Mutex<Counts>,
}

impl Execution {
    pub(crate) fn new(
        arn: String,
        name: String,
        state_machine_arn: String,
        start: DateTime<Utc>,
        input: Arc<str>,
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
            map_run_arn: None,
            parent: None,
            child_counts: Mutex::new(Counts::default()),
        }
    }

    /// Makes this record a child workflow execution of `map_run_arn`, started by `parent`.
    pub(crate) fn child_of(mut self, map_run_arn: String, parent: Arc<Execution>) -> Self {
        self.map_run_arn = Some(map_run_arn);
        self.parent = Some(parent);
        self
    }

    pub(crate) fn input_value(&self) -> Value {
        serde_json::from_str(&self.input).unwrap_or(Value::Null)
    }

    /// The result, once the execution has ended.
    pub(crate) fn result(&self) -> Option<ExecutionResult> {
        self.done.borrow().clone()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.done.borrow().is_none()
    }

    fn add_child_counts(&self, c: &Counts) {
        self.child_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(c);
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
            input: self.input_value(),
            output: res.and_then(|r| r.output),
            map_run_arn: self.map_run_arn.clone(),
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
        self.history.shrink();
        tracing::info!(execution = %self.arn, ?status, "execution finished");
        let own_counts = self.history.counts();
        let mut counts = own_counts;
        counts.add(&self.child_counts.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(parent) = &self.parent {
            parent.add_child_counts(&counts);
        }
        let result = ExecutionResult {
            execution_arn: self.arn.clone(),
            status,
            output,
            error,
            cause,
            counts,
            own_counts,
        };
        self.done.send_replace(Some(result));
    }
}

/// How many items of a Map Run are in each state, like `DescribeMapRun`'s `itemCounts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapRunItemCounts {
    pub total: u64,
    /// Not started yet (or never: the Map Run failed or was aborted first).
    pub pending: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub aborted: u64,
}

/// A Distributed Map's run, like AWS `DescribeMapRun`.
#[derive(Debug, Clone, PartialEq)]
pub struct MapRunSummary {
    pub map_run_arn: String,
    /// The execution whose Map state started it.
    pub execution_arn: String,
    pub state_name: String,
    /// RUNNING, SUCCEEDED, FAILED or ABORTED.
    pub status: ExecutionStatus,
    pub start_date: DateTime<Utc>,
    pub stop_date: Option<DateTime<Utc>>,
    pub max_concurrency: u64,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_percentage: Option<f64>,
    pub item_counts: MapRunItemCounts,
    /// Sum of the counts of its child executions that have ended.
    pub counts: Counts,
}

pub(crate) struct MapRun {
    pub(crate) arn: String,
    pub(crate) execution_arn: String,
    pub(crate) state_name: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) total_items: usize,
    pub(crate) max_concurrency: u64,
    pub(crate) tolerated_failure_count: Option<u64>,
    pub(crate) tolerated_failure_percentage: Option<f64>,
    inner: Mutex<MapRunInner>,
}

struct MapRunInner {
    status: ExecutionStatus,
    stop: Option<DateTime<Utc>>,
    /// In item order (children are started in item order).
    children: Vec<Arc<Execution>>,
}

impl MapRun {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        arn: String,
        execution_arn: String,
        state_name: String,
        total_items: usize,
        max_concurrency: u64,
        tolerated_failure_count: Option<u64>,
        tolerated_failure_percentage: Option<f64>,
    ) -> Self {
        Self {
            arn,
            execution_arn,
            state_name,
            start: Utc::now(),
            total_items,
            max_concurrency,
            tolerated_failure_count,
            tolerated_failure_percentage,
            inner: Mutex::new(MapRunInner {
                status: ExecutionStatus::Running,
                stop: None,
                children: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MapRunInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add_child(&self, child: Arc<Execution>) {
        self.lock().children.push(child);
    }

    pub(crate) fn children(&self) -> Vec<Arc<Execution>> {
        self.lock().children.clone()
    }

    /// Ends the run with `status` unless it has ended already; true if this call ended it.
    pub(crate) fn end(&self, status: ExecutionStatus) -> bool {
        let mut g = self.lock();
        if g.status != ExecutionStatus::Running {
            return false;
        }
        g.status = status;
        g.stop = Some(Utc::now());
        true
    }

    pub(crate) fn summary(&self) -> MapRunSummary {
        let g = self.lock();
        let mut items = MapRunItemCounts {
            total: self.total_items as u64,
            ..MapRunItemCounts::default()
        };
        let mut counts = Counts::default();
        for c in &g.children {
            match c.result() {
                None => items.running += 1,
                Some(r) => {
                    counts.add(&r.counts);
                    match r.status {
                        ExecutionStatus::Running => items.running += 1,
                        ExecutionStatus::Succeeded => items.succeeded += 1,
                        ExecutionStatus::Failed => items.failed += 1,
                        ExecutionStatus::TimedOut => items.timed_out += 1,
                        ExecutionStatus::Aborted => items.aborted += 1,
                    }
                }
            }
        }
        items.pending = items.total.saturating_sub(g.children.len() as u64);
        MapRunSummary {
            map_run_arn: self.arn.clone(),
            execution_arn: self.execution_arn.clone(),
            state_name: self.state_name.clone(),
            status: g.status,
            start_date: self.start,
            stop_date: g.stop,
            max_concurrency: self.max_concurrency,
            tolerated_failure_count: self.tolerated_failure_count,
            tolerated_failure_percentage: self.tolerated_failure_percentage,
            item_counts: items,
            counts,
        }
    }
}

/// Every execution of an engine (top-level and Distributed Map children) and every Map Run.
#[derive(Default)]
pub(crate) struct Registry {
    executions: Mutex<BTreeMap<String, Arc<Execution>>>,
    /// Every execution in start order.
    order: Mutex<Vec<Arc<Execution>>>,
    map_runs: Mutex<BTreeMap<String, Arc<MapRun>>>,
    /// Map Runs by the execution that started them, in start order.
    map_runs_of: Mutex<BTreeMap<String, Vec<Arc<MapRun>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// Adds an execution; false if one with its ARN exists.
    pub(crate) fn insert(&self, e: Arc<Execution>) -> bool {
        let mut map = lock(&self.executions);
        if map.contains_key(&e.arn) {
            return false;
        }
        map.insert(e.arn.clone(), e.clone());
        lock(&self.order).push(e);
        true
    }

    pub(crate) fn get(&self, arn: &str) -> Option<Arc<Execution>> {
        lock(&self.executions).get(arn).cloned()
    }

    /// Executions in start order; children only with `include_children`.
    pub(crate) fn list(&self, include_children: bool) -> Vec<Arc<Execution>> {
        lock(&self.order)
            .iter()
            .filter(|e| include_children || e.map_run_arn.is_none())
            .cloned()
            .collect()
    }

    pub(crate) fn add_map_run(&self, run: Arc<MapRun>) {
        lock(&self.map_runs).insert(run.arn.clone(), run.clone());
        lock(&self.map_runs_of)
            .entry(run.execution_arn.clone())
            .or_default()
            .push(run);
    }

    pub(crate) fn map_run(&self, arn: &str) -> Option<Arc<MapRun>> {
        lock(&self.map_runs).get(arn).cloned()
    }

    pub(crate) fn map_runs_of(&self, execution_arn: &str) -> Vec<Arc<MapRun>> {
        lock(&self.map_runs_of)
            .get(execution_arn)
            .cloned()
            .unwrap_or_default()
    }

    /// Aborts a running Map Run: `MapRunAborted` in its parent's history, and every running child
    /// (and, recursively, their own Map Runs) stopped with status ABORTED. No-op once it ended.
    pub(crate) fn abort_map_run(&self, run: &MapRun) {
        if !run.end(ExecutionStatus::Aborted) {
            return;
        }
        if let Some(parent) = self.get(&run.execution_arn) {
            parent.history.record_final(
                parent.history.last_id(),
                EventType::MapRunAborted,
                json!({"mapRunArn": run.arn}),
            );
        }
        self.abort_children(run);
    }

    /// Stops every running child of `run` (status ABORTED), with their own Map Runs.
    pub(crate) fn abort_children(&self, run: &MapRun) {
        for child in run.children() {
            if child.is_running() {
                self.abort_map_runs_of(&child.arn);
                child.abort();
                child.finish(
                    ExecutionStatus::Aborted,
                    Err(StatesError::new(
                        "",
                        format!("Map Run {} stopped its child executions", run.arn),
                    )),
                );
            }
        }
    }

    /// Aborts every running Map Run of an execution (its own Distributed Maps).
    pub(crate) fn abort_map_runs_of(&self, execution_arn: &str) {
        for run in self.map_runs_of(execution_arn) {
            self.abort_map_run(&run);
        }
    }
}
