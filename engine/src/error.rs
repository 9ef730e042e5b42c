//! Error types: definition errors (parse time), runtime errors inside an execution (`StatesError`),
//! and errors of the embedding API (`EngineError`).

use serde_json::{Value, json};

/// Predefined error names of the Amazon States Language.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const RUNTIME: &str = "States.Runtime";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    /// A Distributed Map's ItemReader could not read its items.
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    /// A Distributed Map's ResultWriter could not write its results.
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    /// A Map Run's failed child executions exceeded its tolerated failure count or percentage.
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    /// Not produced by this engine (no IAM).
    pub const PERMISSIONS: &str = "States.Permissions";
}

/// A definition that cannot be interpreted. The message names the state and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid state machine definition: {0}")]
pub struct DefinitionError(pub String);

impl DefinitionError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// An error raised while an execution runs: a named error and its cause, exactly what
/// Retry/Catch match on and what `ExecutionFailed` reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct StatesError {
    pub error: String,
    pub cause: String,
}

impl StatesError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
    /// `States.Runtime`: never retried, never caught; fails the execution.
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new(names::INTRINSIC_FAILURE, cause)
    }
    pub fn timeout(cause: impl Into<String>) -> Self {
        Self::new(names::TIMEOUT, cause)
    }
    /// The error object a Catch stores at its ResultPath.
    pub fn to_value(&self) -> Value {
        json!({"Error": self.error, "Cause": self.cause})
    }
}

/// Errors of the [`crate::Engine`] API itself.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("execution {0} already exists")]
    ExecutionAlreadyExists(String),
    #[error("execution {0} does not exist")]
    ExecutionDoesNotExist(String),
    #[error("map run {0} does not exist")]
    MapRunDoesNotExist(String),
    #[error("invalid execution input: {0}")]
    InvalidExecutionInput(String),
    #[error("invalid name {0:?}: 1-80 characters of letters, digits, '-' and '_'")]
    InvalidName(String),
    #[error("state machine {0} does not exist")]
    StateMachineDoesNotExist(String),
    #[error("a state machine named {0} exists with a different definition")]
    StateMachineAlreadyExists(String),
    #[error("invalid ARN {0:?}")]
    InvalidArn(String),
}

impl EngineError {
    /// The Step Functions API error (`__type`) this error is answered as.
    pub fn type_name(&self) -> &'static str {
        match self {
            EngineError::Definition(_) => "InvalidDefinition",
            EngineError::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            EngineError::ExecutionDoesNotExist(_) => "ExecutionDoesNotExist",
            EngineError::MapRunDoesNotExist(_) => "ResourceNotFound",
            EngineError::InvalidExecutionInput(_) => "InvalidExecutionInput",
            EngineError::InvalidName(_) => "InvalidName",
            EngineError::StateMachineDoesNotExist(_) => "StateMachineDoesNotExist",
            EngineError::StateMachineAlreadyExists(_) => "StateMachineAlreadyExists",
            EngineError::InvalidArn(_) => "InvalidArn",
        }
    }
}
