//! The Step Functions definition (Amazon States Language, JSONPath dialect).
//!
//! Shape, with O the outer axis (e.g. `version`) and I the inner axis (e.g. `distro`):
//!
//! ```text
//! ParseInput (lambda parse-input, no Catch: a bad input fails the execution with Input.Invalid)
//!  → ForEach<O> (Map over $.plan; each iteration: {item, inner, run, execution, results: {}})
//!      the pipeline's stages in order; a stage of several steps is a Parallel of their blocks
//!      a step block is
//!        Run<Step> (Parallel, one branch; Retry = the activity policy; Catch → $.results.<Step>)
//!          Prepare<Step> (lambda start-workers) → Check<Step> (Choice on $.prepare.status)
//!            → Skip<Step> (Pass) | <Step> (activity Task with TimeoutSeconds and HeartbeatSeconds)
//!        → Record<Step> (lambda record-result: the task's record becomes an object in the bucket
//!          and $.results.<Step> becomes its compact form, `{"status", "skip"}`)
//!      or, for a step fanning out over I, a Map <Step>ForEach<I> over $.inner whose processor is
//!      Run<Step> (ResultPath $.result) → Record<Step> (ResultPath $), with Record's Catch going
//!      to the Succeed state Caught<Step>
//!      every state that ends an iteration has `OutputPath: null`: an iteration's output is `{}`
//!  → NormalizeResults (lambda normalize-results: reads the records back, writes the results
//!    object, returns the counts; Catch → $.normalizeError)
//!  → CheckForFailures (lambda check-for-failures, no Catch: fails the execution with Build.Failed)
//! ```
//!
//! Every payload of an iteration stays the same size whatever the number of tasks and of outer
//! values: each iteration carries its item, the run's scope (`run`: the requested steps and the
//! mode, never the whole input with every axis's values) and one compact status per step; an
//! inner iteration adds its position (`index`); records live in the bucket. Only the top level
//! holds the whole input and the plan.
//!
//! A block with nothing after it in its sequence sends its Catch to a Succeed state
//! named `Caught<Block>` (`CaughtRun<Step>`, `Caught<Step>ForEach<I>` or `Caught<StageParallel>`),
//! since a Catch needs a Next.

use serde_json::{Map, Value, json};

use boa_core::Pipeline;
use boa_core::duration::whole_seconds;
use boa_core::errors::states;
use boa_core::pipeline::Step;
use boa_core::retry::{TaskKind, retriers};

use crate::Arns;

/// The longest state name Step Functions accepts.
pub const MAX_STATE_NAME: usize = 80;

/// State names, shared with the report, the diagram and the tests.
pub mod names {
    use boa_core::Pipeline;
    use boa_core::pipeline::Step;

    use crate::capitalize;

    pub const PARSE_INPUT: &str = "ParseInput";
    pub const NORMALIZE_RESULTS: &str = "NormalizeResults";
    pub const CHECK_FOR_FAILURES: &str = "CheckForFailures";

    /// The outer Map, e.g. `ForEachVersion`.
    pub fn outer_map(p: &Pipeline) -> String {
        format!("ForEach{}", capitalize(&p.outer_axis().name))
    }
    /// The inner Map of a fanned-out step, e.g. `MakeBinaryPackageForEachDistro`.
    pub fn fan_out_map(p: &Pipeline, step: &str) -> String {
        let inner = p.inner_axis().map_or("Inner", |a| a.name.as_str());
        format!("{step}ForEach{}", capitalize(inner))
    }
    pub fn run(step: &str) -> String {
        format!("Run{step}")
    }
    pub fn prepare(step: &str) -> String {
        format!("Prepare{step}")
    }
    pub fn check(step: &str) -> String {
        format!("Check{step}")
    }
    pub fn skip(step: &str) -> String {
        format!("Skip{step}")
    }
    /// The record-result Task after a step's run.
    pub fn record(step: &str) -> String {
        format!("Record{step}")
    }
    /// The Succeed state a block's Catch goes to when nothing follows it.
    pub fn caught(block: &str) -> String {
        format!("Caught{block}")
    }
    /// The Parallel of a stage of several steps, e.g. `PublishSourceTarballAndPublishDockerImages`;
    /// `Parallel<First>And<N>More` when that would be longer than 80 characters.
    pub fn stage_parallel(stage: &[&Step]) -> String {
        let joined = stage
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join("And");
        if joined.len() <= super::MAX_STATE_NAME {
            joined
        } else {
            format!("Parallel{}And{}More", stage[0].name, stage.len() - 1)
        }
    }
    /// The name of a step's block in its stage: `Run<Step>` or `<Step>ForEach<I>`.
    pub fn block(p: &Pipeline, step: &Step) -> String {
        if super::fans_out(p, step) {
            fan_out_map(p, &step.name)
        } else {
            run(&step.name)
        }
    }
}

/// Whether the step runs in an inner Map (it fans out and the pipeline has an inner axis).
pub(crate) fn fans_out(p: &Pipeline, step: &Step) -> bool {
    step.fans_out() && p.inner_axis().is_some()
}

/// Whether a task of `step` is given its outer value's inner values (`inner`): lookahead needs
/// them to know the tasks that follow it or that it waits for across the inner axis. A task at
/// the outer level has them in its iteration already; an inner Map's iteration carries them only
/// for a fanned-out step that a step outside the inner Map comes after (fan-in), so other inner
/// iterations stay as small as their own item.
pub(crate) fn gets_inner(p: &Pipeline, step: &Step) -> bool {
    p.inner_axis().is_some()
        && (!fans_out(p, step)
            || p.steps
                .iter()
                .any(|d| d.after.contains(&step.name) && !fans_out(p, d)))
}

fn retry(kind: TaskKind) -> Value {
    serde_json::to_value(retriers(kind)).expect("retriers serialise")
}

fn catch_all(result_path: &str, next: &str) -> Value {
    json!([{"ErrorEquals": [states::ALL], "ResultPath": result_path, "Next": next}])
}

/// Sets `Next` or `End: true`.
fn link(state: &mut Map<String, Value>, next: Option<&str>) {
    match next {
        Some(n) => state.insert("Next".into(), json!(n)),
        None => state.insert("End".into(), json!(true)),
    };
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! object"),
    }
}

/// The stack's lookahead state machine: waits until `$.at` (when a step's workers should start
/// booting to be up as the tasks they wait for end), then calls start-workers with
/// `$.lookahead` (see `boa_core::lookahead`). One small execution per prepared task that has
/// dependents; a failed one only means those workers start when their task is prepared.
pub fn lookahead(p: &Pipeline, arns: &Arns) -> Value {
    use boa_core::lookahead::{START_STATE, WAIT_STATE};
    json!({
        "Comment": format!("build-on-aws {}: starts a step's workers ahead, so they are up when the tasks they wait for end.", p.name),
        "StartAt": WAIT_STATE,
        "States": {
            WAIT_STATE: {
                "Type": "Wait",
                "Comment": "Until the tasks these workers wait for are expected to end, minus the workers' boot time.",
                "TimestampPath": "$.at",
                "Next": START_STATE,
            },
            START_STATE: {
                "Type": "Task",
                "Comment": "start-workers: checks the tasks are still running and expected to end within a boot, then launches one worker per task that will follow them.",
                "Resource": arns.lambda(p, "start-workers"),
                "Parameters": {"lookahead.$": "$.lookahead"},
                "Retry": retry(TaskKind::Lambda),
                "End": true,
            },
        },
    })
}

/// The ASL definition of the pipeline's state machine.
pub fn generate(p: &Pipeline, arns: &Arns) -> Value {
    let outer = p.outer_axis();
    let o = &outer.name;
    let map_name = names::outer_map(p);

    let mut item_selector = Map::new();
    item_selector.insert(
        "item".into(),
        json!({ format!("{o}.$"): format!("$$.Map.Item.Value.{o}") }),
    );
    if let Some(inner) = p.inner_axis() {
        item_selector.insert(
            "inner.$".into(),
            json!(format!("$$.Map.Item.Value.{}", inner.name)),
        );
    }
    item_selector.insert("run.$".into(), json!("$.run"));
    item_selector.insert("execution.$".into(), json!("$$.Execution.Id"));
    item_selector.insert("results".into(), json!({}));

    let stages = p.stages();
    let (start_at, mut processor_states) = sequence(p, arns, &stages);
    // An iteration's output is `{}`: its records are in the bucket, and the Map's result stays a
    // few bytes per item however much each task stored.
    for st in processor_states.values_mut() {
        let ends = st.get("End") == Some(&json!(true)) || st["Type"] == "Succeed";
        if ends && let Value::Object(m) = st {
            m.insert("OutputPath".into(), Value::Null);
        }
    }

    let mut states = Map::new();
    states.insert(
        names::PARSE_INPUT.into(),
        json!({
            "Type": "Task",
            "Comment": "Validates the input (tokens or JSON) against the pipeline and plans the run. No Catch: an invalid input fails the execution with Input.Invalid.",
            "Resource": arns.lambda(p, "parse-input"),
            "Parameters": {"input.$": "$", "execution.$": "$$.Execution.Id"},
            "ResultPath": "$",
            "Retry": retry(TaskKind::Lambda),
            "Next": map_name,
        }),
    );
    let mut outer_map = obj(json!({
        "Type": "Map",
        "Comment": format!("For each {o}: the pipeline's steps in dependency order."),
        "ItemsPath": "$.plan",
        "ItemSelector": item_selector,
        "MaxConcurrency": outer.max_concurrency,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": start_at,
            "States": processor_states,
        },
        "ResultPath": "$.results",
        "Catch": catch_all("$.results", names::NORMALIZE_RESULTS),
        "Next": names::NORMALIZE_RESULTS,
    }));
    if outer.distributed {
        distribute(&mut outer_map, arns, o);
    }
    states.insert(map_name.clone(), Value::Object(outer_map));
    states.insert(
        names::NORMALIZE_RESULTS.into(),
        json!({
            "Type": "Task",
            "Comment": "Reads every task record of the execution back from the bucket, writes one flat record per requested task as runs/<execution>/results.json, and returns the counts.",
            "Resource": arns.lambda(p, "normalize-results"),
            "Parameters": {"input.$": "$.input", "execution.$": "$$.Execution.Id", "results.$": "$.results"},
            "ResultPath": "$",
            "Retry": retry(TaskKind::Lambda),
            "Catch": catch_all("$.normalizeError", names::CHECK_FOR_FAILURES),
            "Next": names::CHECK_FOR_FAILURES,
        }),
    );
    states.insert(
        names::CHECK_FOR_FAILURES.into(),
        json!({
            "Type": "Task",
            "Comment": "Fails the execution with Build.Failed and a readable list when any task failed. No Catch.",
            "Resource": arns.lambda(p, "check-for-failures"),
            "Retry": retry(TaskKind::Lambda),
            "End": true,
        }),
    );

    json!({
        "Comment": format!(
            "build-on-aws pipeline '{}': generated by build-on-aws statemachine-gen from pipeline.toml; do not edit by hand.",
            p.name
        ),
        "StartAt": names::PARSE_INPUT,
        "States": states,
    })
}

/// Makes the outer Map a Distributed Map: each item a child execution (STANDARD) with its own
/// history, so a run is no longer bounded by one execution's 25,000 events. A failed child does
/// not fail the Map (`ToleratedFailurePercentage: 100`): its tasks have no records and
/// NormalizeResults reports them as lost, with every other task's record. The children's outputs
/// (`{}`, or a failed child's error) go to the bucket through `ResultWriter`, under
/// `runs/<execution>/map/`, not into the payload.
fn distribute(map: &mut Map<String, Value>, arns: &Arns, outer: &str) {
    map.insert(
        "Comment".into(),
        json!(format!(
            "For each {outer}, a child execution (Distributed Map): the pipeline's steps in dependency order."
        )),
    );
    if let Some(Value::Object(proc_)) = map.get_mut("ItemProcessor") {
        proc_.insert(
            "ProcessorConfig".into(),
            json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}),
        );
    }
    map.insert(
        "Label".into(),
        json!(format!("ForEach{}", crate::capitalize(outer))),
    );
    map.insert("ToleratedFailurePercentage".into(), json!(100));
    map.insert(
        "ResultWriter".into(),
        json!({
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {
                "Bucket": arns.records_bucket(),
                "Prefix.$": format!("States.Format('{}runs/{{}}/map', $$.Execution.Name)", arns.records_prefix()),
            },
        }),
    );
}

/// The states of one outer-Map iteration: the stages in order. Returns (StartAt, States).
fn sequence(p: &Pipeline, arns: &Arns, stages: &[Vec<&Step>]) -> (String, Map<String, Value>) {
    let block_names: Vec<String> = stages
        .iter()
        .map(|stage| match stage.as_slice() {
            [one] => names::block(p, one),
            many => names::stage_parallel(many),
        })
        .collect();
    let mut states = Map::new();
    for (i, stage) in stages.iter().enumerate() {
        let next = block_names.get(i + 1).map(String::as_str);
        match stage.as_slice() {
            [one] => step_block(p, arns, one, next, &mut states),
            many => {
                let name = &block_names[i];
                let branches: Vec<Value> = many
                    .iter()
                    .map(|s| {
                        let mut bs = Map::new();
                        step_block(p, arns, s, None, &mut bs);
                        json!({"StartAt": names::block(p, s), "States": bs})
                    })
                    .collect();
                let mut selector = Map::new();
                selector.insert("item.$".into(), json!("$[0].item"));
                if p.inner_axis().is_some() {
                    selector.insert("inner.$".into(), json!("$[0].inner"));
                }
                selector.insert("run.$".into(), json!("$[0].run"));
                selector.insert("execution.$".into(), json!("$[0].execution"));
                selector.insert("results.$".into(), json!(merge_results(many.len())));
                let (catch_next, terminal) = match next {
                    Some(n) => (n.to_string(), None),
                    None => {
                        let c = names::caught(name);
                        (c.clone(), Some(c))
                    }
                };
                let mut st = obj(json!({
                    "Type": "Parallel",
                    "Comment": format!("{} run side by side.", many.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")),
                    "Branches": branches,
                    "ResultSelector": selector,
                    "ResultPath": "$",
                    "Catch": catch_all(&format!("$.stageErrors.{name}"), &catch_next),
                }));
                link(&mut st, next);
                states.insert(name.clone(), Value::Object(st));
                if let Some(t) = terminal {
                    states.insert(
                        t,
                        succeed("A stage failed as a whole; its error is at $.stageErrors."),
                    );
                }
            }
        }
    }
    (block_names.first().cloned().unwrap_or_default(), states)
}

/// `States.JsonMerge(States.JsonMerge($[0].results, $[1].results, false), $[2].results, false)`.
fn merge_results(n: usize) -> String {
    let mut expr = "$[0].results".to_string();
    for i in 1..n {
        expr = format!("States.JsonMerge({expr}, $[{i}].results, false)");
    }
    expr
}

fn succeed(comment: &str) -> Value {
    json!({"Type": "Succeed", "Comment": comment})
}

/// Adds a step's block (and, if nothing follows it, the Succeed state its Catch goes to).
fn step_block(
    p: &Pipeline,
    arns: &Arns,
    step: &Step,
    next: Option<&str>,
    states: &mut Map<String, Value>,
) {
    let result_path = format!("$.results.{}", step.name);
    let block = names::block(p, step);
    // With nothing after the block, its Catch goes to a Succeed state added after it.
    let terminal = next.is_none().then(|| names::caught(&block));
    let catch_next = next
        .map(str::to_string)
        .or_else(|| terminal.clone())
        .expect("next or terminal");
    let state = if fans_out(p, step) {
        let o = &p.outer_axis().name;
        let inner = p.inner_axis().expect("fans_out checks the inner axis");
        let i = &inner.name;
        let caught = names::caught(&step.name);
        let record = names::record(&step.name);
        let mut proc_states = Map::new();
        proc_states.insert(
            names::run(&step.name),
            Value::Object(run_state(
                p,
                arns,
                step,
                "$.result",
                Some(&record),
                "$.result",
                &record,
            )),
        );
        proc_states.insert(
            record.clone(),
            Value::Object(record_state(
                p, arns, step, "$.result", "$", None, "$", &caught,
            )),
        );
        proc_states.insert(
            caught,
            succeed(&format!(
                "This {i}'s {} record could not be written; the iteration outputs that error.",
                step.name
            )),
        );
        let max = if step.exclusive {
            1
        } else {
            inner.max_concurrency
        };
        let mut st = obj(json!({
            "Type": "Map",
            "Comment": format!("{} for each {i}{}.", step.name, if step.exclusive { ", one at a time (exclusive)" } else { "" }),
            "ItemsPath": "$.inner",
            "ItemSelector": {
                "item": {format!("{o}.$"): format!("$.item.{o}"), format!("{i}.$"): "$$.Map.Item.Value"},
                "index.$": "$$.Map.Item.Index",
                "run.$": "$.run",
                "execution.$": "$.execution",
                "results.$": "$.results",
            },
            "MaxConcurrency": max,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": names::run(&step.name),
                "States": proc_states,
            },
            "ResultPath": result_path,
            "Catch": catch_all(&result_path, &catch_next),
        }));
        if gets_inner(p, step)
            && let Some(Value::Object(sel)) = st.get_mut("ItemSelector")
        {
            sel.insert("inner.$".into(), json!("$.inner"));
        }
        link(&mut st, next);
        st
    } else {
        let record = names::record(&step.name);
        states.insert(
            record.clone(),
            Value::Object(record_state(
                p,
                arns,
                step,
                &result_path,
                &result_path,
                next,
                &result_path,
                &catch_next,
            )),
        );
        run_state(
            p,
            arns,
            step,
            &result_path,
            Some(&record),
            &result_path,
            &record,
        )
    };
    states.insert(block, Value::Object(state));
    if let Some(t) = terminal {
        states.insert(
            t,
            succeed(&format!(
                "{} failed; its error is at {result_path}.",
                step.name
            )),
        );
    }
}

/// `Record<Step>`: writes the task's record (from `result_from`, what `Run<Step>` left) to the
/// bucket and puts its compact form at `result_path`.
#[allow(clippy::too_many_arguments)]
fn record_state(
    p: &Pipeline,
    arns: &Arns,
    step: &Step,
    result_from: &str,
    result_path: &str,
    next: Option<&str>,
    catch_path: &str,
    catch_next: &str,
) -> Map<String, Value> {
    let mut st = obj(json!({
        "Type": "Task",
        "Comment": "record-result: the task's record (status, worker, log stream, attempts, error, cause) becomes an object under runs/<execution>/tasks/ in the artifact bucket; only its status stays in the state.",
        "Resource": arns.lambda(p, "record-result"),
        "Parameters": {
            "step": step.name,
            "item.$": "$.item",
            "execution.$": "$.execution",
            "result.$": result_from,
        },
        "ResultPath": result_path,
        "Retry": retry(TaskKind::Lambda),
        "Catch": catch_all(catch_path, catch_next),
    }));
    link(&mut st, next);
    st
}

/// `Run<Step>`: the one-branch Parallel that retries Prepare + activity together.
fn run_state(
    p: &Pipeline,
    arns: &Arns,
    step: &Step,
    result_path: &str,
    next: Option<&str>,
    catch_path: &str,
    catch_next: &str,
) -> Map<String, Value> {
    let s = &step.name;
    // A task of an inner Map also carries its position there (how start-workers finds its own
    // entry in a fanned-out dependency's results).
    let indexed = fans_out(p, step);
    let mut prepare_params = obj(json!({
        "step.$": "$.step",
        "item.$": "$.item",
        "run.$": "$.run",
        "deps.$": "$.deps",
        "execution.$": "$.execution",
        "entered.$": "$$.State.EnteredTime",
    }));
    let mut run_params = obj(json!({
        "step": s,
        "item.$": "$.item",
        "run.$": "$.run",
        "execution.$": "$.execution",
        "deps.$": "$.results",
    }));
    if indexed {
        prepare_params.insert("index.$".into(), json!("$.index"));
        run_params.insert("index.$".into(), json!("$.index"));
    }
    if gets_inner(p, step) {
        prepare_params.insert("inner.$".into(), json!("$.inner"));
        run_params.insert("inner.$".into(), json!("$.inner"));
    }
    let mut branch = Map::new();
    branch.insert(
        names::prepare(s),
        json!({
            "Type": "Task",
            "Comment": "start-workers: done-check and dependencies, then launch the workers this task needs.",
            "Resource": arns.lambda(p, "start-workers"),
            "Parameters": prepare_params,
            "ResultPath": "$.prepare",
            "Retry": retry(TaskKind::Prepare { launch_deadline: step.worker.launch_deadline }),
            "Next": names::check(s),
        }),
    );
    branch.insert(
        names::check(s),
        json!({
            "Type": "Choice",
            "Choices": [{"Variable": "$.prepare.status", "StringEquals": "skipped", "Next": names::skip(s)}],
            "Default": s,
        }),
    );
    branch.insert(
        names::skip(s),
        json!({
            "Type": "Pass",
            "Result": {"status": "skipped"},
            "ResultPath": "$.outcome",
            "End": true,
        }),
    );
    let mut task = Map::new();
    task.insert("Type".into(), json!("Task"));
    if let Some(d) = &step.description {
        task.insert("Comment".into(), json!(d));
    }
    task.insert("Resource".into(), json!(arns.activity(p, s)));
    task.insert(
        "Parameters".into(),
        json!({
            "step.$": "$.step",
            "item.$": "$.item",
            "mode.$": "$.run.mode",
            "attempt.$": "$.prepare.attempt",
            "execution.$": "$.execution",
        }),
    );
    task.insert("TimeoutSeconds".into(), json!(whole_seconds(step.timeout)));
    task.insert(
        "HeartbeatSeconds".into(),
        json!(whole_seconds(step.heartbeat)),
    );
    task.insert(
        "ResultSelector".into(),
        json!({
            "status": "succeeded",
            "instance_id.$": "$.instance_id",
            "log_stream.$": "$.log_stream",
            "elapsed_s.$": "$.elapsed_s",
        }),
    );
    task.insert("ResultPath".into(), json!("$.outcome"));
    task.insert("End".into(), json!(true));
    branch.insert(s.clone(), Value::Object(task));

    let mut st = obj(json!({
        "Type": "Parallel",
        "Comment": format!(
            "{s}: Prepare{s} then the activity; a retry goes back through Prepare{s} so a worker is launched at once. Attempts are named by Prepare{s}'s entered time and counted by start-workers, not by this state's RetryCount."
        ),
        "Parameters": run_params,
        "Branches": [{"StartAt": names::prepare(s), "States": branch}],
        "ResultSelector": {
            "step.$": "$[0].step",
            "item.$": "$[0].item",
            "attempt.$": "$[0].prepare.attempt",
            "prepare.$": "$[0].prepare",
            "outcome.$": "$[0].outcome",
        },
        "ResultPath": result_path,
        "Retry": retry(TaskKind::Activity { build_retries: step.retries }),
        "Catch": catch_all(catch_path, catch_next),
    }));
    link(&mut st, next);
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_nests_left_to_right() {
        assert_eq!(merge_results(1), "$[0].results");
        assert_eq!(
            merge_results(3),
            "States.JsonMerge(States.JsonMerge($[0].results, $[1].results, false), $[2].results, false)"
        );
    }

    #[test]
    fn capitalize_axis_names() {
        assert_eq!(crate::capitalize("version"), "Version");
        assert_eq!(crate::camel("check-for-failures"), "CheckForFailures");
    }
}
