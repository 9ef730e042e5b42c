//! Lookahead provisioning (see `boa_core::lookahead`): what `Prepare<Step>` does for the steps
//! after it ([`after_prepare`]), and what start-workers does when a lookahead execution's Wait
//! ends ([`handle`]).

use std::time::Duration;

use boa_aws::durations::{expected_duration, expected_hand_over};
use boa_aws::launch::{LaunchContext, ensure_workers};
use boa_aws::ports::Objects;
use boa_core::lookahead::{
    self, ExpectedEnd, Lookahead, LookaheadEvent, LookaheadInput, LookaheadOutcome, TaskRef,
    expected_end_key,
};
use boa_core::pipeline::{Needs, Step};
use boa_core::results::{Status, TaskRecord, task_record_key};
use boa_core::stack::StackConfig;
use boa_core::task::{PrepareRequest, SkipKind};
use boa_core::{NamedError, Pipeline};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::Ports;

/// How early, as a share of the boot time, a dependency may be expected to end and still count
/// as "ending within a boot" when the Wait is over (the Wait and the Lambda take a moment).
const SLACK: f64 = 0.25;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// After `Prepare<S>` handed its task to the activity: writes when the task is expected to end
/// and starts one lookahead execution per requested step after `S`. Never fails the task: a
/// lookahead that cannot start only means those workers start when their own task is prepared.
/// Returns the lookahead executions started (their names), for the record.
pub async fn after_prepare(
    req: &PrepareRequest,
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
    s: &Step,
    launched_now: bool,
    inner_values: &[String],
) -> Vec<String> {
    if cfg.lookahead_machine_arn.is_none() || ports.executions.is_none() {
        return vec![];
    }
    let plans = lookahead::plan(
        p,
        &req.execution,
        &req.run.steps,
        s,
        &req.item,
        inner_values,
    );
    if plans.is_empty() {
        return vec![];
    }
    let now = Utc::now();
    // Pipeline time until the task ends: its worker's boot if one had to be launched, then the
    // task itself as history (or the step's setting) expects.
    let boot_s = if launched_now {
        cfg.boot_time(s)
    } else {
        Duration::ZERO
    };
    let run = expected_duration(ports.objects, cfg, s, &req.item).await;
    // An exclusive step's task waits its turn behind the step's other published tasks.
    let up = wall_after(cfg, now, boot_s);
    let task = (req.execution.as_str(), s.name.as_str(), &req.item);
    let start = queue_end(ports.objects, cfg, task.0, s, task.2, now, now)
        .await
        .map_or(up, |q| q.max(up));
    let mut until_end = pipeline_time(cfg, start - now).saturating_add(run);
    if !write_expected_end(
        ports.objects,
        cfg,
        task,
        wall_after(cfg, now, until_end),
        (true, now, run),
    )
    .await
    {
        return vec![];
    }
    if let Some(later) = requeue(ports.objects, cfg, s, task, (true, now, start, run), now).await {
        until_end = later;
    }
    schedule(ports, cfg, p, plans, until_end, now).await
}

/// A stretch of the stack's wall clock in pipeline time (multiplied back by the time scale).
fn pipeline_time(cfg: &StackConfig, d: chrono::TimeDelta) -> Duration {
    d.to_std().unwrap_or_default().mul_f64(cfg.time_scale)
}

/// The stack's wall clock `d` of pipeline time after `now` (`d` divided by the time scale).
fn wall_after(cfg: &StackConfig, now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    later(now, cfg.scaled(d))
}

/// `now` + `d`, saturating: durations come from histories read back from a bucket, and an
/// absurd one must not overflow the clock.
fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// An RFC 3339 time of a record, `None` when it does not parse.
pub(crate) fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// For an `exclusive` step, when the tasks ahead of `me` (ready at `ready`) in the step's queue
/// are expected to end: the latest expected end, after `now`, of the execution's other tasks of
/// the step that are ahead (published, or expected to be ready no later than `me`) and have not
/// finished (no task record). Its tasks run one at a time whatever the launching, so `me`
/// starts then at the earliest. `None` for another step, an empty queue, or a queue that cannot
/// be read (the estimate is then `ready`).
async fn queue_end(
    objects: &dyn Objects,
    cfg: &StackConfig,
    execution: &str,
    step: &Step,
    me: &boa_core::input::Item,
    ready: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !step.exclusive {
        return None;
    }
    let at = cfg.record_object(&lookahead::expected_ends_prefix(execution, &step.name))?;
    let tasks = cfg.record_object(&format!(
        "{}{}/",
        boa_core::results::task_records_prefix(execution),
        step.name
    ))?;
    let mine = cfg.record_object(&expected_end_key(execution, &step.name, me))?;
    let my_name = mine.key.strip_prefix(&at.key).unwrap_or(&mine.key);
    let listed = objects.list(&at.bucket, &at.key).await.ok()?;
    let mut last: Option<DateTime<Utc>> = None;
    // The turns still to run ahead of this task, one after another (wall time).
    let mut backlog = chrono::Duration::zero();
    for o in listed.iter().filter(|o| o.key != mine.key) {
        let Ok(Some(body)) = objects.get(&at.bucket, &o.key).await else {
            continue;
        };
        let Ok(e) = serde_json::from_slice::<ExpectedEnd>(&body) else {
            continue;
        };
        let Some(end) = parse_time(&e.end) else {
            continue;
        };
        let name = o.key.strip_prefix(&at.key).unwrap_or(&o.key);
        // Turns go by readiness, ties by name: of two tasks ready at once, each counts the
        // other ahead or not, never both. (A record with no `ready` is from before it existed:
        // ahead when prepared.)
        let ahead = match e.ready.as_deref().and_then(parse_time) {
            Some(theirs) => (theirs, name) < (ready, my_name),
            None => e.prepared,
        };
        if !ahead || end <= now {
            continue;
        }
        let record = format!("{}{name}", tasks.key);
        if !matches!(objects.exists(&tasks.bucket, &record).await, Ok(false)) {
            continue;
        }
        last = Some(last.map_or(end, |l| l.max(end)));
        if let Some(run) = e.run_s.and_then(|r| Duration::try_from_secs_f64(r).ok()) {
            let run = chrono::Duration::from_std(cfg.scaled(run)).unwrap_or_default();
            backlog += run.min(end - now);
        }
    }
    last.map(|l| l.max(now + backlog))
}

/// An `exclusive` step's task whose expected end was just written (by its `Prepare` or
/// projected, starting at `start`, ready at `ready`, taking `run`): its queue is reckoned
/// again, now that every task prepared at the same moment has written its own, and its end
/// rewritten if its turn comes later. Returns the pipeline time from `now` to the new end, if
/// it changed.
async fn requeue(
    objects: &dyn Objects,
    cfg: &StackConfig,
    step: &Step,
    task: (&str, &str, &boa_core::input::Item),
    (prepared, ready, start, run): (bool, DateTime<Utc>, DateTime<Utc>, Duration),
    now: DateTime<Utc>,
) -> Option<Duration> {
    let queued = queue_end(objects, cfg, task.0, step, task.2, ready, now)
        .await
        .filter(|q| *q > start)?;
    let until_end = pipeline_time(cfg, queued - now).saturating_add(run);
    write_expected_end(
        objects,
        cfg,
        task,
        wall_after(cfg, now, until_end),
        (prepared, ready, run),
    )
    .await
    .then_some(until_end)
}

/// Records when a task (execution, step, item) is expected to end, whether by its own `Prepare`
/// (else projected by a lookahead), and when it is ready to start. False (and a warning) when it
/// cannot be.
async fn write_expected_end(
    objects: &dyn Objects,
    cfg: &StackConfig,
    (execution, step, item): (&str, &str, &boa_core::input::Item),
    end: DateTime<Utc>,
    (prepared, ready, run): (bool, DateTime<Utc>, Duration),
) -> bool {
    let Some(at) = cfg.record_object(&expected_end_key(execution, step, item)) else {
        return false;
    };
    let body = serde_json::to_vec(&ExpectedEnd {
        end: rfc3339(end),
        prepared,
        ready: Some(rfc3339(ready)),
        run_s: Some(run.as_secs_f64()),
    })
    .expect("serialises");
    match objects.put(&at.bucket, &at.key, &body).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot record the task's expected end; no lookahead");
            false
        }
    }
}

/// Starts one lookahead execution per plan, its Wait timed so that the step's workers are up
/// when the task it comes after is expected to end: `until_end` (pipeline time) from `now`, less
/// the step's boot time. A plan whose Wait would be over at once (the task ends within the
/// step's boot) is carried out here instead ([`fire`]). Returns the executions started (their
/// names; one that exists already, by name, is not started again), by the plans carried out here
/// too.
/// A plan whose tasks wait for others too (a fan-in step) is left to the one of those expected
/// to end last ([`defers`]).
async fn schedule(
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
    plans: Vec<Lookahead>,
    until_end: Duration,
    now: DateTime<Utc>,
) -> Vec<String> {
    let (Some(machine), Some(executions)) = (&cfg.lookahead_machine_arn, ports.executions) else {
        return vec![];
    };
    let end = wall_after(cfg, now, until_end);
    let mut started = vec![];
    for l in plans {
        let Some(d) = p.step(&l.step) else { continue };
        if defers(ports.objects, cfg, &l, d, end, now).await {
            continue;
        }
        let (at, lead) = wait_end(cfg, d, until_end, hand_over(ports, cfg, d).await, now);
        if lead.is_zero() {
            // Its Wait would be over at once (the task ends within `d`'s boot): what the
            // lookahead would do is done here, without an execution of its own (on AWS each is
            // a StartExecution, a Wait and a Lambda invocation).
            let o = Box::pin(fire(l, d, ports, cfg, p)).await;
            tracing::info!(step = %d.name, launched = o.launched.len(), reason = %o.reason, "started ahead at once");
            started.extend(o.next);
            continue;
        }
        let name = lookahead::execution_name(&l.execution, &d.name, &l.after);
        if start(machine, executions, &name, at, l).await {
            started.push(name);
        }
    }
    started
}

/// Whether `l` (timed by `l.after`, expected to end at `end`) is left to another lookahead: the
/// tasks of a fan-in step wait for many, and one lookahead between them is enough, timed by the
/// one expected to end last.
///
/// Ends are compared in slots of [`SLACK`] × the step's boot time: a lookahead that fires a boot
/// before its own task's end still launches for a task ending up to a slot later (its horizon).
/// `l.after` defers to another task its tasks wait for that is in a later slot (or the same slot
/// and a later key) and whose own lookahead has not fired yet (its Wait ends after now): when
/// that one fires, it reads `l.after`'s end too. The one it defers to defers in turn only to a
/// later one, whose lookahead fires later still; a task expected to end after every lookahead of
/// its siblings has fired starts its own. Without slots, tasks with the same expected duration
/// prepared one after another would each end a moment after the last and each start one.
async fn defers(
    objects: &dyn Objects,
    cfg: &StackConfig,
    l: &Lookahead,
    d: &Step,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    if l.waits_for.len() < 2 {
        return false;
    }
    let mine = expected_end_key(&l.execution, &l.after.step, &l.after.item);
    let boot = cfg.scaled(cfg.boot_time(d));
    let slot_ms = i64::try_from(boot.mul_f64(SLACK).as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let slot = |t: DateTime<Utc>| t.timestamp_millis().div_euclid(slot_ms);
    let boot = chrono::Duration::from_std(boot).unwrap_or_default();
    let keys: Vec<String> = l
        .waits_for
        .iter()
        .filter(|t| **t != l.after)
        .map(|t| expected_end_key(&l.execution, &t.step, &t.item))
        .collect();
    // Side by side: on S3 each is a request, and this runs before the task is handed out.
    let ends = futures::future::join_all(
        keys.iter()
            .map(|key| read::<ExpectedEnd>(objects, cfg, key)),
    )
    .await;
    for (key, e) in keys.iter().zip(ends) {
        let Ok(Some(e)) = e else {
            continue;
        };
        let Some(theirs) = parse_time(&e.end) else {
            continue;
        };
        if (slot(theirs), key.as_str()) > (slot(end), mine.as_str()) && theirs - boot > now {
            return true;
        }
    }
    false
}

/// The share of a step's expected hand-over by which its workers are started later
/// (`hand_over`).
pub const HAND_OVER_SHARE: f64 = 0.5;

/// How much later than the end of the tasks they wait for `d`'s workers should come up:
/// [`HAND_OVER_SHARE`] of `d`'s expected hand-over. Not all of it: the hand-over was measured
/// with the workers started as they were, and workers booting beside a burst of `Prepare`
/// calls are part of what made those calls slow (in local mode they share its cores). Started
/// the whole hand-over later, the calls are quick and the workers come up after their tasks
/// (10 × 25 in the bench: idle 6 % of busy, but 1.09–1.10 × the true limit instead of
/// 1.03–1.08 ×); half of it keeps both in bounds.
async fn hand_over(ports: &Ports<'_>, cfg: &StackConfig, d: &Step) -> Duration {
    expected_hand_over(ports.objects, cfg, &d.name)
        .await
        .mul_f64(HAND_OVER_SHARE)
}

/// When a lookahead's Wait ends so that `d`'s workers are up `hand_over` after the tasks it
/// waits for end, `until_end` (pipeline time) from `now` ([`hand_over`]): `now` + `until_end` +
/// `hand_over` − `d`'s boot time, and that lead. The Wait is in pipeline time from
/// now (the engine scales it; on AWS the scale is 1).
fn wait_end(
    cfg: &StackConfig,
    d: &Step,
    until_end: Duration,
    hand_over: Duration,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, Duration) {
    let lead = until_end
        .saturating_add(hand_over)
        .saturating_sub(cfg.boot_time(d));
    (later(now, lead), lead)
}

/// Starts lookahead execution `name` (one that exists already, by name, is not started again):
/// its Wait ends at `at`. False (and a warning) when it cannot start.
async fn start(
    machine: &str,
    executions: &dyn boa_aws::ports::Executions,
    name: &str,
    at: DateTime<Utc>,
    lookahead: Lookahead,
) -> bool {
    let step = lookahead.step.clone();
    let input = serde_json::to_string(&LookaheadInput {
        at: rfc3339(at),
        lookahead,
    })
    .expect("serialises");
    match executions.start(machine, name, &input).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(%step, error = %e, "cannot start the lookahead; its workers start when their tasks are prepared");
            false
        }
    }
}

async fn read<T: serde::de::DeserializeOwned>(
    objects: &dyn Objects,
    cfg: &StackConfig,
    key: &str,
) -> Result<Option<T>, NamedError> {
    let Some(at) = cfg.record_object(key) else {
        return Ok(None);
    };
    let body = objects
        .get(&at.bucket, &at.key)
        .await
        .map_err(|e| NamedError::new(e.name(), format!("cannot read {at}: {e}")))?;
    Ok(body.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Whether a finished task forbids its dependents under `needs`.
fn blocks(r: &TaskRecord) -> bool {
    r.status == Status::Failed || r.skip == Some(SkipKind::DependencyFailed)
}

/// A lookahead execution's Wait is over: start one worker per task of `step` that waits for
/// `after`, when every task they wait for has ended without forbidding them or is expected to
/// end within `step`'s boot time.
pub async fn handle(
    ev: LookaheadEvent,
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
) -> Result<LookaheadOutcome, NamedError> {
    let l: Lookahead = ev.lookahead;
    let d = p.step(&l.step).ok_or_else(|| {
        NamedError::input(format!(
            "lookahead for step '{}', which is not in the pipeline",
            l.step
        ))
    })?;
    // A run that has ended (failed, stopped, or done) needs no worker: its Waits outlive it (a
    // lookahead timed by a long task may fire hours after a Ctrl-C), and the records they read
    // would still say its tasks were about to end.
    if let Some(ex) = ports.executions {
        match ex.is_running(&l.execution).await {
            Ok(false) => {
                return Ok(LookaheadOutcome {
                    launched: vec![],
                    reason: format!(
                        "the run {} has ended: no {} worker is started ahead",
                        l.execution, d.name
                    ),
                    next: vec![],
                });
            }
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether the run still runs; starting ahead");
            }
        }
    }
    fire_or_fail(l, d, ports, cfg, p).await
}

/// What a lookahead does when its Wait is over (its run still runs): start `d`'s workers for
/// the tasks of `l` if what they wait for allows, put it off if one of those is expected later
/// than a boot from now, and start the lookaheads of the steps after `d` (the next hop). A
/// record that cannot be read is an error (the lookahead's Lambda is retried); from a
/// `Prepare`, the outcome says so and the task goes on.
async fn fire(
    l: Lookahead,
    d: &Step,
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
) -> LookaheadOutcome {
    match fire_or_fail(l, d, ports, cfg, p).await {
        Ok(o) => o,
        Err(e) => LookaheadOutcome {
            launched: vec![],
            reason: format!("cannot start {}'s workers ahead: {e}", d.name),
            next: vec![],
        },
    }
}

async fn fire_or_fail(
    l: Lookahead,
    d: &Step,
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
) -> Result<LookaheadOutcome, NamedError> {
    let nothing = |reason: String| {
        Ok(LookaheadOutcome {
            launched: vec![],
            reason,
            next: vec![],
        })
    };
    let now = Utc::now();
    let horizon = wall_after(cfg, now, cfg.boot_time(d).mul_f64(1.0 + SLACK));
    let mut finished = 0usize;
    let mut blocking = 0usize;
    // When the last of the tasks waited for is expected to end (now for those that ended), and
    // the latest of those expected later than a boot from now.
    let mut last_end = now;
    let mut late: Option<(DateTime<Utc>, &TaskRef)> = None;
    // Every task's record, else its expected end, read side by side: a fan-in step's task
    // waits for dozens, and on S3 each read is a request of its own.
    let execution = l.execution.as_str();
    let states = futures::future::join_all(l.waits_for.iter().map(|t| async move {
        let key = task_record_key(execution, &t.step, &t.item);
        if let Some(r) = read::<TaskRecord>(ports.objects, cfg, &key).await? {
            return Ok((Some(r), None));
        }
        let key = expected_end_key(execution, &t.step, &t.item);
        Ok::<_, NamedError>((None, read::<ExpectedEnd>(ports.objects, cfg, &key).await?))
    }))
    .await;
    for (t, state) in l.waits_for.iter().zip(states) {
        let (record, expected) = state?;
        if let Some(r) = record {
            finished += 1;
            if blocks(&r) {
                blocking += 1;
            }
            continue;
        }
        let Some(e) = expected else {
            return nothing(format!(
                "{} has not been prepared yet: its own lookahead starts {}'s workers",
                label(t),
                d.name
            ));
        };
        let end = parse_time(&e.end).unwrap_or(now);
        last_end = last_end.max(end);
        if end > horizon && late.is_none_or(|(at, _)| end > at) {
            late = Some((end, t));
        }
    }
    if finished == l.waits_for.len() {
        return nothing(format!(
            "every task {} waits for has ended: its workers start when its tasks are prepared",
            d.name
        ));
    }
    let forbidden = match d.needs {
        Needs::AllSucceeded => blocking > 0,
        Needs::AnySucceeded => blocking > 0 && blocking == l.waits_for.len(),
        Needs::Finished => false,
    } && finished > 0;
    if forbidden {
        return nothing(format!(
            "{blocking} of the tasks {} waits for failed: it will not run",
            d.name
        ));
    }
    if let Some((end, t)) = late {
        return put_off(ports, cfg, d, l.clone(), (end, t), now).await;
    }
    let wanted = u32::try_from(l.items.len()).unwrap_or(u32::MAX);
    let state = lookahead::state_tag(&d.name);
    let seed = format!(
        "lookahead|{}|{}|{}",
        l.execution,
        d.name,
        boa_core::input::item_key(&l.after.item)
    );
    let exclusive_seed = format!("{}|lookahead", l.execution);
    // Only registered idle workers are spare: booting ones are on their way to other tasks,
    // except those started ahead for these very tasks: by this lookahead already (a retried
    // invocation), or by another of their dependencies' (a fan-in step's tasks wait for many).
    let tag = lookahead::ahead_tag(&l.execution, &d.name, &l.after);
    let claims: Vec<String> = l
        .waits_for
        .iter()
        .map(|t| lookahead::ahead_tag(&l.execution, &d.name, t))
        .collect();
    let ctx = LaunchContext {
        execution: &l.execution,
        state: &state,
        token_seed: &seed,
        exclusive_seed: &exclusive_seed,
        booting_is_spare: false,
        ahead: Some(&tag),
        claims: &claims,
    };
    let out = ensure_workers(
        ports.fleet,
        ports.objects,
        ports.sleeper,
        cfg,
        p,
        d,
        wanted,
        &ctx,
    )
    .await;
    // EC2 refused the launch in a way no retry fixes (a bad AMI, a missing instance profile…):
    // `d`'s tasks will fail in their own Prepare with EC2's code, so nothing is started ahead
    // for the steps after them either.
    if out.launched.is_empty()
        && let Some(e) = out.error.as_ref().filter(|e| e.is_permanent_launch_error())
    {
        tracing::warn!(step = %d.name, error = %e, "a lookahead cannot launch: EC2 refused");
        return Ok(LookaheadOutcome {
            launched: vec![],
            reason: format!(
                "{}; nothing started ahead for the steps after {}",
                out.reason, d.name
            ),
            next: vec![],
        });
    }
    let next = next_hop(
        ports,
        cfg,
        p,
        d,
        &l,
        last_end,
        !out.launched.is_empty(),
        now,
    )
    .await;
    Ok(LookaheadOutcome {
        launched: out.launched,
        reason: out.reason,
        next,
    })
}

/// A task `l` waits for is expected to end at `end`, later than a boot from now (its own
/// Prepare expects more than the projection that timed this lookahead): starts this lookahead
/// again, its Wait ending a boot before `end`, under a name shared by every lookahead of the same
/// tasks ([`lookahead::rearm_name`]), at most [`lookahead::MAX_REARMS`] times.
async fn put_off(
    ports: &Ports<'_>,
    cfg: &StackConfig,
    d: &Step,
    mut l: Lookahead,
    (end, t): (DateTime<Utc>, &TaskRef),
    now: DateTime<Utc>,
) -> Result<LookaheadOutcome, NamedError> {
    let late = format!(
        "{} is expected to end at {}, later than a boot from now",
        label(t),
        rfc3339(end)
    );
    let (Some(machine), Some(executions)) = (&cfg.lookahead_machine_arn, ports.executions) else {
        return Ok(LookaheadOutcome {
            launched: vec![],
            reason: format!(
                "{late}: {}'s workers start when its tasks are prepared",
                d.name
            ),
            next: vec![],
        });
    };
    if l.rearm >= lookahead::MAX_REARMS {
        return Ok(LookaheadOutcome {
            launched: vec![],
            reason: format!(
                "{late}, and this lookahead was put off {} times already: {}'s workers start when its tasks are prepared",
                l.rearm, d.name
            ),
            next: vec![],
        });
    }
    l.rearm += 1;
    let name = lookahead::rearm_name(&l.execution, &d.name, &l.items, l.rearm);
    let until_end = pipeline_time(cfg, end - now);
    let hand_over = hand_over(ports, cfg, d).await;
    let (at, lead) = wait_end(cfg, d, until_end, hand_over, now);
    let started = start(machine, executions, &name, at, l).await;
    Ok(LookaheadOutcome {
        launched: vec![],
        reason: format!(
            "{late}: put off by {:.0} s (pipeline time)",
            lead.as_secs_f64()
        ),
        next: if started { vec![name] } else { vec![] },
    })
}

/// The next hop, so that a chain of short tasks does not pay a boot per step: `d`'s tasks are
/// now expected to start when the last task they wait for ends (or when the workers just
/// started are up, if later) and to take their expected duration. That projected end is
/// recorded for each task of `d` not prepared yet (its own Prepare replaces it), and the
/// lookaheads of the steps after `d` are started from it, as `d`'s own Prepare would start them
/// (the same executions, by name: whichever comes first starts them). Returns their names.
#[allow(clippy::too_many_arguments)]
async fn next_hop(
    ports: &Ports<'_>,
    cfg: &StackConfig,
    p: &Pipeline,
    d: &Step,
    l: &Lookahead,
    last_end: DateTime<Utc>,
    launched: bool,
    now: DateTime<Utc>,
) -> Vec<String> {
    if cfg.lookahead_machine_arn.is_none() || ports.executions.is_none() || l.steps.is_empty() {
        return vec![];
    }
    let up = wall_after(cfg, now, cfg.boot_time(d));
    let start = if launched { last_end.max(up) } else { last_end };
    // Every projected end is written before any lookahead is started, so that the tasks of a
    // fan-in step after `d` get one lookahead, timed by the last of them ([`defers`]).
    let mut projected = vec![];
    for item in &l.items {
        let prepared = read::<ExpectedEnd>(
            ports.objects,
            cfg,
            &expected_end_key(&l.execution, &d.name, item),
        )
        .await;
        if !matches!(prepared, Ok(None)) {
            continue;
        }
        let plans = lookahead::plan(p, &l.execution, &l.steps, d, item, &l.inner);
        if plans.is_empty() {
            continue;
        }
        let run = expected_duration(ports.objects, cfg, d, item).await;
        // An exclusive step's task also waits for those already in its queue.
        let ready = start;
        let task = (l.execution.as_str(), d.name.as_str(), item);
        let start = queue_end(ports.objects, cfg, task.0, d, item, ready, now)
            .await
            .map_or(start, |q| q.max(start));
        // Pipeline time from now until the task is expected to end.
        let mut until_end = pipeline_time(cfg, start - now).saturating_add(run);
        let end = wall_after(cfg, now, until_end);
        if write_expected_end(ports.objects, cfg, task, end, (false, ready, run)).await {
            if let Some(later) =
                requeue(ports.objects, cfg, d, task, (false, ready, start, run), now).await
            {
                until_end = later;
            }
            projected.push((plans, until_end));
        }
    }
    let mut started = vec![];
    for (plans, until_end) in projected {
        started.extend(schedule(ports, cfg, p, plans, until_end, now).await);
    }
    started
}

fn label(t: &TaskRef) -> String {
    let values: Vec<&str> = t.item.values().map(String::as_str).collect();
    format!("{}[{}]", t.step, values.join(" "))
}
