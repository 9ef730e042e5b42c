//! record-result (`Record<Step>`): writes one task's [`TaskRecord`] as an object under its
//! execution's folder in the artifact bucket, and returns the few bytes the states after it need
//! ([`Compact`]). Results never travel through the state machine's payload, so the payload of an
//! iteration stays the same size whatever the number of tasks, the length of their causes or of
//! their log tails.
//!
//! A SUCCEEDED task's elapsed time also goes into its duration history,
//! `<artifacts>/durations/<Step>/<item>.json` ([`boa_aws::durations::record_duration`]), which
//! outlives the run: it is what provisioning expects the task to take next time.

use boa_aws::ports::Objects;
use boa_core::results::{Compact, read_outcome, task_record_key};
use boa_core::stack::StackConfig;
use boa_core::task::SkipKind;
use boa_core::{ErrorName, Item, NamedError, Pipeline, Status, TaskRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a `Record<Step>` state is invoked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvent {
    pub step: String,
    pub item: Item,
    /// The execution ARN (the top-level one, also inside a Distributed Map's child executions).
    pub execution: String,
    /// What `Run<Step>` left: its ResultSelector's output, or the `{Error, Cause}` its Catch caught.
    pub result: Value,
}

/// The handler: reads the stored result, writes the record, returns its compact form.
pub async fn handle(
    ev: RecordEvent,
    p: &Pipeline,
    objects: &dyn Objects,
    cfg: &StackConfig,
) -> Result<Compact, NamedError> {
    if p.step(&ev.step).is_none() {
        return Err(NamedError::new(
            ErrorName::InputInvalid,
            format!(
                "record-result: '{}' is not a step of pipeline '{}'",
                ev.step, p.name
            ),
        ));
    }
    let record: TaskRecord = read_outcome(&ev.result).into_record(&ev.step, ev.item.clone());
    // A step that was not asked for has no record: nothing reads it, and a release asking for
    // one step of twenty would otherwise write twenty objects per item.
    if record.skip == Some(SkipKind::NotRequested) {
        return Ok(Compact::from(&record));
    }
    let key = task_record_key(&ev.execution, &ev.step, &ev.item);
    let Some(at) = cfg.record_object(&key) else {
        return Err(NamedError::new(
            ErrorName::InputInvalid,
            format!(
                "record-result: the artifact location '{}' is not an s3:// URL, so {key} has nowhere to go",
                cfg.artifacts
            ),
        ));
    };
    let body = serde_json::to_vec(&record).expect("a task record serialises");
    objects.put(&at.bucket, &at.key, &body).await.map_err(|e| {
        NamedError::new(e.name(), format!("cannot write the task record {at}: {e}"))
    })?;
    tracing::info!(step = %ev.step, status = ?record.status, record = %at, "task recorded");
    if record.status == Status::Succeeded
        && let Some(elapsed) = record.elapsed_s
    {
        // History is an estimate for provisioning: failing to keep it never fails the task.
        if let Err(e) =
            boa_aws::durations::record_duration(objects, cfg, &ev.step, &ev.item, elapsed).await
        {
            tracing::warn!(step = %ev.step, error = %e, "cannot update the duration history");
        }
    }
    Ok(Compact::from(&record))
}

/// The Lambda entry point: [`handle`] with its error turned into a `Diagnostic`.
pub async fn lambda_handler(
    ev: lambda_runtime::LambdaEvent<RecordEvent>,
    p: &Pipeline,
    objects: &dyn Objects,
    cfg: &StackConfig,
) -> Result<Compact, lambda_runtime::Diagnostic> {
    handle(ev.payload, p, objects, cfg)
        .await
        .map_err(boa_aws::lambda::diagnostic)
}
