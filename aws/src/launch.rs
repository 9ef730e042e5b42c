//! Starting workers: ONE implementation shared by start-workers (`Prepare<Step>`) and the health
//! check.
//!
//! [`ensure_workers`] counts the live workers of an activity from their tags, launches the
//! shortfall (capped by `max_workers`, exactly one for an `exclusive` step) through the [`Fleet`]
//! port, trying instance types and markets in order, retrying throttling with capped exponential
//! backoff ([`Backoff::LAUNCH`]), and reports every instance id the moment its launch returns.
//!
//! Idempotency: every RunInstances request carries a `ClientToken` derived from the request, so a
//! retried Lambda invocation (same token seed) gets the instances of the first invocation back
//! instead of new ones; for an exclusive step the token ignores the task item, so concurrent
//! `Prepare` calls of the same execution and attempt share one instance.

use std::collections::BTreeMap;
use std::time::Duration;

use boa_core::names::stable_hash;
use boa_core::pipeline::{Market, Pipeline, Step};
use boa_core::retry::Backoff;
use boa_core::stack::{StackConfig, WorkerCounts, activity_name, launched_reason, worker_env};
use boa_core::worker_env::user_data;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backoff::{Sleeper, retry};
use crate::ports::{Fleet, Instance, LaunchSpec, Objects, PortError, Purchase, tags};

// ---------------------------------------------------------------------------------------------
// Launching

/// Who asks for workers, for tags and idempotency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchContext<'a> {
    /// The execution ARN the workers are launched for (tagged; orphans are reaped by it).
    pub execution: &'a str,
    /// The state that asks (tagged), e.g. `PrepareMakeBinaryPackage` or `HealthCheck`.
    pub state: &'a str,
    /// The request's identity: a retried invocation of the same request passes the same seed and
    /// so never launches twice (start-workers: execution + step + item + attempt).
    pub token_seed: &'a str,
    /// The seed of an `exclusive` step's tokens. start-workers passes (execution, attempt) without
    /// the item, so concurrent `Prepare` calls of one attempt share one instance while a retry
    /// gets a fresh one; the health check passes its round's seed.
    pub exclusive_seed: &'a str,
    /// Whether booting workers may serve the wanted tasks. The health check counts every
    /// pending task, so a booting worker is spare there; a `Prepare` asks for its own task
    /// only, and a booting worker was launched for another task that is pending too, so it is
    /// promised, not spare (else a fan-out of N tasks would share one worker).
    pub booting_is_spare: bool,
    /// Tag the launched workers as started ahead (lookahead) with this
    /// `build-on-aws:ahead` value.
    pub ahead: Option<&'a str>,
    /// `build-on-aws:ahead` values whose booting workers were started for this request's task:
    /// they count as its own, not as promised to another task.
    pub claims: &'a [String],
}

/// What [`ensure_workers`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchOutcome {
    /// Instance ids launched by this call, in launch order.
    pub launched: Vec<String>,
    /// In words: what was counted and done, or why nothing could be launched.
    pub reason: String,
    /// The error that stopped launching early, if any (capacity exhausted, throttled after
    /// every try, or a refusal such as a bad AMI).
    /// Not serialised: the reason already says it in words.
    #[serde(skip)]
    pub error: Option<PortError>,
    /// Live workers of the activity counted before launching (booting ones included).
    #[serde(skip)]
    pub live_before: u32,
}

/// Whether an instance never registered (no `build-on-aws:work` tag) within `boot_timeout` of
/// its launch: its worker is dead (userdata failed, worker exited on bad configuration…).
pub fn is_dead_boot(i: &Instance, boot_timeout: Duration, now: DateTime<Utc>) -> bool {
    i.state.is_live()
        && !i.tags.contains_key(tags::WORK)
        && i.launch_time.is_some_and(|t| {
            now.signed_duration_since(t)
                .to_std()
                .is_ok_and(|age| age > boot_timeout)
        })
}

/// Counts the live workers among `instances` (all of one activity); instances past their boot
/// deadline ([`is_dead_boot`]) do not count.
pub fn count_workers(
    instances: &[Instance],
    boot_timeout: Duration,
    now: DateTime<Utc>,
) -> WorkerCounts {
    let mut c = WorkerCounts::default();
    for i in instances
        .iter()
        .filter(|i| i.state.is_live() && !is_dead_boot(i, boot_timeout, now))
    {
        c.live += 1;
        match i.tags.get(tags::WORK).map(String::as_str) {
            Some("busy") => {}
            Some(_) => c.idle += 1,
            None => {
                c.idle += 1;
                c.booting += 1;
            }
        }
    }
    c
}

/// The ClientToken (≤ 64 ASCII characters, as EC2 requires) of one RunInstances request.
pub fn client_token(
    cfg: &StackConfig,
    p: &Pipeline,
    step: &Step,
    ctx: &LaunchContext<'_>,
    instance_type: &str,
    purchase: Purchase,
    count: u32,
) -> String {
    let activity = activity_name(p, &step.name);
    let purchase = match purchase {
        Purchase::Spot => "spot",
        Purchase::OnDemand => "on-demand",
    };
    let count = count.to_string();
    let h = if step.exclusive {
        stable_hash(&[
            "exclusive",
            &cfg.stack,
            &activity,
            ctx.exclusive_seed,
            instance_type,
            purchase,
            &count,
        ])
    } else {
        stable_hash(&[
            &cfg.stack,
            &activity,
            ctx.token_seed,
            instance_type,
            purchase,
            &count,
        ])
    };
    format!("boa-{h}")
}

/// The (instance type, purchase) pairs to try, in order.
pub fn attempts_order(step: &Step) -> Vec<(String, Purchase)> {
    let mut v = vec![];
    for t in &step.worker.instance_types {
        let purchases: &[Purchase] = match step.worker.market {
            Market::SpotThenOnDemand => &[Purchase::Spot, Purchase::OnDemand],
            Market::Spot => &[Purchase::Spot],
            Market::OnDemand => &[Purchase::OnDemand],
        };
        for pu in purchases {
            v.push((t.clone(), *pu));
        }
    }
    v
}

fn purchase_str(p: Purchase) -> &'static str {
    match p {
        Purchase::Spot => "spot",
        Purchase::OnDemand => "on-demand",
    }
}

/// Makes sure `wanted` workers are available to a step's activity: launches
/// `min(wanted − idle, cap − live)` instances, where `cap` is `max_workers` (1 when exclusive).
///
/// Never fails: what could not be done is in [`LaunchOutcome::reason`] and `error`, and the
/// instances launched before a failure are in `launched`. The task keeps waiting either way and
/// the health check tries again.
#[allow(clippy::too_many_arguments)]
pub async fn ensure_workers(
    fleet: &dyn Fleet,
    objects: &dyn Objects,
    sleeper: &dyn Sleeper,
    cfg: &StackConfig,
    p: &Pipeline,
    step: &Step,
    wanted: u32,
    ctx: &LaunchContext<'_>,
) -> LaunchOutcome {
    let activity = activity_name(p, &step.name);
    let filter = vec![
        (tags::STACK.to_string(), cfg.stack.clone()),
        (tags::ACTIVITY.to_string(), activity.clone()),
    ];
    let existing = match retry(&Backoff::LAUNCH, sleeper, "DescribeInstances", || {
        fleet.instances(&filter)
    })
    .await
    {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(activity = %activity, error = %e, "cannot count workers");
            return LaunchOutcome {
                launched: vec![],
                reason: format!("cannot count the workers of {activity}: {e}"),
                error: Some(e),
                live_before: 0,
            };
        }
    };
    let counts = count_workers(&existing, cfg.scaled(step.worker.boot_timeout), Utc::now());
    let cap = if step.exclusive {
        1
    } else {
        step.worker.max_workers
    };
    // Booting workers are each on their way to the task that launched them, except those
    // started ahead (lookahead) for this request's task.
    let now = Utc::now();
    let boot_timeout = cfg.scaled(step.worker.boot_timeout);
    let started_ahead = existing
        .iter()
        .filter(|i| {
            i.state.is_live()
                && !i.tags.contains_key(tags::WORK)
                && !is_dead_boot(i, boot_timeout, now)
                && i.tags
                    .get(tags::AHEAD)
                    .is_some_and(|a| ctx.claims.contains(a))
        })
        .count() as u32;
    let spare = if ctx.booting_is_spare {
        counts.idle
    } else {
        counts.idle - counts.booting + started_ahead.min(counts.booting)
    };
    let shortfall = wanted.saturating_sub(spare);
    let room = cap.saturating_sub(counts.live);
    let count = shortfall.min(room);
    let counted = counts.describe(&activity, wanted, cap);
    if count == 0 {
        let why = if shortfall == 0 {
            "enough idle workers"
        } else {
            "at the worker cap; the task waits for a worker to free up"
        };
        return LaunchOutcome {
            launched: vec![],
            reason: format!("{counted}: {why}"),
            error: None,
            live_before: counts.live,
        };
    }

    // An exclusive step: at most one worker across every execution of the stack, under races.
    let lock_value;
    let locked_ctx;
    let ctx = if step.exclusive {
        match exclusive_lock(objects, cfg, step, &activity, &existing, Utc::now()).await {
            Ok(Lock::Acquired(value)) => {
                lock_value = value;
                locked_ctx = LaunchContext {
                    exclusive_seed: &lock_value,
                    ..ctx.clone()
                };
                &locked_ctx
            }
            Ok(Lock::Held(why)) => {
                return LaunchOutcome {
                    launched: vec![],
                    reason: format!("{counted}: {why}"),
                    error: None,
                    // A worker holds the step or is on its way: the task waits for it.
                    live_before: counts.live.max(1),
                };
            }
            Err(e) => {
                return LaunchOutcome {
                    launched: vec![],
                    reason: format!("{counted}: cannot read the exclusive lock: {e}"),
                    error: Some(e),
                    live_before: counts.live.max(1),
                };
            }
        }
    } else {
        ctx
    };

    let env = worker_env(cfg, p, step);
    let user_data = user_data(&env, &cfg.worker_download());
    let mut tag_map = BTreeMap::new();
    if step.exclusive {
        tag_map.insert(tags::LOCK.to_string(), ctx.exclusive_seed.to_string());
    }
    tag_map.insert(tags::STACK.to_string(), cfg.stack.clone());
    tag_map.insert(tags::ACTIVITY.to_string(), activity.clone());
    tag_map.insert(tags::EXECUTION.to_string(), ctx.execution.to_string());
    tag_map.insert(tags::STATE.to_string(), ctx.state.to_string());
    tag_map.insert(tags::NAME.to_string(), format!("wa-0-{}", step.name));
    if let Some(a) = ctx.ahead {
        tag_map.insert(tags::AHEAD.to_string(), a.to_string());
    }
    let instance_profile = boa_core::stack::instance_profile(cfg, step);
    let subnets = if step.worker.subnets.is_empty() {
        &cfg.default_subnets
    } else {
        &step.worker.subnets
    };
    let security_groups = if step.worker.security_groups.is_empty() {
        cfg.default_security_groups.clone()
    } else {
        step.worker.security_groups.clone()
    };

    let mut launched: Vec<String> = vec![];
    let mut tried: Vec<String> = vec![];
    let mut last_error: Option<PortError> = None;
    for (n, (instance_type, purchase)) in attempts_order(step).into_iter().enumerate() {
        let remaining = count - launched.len() as u32;
        if remaining == 0 {
            break;
        }
        let spec = LaunchSpec {
            count: remaining,
            instance_type: instance_type.clone(),
            purchase,
            client_token: client_token(cfg, p, step, ctx, &instance_type, purchase, remaining),
            ami: cfg
                .worker_ami
                .clone()
                .unwrap_or_else(|| step.worker.ami.clone()),
            disk_gb: step.worker.disk_gb,
            imds_hop_limit: step.worker.imds_hop_limit,
            instance_profile: instance_profile.clone(),
            // Spread requests over the subnets: a different one per type/market tried.
            subnet: (!subnets.is_empty()).then(|| subnets[n % subnets.len()].clone()),
            security_groups: security_groups.clone(),
            user_data: user_data.clone(),
            tags: tag_map.clone(),
        };
        let label = format!("{instance_type} {}", purchase_str(purchase));
        match retry(&Backoff::LAUNCH, sleeper, "RunInstances", || {
            fleet.launch(&spec)
        })
        .await
        {
            Ok(ids) => {
                for id in &ids {
                    tracing::info!(
                        instance_id = %id,
                        activity = %activity,
                        instance_type = %instance_type,
                        market = purchase_str(purchase),
                        execution = %ctx.execution,
                        "launched worker"
                    );
                }
                tried.push(format!("{label}: launched {}", ids.len()));
                launched.extend(ids);
                last_error = None;
            }
            Err(e @ PortError::NoCapacity(_)) => {
                tracing::warn!(activity = %activity, instance_type = %instance_type, market = purchase_str(purchase), error = %e, "no capacity; trying the next type/market");
                tried.push(format!("{label}: {e}"));
                last_error = Some(e);
            }
            Err(e) => {
                tracing::error!(activity = %activity, instance_type = %instance_type, market = purchase_str(purchase), error = %e, "launch failed");
                tried.push(format!("{label}: {e}"));
                last_error = Some(e);
                break;
            }
        }
    }
    let done = launched.len() as u32;
    if step.exclusive && launched.is_empty() {
        release_lock(objects, cfg, ctx.exclusive_seed).await;
    }
    let reason = if done == count {
        launched_reason(&counted, &launched)
    } else {
        format!(
            "{counted}: launched {done} of {count}; the task waits and the health check retries ({})",
            tried.join("; ")
        )
    };
    LaunchOutcome {
        launched,
        reason,
        error: if done == count { None } else { last_error },
        live_before: counts.live,
    }
}

// ---------------------------------------------------------------------------------------------
// The exclusive lock

/// What the exclusive lock of a step said.
enum Lock {
    /// This call took the lock `<activity>/<generation>`: launch one worker tagged with it.
    Acquired(String),
    /// A live worker holds it, or one is being launched for it (in words).
    Held(String),
}

/// The lock of an exclusive step: generations `<prefix><n:012>`, each created at most once
/// (`If-None-Match: *`), so of any number of racing requests exactly one takes generation n+1
/// and launches. Generation n is free again when its worker is listed and gone (terminated, dead
/// at boot, lease expired), when no worker of it is listed and it is older than the boot timeout
/// (a worker just launched may not be listed yet), or when its launch failed (`<n>.released`).
async fn exclusive_lock(
    objects: &dyn Objects,
    cfg: &StackConfig,
    step: &Step,
    activity: &str,
    existing: &[Instance],
    now: DateTime<Utc>,
) -> Result<Lock, PortError> {
    let Some((bucket, prefix)) = cfg.records(&format!("locks/{activity}")) else {
        return Ok(Lock::Acquired(format!("{activity}/0")));
    };
    let mut top: Option<(u64, Option<DateTime<Utc>>)> = None;
    let mut released = std::collections::BTreeSet::new();
    for o in objects.list(&bucket, &prefix).await? {
        let rest = o.key.strip_prefix(&prefix).unwrap_or(&o.key);
        if let Some(g) = rest.strip_suffix(".released") {
            released.extend(g.parse::<u64>().ok());
        } else if let Ok(g) = rest.parse::<u64>()
            && top.is_none_or(|(t, _)| g > t)
        {
            top = Some((g, o.last_modified));
        }
    }
    let boot = cfg.scaled(step.worker.boot_timeout);
    if let Some((g, taken)) = top
        && !released.contains(&g)
    {
        let value = format!("{activity}/{g}");
        let holder = existing.iter().find(|i| {
            i.tags.get(tags::LOCK) == Some(&value)
                && i.state.is_live()
                && !is_dead_boot(i, boot, now)
                && !lease_expired(i, now)
        });
        if let Some(h) = holder {
            return Ok(Lock::Held(format!("exclusive: {} holds {value}", h.id)));
        }
        // Its worker is listed, and gone: the generation is free at once. Not listed at all, it
        // may be launching still (DescribeInstances lags a launch), until the boot timeout.
        let launched_and_gone = existing
            .iter()
            .any(|i| i.tags.get(tags::LOCK) == Some(&value));
        let age = taken.and_then(|t| now.signed_duration_since(t).to_std().ok());
        if !launched_and_gone && age.is_none_or(|a| a < boot) {
            return Ok(Lock::Held(format!(
                "exclusive: {value} was just taken; its worker is being launched"
            )));
        }
    }
    let next = top.map_or(1, |(g, _)| g + 1);
    let key = format!("{prefix}{next:012}");
    if objects
        .create(&bucket, &key, now.to_rfc3339().as_bytes())
        .await?
    {
        Ok(Lock::Acquired(format!("{activity}/{next}")))
    } else {
        Ok(Lock::Held(format!(
            "exclusive: another request took {activity}/{next} first"
        )))
    }
}

/// Marks a lock generation whose launch failed as free (best effort: otherwise it frees itself
/// after the boot timeout).
async fn release_lock(objects: &dyn Objects, cfg: &StackConfig, value: &str) {
    let Some((activity, g)) = value.rsplit_once('/') else {
        return;
    };
    let (Some((bucket, prefix)), Ok(g)) =
        (cfg.records(&format!("locks/{activity}")), g.parse::<u64>())
    else {
        return;
    };
    let key = format!("{prefix}{g:012}.released");
    if let Err(e) = objects.create(&bucket, &key, b"launch failed").await {
        tracing::warn!(lock = %value, error = %e, "cannot release the exclusive lock; it frees itself after the boot timeout");
    }
}

/// Whether the instance's lease tag has passed.
pub fn lease_expired(i: &Instance, now: DateTime<Utc>) -> bool {
    i.tags
        .get(tags::LEASE)
        .and_then(|l| DateTime::parse_from_rfc3339(l).ok())
        .is_some_and(|t| t < now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = r#"
name = "demo"
[[axis]]
name = "version"
pattern = '^\d+$'
[defaults.worker]
instance_types = ["a.large", "b.large"]
[[step]]
name = "Build"
script = "build.sh"
[[step]]
name = "Publish"
script = "publish.sh"
exclusive = true
[step.worker]
market = "spot"
"#;

    #[test]
    fn client_tokens_are_stable_short_and_change_with_the_request() {
        let p = Pipeline::parse(P).unwrap();
        let c = StackConfig::new("s", "us-east-1", "1", "s3://a");
        let ctx = |seed: &'static str, exclusive: &'static str| LaunchContext {
            execution: "e1",
            state: "PrepareBuild",
            token_seed: seed,
            exclusive_seed: exclusive,
            booting_is_spare: false,
            ahead: None,
            claims: &[],
        };
        let build = p.step("Build").unwrap();
        let t = |s: &Step, cx: &LaunchContext<'_>, ty: &str| {
            client_token(&c, &p, s, cx, ty, Purchase::Spot, 1)
        };
        let a = t(build, &ctx("x|1", "e1|0"), "a.large");
        assert_eq!(a, t(build, &ctx("x|1", "e2|5"), "a.large"));
        assert_eq!(
            a,
            "boa-".to_string()
                + &stable_hash(&[
                    "s",
                    "build-on-aws-demo-Build",
                    "x|1",
                    "a.large",
                    "spot",
                    "1"
                ])
        );
        assert!(a.len() <= 64 && a.is_ascii());
        assert_ne!(a, t(build, &ctx("x|2", "e1|0"), "a.large"));
        assert_ne!(a, t(build, &ctx("x|1", "e1|0"), "b.large"));
        // Exclusive: the seed (item) does not matter; the exclusive seed does.
        let publish = p.step("Publish").unwrap();
        let x = t(publish, &ctx("v1", "e1|0"), "a.large");
        assert_eq!(x, t(publish, &ctx("v2", "e1|0"), "a.large"));
        assert_ne!(x, t(publish, &ctx("v1", "e2|0"), "a.large"));
        assert_ne!(x, t(publish, &ctx("v1", "e1|1"), "a.large"));
    }

    #[test]
    fn markets_give_the_order_of_types_and_purchases() {
        let p = Pipeline::parse(P).unwrap();
        let o = attempts_order(p.step("Build").unwrap());
        assert_eq!(
            o,
            [
                ("a.large".to_string(), Purchase::Spot),
                ("a.large".to_string(), Purchase::OnDemand),
                ("b.large".to_string(), Purchase::Spot),
                ("b.large".to_string(), Purchase::OnDemand),
            ]
        );
        let o = attempts_order(p.step("Publish").unwrap());
        assert!(o.iter().all(|(_, pu)| *pu == Purchase::Spot) && o.len() == 2);
    }
}
