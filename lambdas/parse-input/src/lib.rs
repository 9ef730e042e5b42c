//! parse-input: the raw execution input (structured object, token string or null) → the validated
//! build input and its plan (`MachineInput`). Anything malformed, unknown or oversized is
//! `Input.Invalid`, whose message names the bad value and what would fit, and so is an input that
//! could break a Step Functions quota (the generator's report, worst case): it is refused before
//! any worker starts, not discovered at the end of the run.

use boa_core::{BuildInput, MachineInput, NamedError, Pipeline};
use serde::{Deserialize, Serialize};

/// What the `ParseInput` state is invoked with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParseInputEvent {
    /// The execution's raw input: `{"versions": [...], "distros": [...], "steps": [...],
    /// "mode": "..."}`, a token string such as `"4.28.2 MakeSourceTarball --test"`, or null.
    #[serde(default)]
    pub input: serde_json::Value,
    /// The execution ARN, for the log.
    #[serde(default)]
    pub execution: String,
}

/// The handler. `today` names the nightly version when no version is given.
pub fn handle(
    ev: ParseInputEvent,
    p: &Pipeline,
    today: chrono::NaiveDate,
) -> Result<MachineInput, NamedError> {
    let parsed = BuildInput::from_json(p, &ev.input, today).and_then(|i| {
        let r =
            statemachine_gen::check_quotas(p, &i).map_err(|e| NamedError::input(e.to_string()))?;
        for w in &r.exceeds {
            tracing::warn!(execution = %ev.execution, warning = %w, "quota at risk");
        }
        i.machine_input(p)
    });
    match &parsed {
        Ok(m) => tracing::info!(
            execution = %ev.execution,
            tokens = %m.input.tokens(p).join(" "),
            items = m.plan.len(),
            "parsed build input"
        ),
        Err(e) => tracing::warn!(execution = %ev.execution, error = %e, "rejected build input"),
    }
    parsed
}

/// The Lambda entry point: [`handle`] with today's UTC date, its error turned into a
/// `Diagnostic` whose `error_type` is the stable error name.
pub async fn lambda_handler(
    ev: lambda_runtime::LambdaEvent<ParseInputEvent>,
    p: &Pipeline,
    today: chrono::NaiveDate,
) -> Result<MachineInput, lambda_runtime::Diagnostic> {
    handle(ev.payload, p, today).map_err(boa_aws::lambda::diagnostic)
}
