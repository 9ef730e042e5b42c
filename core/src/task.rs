//! The payloads that flow through one task of the state machine:
//! `Run<Step>` (Parallel) → `Prepare<Step>` (start-workers) → `<Step>` (activity, run by a worker).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::input::{Item, RunScope};
use crate::names::task as names;

/// What `Prepare<Step>` is invoked with (built by the state machine's Parameters). Its size does
/// not grow with the number of axis values: the run is carried as its [`RunScope`] (steps and
/// mode), never as the whole build input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareRequest {
    pub step: String,
    pub item: Item,
    /// The run's requested steps and mode.
    pub run: RunScope,
    /// For a task of a step fanned out over the inner axis: its position in its outer value's
    /// inner values (`$$.Map.Item.Index` of the inner Map), which is also the position of its
    /// own entry in a dependency's array of results when that dependency fans out too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The inner axis values of the item's outer value, in plan order, where the state passes
    /// them (`Prepare` at the outer level, and of a fanned-out step a step outside its inner Map
    /// comes after): lookahead finds the tasks across the inner axis with them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner: Vec<String>,
    /// The stored results of the steps this one comes after (`$.results.<Dep>`): a raw task result,
    /// an array of them (dependency fanned out over the inner axis), or absent when not run.
    #[serde(default)]
    pub deps: BTreeMap<String, serde_json::Value>,
    /// Legacy: the retry count of the enclosing `Run<Step>` as the engine reported it. Not relied
    /// on (an engine may evaluate a retried Parallel's Parameters once); used only when
    /// `entered` is missing.
    #[serde(default)]
    pub attempt: u32,
    /// The execution ARN (`$$.Execution.Id`).
    pub execution: String,
    /// When this entry of `Prepare<Step>` began (`$$.State.EnteredTime`): every attempt of the
    /// task enters Prepare anew, while a Lambda-level retry of Prepare keeps it. It names the
    /// attempt for the launch's ClientToken and for counting attempts.
    #[serde(default)]
    pub entered: String,
}

/// Whether the task is handed to the activity or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrepareStatus {
    /// Published to the activity; a worker will take it.
    Pending,
    Skipped,
}

/// Why a task was skipped. Skips of kind `NotRequested`, `Done` and `SkipEc2` satisfy dependents;
/// `DependencyFailed` propagates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipKind {
    NotRequested,
    Done,
    DependencyFailed,
    SkipEc2,
}

impl SkipKind {
    pub fn satisfies_dependents(self) -> bool {
        !matches!(self, SkipKind::DependencyFailed)
    }
}

/// What `Prepare<Step>` returns (stored at `$.prepare` inside `Run<Step>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareRecord {
    pub status: PrepareStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<SkipKind>,
    /// Human-readable: why skipped, or what was done about workers.
    pub reason: String,
    /// Instance ids launched by this invocation.
    #[serde(default)]
    pub launched: Vec<String>,
    /// Attempts of this task before this one (0 on the first), counted from the attempt records
    /// under the execution's prefix; the activity input and the results carry it.
    #[serde(default)]
    pub attempt: u32,
}

/// What the activity task carries to the worker (the `<Step>` state's Parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityInput {
    pub step: String,
    pub item: Item,
    pub mode: crate::input::Mode,
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub execution: String,
}

/// What a worker sends with `SendTaskSuccess`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerOutput {
    pub instance_id: String,
    pub log_stream: String,
    pub elapsed_s: f64,
    #[serde(default)]
    pub attempt: u32,
}

/// The JSON cause a worker sends with `SendTaskFailure` (a string of this JSON, readable as is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerFailureCause {
    pub instance_id: String,
    pub log_stream: String,
    #[serde(default)]
    pub attempt: u32,
    pub elapsed_s: f64,
    /// e.g. "exit status 2", "killed by signal 9", "interrupted: spot instance-action".
    pub status: String,
    /// The last lines of the script's output.
    pub log_tail: String,
}

/// The log stream of a worker of `step`: `<Step>/w_<instance-id>`. The step comes first so each
/// step's worker role may write only `log-stream:<Step>/*` of the worker log group (the deploy
/// template scopes it, the deploy audit checks it). The worker, its results, the CLI and the health
/// check all name streams through this one function.
pub fn log_stream(step: &str, instance_id: &str) -> String {
    format!("{}{instance_id}", log_stream_prefix(step))
}

/// What every log stream of `step`'s workers starts with, `<Step>/w_`.
pub fn log_stream_prefix(step: &str) -> String {
    format!("{step}/w_")
}

/// The environment a task's script runs with (besides the step's own `env`):
/// `BOA_STEP`, `BOA_MODE`, `BOA_ATTEMPT`, `BOA_EXECUTION` and `BOA_<AXIS>` per axis value
/// (e.g. `BOA_VERSION=4.28.2`, `BOA_DISTRO=ubuntu-22.04-jammy`).
pub fn task_env(input: &ActivityInput) -> Vec<(String, String)> {
    let mut v = vec![
        (names::STEP.to_string(), input.step.clone()),
        (names::MODE.to_string(), input.mode.as_str().to_string()),
        (names::ATTEMPT.to_string(), (input.attempt + 1).to_string()),
        (names::EXECUTION.to_string(), input.execution.clone()),
    ];
    for (k, val) in &input.item {
        v.push((
            format!("{}{}", names::AXIS_PREFIX, k.to_uppercase()),
            val.clone(),
        ));
    }
    v
}
