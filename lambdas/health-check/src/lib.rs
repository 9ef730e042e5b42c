//! health-check: run every five minutes. Finds activity tasks that wait with nobody to take them
//! and starts the missing workers; terminates orphaned workers. Fails loudly on any error.

use std::collections::BTreeMap;
use std::time::Duration;

use boa_aws::backoff::Sleeper;
use boa_aws::launch::{LaunchContext, count_workers, ensure_workers, is_dead_boot};
use boa_aws::ports::{
    Executions, Fleet, HistoryEvent, Instance, InstanceState, Objects, PortError, tags,
};
use boa_core::history_event::EventType;
use boa_core::pipeline::DEFAULT_BOOT_TIMEOUT;
use boa_core::stack::{StackConfig, WorkerCounts, step_of_activity};
use boa_core::{NamedError, Pipeline};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What one health check did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// RUNNING executions of the state machine.
    pub executions: usize,
    /// Activity tasks scheduled but not started, per step name.
    pub pending_per_activity: BTreeMap<String, u32>,
    /// Live workers per step name, counted after reaping.
    pub workers_per_activity: BTreeMap<String, WorkerCounts>,
    /// Instances launched.
    pub launched: Vec<String>,
    /// Instances terminated, with why.
    pub reaped: Vec<String>,
    /// What could not be done (e.g. no capacity); the next check tries again.
    pub errors: Vec<String>,
}

/// An activity task that waits for a worker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingTask {
    pub execution: String,
    /// The id of its `ActivityScheduled` event.
    pub event_id: i64,
    pub resource: String,
}

const CLOSERS: [EventType; 5] = [
    EventType::ActivityStarted,
    EventType::ActivitySucceeded,
    EventType::ActivityFailed,
    EventType::ActivityTimedOut,
    EventType::ActivityScheduleFailed,
];

/// The state an event belongs to: the nearest `*StateEntered` up its `previous_event_id` chain.
fn state_of(by_id: &BTreeMap<i64, &HistoryEvent>, mut id: i64) -> Option<String> {
    for _ in 0..64 {
        let e = by_id.get(&id)?;
        if e.kind.is_state_entered() {
            return e.state_name.clone();
        }
        id = e.previous_event_id;
    }
    None
}

/// Activity tasks scheduled and not yet started, finished, timed out or failed to schedule, in
/// event order. A closing event is linked to its schedule through its `previous_event_id` chain
/// (AWS; the local engine links ActivityStarted straight to the schedule); when the chain does
/// not reach one, it closes the latest open schedule of the same state.
pub fn pending_tasks(execution: &str, history: &[HistoryEvent]) -> Vec<PendingTask> {
    let mut events: Vec<&HistoryEvent> = history.iter().collect();
    events.sort_by_key(|e| e.id);
    let by_id: BTreeMap<i64, &HistoryEvent> = events.iter().map(|e| (e.id, *e)).collect();
    let mut open: BTreeMap<i64, &HistoryEvent> = BTreeMap::new();
    for e in &events {
        if e.kind == EventType::ActivityScheduled {
            open.insert(e.id, e);
            continue;
        }
        if !CLOSERS.contains(&e.kind) {
            continue;
        }
        // Walk back through ActivityStarted to the schedule.
        let mut id = e.previous_event_id;
        let mut linked = None;
        for _ in 0..4 {
            match by_id.get(&id) {
                Some(p) if p.kind == EventType::ActivityScheduled => {
                    linked = Some(p.id);
                    break;
                }
                Some(p) if p.kind == EventType::ActivityStarted => id = p.previous_event_id,
                _ => break,
            }
        }
        let closed = linked.or_else(|| {
            let st = state_of(&by_id, e.previous_event_id);
            open.range(..e.id)
                .rev()
                .find(|(sid, _)| st.is_none() || state_of(&by_id, **sid) == st)
                .map(|(sid, _)| *sid)
        });
        if let Some(sid) = closed {
            open.remove(&sid);
        }
    }
    open.values()
        .filter(|e| !waits_for_hand_worker(e))
        .map(|e| PendingTask {
            execution: execution.to_string(),
            event_id: e.id,
            resource: e.resource.clone().unwrap_or_default(),
        })
        .collect()
}

/// Why an instance is an orphan, if it is one.
/// A fake-ec2 task waits for a worker someone starts by hand: the health check launches nothing
/// for it, as start-workers does not.
fn waits_for_hand_worker(scheduled: &HistoryEvent) -> bool {
    scheduled
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .is_some_and(|v| {
            v.get("mode").and_then(|m| m.as_str()) == Some(boa_core::Mode::FakeEc2.as_str())
        })
}

pub fn orphan_reason(i: &Instance, boot_timeout: Duration, now: DateTime<Utc>) -> Option<String> {
    if i.state == InstanceState::Stopped {
        return Some(format!("{}: stopped", i.id));
    }
    if !i.state.is_live() {
        return None;
    }
    // A worker keeps its lease fresh while it polls and at every heartbeat while a task runs, so
    // an expired lease means the worker is gone or hung, whatever execution it served. A live
    // worker is never reaped for anything else: activities are shared by every execution of
    // the stack, and a worker idle now may hold another execution's task a moment later.
    if let Some(lease) = i.tags.get(tags::LEASE) {
        match DateTime::parse_from_rfc3339(lease) {
            Ok(t) if t < now => return Some(format!("{}: lease expired at {lease}", i.id)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(instance_id = %i.id, lease = %lease, error = %e, "unreadable lease tag")
            }
        }
    }
    if is_dead_boot(i, boot_timeout, now) {
        let launched = i
            .launch_time
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        return Some(format!(
            "{}: launched at {launched} and never registered within the boot timeout ({:.0} s)",
            i.id,
            boot_timeout.as_secs_f64()
        ));
    }
    None
}

/// The boot timeout of an instance's step (by its activity tag), in the stack's time.
fn boot_timeout_of(i: &Instance, p: &Pipeline, cfg: &StackConfig) -> Duration {
    let t = i
        .tags
        .get(tags::ACTIVITY)
        .and_then(|a| step_of_activity(p, a))
        .map_or(DEFAULT_BOOT_TIMEOUT, |s| s.worker.boot_timeout);
    cfg.scaled(t)
}

/// The round's identity, from the scheduler's event (`{"round": "<scheduled time>"}`), else the
/// invocation's request id (a manual invocation is a round of its own).
pub fn round_of(event: &serde_json::Value, request_id: &str) -> String {
    event
        .get("round")
        .and_then(serde_json::Value::as_str)
        .filter(|r| !r.is_empty() && !r.starts_with("<aws."))
        .map_or_else(|| request_id.to_string(), str::to_string)
}

fn port_err(what: &str, e: PortError) -> NamedError {
    NamedError::new(e.name(), format!("health check: {what}: {e}"))
}

/// The handler.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    ex: &dyn Executions,
    fleet: &dyn Fleet,
    objects: &dyn Objects,
    sleeper: &dyn Sleeper,
    cfg: &StackConfig,
    p: &Pipeline,
    now: DateTime<Utc>,
    round: &str,
) -> Result<HealthReport, NamedError> {
    let mut report = HealthReport::default();
    let running = ex.running(&cfg.state_machine_arn).await.map_err(|e| {
        port_err(
            &format!("listing executions of {}", cfg.state_machine_arn),
            e,
        )
    })?;
    report.executions = running.len();
    let mut pending: Vec<PendingTask> = vec![];
    for r in &running {
        let h = ex
            .history(&r.arn)
            .await
            .map_err(|e| port_err(&format!("reading the history of {}", r.arn), e))?;
        pending.extend(pending_tasks(&r.arn, &h));
        // A Distributed Map's tasks wait in its children's histories; they belong to the run
        // (workers are tagged with the top-level execution).
        let children = ex
            .running_children(&r.arn)
            .await
            .map_err(|e| port_err(&format!("listing the child executions of {}", r.arn), e))?;
        for c in &children {
            let h = ex
                .history(&c.arn)
                .await
                .map_err(|e| port_err(&format!("reading the history of {}", c.arn), e))?;
            pending.extend(pending_tasks(&r.arn, &h));
        }
    }
    let stack_filter = [(tags::STACK.to_string(), cfg.stack.clone())];
    let instances = fleet
        .instances(&stack_filter)
        .await
        .map_err(|e| port_err("listing the stack's instances", e))?;
    let mut reap_ids = vec![];
    for i in &instances {
        if let Some(why) = orphan_reason(i, boot_timeout_of(i, p, cfg), now) {
            tracing::info!(instance_id = %i.id, reason = %why, "reaping orphan");
            reap_ids.push(i.id.clone());
            report.reaped.push(why);
        }
    }
    if !reap_ids.is_empty() {
        fleet
            .terminate(&reap_ids)
            .await
            .map_err(|e| port_err(&format!("terminating {}", reap_ids.join(", ")), e))?;
    }

    // Pending tasks and live workers per step.
    let mut by_step: BTreeMap<String, Vec<PendingTask>> = BTreeMap::new();
    for t in pending {
        match step_of_activity(p, &t.resource) {
            Some(s) => by_step.entry(s.name.clone()).or_default().push(t),
            None => tracing::warn!(resource = %t.resource, "pending task of an unknown activity"),
        }
    }
    let survivors: Vec<Instance> = instances
        .into_iter()
        .filter(|i| !reap_ids.contains(&i.id))
        .collect();
    for s in &p.steps {
        let activity = boa_core::stack::activity_name(p, &s.name);
        let mine: Vec<Instance> = survivors
            .iter()
            .filter(|i| i.tags.get(tags::ACTIVITY) == Some(&activity))
            .cloned()
            .collect();
        let counts = count_workers(&mine, cfg.scaled(s.worker.boot_timeout), now);
        if counts.live > 0 {
            report.workers_per_activity.insert(s.name.clone(), counts);
        }
    }

    let mut fatal: Option<NamedError> = None;
    for (step_name, tasks) in &mut by_step {
        tasks.sort();
        let n = tasks.len() as u32;
        report.pending_per_activity.insert(step_name.clone(), n);
        let idle = report
            .workers_per_activity
            .get(step_name)
            .map_or(0, |c| c.idle);
        if n <= idle {
            continue;
        }
        let step = p.step(step_name).expect("step_of_activity found it");
        // Oldest waiting task first: its execution is tagged on the new workers.
        let oldest = tasks
            .iter()
            .min_by_key(|t| (t.event_id, t.execution.clone()))
            .expect("non-empty");
        let seed: Vec<String> = tasks
            .iter()
            .map(|t| format!("{}#{}", t.execution, t.event_id))
            .collect();
        // A retried invocation of this round sends the same tokens (no double launch); the next
        // round has its own, so it can replace a worker that died.
        let seed = format!("health|{round}|{}", seed.join(","));
        let ctx = LaunchContext {
            execution: &oldest.execution,
            state: "HealthCheck",
            token_seed: &seed,
            exclusive_seed: &seed,
            booting_is_spare: true,
            ahead: None,
            claims: &[],
        };
        let out = ensure_workers(fleet, objects, sleeper, cfg, p, step, n, &ctx).await;
        tracing::info!(step = %step_name, pending = n, launched = out.launched.len(), reason = %out.reason, "health check launch");
        report.launched.extend(out.launched.iter().cloned());
        if let Some(e) = out.error {
            report.errors.push(out.reason.clone());
            if !matches!(e, PortError::NoCapacity(_)) && fatal.is_none() {
                fatal = Some(NamedError::new(e.launch_name(), String::new()));
            }
        }
    }
    if let Some(mut f) = fatal {
        f.message = format!(
            "health check could not launch workers:\n{}\nreport: {}",
            report.errors.join("\n"),
            serde_json::to_string(&report).unwrap_or_default()
        );
        tracing::error!(error = %f, "health check failed");
        return Err(f);
    }
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "health check done");
    Ok(report)
}

/// The Lambda entry point: [`handle`] at the current time, its error turned into a `Diagnostic`.
#[allow(clippy::too_many_arguments)]
pub async fn lambda_handler(
    ex: &dyn Executions,
    fleet: &dyn Fleet,
    objects: &dyn Objects,
    sleeper: &dyn Sleeper,
    cfg: &StackConfig,
    p: &Pipeline,
    round: &str,
) -> Result<HealthReport, lambda_runtime::Diagnostic> {
    handle(ex, fleet, objects, sleeper, cfg, p, Utc::now(), round)
        .await
        .map_err(boa_aws::lambda::diagnostic)
}
