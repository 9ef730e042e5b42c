//! check-for-failures: passes the normalized results through when nothing failed; otherwise fails
//! the execution with `Build.Failed` and a message listing every failed task on its own line.

use boa_core::{ErrorName, NamedError, NormalizedResults, TaskRecord};

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
pub fn handle(results: NormalizedResults) -> Result<NormalizedResults, NamedError> {
    let failed: Vec<&TaskRecord> = results.failed().collect();
    if failed.is_empty() {
        return Ok(results);
    }
    let mut msg = format!(
        "{} of {} tasks failed ({} succeeded, {} skipped):",
        failed.len(),
        results.summary.total,
        results.summary.succeeded,
        results.summary.skipped
    );
    for t in &failed {
        msg.push('\n');
        msg.push_str(&describe(t));
    }
    tracing::error!(failed = failed.len(), "build failed");
    Err(NamedError::new(ErrorName::BuildFailed, msg))
}

/// The Lambda entry point: [`handle`] with its error turned into a `Diagnostic`.
pub async fn lambda_handler(
    ev: lambda_runtime::LambdaEvent<NormalizedResults>,
) -> Result<NormalizedResults, lambda_runtime::Diagnostic> {
    handle(ev.payload).map_err(boa_aws::lambda::diagnostic)
}
