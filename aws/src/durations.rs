//! Duration history through the [`Objects`] port: record-result writes each successful task's
//! elapsed time ([`record_duration`]); provisioning reads what a task is expected to take
//! ([`expected_duration`]). Beside it, each step's hand-over history: start-workers keeps how long
//! each `Prepare` took ([`record_hand_over`]) and lookahead reads its median
//! ([`expected_hand_over`]). The format, keys and defaults are in [`boa_core::history`].

use std::time::Duration;

use boa_core::history::{DurationHistory, default_expected_duration, duration_key, hand_over_key};
use boa_core::input::Item;
use boa_core::pipeline::Step;
use boa_core::results::ObjectRef;
use boa_core::stack::StackConfig;

use crate::ports::{Objects, PortError};

fn location(cfg: &StackConfig, step: &str, item: &Item) -> Result<ObjectRef, PortError> {
    object(cfg, duration_key(step, item))
}

fn object(cfg: &StackConfig, key: String) -> Result<ObjectRef, PortError> {
    cfg.record_object(&key).ok_or_else(|| {
        PortError::Other(format!(
            "the artifact location '{}' is not an s3:// URL, so {key} has nowhere to go",
            cfg.artifacts
        ))
    })
}

/// The stored history of a (step, item); empty when there is none or it cannot be parsed (an
/// unreadable entry is replaced by the next write, never fatal).
pub async fn read_history(
    objects: &dyn Objects,
    cfg: &StackConfig,
    step: &str,
    item: &Item,
) -> Result<DurationHistory, PortError> {
    read_at(objects, &location(cfg, step, item)?).await
}

async fn read_at(objects: &dyn Objects, at: &ObjectRef) -> Result<DurationHistory, PortError> {
    // Read first: one request when the entry exists. Without s3:ListBucket on the whole bucket
    // (the stack's roles may list only `durations/`), GetObject of a missing key is a 403, not
    // a 404: then a listing limited to the entry's own key tells "missing" from "refused".
    // (Listing first cost a request on S3 and, locally, a read of the whole folder: one entry
    // per task, so a run of n tasks read n² names.)
    let body = match objects.get(&at.bucket, &at.key).await {
        Err(e) if e.is_access_denied() => {
            let listed = objects.list(&at.bucket, &at.key).await?;
            if listed.iter().any(|o| o.key == at.key) {
                return Err(e);
            }
            None
        }
        other => other?,
    };
    Ok(match body {
        Some(body) => DurationHistory::from_json(&body).unwrap_or_else(|e| {
            tracing::warn!(history = %at, error = %e, "unreadable history; starting afresh");
            DurationHistory::default()
        }),
        None => DurationHistory::default(),
    })
}

/// Adds one successful run's elapsed time (wall seconds of this stack: a local run's are divided
/// by its time scale, so they are multiplied back into pipeline seconds) to the task's history,
/// keeping the last [`boa_core::history::KEPT_SAMPLES`]. Read-modify-write: two executions
/// finishing the same task at the same moment may keep only one of their two samples, which
/// only makes the history one sample shorter.
pub async fn record_duration(
    objects: &dyn Objects,
    cfg: &StackConfig,
    step: &str,
    item: &Item,
    elapsed_s: f64,
) -> Result<DurationHistory, PortError> {
    push_sample(objects, cfg, &location(cfg, step, item)?, elapsed_s).await
}

/// Read-modify-write of the history at `at`: one sample (wall seconds of this stack, kept in
/// pipeline seconds) added.
async fn push_sample(
    objects: &dyn Objects,
    cfg: &StackConfig,
    at: &ObjectRef,
    wall_s: f64,
) -> Result<DurationHistory, PortError> {
    let mut h = read_at(objects, at).await?;
    h.push(wall_s * cfg.time_scale);
    objects.put(&at.bucket, &at.key, &h.to_json()).await?;
    Ok(h)
}

/// How long a task of `step` for `item` is expected to take, in pipeline time (scale it with
/// [`StackConfig::scaled`] to wait for it): the median of its kept history, else the step's
/// `expected_duration`, else [`boa_core::history::DEFAULT_EXPECTED_DURATION`]. A history that
/// cannot be read falls back to the default too (and says so in the log): it is an estimate.
pub async fn expected_duration(
    objects: &dyn Objects,
    cfg: &StackConfig,
    step: &Step,
    item: &Item,
) -> Duration {
    match read_history(objects, cfg, &step.name, item).await {
        Ok(h) => h.median(),
        Err(e) => {
            tracing::warn!(step = %step.name, error = %e, "cannot read the duration history; using the step's default");
            None
        }
    }
    .unwrap_or_else(|| default_expected_duration(step))
}

/// Adds one `Prepare`'s hand-over time (wall seconds of this stack, from the state entered to
/// the task ready to be handed out) to the step's hand-over history, in pipeline seconds.
/// Read-modify-write by every `Prepare` of the step: concurrent ones may keep only some of
/// their samples, which is enough for a median.
pub async fn record_hand_over(
    objects: &dyn Objects,
    cfg: &StackConfig,
    step: &str,
    wall_s: f64,
) -> Result<(), PortError> {
    push_sample(objects, cfg, &object(cfg, hand_over_key(step))?, wall_s)
        .await
        .map(drop)
}

/// How long a task of `step` is expected to take from its `Prepare` entered to being handed
/// out, in pipeline time: the median of the step's hand-over history, zero before any (or when
/// it cannot be read: it is an estimate, and zero starts workers as early as before it).
pub async fn expected_hand_over(objects: &dyn Objects, cfg: &StackConfig, step: &str) -> Duration {
    let read = async { read_at(objects, &object(cfg, hand_over_key(step))?).await };
    match read.await {
        Ok(h) => h.median().unwrap_or_default(),
        Err(e) => {
            tracing::warn!(%step, error = %e, "cannot read the hand-over history; starting workers for the dependencies' end");
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeObjects;

    fn cfg() -> StackConfig {
        StackConfig::new("s", "us-east-1", "123456789012", "s3://artifacts/demo")
    }

    #[tokio::test]
    async fn a_history_is_one_read_and_a_refused_read_of_a_missing_one_is_empty() {
        let (cfg, item): (StackConfig, Item) = (cfg(), [("v".into(), "1".into())].into());
        // S3 as a role without s3:ListBucket on the whole bucket sees it.
        let o = FakeObjects::new();
        o.deny_missing_reads();
        // Missing: the read is refused, the listing of its own key finds nothing: no history.
        let h = read_history(&o, &cfg, "Build", &item).await.unwrap();
        assert_eq!(h, DurationHistory::default());
        assert_eq!(o.reads_and_lists().1, 1);
        // Present: one read, no listing.
        record_duration(&o, &cfg, "Build", &item, 30.0)
            .await
            .unwrap();
        let (gets, lists) = o.reads_and_lists();
        let h = read_history(&o, &cfg, "Build", &item).await.unwrap();
        assert_eq!(h.median(), Some(Duration::from_secs(30)));
        assert_eq!(
            o.reads_and_lists(),
            (gets + 1, lists),
            "one read, no listing"
        );
        // Listed but refused: an error, not an empty history.
        let refusing = FakeObjects::new();
        refusing.deny_reads();
        let at = location(&cfg, "Build", &item).unwrap();
        refusing.put(&at.bucket, &at.key);
        let e = read_history(&refusing, &cfg, "Build", &item)
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("AccessDenied"), "{e}");
    }
}
