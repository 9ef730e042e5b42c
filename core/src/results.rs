//! Task results: reading what the state machine stored for each task, deciding whether dependents
//! may run, and the normalized one-record-per-task form.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::Item;
use crate::pipeline::Needs;
use crate::task::{PrepareRecord, PrepareStatus, SkipKind, WorkerFailureCause};

/// Final status of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Succeeded,
    Failed,
    Skipped,
}

/// One flat record per requested task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub step: String,
    pub item: Item,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<SkipKind>,
    /// Why skipped, or what failed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_s: Option<f64>,
    /// Attempts made (1 = first try), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Counts over the records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// NormalizeResults' output: every requested task exactly once, and the counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedResults {
    pub tasks: Vec<TaskRecord>,
    pub summary: Summary,
}

impl NormalizedResults {
    pub fn new(tasks: Vec<TaskRecord>) -> Self {
        let mut s = Summary {
            total: tasks.len(),
            ..Summary::default()
        };
        for t in &tasks {
            match t.status {
                Status::Succeeded => s.succeeded += 1,
                Status::Failed => s.failed += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        NormalizedResults { tasks, summary: s }
    }

    pub fn failed(&self) -> impl Iterator<Item = &TaskRecord> {
        self.tasks.iter().filter(|t| t.status == Status::Failed)
    }
}

/// What a task block leaves in its iteration for the states after it (a dependent's Prepare reads
/// it): the status, and for a skip its kind. The whole [`TaskRecord`] is an object in the bucket
/// (see [`task_record_key`]), so this stays a few bytes whatever the task printed or failed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compact {
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<SkipKind>,
}

impl From<&TaskRecord> for Compact {
    fn from(r: &TaskRecord) -> Self {
        Compact {
            status: r.status,
            skip: r.skip,
        }
    }
}

/// Where an object is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// How many failed records NormalizeResults hands on in the payload (CheckForFailures lists
/// them); the rest are in the results object.
pub const FAILED_IN_PAYLOAD: usize = 20;

/// How much of a failed record's reason and cause NormalizeResults hands on in the payload.
pub const BRIEF_TEXT_BYTES: usize = 1024;

/// A record for the payload: its reason and cause cut to [`BRIEF_TEXT_BYTES`] (the whole record
/// is in the results object).
pub fn brief(mut r: TaskRecord) -> TaskRecord {
    fn cut(s: &mut Option<String>) {
        if let Some(t) = s
            && t.len() > BRIEF_TEXT_BYTES
        {
            let mut end = BRIEF_TEXT_BYTES;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
            t.push('…');
        }
    }
    cut(&mut r.reason);
    cut(&mut r.cause);
    r
}

/// NormalizeResults' output and the execution's: the counts, where every record is, and the first
/// [`FAILED_IN_PAYLOAD`] failed records. Its size does not grow with the number of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub summary: Summary,
    /// The whole [`NormalizedResults`], as JSON.
    pub results: ObjectRef,
    #[serde(default)]
    pub failed: Vec<TaskRecord>,
}

/// The folder of one execution's records under the stack's records prefix:
/// `runs/<execution name>` (the name is the ARN's last segment).
pub fn run_folder(execution: &str) -> String {
    let name = execution.rsplit(':').next().unwrap_or(execution);
    format!("runs/{name}")
}

/// The key (under the stack's records prefix) of a task's record: `runs/<execution>/tasks/<step>/<item>.json`.
pub fn task_record_key(execution: &str, step: &str, item: &Item) -> String {
    format!(
        "{}/tasks/{step}/{}.json",
        run_folder(execution),
        crate::input::item_key(item)
    )
}

/// The prefix under which every task record of an execution is.
pub fn task_records_prefix(execution: &str) -> String {
    format!("{}/tasks/", run_folder(execution))
}

/// The key of an execution's normalized results: `runs/<execution>/results.json`.
pub fn results_key(execution: &str) -> String {
    format!("{}/results.json", run_folder(execution))
}

/// What one stored task result says, whatever shape it was stored in.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub skip: Option<SkipKind>,
    pub reason: Option<String>,
    pub instance_id: Option<String>,
    pub log_stream: Option<String>,
    pub elapsed_s: Option<f64>,
    pub attempts: Option<u32>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Outcome {
    fn failed(error: Option<String>, cause: Option<String>) -> Outcome {
        Outcome {
            status: Status::Failed,
            skip: None,
            reason: None,
            instance_id: None,
            log_stream: None,
            elapsed_s: None,
            attempts: None,
            error,
            cause,
        }
    }

    fn with_status(mut self, status: Status) -> Outcome {
        self.status = status;
        self
    }

    /// Whether a dependent may run on this outcome under `all-succeeded`.
    pub fn satisfies(&self) -> bool {
        match self.status {
            Status::Succeeded => true,
            Status::Skipped => self.skip.is_none_or(SkipKind::satisfies_dependents),
            Status::Failed => false,
        }
    }

    /// Builds the flat record.
    pub fn into_record(self, step: &str, item: Item) -> TaskRecord {
        TaskRecord {
            step: step.to_string(),
            item,
            status: self.status,
            skip: self.skip,
            reason: self.reason,
            instance_id: self.instance_id,
            log_stream: self.log_stream,
            elapsed_s: self.elapsed_s,
            attempts: self.attempts,
            error: self.error,
            cause: self.cause,
        }
    }
}

/// Reads one stored task result (`$.results.<Step>` or one element of its array).
///
/// Shapes written by the generated machine:
/// - `Run<Step>`'s ResultSelector: `{"step", "item", "attempt", "prepare": PrepareRecord,
///   "outcome": {"status": "succeeded", "instance_id", "log_stream", "elapsed_s"} | {"status": "skipped"}}`
/// - a Catch: `{"Error": …, "Cause": …}` (the cause may be a [`WorkerFailureCause`] JSON string)
/// - `Record<Step>`'s [`Compact`] form, once the record is in the bucket.
pub fn read_outcome(raw: &Value) -> Outcome {
    if raw.get("outcome").is_none()
        && let Ok(c) = serde_json::from_value::<Compact>(raw.clone())
    {
        return Outcome {
            skip: c.skip,
            ..Outcome::failed(None, None)
        }
        .with_status(c.status);
    }
    if let Some(err) = raw.get("Error") {
        let error = err.as_str().map(str::to_string);
        let cause_str = raw.get("Cause").and_then(Value::as_str).map(str::to_string);
        let mut o = Outcome::failed(error, cause_str.clone());
        if let Some(c) = cause_str
            .as_deref()
            .and_then(|c| serde_json::from_str::<WorkerFailureCause>(c).ok())
        {
            o.instance_id = Some(c.instance_id);
            o.log_stream = Some(c.log_stream);
            o.elapsed_s = Some(c.elapsed_s);
            o.attempts = Some(c.attempt + 1);
            o.reason = Some(c.status);
        }
        return o;
    }
    let prepare: Option<PrepareRecord> = raw
        .get("prepare")
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    let attempt = raw
        .get("attempt")
        .and_then(Value::as_u64)
        .map(|a| a as u32 + 1);
    let outcome = raw.get("outcome");
    let ostatus = outcome
        .and_then(|o| o.get("status"))
        .and_then(Value::as_str);
    match (prepare, ostatus) {
        (Some(p), _) if p.status == PrepareStatus::Skipped => Outcome {
            status: Status::Skipped,
            skip: p.skip,
            reason: Some(p.reason),
            instance_id: None,
            log_stream: None,
            elapsed_s: None,
            attempts: None,
            error: None,
            cause: None,
        },
        (_, Some("succeeded")) => {
            let o = outcome.expect("checked");
            let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            Outcome {
                status: Status::Succeeded,
                skip: None,
                reason: None,
                instance_id: s("instance_id"),
                log_stream: s("log_stream"),
                elapsed_s: o.get("elapsed_s").and_then(Value::as_f64),
                attempts: attempt,
                error: None,
                cause: None,
            }
        }
        _ => Outcome::failed(
            Some("States.Runtime".into()),
            Some(format!("unreadable task result: {raw}")),
        ),
    }
}

/// Reads a dependency's stored value: one result, or an array of them (fanned-out dependency).
/// `None` (absent/null) means the dependency did not run in this execution.
pub fn read_dependency(raw: Option<&Value>) -> Vec<Outcome> {
    match raw {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().map(read_outcome).collect(),
        Some(v) => vec![read_outcome(v)],
    }
}

/// Whether a step may run given its dependencies' outcomes; `Err` says why not.
pub fn dependencies_allow(needs: Needs, deps: &[(String, Vec<Outcome>)]) -> Result<(), String> {
    for (name, outs) in deps {
        match needs {
            Needs::Finished => {}
            Needs::AllSucceeded => {
                let bad = outs.iter().filter(|o| !o.satisfies()).count();
                if bad > 0 {
                    return Err(format!(
                        "dependency {name} did not succeed ({bad} of {} task{} failed or skipped for a failure)",
                        outs.len(),
                        if outs.len() == 1 { "" } else { "s" }
                    ));
                }
            }
            Needs::AnySucceeded => {
                if !outs.is_empty() && !outs.iter().any(Outcome::satisfies) {
                    return Err(format!(
                        "dependency {name}: none of its {} task{} succeeded",
                        outs.len(),
                        if outs.len() == 1 { "" } else { "s" }
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn succeeded() -> Value {
        json!({"step": "A", "item": {"version": "1.0.0"}, "attempt": 1,
               "prepare": {"status": "pending", "reason": "launched 1 worker", "launched": ["i-1"]},
               "outcome": {"status": "succeeded", "instance_id": "i-1", "log_stream": "w_i-1", "elapsed_s": 3.5}})
    }

    #[test]
    fn reads_a_success_with_attempts_counted_from_one() {
        let o = read_outcome(&succeeded());
        assert_eq!(o.status, Status::Succeeded);
        assert_eq!(o.instance_id.as_deref(), Some("i-1"));
        assert_eq!(o.attempts, Some(2));
        assert!(o.satisfies());
    }

    #[test]
    fn reads_a_caught_worker_failure_with_its_cause() {
        let cause = serde_json::to_string(&WorkerFailureCause {
            instance_id: "i-9".into(),
            log_stream: "w_i-9".into(),
            attempt: 2,
            elapsed_s: 1.0,
            status: "exit status 3".into(),
            log_tail: "boom".into(),
        })
        .unwrap();
        let o = read_outcome(&json!({"Error": "Worker.ScriptFailed", "Cause": cause}));
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.error.as_deref(), Some("Worker.ScriptFailed"));
        assert_eq!(o.instance_id.as_deref(), Some("i-9"));
        assert_eq!(o.attempts, Some(3));
        assert!(!o.satisfies());
    }

    #[test]
    fn a_skip_for_a_failure_propagates_but_done_does_not() {
        let skipped = |k: &str| {
            read_outcome(
                &json!({"prepare": {"status": "skipped", "skip": k, "reason": "r"},
                                 "outcome": {"status": "skipped"}}),
            )
        };
        assert!(skipped("done").satisfies());
        assert!(skipped("not-requested").satisfies());
        assert!(!skipped("dependency-failed").satisfies());
    }

    #[test]
    fn any_succeeded_needs_one_success_all_succeeded_needs_all() {
        let ok = read_outcome(&succeeded());
        let bad = read_outcome(&json!({"Error": "States.Timeout", "Cause": "lost"}));
        let deps = vec![("B".to_string(), vec![ok.clone(), bad.clone()])];
        assert!(dependencies_allow(Needs::AnySucceeded, &deps).is_ok());
        assert!(
            dependencies_allow(Needs::AllSucceeded, &deps)
                .unwrap_err()
                .contains("1 of 2")
        );
        let all_bad = vec![("B".to_string(), vec![bad.clone(), bad])];
        assert!(dependencies_allow(Needs::AnySucceeded, &all_bad).is_err());
        assert!(dependencies_allow(Needs::Finished, &all_bad).is_ok());
    }

    #[test]
    fn the_compact_form_keeps_what_dependents_need() {
        let ok = read_outcome(&json!({"status": "succeeded"}));
        assert_eq!(ok.status, Status::Succeeded);
        assert!(ok.satisfies());
        let dep = read_outcome(&json!({"status": "skipped", "skip": "dependency-failed"}));
        assert!(!dep.satisfies());
        let done = read_outcome(&json!({"status": "skipped", "skip": "done"}));
        assert!(done.satisfies());
        assert!(!read_outcome(&json!({"status": "failed"})).satisfies());
        // A record written and read back gives the same compact form.
        let rec = read_outcome(&succeeded()).into_record("A", Item::new());
        let c = Compact::from(&rec);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"status": "succeeded"})
        );
    }

    #[test]
    fn record_keys_live_under_the_execution_name() {
        let arn = "arn:aws:states:us-east-1:1:execution:m:run-1";
        let item: Item = [("version".to_string(), "5.4/0".to_string())].into();
        assert_eq!(
            task_record_key(arn, "Build", &item),
            "runs/run-1/tasks/Build/version=5.4%2F0.json"
        );
        assert!(task_record_key(arn, "Build", &item).starts_with(&task_records_prefix(arn)));
        assert_eq!(results_key(arn), "runs/run-1/results.json");
    }

    #[test]
    fn garbage_reads_as_failed_not_as_success() {
        assert_eq!(read_outcome(&json!({"weird": 1})).status, Status::Failed);
    }
}
