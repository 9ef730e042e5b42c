//! The Step Functions history event types (`HistoryEvent.type` of `GetExecutionHistory`), one
//! enum for every reader and writer of histories: the local engine writes them, the health check,
//! the CLI's progress and the benchmarks read them. Serialized as the AWS names
//! (`"TaskStateEntered"`, `"ActivityScheduled"`, …); a name this list does not know yet is kept
//! as [`EventType::Other`] so no event is lost.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A history event type, named exactly as AWS names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ActivityFailed,
    ActivityScheduleFailed,
    ActivityScheduled,
    ActivityStarted,
    ActivitySucceeded,
    ActivityTimedOut,
    ChoiceStateEntered,
    ChoiceStateExited,
    EvaluationFailed,
    ExecutionAborted,
    ExecutionFailed,
    ExecutionRedriven,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    FailStateEntered,
    LambdaFunctionFailed,
    LambdaFunctionScheduleFailed,
    LambdaFunctionScheduled,
    LambdaFunctionStartFailed,
    LambdaFunctionStarted,
    LambdaFunctionSucceeded,
    LambdaFunctionTimedOut,
    MapIterationAborted,
    MapIterationFailed,
    MapIterationStarted,
    MapIterationSucceeded,
    MapRunAborted,
    MapRunFailed,
    MapRunRedriven,
    MapRunStarted,
    MapRunSucceeded,
    MapStateAborted,
    MapStateEntered,
    MapStateExited,
    MapStateFailed,
    MapStateStarted,
    MapStateSucceeded,
    ParallelStateAborted,
    ParallelStateEntered,
    ParallelStateExited,
    ParallelStateFailed,
    ParallelStateStarted,
    ParallelStateSucceeded,
    PassStateEntered,
    PassStateExited,
    SucceedStateEntered,
    SucceedStateExited,
    TaskFailed,
    TaskScheduled,
    TaskStartFailed,
    TaskStarted,
    TaskStateAborted,
    TaskStateEntered,
    TaskStateExited,
    TaskSubmitFailed,
    TaskSubmitted,
    TaskSucceeded,
    TaskTimedOut,
    WaitStateAborted,
    WaitStateEntered,
    WaitStateExited,
    /// A type AWS added after this list was written: its name as received.
    Other(String),
}

/// Every known type, in AWS's (alphabetical) order.
pub const ALL: &[EventType] = &[
    EventType::ActivityFailed,
    EventType::ActivityScheduleFailed,
    EventType::ActivityScheduled,
    EventType::ActivityStarted,
    EventType::ActivitySucceeded,
    EventType::ActivityTimedOut,
    EventType::ChoiceStateEntered,
    EventType::ChoiceStateExited,
    EventType::EvaluationFailed,
    EventType::ExecutionAborted,
    EventType::ExecutionFailed,
    EventType::ExecutionRedriven,
    EventType::ExecutionStarted,
    EventType::ExecutionSucceeded,
    EventType::ExecutionTimedOut,
    EventType::FailStateEntered,
    EventType::LambdaFunctionFailed,
    EventType::LambdaFunctionScheduleFailed,
    EventType::LambdaFunctionScheduled,
    EventType::LambdaFunctionStartFailed,
    EventType::LambdaFunctionStarted,
    EventType::LambdaFunctionSucceeded,
    EventType::LambdaFunctionTimedOut,
    EventType::MapIterationAborted,
    EventType::MapIterationFailed,
    EventType::MapIterationStarted,
    EventType::MapIterationSucceeded,
    EventType::MapRunAborted,
    EventType::MapRunFailed,
    EventType::MapRunRedriven,
    EventType::MapRunStarted,
    EventType::MapRunSucceeded,
    EventType::MapStateAborted,
    EventType::MapStateEntered,
    EventType::MapStateExited,
    EventType::MapStateFailed,
    EventType::MapStateStarted,
    EventType::MapStateSucceeded,
    EventType::ParallelStateAborted,
    EventType::ParallelStateEntered,
    EventType::ParallelStateExited,
    EventType::ParallelStateFailed,
    EventType::ParallelStateStarted,
    EventType::ParallelStateSucceeded,
    EventType::PassStateEntered,
    EventType::PassStateExited,
    EventType::SucceedStateEntered,
    EventType::SucceedStateExited,
    EventType::TaskFailed,
    EventType::TaskScheduled,
    EventType::TaskStartFailed,
    EventType::TaskStarted,
    EventType::TaskStateAborted,
    EventType::TaskStateEntered,
    EventType::TaskStateExited,
    EventType::TaskSubmitFailed,
    EventType::TaskSubmitted,
    EventType::TaskSucceeded,
    EventType::TaskTimedOut,
    EventType::WaitStateAborted,
    EventType::WaitStateEntered,
    EventType::WaitStateExited,
];

impl EventType {
    /// The AWS name, e.g. `"TaskStateEntered"`.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::ActivityFailed => "ActivityFailed",
            EventType::ActivityScheduleFailed => "ActivityScheduleFailed",
            EventType::ActivityScheduled => "ActivityScheduled",
            EventType::ActivityStarted => "ActivityStarted",
            EventType::ActivitySucceeded => "ActivitySucceeded",
            EventType::ActivityTimedOut => "ActivityTimedOut",
            EventType::ChoiceStateEntered => "ChoiceStateEntered",
            EventType::ChoiceStateExited => "ChoiceStateExited",
            EventType::EvaluationFailed => "EvaluationFailed",
            EventType::ExecutionAborted => "ExecutionAborted",
            EventType::ExecutionFailed => "ExecutionFailed",
            EventType::ExecutionRedriven => "ExecutionRedriven",
            EventType::ExecutionStarted => "ExecutionStarted",
            EventType::ExecutionSucceeded => "ExecutionSucceeded",
            EventType::ExecutionTimedOut => "ExecutionTimedOut",
            EventType::FailStateEntered => "FailStateEntered",
            EventType::LambdaFunctionFailed => "LambdaFunctionFailed",
            EventType::LambdaFunctionScheduleFailed => "LambdaFunctionScheduleFailed",
            EventType::LambdaFunctionScheduled => "LambdaFunctionScheduled",
            EventType::LambdaFunctionStartFailed => "LambdaFunctionStartFailed",
            EventType::LambdaFunctionStarted => "LambdaFunctionStarted",
            EventType::LambdaFunctionSucceeded => "LambdaFunctionSucceeded",
            EventType::LambdaFunctionTimedOut => "LambdaFunctionTimedOut",
            EventType::MapIterationAborted => "MapIterationAborted",
            EventType::MapIterationFailed => "MapIterationFailed",
            EventType::MapIterationStarted => "MapIterationStarted",
            EventType::MapIterationSucceeded => "MapIterationSucceeded",
            EventType::MapRunAborted => "MapRunAborted",
            EventType::MapRunFailed => "MapRunFailed",
            EventType::MapRunRedriven => "MapRunRedriven",
            EventType::MapRunStarted => "MapRunStarted",
            EventType::MapRunSucceeded => "MapRunSucceeded",
            EventType::MapStateAborted => "MapStateAborted",
            EventType::MapStateEntered => "MapStateEntered",
            EventType::MapStateExited => "MapStateExited",
            EventType::MapStateFailed => "MapStateFailed",
            EventType::MapStateStarted => "MapStateStarted",
            EventType::MapStateSucceeded => "MapStateSucceeded",
            EventType::ParallelStateAborted => "ParallelStateAborted",
            EventType::ParallelStateEntered => "ParallelStateEntered",
            EventType::ParallelStateExited => "ParallelStateExited",
            EventType::ParallelStateFailed => "ParallelStateFailed",
            EventType::ParallelStateStarted => "ParallelStateStarted",
            EventType::ParallelStateSucceeded => "ParallelStateSucceeded",
            EventType::PassStateEntered => "PassStateEntered",
            EventType::PassStateExited => "PassStateExited",
            EventType::SucceedStateEntered => "SucceedStateEntered",
            EventType::SucceedStateExited => "SucceedStateExited",
            EventType::TaskFailed => "TaskFailed",
            EventType::TaskScheduled => "TaskScheduled",
            EventType::TaskStartFailed => "TaskStartFailed",
            EventType::TaskStarted => "TaskStarted",
            EventType::TaskStateAborted => "TaskStateAborted",
            EventType::TaskStateEntered => "TaskStateEntered",
            EventType::TaskStateExited => "TaskStateExited",
            EventType::TaskSubmitFailed => "TaskSubmitFailed",
            EventType::TaskSubmitted => "TaskSubmitted",
            EventType::TaskSucceeded => "TaskSucceeded",
            EventType::TaskTimedOut => "TaskTimedOut",
            EventType::WaitStateAborted => "WaitStateAborted",
            EventType::WaitStateEntered => "WaitStateEntered",
            EventType::WaitStateExited => "WaitStateExited",
            EventType::Other(s) => s,
        }
    }

    /// The type of an AWS name; unknown names give [`EventType::Other`].
    pub fn parse(s: &str) -> EventType {
        ALL.iter()
            .find(|t| t.as_str() == s)
            .cloned()
            .unwrap_or_else(|| EventType::Other(s.to_string()))
    }

    /// Any `*StateEntered`.
    pub fn is_state_entered(&self) -> bool {
        self.as_str().ends_with("StateEntered")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for EventType {
    fn from(s: &str) -> Self {
        EventType::parse(s)
    }
}

impl PartialEq<str> for EventType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(EventType::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in ALL {
            assert_eq!(&EventType::parse(t.as_str()), t);
            let j = serde_json::to_string(t).unwrap();
            assert_eq!(j, format!("\"{}\"", t.as_str()));
            assert_eq!(&serde_json::from_str::<EventType>(&j).unwrap(), t);
        }
        assert_eq!(
            EventType::parse("SomethingNew"),
            EventType::Other("SomethingNew".into())
        );
        assert_eq!(EventType::TaskStateEntered, "TaskStateEntered");
        assert_eq!(EventType::MapStateExited.to_string(), "MapStateExited");
        assert!(EventType::WaitStateEntered.is_state_entered());
    }
}
