//! A static report of what one input costs in the generated state machine, against the Step
//! Functions quotas (25,000 history events per execution, 256 KiB per payload).
//!
//! # Counting convention (the local engine counts the same way; a benchmark compares the two)
//!
//! The report walks the generated definition itself, with the input's plan deciding how many
//! items each Map has and whether each `Check<Step>` goes to the activity (step requested and mode
//! not `skip-ec2`) or to `Skip<Step>`; no `done_when` object is assumed to exist.
//!
//! State transitions: one per state entered, including Map and Parallel states themselves and
//! every state of every Map iteration and Parallel branch, plus one per retry of a state.
//!
//! History events, per AWS's event types:
//! - the execution: `ExecutionStarted` and `ExecutionSucceeded`/`ExecutionFailed` (2);
//! - a Task calling a Lambda ARN: `TaskStateEntered`, then per attempt `LambdaFunctionScheduled`,
//!   `LambdaFunctionStarted`, `LambdaFunctionSucceeded`/`Failed`, then `TaskStateExited`
//!   (5 when it succeeds first time);
//! - an activity Task: `TaskStateEntered`, `ActivityScheduled`, `ActivityStarted`,
//!   `ActivitySucceeded`/`Failed`/`TimedOut`, `TaskStateExited` (5 on success);
//! - a Parallel: `ParallelStateEntered`, per attempt `ParallelStateStarted` + the branches' events +
//!   `ParallelStateSucceeded`/`Failed`, then `ParallelStateExited` (4 + branches on success);
//! - a Map: `MapStateEntered`, `MapStateStarted`, per iteration `MapIterationStarted` + the
//!   iteration's events + `MapIterationSucceeded`, `MapStateSucceeded`, `MapStateExited`
//!   (4 + 2 per iteration + iterations);
//! - Pass, Choice, Succeed: `…StateEntered` + `…StateExited` (2).
//!
//! `…StateExited` is written when a state completes, including when a Catch routes it; an error
//! that leaves a state uncaught (it goes to the enclosing Parallel branch or the execution) writes
//! no `…StateExited` for that state.
//!
//! **Happy path**: every Task succeeds on its first attempt, nothing is retried.
//!
//! **Worst case** (an upper bound): every Lambda Task fails until its retriers are exhausted
//! ([`worst_case_attempts`]) and then succeeds on that last attempt (ParseInput, Prepare,
//! NormalizeResults) — except CheckForFailures, which then fails the execution; every activity
//! attempt fails, so every `Run<Step>` is attempted [`worst_case_attempts`] times of the
//! activity policy, each attempt going through `Prepare<Step>` again, and is then caught.
//! Dependents are counted as if they still ran (as with `needs = "finished"`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value, json};

use boa_core::input::PlanItem;
use boa_core::pipeline::Pipeline;
use boa_core::results::{
    Compact, FAILED_IN_PAYLOAD, ObjectRef, RunSummary, brief, read_outcome, results_key,
};
use boa_core::retry::{TaskKind, retriers, worst_case_attempts};
use boa_core::stack::{WorkerCounts, activity_name, launched_reason};
use boa_core::task::{PrepareRecord, PrepareStatus, SkipKind, WorkerFailureCause, log_stream};
use boa_core::{BuildInput, Item, Mode};

use crate::arns::MACHINE_LAMBDAS;
use crate::{Arns, generate};

/// Step Functions quota: history events per execution (Standard workflows).
pub const HISTORY_EVENTS_QUOTA: u64 = 25_000;
/// Step Functions quota: bytes of a state's input or output (and of an execution's input).
pub const PAYLOAD_QUOTA_BYTES: usize = 256 * 1024;
/// Standard workflows: $0.025 per 1,000 state transitions (us-east-1 list price; a Distributed
/// Map's STANDARD child executions are charged the same way, per transition).
pub const USD_PER_TRANSITION: f64 = 0.025 / 1000.0;
/// How big a failed task's log tail is assumed to be in the worst-case payload estimate.
pub const ASSUMED_LOG_TAIL_BYTES: usize = 2048;

/// What an input costs. The happy-path numbers are also fields for the benchmark to compare.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub pipeline: String,
    /// The input, as the tokens that reproduce it.
    pub tokens: Vec<String>,
    /// Values of the outer axis (outer Map iterations).
    pub outer_values: usize,
    /// Every state of the definition, nested ones included.
    pub states: usize,
    /// Tasks the input asks for (step × item).
    pub requested_tasks: usize,
    pub transitions_happy: u64,
    pub history_events_happy: u64,
    /// Lambda invocations on the happy path.
    pub lambda_invocations: u64,
    /// Activity tasks handed to workers on the happy path.
    pub activity_tasks: u64,
    pub transitions_worst: u64,
    pub history_events_worst: u64,
    /// Whether the outer Map is a Distributed Map (each outer value a child execution).
    pub distributed: bool,
    /// The biggest history of one child execution (0 when not distributed).
    pub child_history_events_happy: u64,
    pub child_history_events_worst: u64,
    /// Step Functions' charge for the happy path's state transitions (Standard workflows, at
    /// [`USD_PER_TRANSITION`]; the Lambdas, EC2 and S3 are not included).
    pub transitions_cost_usd: f64,
    pub lambda_invocations_worst: u64,
    pub activity_tasks_worst: u64,
    /// Bytes of the biggest state input, output or raw result when every task succeeds.
    pub payload_bytes: usize,
    /// The state whose payload that is.
    pub payload_state: String,
    /// Bytes of the biggest state output when every task fails with a log tail of
    /// [`ASSUMED_LOG_TAIL_BYTES`].
    pub payload_bytes_worst: usize,
    pub history_events_quota: u64,
    pub payload_quota_bytes: usize,
    /// One line per quota exceeded, with what to do; empty when everything fits.
    pub exceeds: Vec<String>,
}

impl Report {
    /// Whether any happy-path number is over a quota (the run cannot succeed as requested).
    pub fn exceeds_on_happy_path(&self) -> bool {
        self.history_events_happy > self.history_events_quota
            || self.child_history_events_happy > self.history_events_quota
            || self.payload_bytes > self.payload_quota_bytes
    }

    /// Whether a run of this input is refused before it starts: a quota breaks even when
    /// everything succeeds, or the results outgrow the payload quota when tasks fail (the run
    /// would end in `States.DataLimitExceeded` and lose every result). A history that only the
    /// worst case (every task exhausting every retry) pushes past the quota is a warning, not a
    /// refusal: refusing it would refuse all but the smallest releases.
    pub fn refused(&self) -> bool {
        self.exceeds_on_happy_path() || self.payload_bytes_worst > self.payload_quota_bytes
    }
}

/// Counts of one walk of the definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    transitions: u64,
    /// Events of this execution's history (a Distributed Map's children have their own).
    events: u64,
    lambda: u64,
    activity: u64,
    /// The biggest history of one child execution of a Distributed Map (0: none).
    child_events: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.transitions += o.transitions;
        self.events += o.events;
        self.lambda += o.lambda;
        self.activity += o.activity;
        self.child_events = self.child_events.max(o.child_events);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Happy,
    Worst,
}

struct Walker<'a> {
    p: &'a Pipeline,
    input: &'a BuildInput,
    plan: &'a [PlanItem],
    scenario: Scenario,
    /// Lambda resource → short name.
    lambdas: BTreeMap<String, &'static str>,
}

/// The outcome of running a state or a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
}

impl Walker<'_> {
    /// Runs a sequence from `start` to its end.
    fn sequence(
        &self,
        states: &Map<String, Value>,
        start: &str,
        item: Option<&PlanItem>,
    ) -> (Counts, Outcome) {
        let mut c = Counts::default();
        let mut name = start.to_string();
        loop {
            let st = states
                .get(&name)
                .unwrap_or_else(|| panic!("generated definition names missing state {name}"));
            let (sc, outcome, next) = self.state(&name, st, item);
            c += sc;
            if outcome == Outcome::Failed {
                return (c, Outcome::Failed);
            }
            match next {
                Some(n) => name = n,
                None => return (c, Outcome::Ok),
            }
        }
    }

    fn next_of(st: &Value) -> Option<String> {
        st.get("Next").and_then(Value::as_str).map(str::to_string)
    }

    fn catch_next(st: &Value) -> Option<String> {
        st.get("Catch")?
            .as_array()?
            .first()?
            .get("Next")?
            .as_str()
            .map(str::to_string)
    }

    /// Whether `Check<Step>` sends the task to its activity.
    fn runs_activity(&self, step: &str) -> bool {
        self.input.mode != Mode::SkipEc2 && self.input.steps.iter().any(|s| s == step)
    }

    /// (counts, outcome, next state).
    fn state(
        &self,
        name: &str,
        st: &Value,
        item: Option<&PlanItem>,
    ) -> (Counts, Outcome, Option<String>) {
        let ty = st["Type"].as_str().unwrap_or_default();
        let mut c = Counts {
            transitions: 1,
            events: 1, // …StateEntered
            ..Counts::default()
        };
        match ty {
            "Task" => {
                let resource = st["Resource"].as_str().unwrap_or_default();
                if let Some(lambda) = self.lambdas.get(resource) {
                    let attempts = match self.scenario {
                        Scenario::Happy => 1,
                        // Every retrier of the state's own Retry used up (Prepare's
                        // Ec2.NoCapacity retrier included).
                        Scenario::Worst => {
                            1 + st["Retry"].as_array().map_or(0, |rs| {
                                rs.iter()
                                    .filter_map(|r| r["MaxAttempts"].as_u64())
                                    .sum::<u64>()
                            })
                        }
                    };
                    c.transitions += attempts - 1;
                    c.events += 3 * attempts;
                    c.lambda += attempts;
                    if self.scenario == Scenario::Worst && *lambda == "check-for-failures" {
                        return (c, Outcome::Failed, None);
                    }
                } else {
                    // An activity: one attempt per entry; retries belong to the enclosing Run<Step>.
                    c.events += 3;
                    c.activity += 1;
                    if self.scenario == Scenario::Worst {
                        return (c, Outcome::Failed, None);
                    }
                }
                c.events += 1; // TaskStateExited
                (c, Outcome::Ok, Self::next_of(st))
            }
            "Pass" | "Succeed" => {
                c.events += 1;
                (c, Outcome::Ok, Self::next_of(st))
            }
            "Choice" => {
                c.events += 1;
                let step = name.strip_prefix("Check").unwrap_or(name);
                let next = if self.runs_activity(step) {
                    st["Default"].as_str()
                } else {
                    st["Choices"][0]["Next"].as_str()
                };
                (c, Outcome::Ok, next.map(str::to_string))
            }
            "Parallel" => {
                let branches = st["Branches"].as_array().cloned().unwrap_or_default();
                let max_attempts = match (self.scenario, st["Parameters"]["step"].as_str()) {
                    (Scenario::Worst, Some(step)) => {
                        let retries = self.p.step(step).map_or(0, |s| s.retries);
                        u64::from(worst_case_attempts(&retriers(TaskKind::Activity {
                            build_retries: retries,
                        })))
                    }
                    _ => 1,
                };
                let mut attempts = 0;
                let mut failed;
                loop {
                    attempts += 1;
                    c.events += 2; // ParallelStateStarted + Succeeded/Failed
                    failed = false;
                    for b in &branches {
                        let bs = b["States"].as_object().expect("branch States");
                        let (bc, o) =
                            self.sequence(bs, b["StartAt"].as_str().unwrap_or_default(), item);
                        c += bc;
                        failed |= o == Outcome::Failed;
                    }
                    if !failed || attempts >= max_attempts {
                        break;
                    }
                    c.transitions += 1; // the retry
                }
                if failed {
                    return match Self::catch_next(st) {
                        Some(n) => {
                            c.events += 1;
                            (c, Outcome::Ok, Some(n))
                        }
                        None => (c, Outcome::Failed, None),
                    };
                }
                c.events += 1;
                (c, Outcome::Ok, Self::next_of(st))
            }
            "Map" => {
                let proc_ = &st["ItemProcessor"];
                let ps = proc_["States"].as_object().expect("processor States");
                let start = proc_["StartAt"].as_str().unwrap_or_default();
                c.events += 2; // MapStateStarted + MapStateSucceeded
                let distributed = proc_["ProcessorConfig"]["Mode"] == "DISTRIBUTED";
                let mut failed = false;
                match st["ItemsPath"].as_str() {
                    Some("$.plan") if distributed => {
                        // MapRunStarted + MapRunSucceeded here; each item is a child execution
                        // with its own history (ExecutionStarted + its states + the end). A failed
                        // child is tolerated (ToleratedFailurePercentage 100).
                        c.events += 2;
                        for it in self.plan {
                            let (ic, _) = self.sequence(ps, start, Some(it));
                            c.transitions += ic.transitions;
                            c.lambda += ic.lambda;
                            c.activity += ic.activity;
                            c.child_events = c.child_events.max(ic.events + 2).max(ic.child_events);
                        }
                    }
                    Some("$.plan") => {
                        for it in self.plan {
                            c.events += 2;
                            let (ic, o) = self.sequence(ps, start, Some(it));
                            c += ic;
                            failed |= o == Outcome::Failed;
                        }
                    }
                    _ => {
                        let n = item
                            .and_then(|it| self.p.inner_axis().and_then(|a| it.get(&a.name)))
                            .and_then(Value::as_array)
                            .map_or(0, Vec::len);
                        for _ in 0..n {
                            c.events += 2;
                            let (ic, o) = self.sequence(ps, start, item);
                            c += ic;
                            failed |= o == Outcome::Failed;
                        }
                    }
                }
                if failed {
                    return match Self::catch_next(st) {
                        Some(n) => {
                            c.events += 1;
                            (c, Outcome::Ok, Some(n))
                        }
                        None => (c, Outcome::Failed, None),
                    };
                }
                c.events += 1;
                (c, Outcome::Ok, Self::next_of(st))
            }
            other => panic!("statemachine-gen does not generate {other} states"),
        }
    }
}

/// Every state of a definition, nested ones included.
pub fn count_states(states: &Map<String, Value>) -> usize {
    states
        .values()
        .map(|st| {
            let nested: usize = match st["Type"].as_str() {
                Some("Parallel") => st["Branches"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["States"].as_object())
                    .map(count_states)
                    .sum(),
                Some("Map") => st["ItemProcessor"]["States"]
                    .as_object()
                    .map_or(0, count_states),
                _ => 0,
            };
            1 + nested
        })
        .sum()
}

fn walk(
    p: &Pipeline,
    input: &BuildInput,
    plan: &[PlanItem],
    def: &Value,
    scenario: Scenario,
) -> Counts {
    let arns = Arns::Placeholders;
    let lambdas = MACHINE_LAMBDAS
        .iter()
        .map(|l| (arns.lambda(p, l), *l))
        .collect();
    let w = Walker {
        p,
        input,
        plan,
        scenario,
        lambdas,
    };
    let states = def["States"].as_object().expect("definition States");
    let (mut c, _) = w.sequence(states, def["StartAt"].as_str().unwrap_or_default(), None);
    c.events += 2; // ExecutionStarted, ExecutionSucceeded/Failed
    c
}

// ---------------------------------------------------------------------------------------------
// Payload estimate

const SAMPLE_INSTANCE: &str = "i-0123456789abcdef0";
/// A task's elapsed seconds as a worker reports them: full f64 precision.
const SAMPLE_ELAPSED_S: f64 = 12_345.678_901_234_5;

fn task_item(p: &Pipeline, pi: &PlanItem, inner_value: Option<&str>) -> Item {
    let o = &p.outer_axis().name;
    let mut it: Item = [(o.clone(), pi[o].as_str().unwrap_or_default().to_string())].into();
    if let (Some(a), Some(v)) = (p.inner_axis(), inner_value) {
        it.insert(a.name.clone(), v.to_string());
    }
    it
}

/// A stored task result as `Run<Step>`'s ResultSelector or its Catch writes it.
fn stored_result(p: &Pipeline, input: &BuildInput, step: &str, item: Item, failed: bool) -> Value {
    let requested = input.steps.iter().any(|s| s == step) && input.mode != Mode::SkipEc2;
    if !requested {
        let (kind, reason) = if input.mode == Mode::SkipEc2 {
            (SkipKind::SkipEc2, "skip-ec2: nothing is built".to_string())
        } else {
            (SkipKind::NotRequested, format!("{step} was not requested"))
        };
        let prepare = PrepareRecord {
            status: PrepareStatus::Skipped,
            skip: Some(kind),
            reason,
            launched: vec![],
            attempt: 0,
        };
        return json!({"step": step, "item": item, "attempt": 0, "prepare": prepare, "outcome": {"status": "skipped"}});
    }
    let cap = p.step(step).map_or(1, |s| s.worker.max_workers.max(1));
    if failed {
        let cause = WorkerFailureCause {
            instance_id: SAMPLE_INSTANCE.into(),
            log_stream: log_stream(step, SAMPLE_INSTANCE),
            attempt: 2,
            elapsed_s: SAMPLE_ELAPSED_S,
            status: "exit status 2".into(),
            log_tail: "x".repeat(ASSUMED_LOG_TAIL_BYTES),
        };
        return json!({"Error": "Worker.ScriptFailed", "Cause": serde_json::to_string(&cause).expect("serialises")});
    }
    // The reason start-workers writes, with counts as wide as the cap.
    let counts = WorkerCounts {
        live: cap,
        idle: cap,
        booting: cap,
    };
    let launched = vec![SAMPLE_INSTANCE.to_string()];
    let counted = counts.describe(&activity_name(p, step), cap, cap);
    let prepare = PrepareRecord {
        status: PrepareStatus::Pending,
        skip: None,
        reason: launched_reason(&counted, &launched),
        launched,
        // The worst case's last attempt number, so the payload estimate stays an upper bound.
        attempt: 99,
    };
    json!({
        "step": step, "item": item, "attempt": 0, "prepare": prepare,
        "outcome": {"status": "succeeded", "instance_id": SAMPLE_INSTANCE,
                    "log_stream": log_stream(step, SAMPLE_INSTANCE), "elapsed_s": SAMPLE_ELAPSED_S},
    })
}

/// What a `Record<Step>` leaves in the iteration for a stored result.
fn compact(stored: &Value) -> Value {
    let rec = read_outcome(stored).into_record("", Item::new());
    json!(Compact::from(&rec))
}

/// (bytes, state) of the biggest state input or output. Records live in the bucket, so no
/// payload holds more than one task's raw result: the biggest is an iteration (its item, the
/// run's steps and mode, one compact status per step) plus the biggest raw result, inside
/// `Record<Step>`, unless the top level's whole input and plan are bigger.
fn payload(p: &Pipeline, input: &BuildInput, plan: &[PlanItem], failed: bool) -> (usize, String) {
    let o = &p.outer_axis().name;
    let execution = format!(
        "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-{}:{}",
        p.name,
        "x".repeat(80)
    );
    let mut biggest_raw = (0, String::new());
    let iterations: Vec<Vec<Value>> = plan
        .iter()
        .map(|pi| {
            let mut results = Map::new();
            for s in &p.steps {
                let raw_of = |inner: Option<&str>| {
                    stored_result(p, input, &s.name, task_item(p, pi, inner), failed)
                };
                let stored = match (crate::asl::fans_out(p, s), p.inner_axis()) {
                    (true, Some(a)) => Value::Array(
                        pi[&a.name]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|v| {
                                let raw = raw_of(v.as_str());
                                let n = raw.to_string().len();
                                if n > biggest_raw.0 {
                                    biggest_raw = (n, s.name.clone());
                                }
                                compact(&raw)
                            })
                            .collect(),
                    ),
                    _ => {
                        let raw = raw_of(None);
                        let n = raw.to_string().len();
                        if n > biggest_raw.0 {
                            biggest_raw = (n, s.name.clone());
                        }
                        compact(&raw)
                    }
                };
                results.insert(s.name.clone(), stored);
            }
            let mut it = Map::new();
            it.insert("item".into(), json!({o: pi[o]}));
            if let Some(a) = p.inner_axis() {
                it.insert("inner".into(), pi[&a.name].clone());
            }
            it.insert("run".into(), json!(input.scope()));
            it.insert("execution".into(), json!(execution));
            it.insert("results".into(), Value::Object(results));
            let mut all = vec![Value::Object(it.clone())];
            // An inner Map's iteration: the item with its inner value and its position instead
            // of the inner values (the longest value at the last position, as an upper bound).
            if let Some(a) = p.inner_axis()
                && p.steps.iter().any(|s| crate::asl::fans_out(p, s))
            {
                let values = pi[&a.name].as_array().cloned().unwrap_or_default();
                let longest = values
                    .iter()
                    .filter_map(Value::as_str)
                    .max_by_key(|v| v.len())
                    .unwrap_or_default();
                // Inner values stay in it where a fan-in step needs them (lookahead).
                if !p
                    .steps
                    .iter()
                    .any(|s| crate::asl::fans_out(p, s) && crate::asl::gets_inner(p, s))
                {
                    it.remove("inner");
                }
                it.insert("item".into(), json!({o: pi[o], a.name.clone(): longest}));
                it.insert("index".into(), json!(values.len().saturating_sub(1)));
                all.push(Value::Object(it));
            }
            all
        })
        .collect();
    let iteration = iterations
        .iter()
        .flatten()
        .map(|it| it.to_string().len())
        .max()
        .unwrap_or(0);
    // `Record<Step>`'s input: the iteration with the raw result still in it.
    let record = (
        iteration + biggest_raw.0 + 2,
        crate::asl::names::record(&biggest_raw.1),
    );
    // A stage Parallel's raw result, before its ResultSelector: every branch's copy of the
    // iteration, for the biggest iteration.
    let widest = p
        .stages()
        .into_iter()
        .filter(|s| s.len() > 1)
        .max_by_key(|s| s.len());
    let stage = widest.map(|stage| {
        (
            stage.len() * (iteration + 1) + 1,
            crate::asl::names::stage_parallel(&stage),
        )
    });
    // The outer Map's output: `{}` per iteration.
    let empties: Vec<Value> = plan.iter().map(|_| json!({})).collect();
    let map_out = json!({"input": input, "run": input.scope(), "plan": plan, "results": empties});
    let map_bytes = map_out.to_string().len();

    // NormalizeResults' output: the counts and at most FAILED_IN_PAYLOAD failed records.
    let mut failed_records = vec![];
    if let Ok(tasks) = input.requested_tasks(p) {
        for (step, item) in tasks {
            let stored = stored_result(p, input, &step, item.clone(), failed);
            let rec = brief(read_outcome(&stored).into_record(&step, item));
            if rec.status == boa_core::Status::Failed && failed_records.len() < FAILED_IN_PAYLOAD {
                failed_records.push(rec);
            }
        }
    }
    let norm = RunSummary {
        summary: Default::default(),
        results: ObjectRef {
            bucket: "x".repeat(63),
            key: format!("{}/{}", "x".repeat(200), results_key(&execution)),
        },
        failed: failed_records,
    };
    let norm_bytes = json!(norm).to_string().len() + 64;
    [
        record,
        (map_bytes, crate::asl::names::outer_map(p)),
        (norm_bytes, crate::asl::names::NORMALIZE_RESULTS.to_string()),
    ]
    .into_iter()
    .chain(stage)
    .max_by_key(|(bytes, _)| *bytes)
    .unwrap_or_default()
}

/// The report for one input.
/// Why an input is refused before anything starts: it could break a Step Functions quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaError {
    /// The report's lines, one per quota, each with the figure and the limit.
    pub exceeds: Vec<String>,
    /// The outer axis (e.g. `version`) and how many of its values were asked for.
    pub outer: String,
    pub requested: usize,
    /// The largest number of the requested outer values (the first ones, same everything else)
    /// that fits every quota; 0 when even one does not.
    pub fits: usize,
}

impl std::fmt::Display for QuotaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "this request could break a Step Functions quota, so nothing was started:"
        )?;
        for e in &self.exceeds {
            writeln!(f, "  {e}")?;
        }
        let o = &self.outer;
        if self.fits == 0 {
            write!(
                f,
                "even one {o} of this shape does not fit: request fewer steps or values of the other axes"
            )
        } else {
            write!(
                f,
                "the largest request of this shape that fits is {} {o}{} of the {} asked for: split the {o}s into runs of at most {} (see `statemachine-gen --report`)",
                self.fits,
                if self.fits == 1 { "" } else { "s" },
                self.requested,
                self.fits
            )
        }
    }
}

impl std::error::Error for QuotaError {}

/// The check ParseInput and the CLI make before a run starts: the input's [`report`] must not be
/// [`Report::refused`]. On refusal, the error says which quota, by how much, and the largest
/// request of the same shape (the first k outer values) that fits. A report that is returned
/// may still carry `exceeds` lines (the worst-case history): callers show them as warnings.
pub fn check_quotas(p: &Pipeline, input: &BuildInput) -> Result<Report, QuotaError> {
    let r = report(p, input);
    if !r.refused() {
        return Ok(r);
    }
    let outer = p.outer_axis().name.clone();
    let values: Vec<String> = input.axes.get(&outer).cloned().unwrap_or_default();
    let first = |k: usize| {
        let mut i = input.clone();
        i.axes.insert(outer.clone(), values[..k].to_vec());
        i
    };
    // Costs grow with the number of outer values: the largest k that fits, by bisection.
    let (mut lo, mut hi) = (0, values.len());
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if !report(p, &first(mid)).refused() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // `lo` fits (0 trivially), `hi` does not (all of them).
    Err(QuotaError {
        exceeds: r.exceeds,
        outer,
        requested: values.len(),
        fits: lo,
    })
}

pub fn report(p: &Pipeline, input: &BuildInput) -> Report {
    let def = generate(p, &Arns::Placeholders);
    let plan = input.plan(p).unwrap_or_default();
    let happy = walk(p, input, &plan, &def, Scenario::Happy);
    let worst = walk(p, input, &plan, &def, Scenario::Worst);
    let (payload_bytes, payload_state) = payload(p, input, &plan, false);
    let (payload_bytes_worst, _) = payload(p, input, &plan, true);
    let n = plan.len();
    let o = &p.outer_axis().name;

    // How many outer values fit in one run, from the per-value cost.
    let fits = |total: u64, quota: u64| -> String {
        let base = walk(p, input, &[], &def, Scenario::Happy).events;
        let per = (total.saturating_sub(base)) / (n.max(1) as u64);
        if per == 0 {
            return String::new();
        }
        let k = quota.saturating_sub(base) / per;
        format!(
            " (about {k} {o}{} per run fit)",
            if k == 1 { "" } else { "s" }
        )
    };
    let mut exceeds = vec![];
    let distributed = p.outer_axis().distributed;
    if happy.child_events > HISTORY_EVENTS_QUOTA {
        exceeds.push(format!(
            "EXCEEDS the history quota of one child execution: {} events for one {o} even when everything succeeds, over {HISTORY_EVENTS_QUOTA}; request fewer steps or values of the other axes per run",
            happy.child_events
        ));
    } else if worst.child_events > HISTORY_EVENTS_QUOTA {
        exceeds.push(format!(
            "EXCEEDS the history quota of one child execution in the worst case: {} events for one {o} if every retry is used, over {HISTORY_EVENTS_QUOTA} (that {o}'s tasks would be lost)",
            worst.child_events
        ));
    }
    if happy.events > HISTORY_EVENTS_QUOTA {
        exceeds.push(format!(
            "EXCEEDS the history quota: {} events even when everything succeeds, over {HISTORY_EVENTS_QUOTA}; split the {o}s into separate runs{}{}",
            happy.events,
            fits(happy.events, HISTORY_EVENTS_QUOTA),
            if distributed { "" } else { ", or make the outer axis `distributed = true` in the pipeline (each value a child execution with its own history)" }
        ));
    } else if worst.events > HISTORY_EVENTS_QUOTA {
        exceeds.push(format!(
            "EXCEEDS the history quota in the worst case: {} events if every retry is used, over {HISTORY_EVENTS_QUOTA} (such an execution would fail); split the {o}s into separate runs to be safe",
            worst.events
        ));
    }
    if payload_bytes > PAYLOAD_QUOTA_BYTES {
        exceeds.push(format!(
            "EXCEEDS the payload quota: the payload at {payload_state} is about {payload_bytes} bytes, over {PAYLOAD_QUOTA_BYTES}; split the {o}s into separate runs"
        ));
    } else if payload_bytes_worst > PAYLOAD_QUOTA_BYTES {
        exceeds.push(format!(
            "EXCEEDS the payload quota in the worst case: about {payload_bytes_worst} bytes when every task fails with a {ASSUMED_LOG_TAIL_BYTES}-byte log tail, over {PAYLOAD_QUOTA_BYTES} (the Map would fail with States.DataLimitExceeded); split the {o}s into separate runs to be safe"
        ));
    }

    Report {
        pipeline: p.name.clone(),
        tokens: input.tokens(p),
        outer_values: n,
        states: count_states(def["States"].as_object().expect("States")),
        requested_tasks: input.requested_tasks(p).map_or(0, |t| t.len()),
        transitions_happy: happy.transitions,
        history_events_happy: happy.events,
        lambda_invocations: happy.lambda,
        activity_tasks: happy.activity,
        transitions_worst: worst.transitions,
        history_events_worst: worst.events,
        distributed,
        child_history_events_happy: happy.child_events,
        child_history_events_worst: worst.child_events,
        transitions_cost_usd: happy.transitions as f64 * USD_PER_TRANSITION,
        lambda_invocations_worst: worst.lambda,
        activity_tasks_worst: worst.activity,
        payload_bytes,
        payload_state,
        payload_bytes_worst,
        history_events_quota: HISTORY_EVENTS_QUOTA,
        payload_quota_bytes: PAYLOAD_QUOTA_BYTES,
        exceeds,
    }
}

fn pct(v: f64, quota: f64) -> String {
    format!("{:.1}%", 100.0 * v / quota)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens = if self.tokens.is_empty() {
            "(defaults)".to_string()
        } else {
            self.tokens.join(" ")
        };
        writeln!(
            f,
            "build-on-aws pipeline '{}', input: {tokens}",
            self.pipeline
        )?;
        writeln!(f, "  states in the definition   {:>10}", self.states)?;
        writeln!(
            f,
            "  requested tasks            {:>10}",
            self.requested_tasks
        )?;
        writeln!(
            f,
            "                             {:>10} {:>12}",
            "happy path", "worst case"
        )?;
        writeln!(
            f,
            "  state transitions          {:>10} {:>12}",
            self.transitions_happy, self.transitions_worst
        )?;
        writeln!(
            f,
            "  history events             {:>10} {:>12}   quota {} ({} / {})",
            self.history_events_happy,
            self.history_events_worst,
            self.history_events_quota,
            pct(
                self.history_events_happy as f64,
                self.history_events_quota as f64
            ),
            pct(
                self.history_events_worst as f64,
                self.history_events_quota as f64
            ),
        )?;
        if self.distributed {
            writeln!(
                f,
                "  one child's history events {:>10} {:>12}   quota {} ({} / {}) (Distributed Map: one child execution per outer value)",
                self.child_history_events_happy,
                self.child_history_events_worst,
                self.history_events_quota,
                pct(
                    self.child_history_events_happy as f64,
                    self.history_events_quota as f64
                ),
                pct(
                    self.child_history_events_worst as f64,
                    self.history_events_quota as f64
                ),
            )?;
        }
        writeln!(
            f,
            "  Lambda invocations         {:>10} {:>12}",
            self.lambda_invocations, self.lambda_invocations_worst
        )?;
        writeln!(
            f,
            "  activity tasks             {:>10} {:>12}",
            self.activity_tasks, self.activity_tasks_worst
        )?;
        writeln!(
            f,
            "  largest payload (bytes)    {:>10} {:>12}   quota {} ({} / {}), at {}",
            self.payload_bytes,
            self.payload_bytes_worst,
            self.payload_quota_bytes,
            pct(self.payload_bytes as f64, self.payload_quota_bytes as f64),
            pct(
                self.payload_bytes_worst as f64,
                self.payload_quota_bytes as f64
            ),
            self.payload_state,
        )?;
        writeln!(
            f,
            "  Step Functions cost        {:>10}               at $0.025 per 1,000 transitions (Standard; Lambda, EC2 and S3 not included)",
            format!("${:.4}", self.transitions_cost_usd)
        )?;
        if self.exceeds.is_empty() {
            writeln!(
                f,
                "OK: within the Step Functions quotas, even in the worst case."
            )?;
        } else {
            for e in &self.exceeds {
                writeln!(f, "{e}")?;
            }
        }
        Ok(())
    }
}
