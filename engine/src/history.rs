//! Execution history (AWS `GetExecutionHistory`-shaped events) and the counters AWS bills and
//! limits Standard workflows by.

use std::sync::Mutex;

use boa_core::history_event::EventType;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::{StatesError, names};

/// One event, like an entry of AWS `GetExecutionHistory`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEvent {
    /// 1-based, in the order the events happened.
    pub id: i64,
    /// The event this one follows in its thread (0 for the first event). Activity events chain:
    /// ActivityScheduled ← ActivityStarted ← ActivitySucceeded/Failed/TimedOut.
    pub previous_event_id: i64,
    pub timestamp: DateTime<Utc>,
    /// The event type, serialized as its AWS name (`"TaskStateEntered"`, `"ActivityScheduled"`…).
    pub kind: EventType,
    /// Event details (AWS's `*EventDetails` fields, camelCase): `name`, `input`, `output`,
    /// `error`, `cause`, `resource`, `workerName`, …
    pub details: Value,
}

/// What an execution consumed, counted as AWS counts Standard workflows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// One per state entered (including states inside Parallel branches and Map iterations),
    /// plus one per retry attempt.
    pub state_transitions: u64,
    /// Number of history events.
    pub history_events: u64,
    /// Largest state input/output/task result seen, in bytes of compact JSON.
    pub max_payload_bytes: usize,
}

impl Counts {
    /// Adds another execution's counts (a child's): transitions and events are summed, the
    /// largest payload is the larger of the two.
    pub fn add(&mut self, other: &Counts) {
        self.state_transitions += other.state_transitions;
        self.history_events += other.history_events;
        self.max_payload_bytes = self.max_payload_bytes.max(other.max_payload_bytes);
    }
}

#[derive(Debug)]
pub(crate) struct History {
    inner: Mutex<Inner>,
    max_events: usize,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Stored>,
    counts: Counts,
    overflowed: bool,
}

/// An event as kept: its details serialized once into an exact-size string. Details hold the
/// states' inputs and outputs, already JSON text; a `Value` tree per event (maps, keys,
/// strings with growth slack) cost several times the text, for a history that can reach
/// 25,000 events of up to 256 KiB. [`History::events`] parses them back.
#[derive(Debug)]
struct Stored {
    timestamp: DateTime<Utc>,
    previous_event_id: i64,
    kind: EventType,
    details: Box<str>,
}

impl Stored {
    fn to_event(&self, index: usize) -> HistoryEvent {
        HistoryEvent {
            id: index as i64 + 1,
            previous_event_id: self.previous_event_id,
            timestamp: self.timestamp,
            kind: self.kind.clone(),
            details: serde_json::from_str(&self.details).unwrap_or(Value::Null),
        }
    }
}

impl History {
    pub(crate) fn new(max_events: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends an event. Fails (with an uncatchable `States.Runtime`) once the history limit is
    /// reached; chosen: the terminal `Execution*` event is still written past the limit.
    pub(crate) fn record(
        &self,
        prev: &mut i64,
        kind: EventType,
        details: Value,
    ) -> Result<i64, StatesError> {
        let mut g = self.lock();
        if g.overflowed || g.events.len() >= self.max_events {
            g.overflowed = true;
            return Err(StatesError::new(
                names::RUNTIME,
                format!(
                    "The execution reached the maximum number of history events ({}).",
                    self.max_events
                ),
            ));
        }
        let id = push(&mut g, *prev, kind, details);
        *prev = id;
        Ok(id)
    }

    /// Appends an event regardless of the limit (terminal execution events).
    pub(crate) fn record_final(&self, prev: i64, kind: EventType, details: Value) -> i64 {
        push(&mut self.lock(), prev, kind, details)
    }

    pub(crate) fn add_transition(&self) {
        self.lock().counts.state_transitions += 1;
    }

    pub(crate) fn observe_payload(&self, bytes: usize) {
        let mut g = self.lock();
        g.counts.max_payload_bytes = g.counts.max_payload_bytes.max(bytes);
    }

    pub(crate) fn counts(&self) -> Counts {
        self.lock().counts
    }

    pub(crate) fn events(&self) -> Vec<HistoryEvent> {
        let g = self.lock();
        g.events
            .iter()
            .enumerate()
            .map(|(i, e)| e.to_event(i))
            .collect()
    }

    pub(crate) fn last_id(&self) -> i64 {
        self.lock().events.len() as i64
    }
}

fn push(g: &mut Inner, prev: i64, kind: EventType, details: Value) -> i64 {
    let id = g.events.len() as i64 + 1;
    g.events.push(Stored {
        timestamp: Utc::now(),
        previous_event_id: prev,
        kind,
        // `into_boxed_str` drops the serializer's growth slack.
        details: details.to_string().into_boxed_str(),
    });
    g.counts.history_events = g.events.len() as u64;
    id
}
