//! normalize-results: the nested output of the outer Map → exactly one flat [`TaskRecord`] per
//! requested task, in plan order. A task whose result is missing (its stage or branch was lost)
//! becomes a failed record saying so, never a missing one.

use boa_core::input::PlanItem;
use boa_core::results::{Outcome, read_outcome};
use boa_core::{BuildInput, Item, NamedError, NormalizedResults, Pipeline, Status, TaskRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the `NormalizeResults` state is invoked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizeEvent {
    pub input: BuildInput,
    #[serde(default)]
    pub plan: Vec<PlanItem>,
    /// The outer Map's output: one state per plan item `{item, input, results: {Step: …}}`, or a
    /// caught `{Error, Cause}` when the Map itself failed.
    #[serde(default)]
    pub results: Value,
}

/// An `{Error, Cause}` caught somewhere above a task.
#[derive(Debug, Clone, PartialEq)]
struct Caught {
    error: String,
    cause: Option<String>,
}

fn caught(v: &Value) -> Option<Caught> {
    let e = v.get("Error")?;
    Some(Caught {
        error: e.as_str().map_or_else(|| e.to_string(), str::to_string),
        cause: v.get("Cause").and_then(Value::as_str).map(str::to_string),
    })
}

fn lost(step: &str, item: &Item, why: Option<&Caught>) -> TaskRecord {
    let coords: Vec<String> = item.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut reason = format!(
        "no result was stored for {step} {}: its stage was lost",
        coords.join(" ")
    );
    if let Some(c) = why {
        reason.push_str(&format!(" ({}", c.error));
        if let Some(cause) = &c.cause {
            reason.push_str(&format!(": {}", cause.lines().next().unwrap_or_default()));
        }
        reason.push(')');
    }
    TaskRecord {
        step: step.to_string(),
        item: item.clone(),
        status: Status::Failed,
        skip: None,
        reason: Some(reason),
        instance_id: None,
        log_stream: None,
        elapsed_s: None,
        attempts: None,
        error: Some(why.map_or_else(|| "States.Runtime".to_string(), |c| c.error.clone())),
        cause: why.and_then(|c| c.cause.clone()),
    }
}

fn record(step: &str, item: &Item, o: Outcome) -> TaskRecord {
    o.into_record(step, item.clone())
}

/// The handler.
pub fn handle(ev: NormalizeEvent, p: &Pipeline) -> Result<NormalizedResults, NamedError> {
    let requested = ev.input.requested_tasks(p)?;
    let plan = if ev.plan.is_empty() {
        ev.input.plan(p)?
    } else {
        ev.plan.clone()
    };
    let outer = p.outer_axis().name.clone();
    let inner = p.inner_axis().map(|a| a.name.clone());
    let whole = caught(&ev.results);
    let states: Vec<Value> = ev.results.as_array().cloned().unwrap_or_default();
    let mut tasks = Vec::with_capacity(requested.len());
    for (step_name, item) in &requested {
        let ov = item.get(&outer).cloned().unwrap_or_default();
        if let Some(w) = &whole {
            tasks.push(lost(step_name, item, Some(w)));
            continue;
        }
        let idx = plan
            .iter()
            .position(|pi| pi.get(&outer).and_then(Value::as_str) == Some(ov.as_str()));
        // The iteration state for this outer value: by its item, else by plan position.
        let state = states
            .iter()
            .find(|s| {
                s.get("item")
                    .and_then(|it| it.get(&outer))
                    .and_then(Value::as_str)
                    == Some(ov.as_str())
            })
            .or_else(|| {
                idx.and_then(|i| states.get(i))
                    .filter(|s| s.get("item").is_none())
            });
        let Some(state) = state else {
            tasks.push(lost(step_name, item, None));
            continue;
        };
        if let Some(c) = caught(state) {
            tasks.push(lost(step_name, item, Some(&c)));
            continue;
        }
        let stored = state.get("results").and_then(|r| r.get(step_name));
        let step = p
            .step(step_name)
            .expect("requested_tasks names pipeline steps");
        let rec = match (stored, &inner) {
            (None | Some(Value::Null), _) => lost(step_name, item, None),
            (Some(v), _) if caught(v).is_some() => record(step_name, item, read_outcome(v)),
            (Some(Value::Array(elems)), Some(inner)) if step.fans_out() => {
                let iv = item.get(inner).cloned().unwrap_or_default();
                let plan_inner: Vec<&str> = idx
                    .and_then(|i| plan.get(i))
                    .and_then(|pi| pi.get(inner))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let pos = plan_inner.iter().position(|v| *v == iv);
                let by_item = elems.iter().find(|e| {
                    e.get("item")
                        .and_then(|it| it.get(inner))
                        .and_then(Value::as_str)
                        == Some(iv.as_str())
                });
                let by_pos = pos
                    .and_then(|i| elems.get(i))
                    .filter(|e| e.get("item").is_none());
                match by_item.or(by_pos) {
                    Some(e) if !e.is_null() => record(step_name, item, read_outcome(e)),
                    _ => lost(step_name, item, None),
                }
            }
            (Some(Value::Array(elems)), _) => match elems.first() {
                Some(e) => record(step_name, item, read_outcome(e)),
                None => lost(step_name, item, None),
            },
            (Some(v), _) => record(step_name, item, read_outcome(v)),
        };
        tasks.push(rec);
    }
    let out = NormalizedResults::new(tasks);
    tracing::info!(
        total = out.summary.total,
        succeeded = out.summary.succeeded,
        failed = out.summary.failed,
        skipped = out.summary.skipped,
        "normalized results"
    );
    Ok(out)
}

/// The Lambda entry point: [`handle`] with its error turned into a `Diagnostic`.
pub async fn lambda_handler(
    ev: lambda_runtime::LambdaEvent<NormalizeEvent>,
    p: &Pipeline,
) -> Result<NormalizedResults, lambda_runtime::Diagnostic> {
    handle(ev.payload, p).map_err(boa_aws::lambda::diagnostic)
}
