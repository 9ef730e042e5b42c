//! What a run's execution history says, the same for local and AWS runs: the live progress
//! counts, every activity attempt (for the report's timeline), and the task results.
//!
//! [`task_results`] is the one place the CLI reads task results from; everything that shows
//! results (the table, `--json`, `status`, the HTML report) goes through it.

use std::collections::{BTreeMap, BTreeSet};

use boa_aws::ports::HistoryEvent;
use boa_core::history_event::EventType;
use boa_core::input::Item;
use boa_core::results::{NormalizedResults, Status, TaskRecord};
use boa_core::task::{ActivityInput, PrepareRecord, SkipKind, WorkerFailureCause, WorkerOutput};
use chrono::{DateTime, Utc};

/// A task's identity: its step and its axis values.
pub type TaskKey = (String, Item);

/// How an activity attempt ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Scheduled, waiting for a worker.
    Waiting,
    Running,
    Succeeded,
    Failed,
    TimedOut,
}

/// One activity attempt: a task handed to a worker once.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub step: String,
    pub item: Item,
    /// 0 for the first attempt.
    pub attempt: u32,
    pub scheduled: Option<DateTime<Utc>>,
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub end: AttemptEnd,
    pub instance_id: Option<String>,
    pub log_stream: Option<String>,
    pub elapsed_s: Option<f64>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// Every activity attempt of the history, in the order they were scheduled. Activity events
/// chain (`ActivityScheduled` ← `ActivityStarted` ← `ActivitySucceeded`/`Failed`/`TimedOut`), and
/// the scheduled event's input is the task's [`ActivityInput`].
pub fn attempts(events: &[HistoryEvent]) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = vec![];
    // event id → index in `out`, for the scheduled and started events.
    let mut by_event: BTreeMap<i64, usize> = BTreeMap::new();
    for e in events {
        match e.kind {
            EventType::ActivityScheduled => {
                let Some(input) = e
                    .payload
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<ActivityInput>(p).ok())
                else {
                    continue;
                };
                by_event.insert(e.id, out.len());
                out.push(Attempt {
                    step: input.step,
                    item: input.item,
                    attempt: input.attempt,
                    scheduled: e.timestamp,
                    started: None,
                    ended: None,
                    end: AttemptEnd::Waiting,
                    instance_id: None,
                    log_stream: None,
                    elapsed_s: None,
                    error: None,
                    cause: None,
                });
            }
            EventType::ActivityStarted => {
                if let Some(&i) = by_event.get(&e.previous_event_id) {
                    by_event.insert(e.id, i);
                    out[i].started = e.timestamp;
                    out[i].end = AttemptEnd::Running;
                }
            }
            EventType::ActivitySucceeded
            | EventType::ActivityFailed
            | EventType::ActivityTimedOut => {
                let Some(&i) = by_event.get(&e.previous_event_id) else {
                    continue;
                };
                let a = &mut out[i];
                a.ended = e.timestamp;
                match e.kind {
                    EventType::ActivitySucceeded => {
                        a.end = AttemptEnd::Succeeded;
                        if let Some(o) = e
                            .payload
                            .as_deref()
                            .and_then(|p| serde_json::from_str::<WorkerOutput>(p).ok())
                        {
                            a.instance_id = Some(o.instance_id);
                            a.log_stream = Some(o.log_stream);
                            a.elapsed_s = Some(o.elapsed_s);
                        }
                    }
                    EventType::ActivityFailed => {
                        a.end = AttemptEnd::Failed;
                        a.error = e.error.clone();
                        a.cause = e.cause.clone();
                        if let Some(c) = e
                            .cause
                            .as_deref()
                            .and_then(|c| serde_json::from_str::<WorkerFailureCause>(c).ok())
                        {
                            a.instance_id = Some(c.instance_id);
                            a.log_stream = Some(c.log_stream);
                            a.elapsed_s = Some(c.elapsed_s);
                        }
                    }
                    _ => {
                        a.end = AttemptEnd::TimedOut;
                        a.error = e.error.clone();
                        a.cause = e.cause.clone();
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The `Prepare<Step>` decisions of the history that skipped a task: (step, skip kind).
fn prepare_skips(events: &[HistoryEvent]) -> Vec<(String, Item, PrepareRecord)> {
    events
        .iter()
        .filter(|e| e.kind == EventType::TaskStateExited)
        .filter_map(|e| {
            let step = e
                .state_name
                .as_deref()?
                .strip_prefix("Prepare")?
                .to_string();
            let v: serde_json::Value = serde_json::from_str(e.payload.as_deref()?).ok()?;
            let prepare: PrepareRecord = serde_json::from_value(v.get("prepare")?.clone()).ok()?;
            let item: Item = v
                .get("item")
                .and_then(|i| serde_json::from_value(i.clone()).ok())
                .unwrap_or_default();
            (prepare.skip.is_some()).then_some((step, item, prepare))
        })
        .collect()
}

/// Counts shown while a run is followed, over the requested tasks only: each task counts once,
/// by its latest state, so `done` never exceeds the number of requested tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub succeeded: usize,
    /// Tasks whose latest attempt failed (a retry may still come).
    pub failed: usize,
    /// Requested tasks skipped (done already, a dependency failed, skip-ec2).
    pub skipped: usize,
    pub running: usize,
    /// Scheduled, waiting for a worker (booting or queued).
    pub waiting: usize,
    /// Attempts that failed (some are retried).
    pub failed_attempts: usize,
}

impl Progress {
    /// The progress of the requested tasks. A task the history shows but the request does not
    /// name (a step's tasks skipped as not requested) is not counted.
    pub fn from_history(events: &[HistoryEvent], requested: &[TaskKey]) -> Progress {
        let wanted: BTreeSet<&TaskKey> = requested.iter().collect();
        let mut latest: BTreeMap<TaskKey, Status> = BTreeMap::new();
        let mut p = Progress::default();
        for (step, item, prep) in prepare_skips(events) {
            let key = (step, item);
            if prep.skip != Some(SkipKind::NotRequested) && wanted.contains(&key) {
                latest.insert(key, Status::Skipped);
            }
        }
        let mut live: BTreeMap<TaskKey, AttemptEnd> = BTreeMap::new();
        for a in attempts(events) {
            let key = (a.step.clone(), a.item.clone());
            if !wanted.contains(&key) {
                continue;
            }
            if matches!(a.end, AttemptEnd::Failed | AttemptEnd::TimedOut) {
                p.failed_attempts += 1;
            }
            live.insert(key, a.end);
        }
        for (key, end) in live {
            match end {
                AttemptEnd::Waiting => p.waiting += 1,
                AttemptEnd::Running => p.running += 1,
                AttemptEnd::Succeeded => {
                    latest.insert(key, Status::Succeeded);
                }
                AttemptEnd::Failed | AttemptEnd::TimedOut => {
                    latest.insert(key, Status::Failed);
                }
            }
        }
        for s in latest.values() {
            match s {
                Status::Succeeded => p.succeeded += 1,
                Status::Failed => p.failed += 1,
                Status::Skipped => p.skipped += 1,
            }
        }
        p
    }

    /// Tasks that reached an end (for now: a failed task may be retried).
    pub fn done(&self) -> usize {
        self.succeeded + self.failed + self.skipped
    }

    /// The counts, without times: a line is printed again only when this changes.
    pub fn counts(&self, total: usize, workers: Option<usize>) -> String {
        let mut s = format!(
            "{}/{total} done · {} running · {} waiting · {} skipped · {} failed",
            self.done().min(total),
            self.running,
            self.waiting,
            self.skipped,
            self.failed
        );
        if self.failed_attempts > 0 {
            s.push_str(&format!(" ({} failed attempts)", self.failed_attempts));
        }
        if let Some(w) = workers {
            s.push_str(&format!(" · {w} workers"));
        }
        s
    }

    /// The live line: the counts and how long the run has taken in pipeline time (what it would
    /// take on AWS), with the real time beside it when they differ (local mode's time scale).
    pub fn line(
        &self,
        total: usize,
        workers: Option<usize>,
        real: std::time::Duration,
        time_scale: f64,
    ) -> String {
        format!(
            "{} · {}",
            self.counts(total, workers),
            pipeline_time(real, time_scale)
        )
    }
}

/// `12m 30s` (pipeline time), or `12m 30s (7.5s real)` when the time scale is not 1.
pub fn pipeline_time(real: std::time::Duration, time_scale: f64) -> String {
    let pipeline = real.as_secs_f64() * time_scale;
    if (time_scale - 1.0).abs() < f64::EPSILON {
        human(pipeline)
    } else {
        format!("{} ({} real)", human(pipeline), human(real.as_secs_f64()))
    }
}

/// Seconds as `1h 02m`, `12m 30s`, `7.5s`.
pub fn human(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// The summary of a finished execution, read from its history: the output of the
/// `NormalizeResults` state (kept even when `CheckForFailures` failed the execution), which says
/// where the results object is.
pub fn summary_from_history(events: &[HistoryEvent]) -> Option<boa_core::RunSummary> {
    events
        .iter()
        .rev()
        .filter(|e| {
            e.kind == EventType::TaskStateExited
                && e.state_name.as_deref() == Some("NormalizeResults")
        })
        .find_map(|e| serde_json::from_str(e.payload.as_deref()?).ok())
}

/// The task results of an execution, the one place the CLI reads them (local and AWS alike):
/// the results object NormalizeResults wrote and named in its output (in the bucket, or in a
/// local run's artifact folder), kept even when `CheckForFailures` failed the execution. When the
/// execution ended before NormalizeResults (stopped, timed out), the tasks whose last attempt had
/// ended, from the activity events: a partial result, so `status` still shows what had finished.
/// `Err`: NormalizeResults named an object that cannot be read.
pub async fn task_results(
    events: &[HistoryEvent],
    objects: &dyn boa_aws::ports::Objects,
) -> Result<Option<NormalizedResults>, String> {
    if let Some(run) = summary_from_history(events) {
        let at = &run.results;
        let body = objects
            .get(&at.bucket, &at.key)
            .await
            .map_err(|e| format!("cannot read the results {at}: {e}"))?
            .ok_or_else(|| format!("the results {at} are missing"))?;
        return serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("the results {at} are unreadable: {e}"));
    }
    Ok(partial_results(events))
}

/// What had finished of an execution that ended before NormalizeResults, from its activity
/// events.
fn partial_results(events: &[HistoryEvent]) -> Option<NormalizedResults> {
    let mut last: BTreeMap<TaskKey, (Attempt, u32)> = BTreeMap::new();
    for a in attempts(events) {
        let key = (a.step.clone(), a.item.clone());
        let n = last.get(&key).map_or(0, |(_, n)| *n) + 1;
        last.insert(key, (a, n));
    }
    let tasks: Vec<TaskRecord> = last
        .into_values()
        .filter_map(|(a, n)| {
            let status = match a.end {
                AttemptEnd::Succeeded => Status::Succeeded,
                AttemptEnd::Failed | AttemptEnd::TimedOut => Status::Failed,
                AttemptEnd::Waiting | AttemptEnd::Running => return None,
            };
            Some(TaskRecord {
                step: a.step,
                item: a.item,
                status,
                skip: None,
                reason: None,
                instance_id: a.instance_id,
                log_stream: a.log_stream,
                elapsed_s: a.elapsed_s,
                attempts: Some(n),
                error: a.error,
                cause: a.cause,
            })
        })
        .collect();
    if tasks.is_empty()
        && !events
            .iter()
            .any(|e| e.kind == EventType::ActivityScheduled)
    {
        return None;
    }
    Some(NormalizedResults::new(tasks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(
        id: i64,
        prev: i64,
        kind: EventType,
        name: Option<&str>,
        payload: Option<String>,
    ) -> HistoryEvent {
        HistoryEvent {
            id,
            previous_event_id: prev,
            kind,
            timestamp: None,
            resource: None,
            state_name: name.map(str::to_string),
            payload,
            error: None,
            cause: None,
        }
    }

    fn item(v: &str, d: Option<&str>) -> Item {
        let mut i: Item = [("version".to_string(), v.to_string())].into();
        if let Some(d) = d {
            i.insert("distro".into(), d.into());
        }
        i
    }

    fn scheduled(id: i64, step: &str, it: &Item) -> HistoryEvent {
        ev(
            id,
            0,
            EventType::ActivityScheduled,
            None,
            Some(json!({"step": step, "item": it, "mode": "normal"}).to_string()),
        )
    }

    fn prepare(id: i64, step: &str, it: &Item, skip: Option<&str>) -> HistoryEvent {
        let prep = match skip {
            Some(k) => json!({"status": "skipped", "skip": k, "reason": "r"}),
            None => json!({"status": "pending", "reason": "r"}),
        };
        ev(
            id,
            0,
            EventType::TaskStateExited,
            Some(&format!("Prepare{step}")),
            Some(json!({"item": it, "prepare": prep}).to_string()),
        )
    }

    #[test]
    fn counts_each_requested_task_once_by_its_latest_state() {
        let v = item("1.0.0", None);
        let a = item("1.0.0", Some("a"));
        let b = item("1.0.0", Some("b"));
        let requested: Vec<TaskKey> = vec![
            ("Pkg".into(), a.clone()),
            ("Pkg".into(), b.clone()),
            ("Pub".into(), v.clone()),
        ];
        let h = vec![
            // Not requested: skipped, and not counted.
            prepare(1, "Tarball", &v, Some("not-requested")),
            prepare(2, "Pkg", &a, None),
            scheduled(3, "Pkg", &a),
            ev(4, 3, EventType::ActivityStarted, None, None),
            ev(5, 4, EventType::ActivityFailed, None, None),
            // The retry of a runs; b succeeded; Pub is skipped (done already).
            scheduled(6, "Pkg", &a),
            ev(7, 6, EventType::ActivityStarted, None, None),
            scheduled(8, "Pkg", &b),
            ev(9, 8, EventType::ActivityStarted, None, None),
            ev(10, 9, EventType::ActivitySucceeded, None, None),
            prepare(11, "Pub", &v, Some("done")),
        ];
        let p = Progress::from_history(&h, &requested);
        assert_eq!(
            p,
            Progress {
                succeeded: 1,
                failed: 0,
                skipped: 1,
                running: 1,
                waiting: 0,
                failed_attempts: 1
            }
        );
        assert!(
            p.counts(3, Some(2)).starts_with("2/3 done · 1 running"),
            "{}",
            p.counts(3, Some(2))
        );
    }

    #[test]
    fn a_one_task_request_never_counts_past_its_total() {
        // The case that printed "3/1 done · 3 skipped": three steps not requested.
        let v = item("1.0.0", None);
        let requested: Vec<TaskKey> = vec![("Tarball".into(), v.clone())];
        let mut h = vec![];
        let mut id = 0;
        for step in ["Pub", "Src", "Docker"] {
            id += 1;
            h.push(prepare(id, step, &v, Some("not-requested")));
        }
        id += 1;
        h.push(prepare(id, "Tarball", &v, None));
        h.push(scheduled(id + 1, "Tarball", &v));
        h.push(ev(id + 2, id + 1, EventType::ActivityStarted, None, None));
        // Every prefix of the history: done stays within the total.
        for n in 0..=h.len() {
            let p = Progress::from_history(&h[..n], &requested);
            assert!(p.done() <= requested.len(), "{n}: {p:?}");
            assert_eq!(p.skipped, 0, "{n}");
        }
        h.push(ev(id + 3, id + 2, EventType::ActivitySucceeded, None, None));
        let p = Progress::from_history(&h, &requested);
        assert_eq!(
            p.counts(1, None),
            "1/1 done · 0 running · 0 waiting · 0 skipped · 0 failed"
        );
    }

    #[test]
    fn durations_are_shown_in_pipeline_time_with_the_real_time_beside() {
        let d = std::time::Duration::from_millis(7500);
        assert_eq!(pipeline_time(d, 100.0), "12m 30s (7.5s real)");
        assert_eq!(pipeline_time(d, 1.0), "7.5s");
        assert_eq!(human(7200.0 + 120.0), "2h 02m");
    }

    #[tokio::test]
    async fn results_come_from_the_object_normalize_names_or_from_the_attempts_that_ended() {
        use boa_aws::ports::Objects;
        let r = NormalizedResults::new(vec![]);
        let dir = tempfile::tempdir().unwrap();
        let objects = local::stack::LocalObjects::new(dir.path());
        let run = boa_core::RunSummary {
            summary: r.summary.clone(),
            results: boa_core::results::ObjectRef {
                bucket: "b".into(),
                key: "runs/x/results.json".into(),
            },
            failed: vec![],
        };
        let h = vec![
            ev(
                1,
                0,
                EventType::TaskStateExited,
                Some("NormalizeResults"),
                Some(serde_json::to_string(&run).unwrap()),
            ),
            ev(2, 0, EventType::ExecutionFailed, None, None),
        ];
        let missing = task_results(&h, &objects).await.unwrap_err();
        assert!(missing.contains("s3://b/runs/x/results.json"), "{missing}");
        objects
            .put("b", "runs/x/results.json", &serde_json::to_vec(&r).unwrap())
            .await
            .unwrap();
        assert_eq!(task_results(&h, &objects).await, Ok(Some(r)));
        assert_eq!(task_results(&h[1..], &objects).await, Ok(None));
        // Stopped half-way: the finished task is there, the running one is not.
        let a = item("1.0.0", Some("a"));
        let b = item("1.0.0", Some("b"));
        let out = json!({"instance_id": "i-1", "log_stream": "w_i-1", "elapsed_s": 2.0});
        let h = vec![
            scheduled(1, "Pkg", &a),
            ev(2, 1, EventType::ActivityStarted, None, None),
            ev(
                3,
                2,
                EventType::ActivitySucceeded,
                None,
                Some(out.to_string()),
            ),
            scheduled(4, "Pkg", &b),
            ev(5, 4, EventType::ActivityStarted, None, None),
            ev(6, 0, EventType::ExecutionAborted, None, None),
        ];
        let r = task_results(&h, &objects)
            .await
            .unwrap()
            .expect("partial results");
        assert_eq!(r.tasks.len(), 1);
        assert_eq!(r.tasks[0].item, a);
        assert_eq!(r.tasks[0].instance_id.as_deref(), Some("i-1"));
    }
}
