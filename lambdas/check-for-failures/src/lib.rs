//! check-for-failures: passes the run's summary through when nothing failed; otherwise fails
//! the execution with `Build.Failed` and a message listing the failed tasks NormalizeResults
//! handed on (the first [`boa_core::results::FAILED_IN_PAYLOAD`]), one per line, and where every
//! record is.

use boa_core::{ErrorName, NamedError, RunSummary, TaskRecord};

/// One line describing a failed task: step, axis values, error, instance, log stream, attempts
/// and the first line of the reason.
pub fn describe(t: &TaskRecord) -> String {
    let mut s = format!("- {}", t.step);
    for (k, v) in &t.item {
        s.push_str(&format!(" {k}={v}"));
    }
    s.push_str(&format!(": {}", t.error.as_deref().unwrap_or("failed")));
    if let Some(i) = &t.instance_id {
        s.push_str(&format!(" on {i}"));
    }
    if let Some(l) = &t.log_stream {
        s.push_str(&format!(", log {l}"));
    }
    if let Some(a) = t.attempts {
        s.push_str(&format!(", {a} attempt{}", if a == 1 { "" } else { "s" }));
    }
    let first = t
        .reason
        .as_deref()
        .or(t.cause.as_deref())
        .and_then(|r| r.lines().find(|l| !l.trim().is_empty()));
    if let Some(r) = first {
        s.push_str(&format!(" — {}", r.trim()));
    }
    s
}

/// The handler.
pub fn handle(run: RunSummary) -> Result<RunSummary, NamedError> {
    let s = &run.summary;
    if s.failed == 0 {
        return Ok(run);
    }
    let mut msg = format!(
        "{} of {} tasks failed ({} succeeded, {} skipped):",
        s.failed, s.total, s.succeeded, s.skipped
    );
    for t in &run.failed {
        msg.push('\n');
        msg.push_str(&describe(t));
    }
    let unlisted = s.failed.saturating_sub(run.failed.len());
    if unlisted > 0 {
        msg.push_str(&format!(
            "\n… and {unlisted} more failed task{}",
            if unlisted == 1 { "" } else { "s" }
        ));
    }
    msg.push_str(&format!("\nevery task's record: {}", run.results));
    tracing::error!(failed = s.failed, "build failed");
    Err(NamedError::new(ErrorName::BuildFailed, msg))
}

/// The Lambda entry point: [`handle`] with its error turned into a `Diagnostic`.
pub async fn lambda_handler(
    ev: lambda_runtime::LambdaEvent<RunSummary>,
) -> Result<RunSummary, lambda_runtime::Diagnostic> {
    handle(ev.payload).map_err(boa_aws::lambda::diagnostic)
}
