//! normalize-results: the task records an execution wrote (one object per task, by
//! `Record<Step>`, see [`record`]) → exactly one flat [`TaskRecord`] per requested task, in
//! request order, written back as one object. A task with no record (its stage or branch was
//! lost) becomes a failed record saying so, never a missing one. Two Lambdas are built from this
//! crate: `normalize-results` and `record-result`.

pub mod record;

use std::collections::BTreeMap;

use boa_aws::ports::{Objects, PortError};
use boa_core::input::item_key;
use boa_core::results::{FAILED_IN_PAYLOAD, brief, results_key, task_records_prefix};
use boa_core::stack::StackConfig;
use boa_core::{
    BuildInput, ErrorName, Item, NamedError, NormalizedResults, Pipeline, RunSummary, Status,
    TaskRecord,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the `NormalizeResults` state is invoked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizeEvent {
    pub input: BuildInput,
    /// The execution ARN: its records are under `runs/<execution name>/tasks/`.
    pub execution: String,
    /// The outer Map's output: `{}` per iteration (or a Distributed Map's run details), or a
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

/// One record per requested task, in request order: the stored record, else a failed record
/// saying the task's stage was lost (naming `whole`, the error that ended the Map, if any).
/// `stored` is keyed by (step, [`item_key`] of the item).
pub fn normalize(
    requested: &[(String, Item)],
    stored: &BTreeMap<(String, String), TaskRecord>,
    whole: Option<&Value>,
) -> NormalizedResults {
    let whole = whole.and_then(caught);
    let tasks = requested
        .iter()
        .map(|(step, item)| {
            match stored.get(&(step.clone(), item_key(item))) {
                Some(r) => {
                    let mut r = r.clone();
                    // The record's own coordinates are the request's, whatever was stored.
                    r.step.clone_from(step);
                    r.item.clone_from(item);
                    r
                }
                None => lost(step, item, whole.as_ref()),
            }
        })
        .collect();
    NormalizedResults::new(tasks)
}

/// One object read: its body, `None` when it has gone.
type Read = Result<Option<Vec<u8>>, PortError>;

/// How many records are read at once.
const PARALLEL_READS: usize = 32;

/// Every task record stored for an execution, keyed by (step, item key). An unreadable record
/// becomes a failed record that says so.
pub async fn read_records(
    objects: &dyn Objects,
    cfg: &StackConfig,
    execution: &str,
) -> Result<BTreeMap<(String, String), TaskRecord>, NamedError> {
    let prefix = task_records_prefix(execution);
    let Some(at) = cfg.record_object(&prefix) else {
        return Err(no_bucket(cfg));
    };
    let listed = objects.list(&at.bucket, &at.key).await.map_err(|e| {
        NamedError::new(
            e.name(),
            format!("cannot list the task records under {at}: {e}"),
        )
    })?;
    let bucket = &at.bucket;
    let reads = listed
        .into_iter()
        .filter(|o| o.key.ends_with(".json"))
        .map(|o| async move {
            let body = objects.get(bucket, &o.key).await;
            (o.key, body)
        });
    let got: Vec<(String, Read)> = futures::stream::iter(reads)
        .buffer_unordered(PARALLEL_READS)
        .collect()
        .await;
    let mut out = BTreeMap::new();
    for (key, body) in got {
        let body = body.map_err(|e| {
            NamedError::new(
                e.name(),
                format!("cannot read the task record s3://{bucket}/{key}: {e}"),
            )
        })?;
        let Some(body) = body else { continue };
        // `…/tasks/<step>/<item key>.json`
        let rel = key.rsplit_once("/tasks/").map_or(key.as_str(), |(_, r)| r);
        let Some((step, file)) = rel.split_once('/') else {
            continue;
        };
        let ikey = file.trim_end_matches(".json").to_string();
        let rec = serde_json::from_slice::<TaskRecord>(&body).unwrap_or_else(|e| TaskRecord {
            step: step.to_string(),
            item: Item::new(),
            status: Status::Failed,
            skip: None,
            reason: Some(format!(
                "the task record s3://{bucket}/{key} is unreadable: {e}"
            )),
            instance_id: None,
            log_stream: None,
            elapsed_s: None,
            attempts: None,
            error: Some("States.Runtime".into()),
            cause: None,
        });
        out.insert((step.to_string(), ikey), rec);
    }
    Ok(out)
}

fn no_bucket(cfg: &StackConfig) -> NamedError {
    NamedError::new(
        ErrorName::InputInvalid,
        format!(
            "the artifact location '{}' is not an s3:// URL: task records have nowhere to live",
            cfg.artifacts
        ),
    )
}

/// The handler: reads every task record of the execution back, writes the normalized results
/// as one object (`runs/<execution>/results.json`) and returns the summary, where the results
/// are, and the first failures.
pub async fn handle(
    ev: NormalizeEvent,
    p: &Pipeline,
    objects: &dyn Objects,
    cfg: &StackConfig,
) -> Result<RunSummary, NamedError> {
    let requested = ev.input.requested_tasks(p)?;
    let stored = read_records(objects, cfg, &ev.execution).await?;
    let out = normalize(&requested, &stored, Some(&ev.results));
    let at = cfg
        .record_object(&results_key(&ev.execution))
        .ok_or_else(|| no_bucket(cfg))?;
    let body = serde_json::to_vec(&out).expect("results serialise");
    objects
        .put(&at.bucket, &at.key, &body)
        .await
        .map_err(|e| NamedError::new(e.name(), format!("cannot write the results {at}: {e}")))?;
    tracing::info!(
        total = out.summary.total,
        succeeded = out.summary.succeeded,
        failed = out.summary.failed,
        skipped = out.summary.skipped,
        results = %at,
        "normalized results"
    );
    Ok(RunSummary {
        failed: out
            .failed()
            .take(FAILED_IN_PAYLOAD)
            .cloned()
            .map(brief)
            .collect(),
        summary: out.summary,
        results: at,
    })
}

/// The Lambda entry point: [`handle`] with its error turned into a `Diagnostic`.
pub async fn lambda_handler(
    ev: lambda_runtime::LambdaEvent<NormalizeEvent>,
    p: &Pipeline,
    objects: &dyn Objects,
    cfg: &StackConfig,
) -> Result<RunSummary, lambda_runtime::Diagnostic> {
    handle(ev.payload, p, objects, cfg)
        .await
        .map_err(boa_aws::lambda::diagnostic)
}
