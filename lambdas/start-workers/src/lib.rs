//! start-workers: the `Prepare<Step>` state. Decides whether a task runs (requested, dependencies,
//! mode, `done_when`) and, if it does, makes sure a worker will take it.

use boa_aws::backoff::Sleeper;
use boa_aws::launch::{LaunchContext, ensure_workers};
use boa_aws::ports::{Executions, Fleet, Objects, PortError};
use boa_core::errors::ErrorName;
use boa_core::input::item_key;
use boa_core::pipeline::Step;
use boa_core::results::{Outcome, dependencies_allow, read_dependency, read_outcome};
use boa_core::stack::StackConfig;
use boa_core::task::{PrepareRecord, PrepareRequest, PrepareStatus, SkipKind};
use boa_core::{Mode, NamedError, Pipeline};
use serde_json::Value;

pub mod lookahead;

/// The ports the handler uses.
pub struct Ports<'a> {
    pub fleet: &'a dyn Fleet,
    pub objects: &'a dyn Objects,
    pub sleeper: &'a dyn Sleeper,
    /// Starts lookahead executions; `None`: no lookahead (workers start when their task is
    /// prepared).
    pub executions: Option<&'a dyn Executions>,
}

/// start-workers' event: `Prepare<Step>`'s request, or a lookahead execution's
/// (`{"lookahead": …}`).
#[derive(Debug, Clone)]
pub enum Event {
    Prepare(Box<PrepareRequest>),
    Lookahead(boa_core::lookahead::LookaheadEvent),
}

impl<'de> serde::Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let v = Value::deserialize(d)?;
        if v.get("lookahead").is_some() {
            serde_json::from_value(v)
                .map(Event::Lookahead)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value(v)
                .map(|r| Event::Prepare(Box::new(r)))
                .map_err(serde::de::Error::custom)
        }
    }
}

/// What start-workers returns for each [`Event`].
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Output {
    Prepare(PrepareRecord),
    Lookahead(boa_core::lookahead::LookaheadOutcome),
}

/// Handles either event.
pub async fn handle_event(
    ev: Event,
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
) -> Result<Output, NamedError> {
    match ev {
        Event::Prepare(r) => handle(*r, ports, cfg, p).await.map(Output::Prepare),
        Event::Lookahead(l) => lookahead::handle(l, ports, cfg, p)
            .await
            .map(Output::Lookahead),
    }
}

fn skipped(kind: SkipKind, reason: impl Into<String>) -> PrepareRecord {
    PrepareRecord {
        status: PrepareStatus::Skipped,
        skip: Some(kind),
        reason: reason.into(),
        launched: vec![],
        attempt: 0,
    }
}

fn pending(reason: impl Into<String>, launched: Vec<String>, attempt: u32) -> PrepareRecord {
    PrepareRecord {
        status: PrepareStatus::Pending,
        skip: None,
        reason: reason.into(),
        launched,
        attempt,
    }
}

/// The `Prepare<Step>` handler.
pub async fn handle(
    req: PrepareRequest,
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
) -> Result<PrepareRecord, NamedError> {
    let step = p.step(&req.step).ok_or_else(|| {
        NamedError::input(format!(
            "step '{}' is not in the pipeline; it has: {}",
            req.step,
            p.steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if !req.run.requested(&step.name) {
        return Ok(skipped(
            SkipKind::NotRequested,
            format!("{} was not requested in this run", step.name),
        ));
    }
    if let Err(why) = check_dependencies(&req, p, step) {
        return Ok(skipped(SkipKind::DependencyFailed, why));
    }
    if req.run.mode == Mode::SkipEc2 {
        return Ok(skipped(
            SkipKind::SkipEc2,
            "skip-ec2: no worker is launched and the task is not run",
        ));
    }
    if req.run.mode != Mode::FakeEc2
        && let Some(done) = done_check(ports.objects, step, &req).await?
    {
        return Ok(skipped(SkipKind::Done, done));
    }
    let attempt = count_attempt(ports.objects, cfg, &req).await?;
    if req.run.mode == Mode::FakeEc2 {
        return Ok(pending(
            "fake-ec2: waiting for a hand-started worker",
            vec![],
            attempt,
        ));
    }
    let seed = token_seed(&req);
    let exclusive_seed = format!("{}|{attempt}", req.execution);
    let state = format!("Prepare{}", step.name);
    // Workers started ahead for this task (by the lookaheads of the tasks it waits for) are
    // its own while they boot.
    let inner = &req.inner;
    let claims: Vec<String> = if cfg.lookahead_machine_arn.is_some() {
        boa_core::lookahead::dependencies(p, &req.run.steps, step, &req.item, inner)
            .iter()
            .map(|t| boa_core::lookahead::ahead_tag(&req.execution, &step.name, t))
            .collect()
    } else {
        vec![]
    };
    let ctx = LaunchContext {
        execution: &req.execution,
        state: &state,
        token_seed: &seed,
        exclusive_seed: &exclusive_seed,
        booting_is_spare: false,
        ahead: None,
        claims: &claims,
    };
    let out = ensure_workers(
        ports.fleet,
        ports.objects,
        ports.sleeper,
        cfg,
        p,
        step,
        1,
        &ctx,
    )
    .await;
    if out.error.is_none() {
        let ahead =
            lookahead::after_prepare(&req, ports, cfg, p, step, !out.launched.is_empty(), inner);
        tokio::join!(ahead, record_hand_over(&req, ports, cfg, step));
    }
    if out.launched.is_empty() && out.live_before == 0 {
        match &out.error {
            // Nothing can fix this by waiting: the task fails now, with EC2's code and message.
            Some(e) if e.is_permanent_launch_error() => {
                return Err(NamedError::new(
                    ErrorName::Ec2LaunchFailed,
                    format!("cannot launch a worker for {}: {}", step.name, out.reason),
                ));
            }
            // No capacity anywhere on the ladder and no worker that could take the task: the
            // state machine retries Prepare (its Ec2.NoCapacity retrier) until the step's
            // launch_deadline has passed, then the task fails with this cause.
            Some(e @ PortError::NoCapacity(_)) => {
                return Err(NamedError::new(
                    e.launch_name(),
                    format!(
                        "no capacity for {} (launch_deadline {:.0} s): {}",
                        step.name,
                        step.worker.launch_deadline.as_secs_f64(),
                        out.reason
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(pending(out.reason, out.launched, attempt))
}

/// With lookahead on, keeps how long this `Prepare` took since its state was entered (the
/// step's hand-over history, [`boa_core::history::hand_over_key`]): the lookaheads of the step
/// start its workers later by a share of it. Best effort: the task goes on whatever the write
/// does.
async fn record_hand_over(req: &PrepareRequest, ports: &Ports<'_>, cfg: &StackConfig, step: &Step) {
    if cfg.lookahead_machine_arn.is_none() {
        return;
    }
    let Some(entered) = lookahead::parse_time(&req.entered) else {
        return;
    };
    let wall_s = (chrono::Utc::now() - entered)
        .num_microseconds()
        .unwrap_or(0) as f64
        / 1e6;
    // Longer than a boot is not a hand-over but a Prepare retried after an error (capacity,
    // throttling) under its first entry's time: lookahead could not use it anyway.
    if wall_s * cfg.time_scale > cfg.boot_time(step).as_secs_f64() {
        return;
    }
    if let Err(e) =
        boa_aws::durations::record_hand_over(ports.objects, cfg, &step.name, wall_s).await
    {
        tracing::warn!(step = %step.name, error = %e, "cannot keep the hand-over time");
    }
}

/// The request's identity: execution + step + item + this entry of Prepare (its entered time).
/// A retried invocation of the same entry has the same seed, hence the same ClientToken; the
/// next attempt of the task enters Prepare anew and gets new tokens.
pub fn token_seed(req: &PrepareRequest) -> String {
    format!(
        "{}|{}|{}|{}",
        req.execution,
        req.step,
        item_key(&req.item),
        attempt_name(req)
    )
}

/// This attempt's name: Prepare's entered time, or (from an older definition) the retry count.
fn attempt_name(req: &PrepareRequest) -> String {
    if req.entered.is_empty() {
        format!("retry-{}", req.attempt)
    } else {
        req.entered.clone()
    }
}

/// The folder of a task's attempt records:
/// `<artifacts>/runs/<execution name>/attempts/<step>/<item>/`.
pub fn attempts_prefix(cfg: &StackConfig, req: &PrepareRequest) -> Option<(String, String)> {
    let execution = req.execution.rsplit(':').next().unwrap_or(&req.execution);
    cfg.records(&format!(
        "runs/{execution}/attempts/{}/{}",
        req.step,
        item_key(&req.item)
    ))
}

/// Records this attempt (one object per Prepare entry, written again by a retried invocation)
/// and returns how many attempts came before it.
async fn count_attempt(
    objects: &dyn Objects,
    cfg: &StackConfig,
    req: &PrepareRequest,
) -> Result<u32, NamedError> {
    let Some((bucket, prefix)) = attempts_prefix(cfg, req) else {
        return Ok(req.attempt);
    };
    let key = format!("{prefix}{}", attempt_name(req));
    let fail = |what: &str, e: PortError| {
        NamedError::new(
            e.name(),
            format!("cannot {what} the attempt record s3://{bucket}/{key}: {e}"),
        )
    };
    objects
        .put(&bucket, &key, req.execution.as_bytes())
        .await
        .map_err(|e| fail("write", e))?;
    let n = objects
        .count(&bucket, &prefix)
        .await
        .map_err(|e| fail("count", e))?;
    Ok(u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX))
}

/// `Err(reason)` when a dependency forbids running.
fn check_dependencies(req: &PrepareRequest, p: &Pipeline, step: &Step) -> Result<(), String> {
    let inner = p.inner_axis().map(|a| a.name.clone());
    let mut deps: Vec<(String, Vec<Outcome>)> = vec![];
    for dep_name in &step.after {
        let raw = req.deps.get(dep_name).filter(|v| !v.is_null());
        let Some(raw) = raw else {
            deps.push((dep_name.clone(), vec![lost(dep_name)]));
            continue;
        };
        let dep = p.step(dep_name);
        let same_inner = step.fans_out() && dep.is_some_and(Step::fans_out);
        let outcomes = match (&inner, raw) {
            (Some(inner), Value::Array(elems)) if same_inner => {
                let mine = req.item.get(inner);
                // This task's own entry: the one naming its inner value (a raw result), else the
                // one at its position in the inner Map (a record's compact form names nothing).
                let picked: Vec<Outcome> = elems
                    .iter()
                    .enumerate()
                    .filter(|(i, e)| {
                        match e
                            .get("item")
                            .and_then(|it| it.get(inner))
                            .and_then(Value::as_str)
                        {
                            Some(theirs) => Some(theirs) == mine.map(String::as_str),
                            None => req.index == Some(*i),
                        }
                    })
                    .map(|(_, e)| read_outcome(e))
                    .collect();
                if picked.is_empty() {
                    vec![lost(dep_name)]
                } else {
                    picked
                }
            }
            _ => read_dependency(Some(raw)),
        };
        deps.push((dep_name.clone(), outcomes));
    }
    let lost_names: Vec<&str> = deps
        .iter()
        .filter(|(_, o)| o.iter().any(is_lost))
        .map(|(n, _)| n.as_str())
        .collect();
    dependencies_allow(step.needs, &deps).map_err(|why| {
        if lost_names.is_empty() {
            why
        } else {
            format!(
                "{why}; no result was stored for {} (its stage was lost)",
                lost_names.join(", ")
            )
        }
    })
}

const LOST: &str = "build-on-aws.LostResult";

fn lost(dep: &str) -> Outcome {
    read_outcome(&serde_json::json!({
        "Error": LOST,
        "Cause": format!("no result was stored for {dep}: its stage was lost"),
    }))
}

fn is_lost(o: &Outcome) -> bool {
    o.error.as_deref() == Some(LOST)
}

/// `Some(reason)` when every `done_when` object exists.
async fn done_check(
    objects: &dyn Objects,
    step: &Step,
    req: &PrepareRequest,
) -> Result<Option<String>, NamedError> {
    if step.done_when.is_empty() {
        return Ok(None);
    }
    let mut found = vec![];
    for t in &step.done_when {
        let Some((bucket, key)) = t.render_s3(&req.item) else {
            tracing::warn!(template = %t.raw, "done_when template does not render to s3://bucket/key; not done");
            return Ok(None);
        };
        let exists = objects.exists(&bucket, &key).await.map_err(|e| {
            NamedError::new(
                e.name(),
                format!("cannot check done_when object s3://{bucket}/{key}: {e}"),
            )
        })?;
        if !exists {
            return Ok(None);
        }
        found.push(format!("s3://{bucket}/{key}"));
    }
    Ok(Some(format!("done: {} already exist", found.join(", "))))
}

/// The Lambda entry point: [`handle`] with its error turned into a `Diagnostic` whose
/// `error_type` is the stable error name.
pub async fn lambda_handler(
    ev: lambda_runtime::LambdaEvent<Event>,
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
) -> Result<Output, lambda_runtime::Diagnostic> {
    handle_event(ev.payload, ports, cfg, p)
        .await
        .map_err(boa_aws::lambda::diagnostic)
}
