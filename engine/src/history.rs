//! Execution history (AWS `GetExecutionHistory`-shaped events) and the counters AWS bills and
//! limits Standard workflows by. Events are stored compactly (details serialized once, long
//! payload texts shared across the history) and read back as [`HistoryEvent`]s.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

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
    /// Every payload text of at least [`SHARE_MIN_BYTES`] in the history, once: equal inputs
    /// and outputs (a state's output and the next state's input, a Choice's input and output,
    /// a Lambda's payload and its state's input…) are kept as one string.
    texts: HashSet<Arc<str>>,
}

/// Payload texts shorter than this are stored inline with their event.
const SHARE_MIN_BYTES: usize = 64;

/// The details fields that hold state or task payloads as JSON text.
const PAYLOAD_FIELDS: [&str; 3] = ["input", "output", "parameters"];

impl Inner {
    fn share(&mut self, text: Arc<str>) -> Arc<str> {
        if let Some(t) = self.texts.get(&*text) {
            return t.clone();
        }
        self.texts.insert(text.clone());
        text
    }

    fn share_str(&mut self, text: &str) -> Arc<str> {
        match self.texts.get(text) {
            Some(t) => t.clone(),
            None => self.share(Arc::from(text)),
        }
    }
}

/// An event as kept: its details serialized once into an exact-size string. Details hold the
/// states' inputs and outputs, already JSON text; a `Value` tree per event (maps, keys,
/// strings with growth slack) cost several times the text, for a history that can reach
/// 25,000 events of up to 256 KiB. [`History::events`] parses them back.
///
/// A long input, output or parameters field (`payload`) is kept apart, as text shared with every
/// other event of the history holding the same text.
#[derive(Debug)]
struct Stored {
    timestamp: DateTime<Utc>,
    previous_event_id: i64,
    kind: EventType,
    details: Box<str>,
    /// A details field holding JSON text, shared with other events (left `null` in `details`,
    /// so the field keeps its place).
    payload: Option<(&'static str, Arc<str>)>,
}

impl Stored {
    fn to_event(&self, index: usize) -> HistoryEvent {
        HistoryEvent {
            id: index as i64 + 1,
            previous_event_id: self.previous_event_id,
            timestamp: self.timestamp,
            kind: self.kind.clone(),
            details: {
                let mut d: Value = serde_json::from_str(&self.details).unwrap_or(Value::Null);
                if let (Some((field, text)), Value::Object(m)) = (&self.payload, &mut d) {
                    // An existing key keeps its position.
                    m.insert((*field).to_string(), Value::String(text.to_string()));
                }
                d
            },
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
        self.record_shared(prev, kind, details, None)
    }

    /// [`History::record`] with a details field (`input`/`output`) whose JSON text is shared.
    pub(crate) fn record_shared(
        &self,
        prev: &mut i64,
        kind: EventType,
        details: Value,
        payload: Option<(&'static str, Arc<str>)>,
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
        let id = push(&mut g, *prev, kind, details, payload);
        *prev = id;
        Ok(id)
    }

    /// Appends an event regardless of the limit (terminal execution events).
    pub(crate) fn record_final(&self, prev: i64, kind: EventType, details: Value) -> i64 {
        push(&mut self.lock(), prev, kind, details, None)
    }

    /// Frees the growth slack of an ended execution's history, and its index of shared texts
    /// (events recorded later, such as a late `MapRunAborted`, are still kept).
    pub(crate) fn shrink(&self) {
        let mut g = self.lock();
        g.events.shrink_to_fit();
        g.texts = HashSet::new();
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
        self.events_between(1, usize::MAX)
    }

    /// The events with ids `first..=last` (1-based, clamped to the history), parsed back; a
    /// page of a long history costs its own events, not the whole history's.
    pub(crate) fn events_between(&self, first: usize, last: usize) -> Vec<HistoryEvent> {
        let g = self.lock();
        let last = last.min(g.events.len());
        let first = first.max(1);
        if first > last {
            return vec![];
        }
        g.events[first - 1..last]
            .iter()
            .enumerate()
            .map(|(i, e)| e.to_event(first - 1 + i))
            .collect()
    }

    pub(crate) fn last_id(&self) -> i64 {
        self.lock().events.len() as i64
    }
}

fn push(
    g: &mut Inner,
    prev: i64,
    kind: EventType,
    mut details: Value,
    payload: Option<(&'static str, Arc<str>)>,
) -> i64 {
    let id = g.events.len() as i64 + 1;
    let payload = match payload {
        Some((field, text)) if text.len() >= SHARE_MIN_BYTES => Some((field, g.share(text))),
        Some((field, text)) => {
            details[field] = Value::String(text.to_string());
            None
        }
        None => {
            let mut found = None;
            if let Value::Object(m) = &mut details {
                for field in PAYLOAD_FIELDS {
                    if let Some(v @ Value::String(_)) = m.get_mut(field)
                        && v.as_str().is_some_and(|t| t.len() >= SHARE_MIN_BYTES)
                    {
                        let Value::String(text) = std::mem::take(v) else {
                            unreachable!("matched a string")
                        };
                        found = Some((field, g.share_str(&text)));
                        break;
                    }
                }
            }
            found
        }
    };
    g.events.push(Stored {
        timestamp: Utc::now(),
        previous_event_id: prev,
        kind,
        // `into_boxed_str` drops the serializer's growth slack.
        details: details.to_string().into_boxed_str(),
        payload,
    });
    g.counts.history_events = g.events.len() as u64;
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_events_read_back_as_recorded_and_share_equal_payloads() {
        let h = History::new(10);
        let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(200));
        let mut prev = 0;
        h.record(
            &mut prev,
            EventType::LambdaFunctionScheduled,
            json!({"resource": "r", "input": big, "timeoutInSeconds": 3}),
        )
        .unwrap();
        h.record_shared(
            &mut prev,
            EventType::TaskStateExited,
            json!({"name": "T"}),
            Some(("output", Arc::from(big.as_str()))),
        )
        .unwrap();
        h.record(
            &mut prev,
            EventType::TaskStateEntered,
            json!({"name": "U", "input": "{}"}),
        )
        .unwrap();
        let ev = h.events();
        assert_eq!(
            ev[0].details,
            json!({"resource": "r", "input": big, "timeoutInSeconds": 3})
        );
        // Fields keep their order.
        let keys: Vec<&String> = ev[0].details.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["resource", "input", "timeoutInSeconds"]);
        assert_eq!(ev[1].details, json!({"name": "T", "output": big}));
        assert_eq!(ev[2].details, json!({"name": "U", "input": "{}"}));
        assert_eq!((ev[2].id, ev[2].previous_event_id), (3, 2));
        let g = h.lock();
        let (a, b) = (&g.events[0].payload, &g.events[1].payload);
        assert!(Arc::ptr_eq(&a.as_ref().unwrap().1, &b.as_ref().unwrap().1));
        assert!(g.events[2].payload.is_none());
    }
}
