//! Where a run's time goes, per step: when its tasks were prepared, published, started by a
//! worker, ended and recorded, beside when its workers were launched and came up. Read from the
//! engine's history and the fleet's spans; times are seconds after the execution started.

use std::collections::BTreeMap;

use boa_aws::ports::HistoryEvent;
use boa_core::history_event::EventType;
use serde::Serialize;

/// The first and last time something happened to a step's tasks.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Span {
    pub first_s: f64,
    pub last_s: f64,
}

impl Span {
    fn add(this: &mut Option<Span>, t: f64) {
        *this = Some(match *this {
            None => Span {
                first_s: t,
                last_s: t,
            },
            Some(s) => Span {
                first_s: s.first_s.min(t),
                last_s: s.last_s.max(t),
            },
        });
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StepTimes {
    pub step: String,
    /// `Prepare<Step>` entered (the task's dependencies had been recorded).
    pub prepared: Option<Span>,
    /// The activity task published (the `<Step>` state entered).
    pub published: Option<Span>,
    /// A worker took the task (ActivityStarted).
    pub started: Option<Span>,
    /// The worker reported it (ActivitySucceeded/Failed/TimedOut).
    pub ended: Option<Span>,
    /// `Record<Step>` exited: its dependents may go on.
    pub recorded: Option<Span>,
    /// The step's workers: launched, and up (boot ended).
    pub launched: Option<Span>,
    pub up: Option<Span>,
    /// The step's workers that came up, and their worker-seconds running tasks and waiting
    /// (the makespan's busy and idle, split by step).
    pub workers: usize,
    pub busy_worker_s: f64,
    pub idle_worker_s: f64,
}

/// One worker's busy and idle seconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct WorkerTime {
    pub busy: f64,
    pub idle: f64,
}

/// Per step, in the order the steps' first tasks were prepared.
pub fn steps(
    history: &[HistoryEvent],
    spans: &[local::stack::InstanceSpan],
    step_names: &[String],
    worker_time: &BTreeMap<String, WorkerTime>,
) -> Vec<StepTimes> {
    let Some(t0) = history
        .iter()
        .find(|e| e.kind == EventType::ExecutionStarted)
        .and_then(|e| e.timestamp)
    else {
        return vec![];
    };
    let rel =
        |t: chrono::DateTime<chrono::Utc>| (t - t0).num_microseconds().unwrap_or(0) as f64 / 1e6;
    let mut by: BTreeMap<&str, StepTimes> = step_names
        .iter()
        .map(|s| {
            (
                s.as_str(),
                StepTimes {
                    step: s.clone(),
                    ..StepTimes::default()
                },
            )
        })
        .collect();
    // The activity events chain back to the `<Step>` state's TaskStateEntered.
    let mut thread: BTreeMap<i64, &str> = BTreeMap::new();
    for e in history {
        let Some(t) = e.timestamp.map(rel) else {
            continue;
        };
        let name = e.state_name.as_deref().unwrap_or("");
        let step_of = |prefix: &str| {
            name.strip_prefix(prefix)
                .and_then(|s| by.get_key_value(s).map(|(k, _)| *k))
        };
        match e.kind {
            EventType::TaskStateEntered => {
                if let Some(s) = step_of("Prepare") {
                    Span::add(&mut by.get_mut(s).expect("known").prepared, t);
                } else if let Some(s) = step_of("") {
                    thread.insert(e.id, s);
                    Span::add(&mut by.get_mut(s).expect("known").published, t);
                }
            }
            EventType::TaskStateExited => {
                if let Some(s) = step_of("Record") {
                    Span::add(&mut by.get_mut(s).expect("known").recorded, t);
                }
            }
            EventType::ActivityScheduled
            | EventType::ActivityStarted
            | EventType::ActivitySucceeded
            | EventType::ActivityFailed
            | EventType::ActivityTimedOut => {
                let Some(&s) = thread.get(&e.previous_event_id) else {
                    continue;
                };
                thread.insert(e.id, s);
                let st = by.get_mut(s).expect("known");
                match e.kind {
                    EventType::ActivityStarted => Span::add(&mut st.started, t),
                    EventType::ActivityScheduled => {}
                    _ => Span::add(&mut st.ended, t),
                }
            }
            _ => {}
        }
    }
    for sp in spans {
        // The activity's name ends with the step's.
        let step = step_names
            .iter()
            .find(|s| sp.step == **s || sp.step.ends_with(&format!("-{s}")));
        if let Some(st) = step.and_then(|s| by.get_mut(s.as_str())) {
            Span::add(&mut st.launched, rel(sp.launched));
            if let Some(up) = sp.running {
                Span::add(&mut st.up, rel(up));
            }
            if let Some(w) = worker_time.get(&sp.id) {
                st.workers += 1;
                st.busy_worker_s += w.busy;
                st.idle_worker_s += w.idle;
            }
        }
    }
    let mut out: Vec<StepTimes> = by.into_values().filter(|s| s.prepared.is_some()).collect();
    out.sort_by(|a, b| {
        let f = |s: &StepTimes| s.prepared.map(|p| p.first_s).unwrap_or(f64::MAX);
        f(a).total_cmp(&f(b))
    });
    out
}

/// One line per step: each column `first–last` (seconds after the start).
pub fn render(steps: &[StepTimes]) -> String {
    let cell = |s: &Option<Span>| match s {
        Some(s) => format!("{:.2}–{:.2}", s.first_s, s.last_s),
        None => "—".into(),
    };
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                s.step.clone(),
                cell(&s.launched),
                cell(&s.up),
                cell(&s.prepared),
                cell(&s.published),
                cell(&s.started),
                cell(&s.ended),
                cell(&s.recorded),
                s.workers.to_string(),
                format!("{:.1} / {:.1}", s.idle_worker_s, s.busy_worker_s),
            ]
        })
        .collect();
    crate::table::render(
        &[
            "step (s after start)",
            "launched",
            "up",
            "prepared",
            "published",
            "started",
            "ended",
            "recorded",
            "workers",
            "idle / busy (worker-s)",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ev(id: i64, prev: i64, ms: i64, kind: EventType, name: &str) -> HistoryEvent {
        HistoryEvent {
            id,
            previous_event_id: prev,
            timestamp: Some(Utc.timestamp_millis_opt(1_000_000 + ms).unwrap()),
            kind,
            resource: None,
            state_name: (!name.is_empty()).then(|| name.to_string()),
            payload: None,
            error: None,
            cause: None,
        }
    }

    #[test]
    fn a_steps_times_come_from_its_states_its_activity_thread_and_its_workers() {
        use EventType::*;
        let h = vec![
            ev(1, 0, 0, ExecutionStarted, ""),
            ev(2, 1, 100, TaskStateEntered, "PrepareBuild"),
            ev(3, 2, 200, TaskStateEntered, "Build"),
            ev(4, 3, 250, ActivityScheduled, ""),
            ev(5, 4, 700, ActivityStarted, ""),
            // A second task of the step, and an unrelated activity thread.
            ev(6, 1, 300, TaskStateEntered, "Build"),
            ev(7, 6, 310, ActivityScheduled, ""),
            ev(8, 7, 900, ActivityStarted, ""),
            ev(9, 99, 950, ActivityStarted, ""),
            ev(10, 5, 1700, ActivitySucceeded, ""),
            ev(11, 8, 2000, ActivityFailed, ""),
            ev(12, 10, 2100, TaskStateExited, "RecordBuild"),
        ];
        let at = |ms: i64| Utc.timestamp_millis_opt(1_000_000 + ms).unwrap();
        let spans = vec![local::stack::InstanceSpan {
            id: "i-1".into(),
            step: "boa-local-Build".into(),
            launched: at(120),
            running: Some(at(620)),
            ended: None,
        }];
        let time = BTreeMap::from([(
            "i-1".to_string(),
            WorkerTime {
                busy: 1.5,
                idle: 0.5,
            },
        )]);
        let steps = steps(&h, &spans, &["Build".into(), "Publish".into()], &time);
        assert_eq!(
            steps.len(),
            1,
            "a step never prepared is left out: {steps:?}"
        );
        let s = &steps[0];
        let span = |a: f64, b: f64| {
            Some(Span {
                first_s: a,
                last_s: b,
            })
        };
        assert_eq!(s.prepared, span(0.1, 0.1));
        assert_eq!(s.published, span(0.2, 0.3));
        assert_eq!(s.started, span(0.7, 0.9));
        assert_eq!(s.ended, span(1.7, 2.0));
        assert_eq!(s.recorded, span(2.1, 2.1));
        assert_eq!(s.launched, span(0.12, 0.12));
        assert_eq!(s.up, span(0.62, 0.62));
        assert_eq!((s.workers, s.busy_worker_s, s.idle_worker_s), (1, 1.5, 0.5));
        let table = render(&steps);
        assert!(table.contains("0.70–0.90"), "{table}");
        assert!(table.contains("0.5 / 1.5"), "{table}");
    }
}
