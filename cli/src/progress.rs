//! Progress of a run, read from its execution history (the same for local and AWS runs).

use boa_aws::ports::HistoryEvent;
use boa_core::history_event::EventType;

/// Counts shown while a run is followed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub succeeded: usize,
    pub skipped: usize,
    /// Attempts that failed (some are retried).
    pub failed_attempts: usize,
    pub running: usize,
}

impl Progress {
    pub fn from_history(events: &[HistoryEvent]) -> Progress {
        let mut p = Progress::default();
        let mut started = 0usize;
        let mut ended = 0usize;
        for e in events {
            match &e.kind {
                EventType::ActivityStarted => started += 1,
                EventType::ActivitySucceeded => {
                    ended += 1;
                    p.succeeded += 1
                }
                EventType::ActivityFailed | EventType::ActivityTimedOut => {
                    ended += 1;
                    p.failed_attempts += 1
                }
                EventType::TaskStateExited
                    if e.state_name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("Prepare")) =>
                {
                    let skipped = e
                        .payload
                        .as_deref()
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                        .and_then(|v| v.pointer("/prepare/status").cloned())
                        .is_some_and(|s| s == "skipped");
                    if skipped {
                        p.skipped += 1;
                    }
                }
                _ => {}
            }
        }
        p.running = started.saturating_sub(ended);
        p
    }

    pub fn line(&self, total: usize, workers: Option<usize>) -> String {
        let done = self.succeeded + self.skipped;
        let mut s = format!(
            "{done}/{total} done · {} running · {} skipped · {} failed attempts",
            self.running, self.skipped, self.failed_attempts
        );
        if let Some(w) = workers {
            s.push_str(&format!(" · {w} workers"));
        }
        s
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

/// The one way the CLI reads a finished execution's task results (local and AWS alike): the
/// summary from its history, then the results object it names (in the bucket, or in a local
/// run's objects folder). `Ok(None)`: NormalizeResults never ran.
pub async fn normalized_from_history(
    events: &[HistoryEvent],
    objects: &dyn boa_aws::ports::Objects,
) -> Result<Option<boa_core::NormalizedResults>, String> {
    let Some(run) = summary_from_history(events) else {
        return Ok(None);
    };
    let at = &run.results;
    let body = objects
        .get(&at.bucket, &at.key)
        .await
        .map_err(|e| format!("cannot read the results {at}: {e}"))?
        .ok_or_else(|| format!("the results {at} are missing"))?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("the results {at} are unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, name: Option<&str>, payload: Option<&str>) -> HistoryEvent {
        HistoryEvent {
            id: 0,
            previous_event_id: 0,
            kind,
            timestamp: None,
            resource: None,
            state_name: name.map(str::to_string),
            payload: payload.map(str::to_string),
            error: None,
            cause: None,
        }
    }

    #[test]
    fn counts_running_succeeded_skipped_and_failed_attempts() {
        let h = vec![
            ev(EventType::ActivityStarted, None, None),
            ev(EventType::ActivityStarted, None, None),
            ev(EventType::ActivityStarted, None, None),
            ev(EventType::ActivitySucceeded, None, None),
            ev(EventType::ActivityTimedOut, None, None),
            ev(
                EventType::TaskStateExited,
                Some("PrepareA"),
                Some(r#"{"prepare":{"status":"skipped"}}"#),
            ),
            ev(
                EventType::TaskStateExited,
                Some("PrepareB"),
                Some(r#"{"prepare":{"status":"pending"}}"#),
            ),
        ];
        let p = Progress::from_history(&h);
        assert_eq!(
            p,
            Progress {
                succeeded: 1,
                skipped: 1,
                failed_attempts: 1,
                running: 1
            }
        );
        assert!(p.line(10, Some(3)).starts_with("2/10 done"));
    }

    #[tokio::test]
    async fn normalized_results_come_from_the_object_the_normalize_state_names() {
        use boa_aws::ports::Objects;
        let r = boa_core::NormalizedResults::new(vec![]);
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
                EventType::TaskStateExited,
                Some("NormalizeResults"),
                Some(&serde_json::to_string(&run).unwrap()),
            ),
            ev(EventType::ExecutionFailed, None, None),
        ];
        let missing = normalized_from_history(&h, &objects).await.unwrap_err();
        assert!(missing.contains("s3://b/runs/x/results.json"), "{missing}");
        objects
            .put("b", "runs/x/results.json", &serde_json::to_vec(&r).unwrap())
            .await
            .unwrap();
        assert_eq!(normalized_from_history(&h, &objects).await, Ok(Some(r)));
        assert_eq!(normalized_from_history(&h[1..], &objects).await, Ok(None));
    }
}
