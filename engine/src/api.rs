//! The Step Functions control plane over an [`Engine`], in the awsJson1_0 shapes of the Step
//! Functions API reference (<https://docs.aws.amazon.com/step-functions/latest/apireference/>):
//! CreateStateMachine, DescribeStateMachine, ListStateMachines, UpdateStateMachine,
//! DeleteStateMachine, StartExecution, DescribeExecution, ListExecutions, GetExecutionHistory,
//! StopExecution, DescribeStateMachineForExecution, ListMapRuns, DescribeMapRun. The activity
//! operations are answered by [`crate::endpoint`], which hands this module the rest.
//!
//! Pagination tokens are opaque strings naming a position that stays valid while executions
//! start and histories grow; a token of another operation or a garbled one is `InvalidToken`.

use std::sync::Weak;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::endpoint::{ApiError, Operations, api_error, field};
use crate::engine::{Engine, EngineInner};
use crate::error::EngineError;
use crate::execution::{ExecutionStatus, ExecutionSummary, MapRunSummary};
use crate::history::HistoryEvent;

/// The control plane of one engine, held weakly (the engine owns its endpoint, not the other
/// way round).
pub(crate) struct ControlPlane {
    engine: Weak<EngineInner>,
}

impl ControlPlane {
    pub(crate) fn new(engine: &Engine) -> Self {
        Self {
            engine: engine.downgrade(),
        }
    }
}

#[async_trait::async_trait]
impl Operations for ControlPlane {
    async fn call(&self, op: &str, body: &Value) -> Option<Result<Value, ApiError>> {
        let Some(engine) = Engine::upgrade(&self.engine) else {
            return Some(Err(api_error(
                "ServiceUnavailable",
                "the engine behind this endpoint has stopped",
            )));
        };
        let answer = dispatch(&engine, op, body);
        if answer.is_some() {
            engine.count_api_call(op);
        }
        answer
    }
}

fn engine_error(e: EngineError) -> ApiError {
    api_error(e.type_name(), e)
}

/// Epoch seconds, as the JSON protocol encodes timestamps.
pub fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn opt_str<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// `maxResults`: 0 or absent is the default 100; at most 1000.
fn max_results(body: &Value) -> Result<usize, ApiError> {
    match body.get("maxResults").and_then(Value::as_u64) {
        None | Some(0) => Ok(100),
        Some(n) if n <= 1000 => Ok(n as usize),
        Some(n) => Err(api_error(
            "ValidationException",
            format!("maxResults {n} is more than 1000"),
        )),
    }
}

/// A page token of operation `kind` at position `n`.
fn token(kind: &str, n: usize) -> String {
    format!("boa.{kind}.{n}")
}

fn parse_token(body: &Value, kind: &str) -> Result<Option<usize>, ApiError> {
    let Some(t) = opt_str(body, "nextToken") else {
        return Ok(None);
    };
    t.strip_prefix("boa.")
        .and_then(|r| r.strip_prefix(kind))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| api_error("InvalidToken", format!("Invalid Token: '{t}'")))
}

fn dispatch(e: &Engine, op: &str, body: &Value) -> Option<Result<Value, ApiError>> {
    Some(match op {
        "CreateStateMachine" => create_state_machine(e, body),
        "DescribeStateMachine" => describe_state_machine(e, body),
        "ListStateMachines" => list_state_machines(e, body),
        "UpdateStateMachine" => update_state_machine(e, body),
        "DeleteStateMachine" => field(body, "stateMachineArn")
            .and_then(|arn| e.delete_state_machine(arn).map_err(engine_error))
            .map(|()| json!({})),
        "StartExecution" => start_execution(e, body),
        "DescribeExecution" => describe_execution(e, body),
        "ListExecutions" => list_executions(e, body),
        "GetExecutionHistory" => get_execution_history(e, body),
        "StopExecution" => stop_execution(e, body),
        "DescribeStateMachineForExecution" => describe_for_execution(e, body),
        "ListMapRuns" => list_map_runs(e, body),
        "DescribeMapRun" => describe_map_run(e, body),
        _ => return None,
    })
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_CreateStateMachine.html>:
/// idempotent for the same name and definition; `StateMachineAlreadyExists` for the same name
/// with another; `InvalidDefinition` for a definition that does not parse.
fn create_state_machine(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let name = field(body, "name")?;
    let definition = field(body, "definition")?;
    match opt_str(body, "type") {
        None | Some("STANDARD") => {}
        Some(other) => {
            return Err(api_error(
                "StateMachineTypeNotSupported",
                format!("type {other}: the local engine runs STANDARD state machines only"),
            ));
        }
    }
    let role = opt_str(body, "roleArn").unwrap_or_default();
    let m = e
        .create_state_machine(name, definition, role)
        .map_err(engine_error)?;
    Ok(json!({"stateMachineArn": m.arn, "creationDate": epoch(m.creation_date)}))
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeStateMachine.html>
fn describe_state_machine(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let m = e
        .describe_state_machine(field(body, "stateMachineArn")?)
        .map_err(engine_error)?;
    Ok(json!({
        "stateMachineArn": m.arn, "name": m.name, "status": "ACTIVE",
        "definition": &*m.definition, "roleArn": m.role_arn, "type": m.kind,
        "creationDate": epoch(m.creation_date), "revisionId": m.revision_id,
    }))
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListStateMachines.html>
fn list_state_machines(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let max = max_results(body)?;
    let from = parse_token(body, "sm")?.unwrap_or(0);
    let all = e.list_state_machines();
    let page: Vec<Value> = all
        .iter()
        .skip(from)
        .take(max)
        .map(|m| {
            json!({"stateMachineArn": m.arn, "name": m.name, "type": m.kind,
                   "creationDate": epoch(m.creation_date)})
        })
        .collect();
    let mut out = json!({"stateMachines": page});
    if from + max < all.len() {
        out["nextToken"] = json!(token("sm", from + max));
    }
    Ok(out)
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_UpdateStateMachine.html>:
/// at least one of `definition` and `roleArn` (`MissingRequiredParameter` otherwise).
fn update_state_machine(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let arn = field(body, "stateMachineArn")?;
    let definition = opt_str(body, "definition");
    let role = opt_str(body, "roleArn");
    if definition.is_none() && role.is_none() {
        return Err(api_error(
            "MissingRequiredParameter",
            "UpdateStateMachine needs a definition or a roleArn",
        ));
    }
    let m = e
        .update_state_machine(arn, definition, role)
        .map_err(engine_error)?;
    Ok(json!({
        "updateDate": epoch(m.update_date.unwrap_or(m.creation_date)),
        "revisionId": m.revision_id,
    }))
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>:
/// idempotent by name while the execution with the same input runs, `ExecutionAlreadyExists`
/// otherwise.
fn start_execution(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let (s, _) = e
        .start_execution_of(
            field(body, "stateMachineArn")?,
            opt_str(body, "name"),
            opt_str(body, "input"),
        )
        .map_err(engine_error)?;
    Ok(json!({"executionArn": s.execution_arn, "startDate": epoch(s.start_date)}))
}

fn status_name(s: ExecutionStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html>
fn describe_execution(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let arn = field(body, "executionArn")?;
    let s = e.describe_execution(arn).map_err(engine_error)?;
    let mut out = json!({
        "executionArn": s.execution_arn, "stateMachineArn": s.state_machine_arn,
        "name": s.name, "status": status_name(s.status), "startDate": epoch(s.start_date),
        "input": s.input.to_string(), "inputDetails": {"included": true},
    });
    if let Some(t) = s.stop_date {
        out["stopDate"] = json!(epoch(t));
    }
    if let Some(o) = &s.output {
        out["output"] = json!(o.to_string());
        out["outputDetails"] = json!({"included": true});
    }
    if let Some(r) = e.result(arn).map_err(engine_error)? {
        if let Some(err) = r.error {
            out["error"] = json!(err);
        }
        if let Some(c) = r.cause {
            out["cause"] = json!(c);
        }
    }
    if let Some(m) = &s.map_run_arn {
        out["mapRunArn"] = json!(m);
    }
    Ok(out)
}

fn list_item(s: &ExecutionSummary) -> Value {
    let mut v = json!({
        "executionArn": s.execution_arn, "stateMachineArn": s.state_machine_arn,
        "name": s.name, "status": status_name(s.status), "startDate": epoch(s.start_date),
    });
    if let Some(t) = s.stop_date {
        v["stopDate"] = json!(epoch(t));
    }
    if let Some(m) = &s.map_run_arn {
        v["mapRunArn"] = json!(m);
    }
    v
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListExecutions.html>:
/// of a state machine or (`mapRunArn`) of a Distributed Map's Map Run, most recent first,
/// `statusFilter`, `maxResults` + `nextToken`. The token is the start position of the next
/// execution to list, so executions started meanwhile do not shift the pages.
fn list_executions(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let max = max_results(body)?;
    let status = match opt_str(body, "statusFilter") {
        None => None,
        Some(f) => Some(
            serde_json::from_value::<ExecutionStatusName>(json!(f))
                .map_err(|_| api_error("ValidationException", format!("statusFilter {f}")))?
                .0,
        ),
    };
    let sm = opt_str(body, "stateMachineArn");
    let map_run = opt_str(body, "mapRunArn");
    let matches: Box<dyn Fn(&ExecutionSummary) -> bool> = match (sm, map_run) {
        (Some(sm), None) => {
            crate::engine::check_arn(sm, "stateMachine").map_err(engine_error)?;
            let known = e.describe_state_machine(sm).is_ok()
                || e.list_executions(None)
                    .iter()
                    .any(|x| x.state_machine_arn == sm);
            if !known {
                return Err(engine_error(EngineError::StateMachineDoesNotExist(
                    sm.to_string(),
                )));
            }
            let sm = sm.to_string();
            Box::new(move |x| x.map_run_arn.is_none() && x.state_machine_arn == sm)
        }
        (None, Some(r)) => {
            e.describe_map_run(r).map_err(engine_error)?;
            let r = r.to_string();
            Box::new(move |x| x.map_run_arn.as_deref() == Some(r.as_str()))
        }
        _ => {
            return Err(api_error(
                "ValidationException",
                "ListExecutions needs exactly one of stateMachineArn and mapRunArn",
            ));
        }
    };
    let all = e.list_executions_including_children(None);
    let before = parse_token(body, "ex")?.unwrap_or(all.len()).min(all.len());
    let mut page = Vec::new();
    let mut next = None;
    for (i, x) in all[..before].iter().enumerate().rev() {
        if !matches(x) || status.is_some_and(|st| x.status != st) {
            continue;
        }
        if page.len() == max {
            next = Some(i + 1);
            break;
        }
        page.push(list_item(x));
    }
    let mut out = json!({"executions": page});
    if let Some(n) = next {
        out["nextToken"] = json!(token("ex", n));
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
#[serde(transparent)]
struct ExecutionStatusName(#[serde(with = "status_serde")] ExecutionStatus);

mod status_serde {
    use super::ExecutionStatus;
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<ExecutionStatus, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        Ok(match s.as_str() {
            "RUNNING" => ExecutionStatus::Running,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "TIMED_OUT" => ExecutionStatus::TimedOut,
            "ABORTED" => ExecutionStatus::Aborted,
            other => {
                return Err(serde::de::Error::custom(format!("unknown status {other}")));
            }
        })
    }
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html>:
/// `reverseOrder`, `includeExecutionData` (default true), `maxResults` (default 100) +
/// `nextToken`. The token is the id of the next event to return.
fn get_execution_history(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let arn = field(body, "executionArn")?;
    let max = max_results(body)?;
    let reverse = body
        .get("reverseOrder")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let data = body
        .get("includeExecutionData")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let next_id = parse_token(body, if reverse { "hr" } else { "hf" })?;
    // Only the page's events are parsed back: a caller paging through a history of n events
    // costs n, not n² / page size.
    let (page, next) = if reverse {
        let (_, len) = e.history_page(arn, 1, 0).map_err(engine_error)?;
        let top = next_id.unwrap_or(len).min(len);
        let first = top.saturating_sub(max) + 1;
        let (mut events, _) = e.history_page(arn, first, top).map_err(engine_error)?;
        events.reverse();
        (events, (first > 1).then(|| first - 1))
    } else {
        let from = next_id.unwrap_or(1).max(1);
        let (events, len) = e
            .history_page(arn, from, from.saturating_add(max) - 1)
            .map_err(engine_error)?;
        let after = from.saturating_add(max);
        (events, (after <= len).then_some(after))
    };
    let page: Vec<Value> = page.iter().map(|ev| event_json(ev, data)).collect();
    let mut out = json!({"events": page});
    if let Some(next) = next {
        out["nextToken"] = json!(token(if reverse { "hr" } else { "hf" }, next));
    }
    Ok(out)
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html>
fn stop_execution(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let arn = field(body, "executionArn")?;
    e.stop_execution(arn, opt_str(body, "error"), opt_str(body, "cause"))
        .map_err(engine_error)?;
    let s = e.describe_execution(arn).map_err(engine_error)?;
    Ok(json!({"stopDate": epoch(s.stop_date.unwrap_or_else(Utc::now))}))
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeStateMachineForExecution.html>
fn describe_for_execution(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let arn = field(body, "executionArn")?;
    let m = e.state_machine_for_execution(arn).map_err(engine_error)?;
    let mut out = json!({
        "stateMachineArn": m.machine.arn, "name": m.machine.name,
        "definition": &*m.definition, "roleArn": m.machine.role_arn,
        "updateDate": epoch(m.machine.update_date.unwrap_or(m.machine.creation_date)),
        "revisionId": m.revision_id,
    });
    if let Some(r) = e.describe_execution(arn).ok().and_then(|s| s.map_run_arn) {
        out["mapRunArn"] = json!(r);
    }
    Ok(out)
}

fn map_run_sm_arn(e: &Engine, r: &MapRunSummary) -> String {
    let sm = e
        .describe_execution(&r.execution_arn)
        .map(|s| s.state_machine_arn)
        .unwrap_or_default();
    format!("{sm}/{}", r.state_name)
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListMapRuns.html>
fn list_map_runs(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let arn = field(body, "executionArn")?;
    let runs = e.map_runs(arn).map_err(engine_error)?;
    let items: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut v = json!({"executionArn": r.execution_arn, "mapRunArn": r.map_run_arn,
                               "stateMachineArn": map_run_sm_arn(e, r),
                               "startDate": epoch(r.start_date)});
            if let Some(t) = r.stop_date {
                v["stopDate"] = json!(epoch(t));
            }
            v
        })
        .collect();
    Ok(json!({"mapRuns": items}))
}

/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeMapRun.html>
fn describe_map_run(e: &Engine, body: &Value) -> Result<Value, ApiError> {
    let r = e
        .describe_map_run(field(body, "mapRunArn")?)
        .map_err(engine_error)?;
    let c = r.item_counts;
    let counts = json!({
        "pending": c.pending, "running": c.running, "succeeded": c.succeeded,
        "failed": c.failed, "timedOut": c.timed_out, "aborted": c.aborted, "total": c.total,
        "resultsWritten": c.succeeded + c.failed + c.timed_out + c.aborted,
    });
    let mut out = json!({
        "mapRunArn": r.map_run_arn, "executionArn": r.execution_arn,
        "status": status_name(r.status), "startDate": epoch(r.start_date),
        "maxConcurrency": r.max_concurrency,
        "toleratedFailurePercentage": r.tolerated_failure_percentage.unwrap_or(0.0),
        "toleratedFailureCount": r.tolerated_failure_count.unwrap_or(0),
        "itemCounts": counts, "executionCounts": counts,
    });
    if let Some(t) = r.stop_date {
        out["stopDate"] = json!(epoch(t));
    }
    Ok(out)
}

/// Event types whose details AWS returns in a `<type>EventDetails` member (lower camel case);
/// every `*StateEntered` and `*StateExited` uses `stateEnteredEventDetails` /
/// `stateExitedEventDetails`. See
/// <https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html>.
const DETAILED: [&str; 33] = [
    "ActivityFailed",
    "ActivityScheduleFailed",
    "ActivityScheduled",
    "ActivityStarted",
    "ActivitySucceeded",
    "ActivityTimedOut",
    "EvaluationFailed",
    "ExecutionAborted",
    "ExecutionFailed",
    "ExecutionRedriven",
    "ExecutionStarted",
    "ExecutionSucceeded",
    "ExecutionTimedOut",
    "LambdaFunctionFailed",
    "LambdaFunctionScheduleFailed",
    "LambdaFunctionScheduled",
    "LambdaFunctionStartFailed",
    "LambdaFunctionSucceeded",
    "LambdaFunctionTimedOut",
    "MapIterationAborted",
    "MapIterationFailed",
    "MapIterationStarted",
    "MapIterationSucceeded",
    "MapRunFailed",
    "MapRunStarted",
    "MapStateStarted",
    "TaskFailed",
    "TaskScheduled",
    "TaskStartFailed",
    "TaskStarted",
    "TaskSubmitFailed",
    "TaskSucceeded",
    "TaskTimedOut",
];

/// The member holding an event type's details, if it has one.
pub fn details_member(kind: &str) -> Option<String> {
    if kind.ends_with("StateEntered") {
        return Some("stateEnteredEventDetails".into());
    }
    if kind.ends_with("StateExited") {
        return Some("stateExitedEventDetails".into());
    }
    if !DETAILED.contains(&kind) {
        return None;
    }
    let mut c = kind.chars();
    let first = c.next()?.to_ascii_lowercase();
    Some(format!("{first}{}EventDetails", c.as_str()))
}

/// One history event in the API's shape (`timestamp`, `type`, `id`, `previousEventId`, the
/// details member). Without `include_data`, inputs and outputs are left out.
pub fn event_json(ev: &HistoryEvent, include_data: bool) -> Value {
    let kind = ev.kind.as_str().to_string();
    let mut out = json!({
        "timestamp": epoch(ev.timestamp), "type": kind, "id": ev.id,
        "previousEventId": ev.previous_event_id,
    });
    if let (Some(member), Value::Object(d)) = (details_member(&kind), &ev.details) {
        let mut details = Map::new();
        for (k, v) in d {
            if v.is_null() {
                continue;
            }
            if !include_data && matches!(k.as_str(), "input" | "output") {
                continue;
            }
            details.insert(k.clone(), v.clone());
            if matches!(k.as_str(), "input" | "output") {
                details.insert(format!("{k}Details"), json!({"truncated": false}));
            }
        }
        out[member] = Value::Object(details);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_members_follow_the_api_names() {
        assert_eq!(
            details_member("TaskStateEntered").as_deref(),
            Some("stateEnteredEventDetails")
        );
        assert_eq!(
            details_member("FailStateEntered").as_deref(),
            Some("stateEnteredEventDetails")
        );
        assert_eq!(
            details_member("LambdaFunctionScheduled").as_deref(),
            Some("lambdaFunctionScheduledEventDetails")
        );
        assert_eq!(details_member("ParallelStateStarted"), None);
        assert_eq!(details_member("MapRunSucceeded"), None);
    }

    #[test]
    fn tokens_round_trip_and_reject_other_kinds() {
        let b = json!({"nextToken": token("ex", 7)});
        assert_eq!(parse_token(&b, "ex").unwrap(), Some(7));
        assert_eq!(parse_token(&b, "hf").unwrap_err().type_name, "InvalidToken");
        let bad = json!({"nextToken": "garbage"});
        assert_eq!(
            parse_token(&bad, "ex").unwrap_err().type_name,
            "InvalidToken"
        );
    }
}
