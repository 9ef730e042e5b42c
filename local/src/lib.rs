//! `local`: the embedded Step Functions engine of build-on-aws' local mode.
//!
//! - [`asl`]: the Amazon States Language (JSONPath dialect) model, paths, intrinsics, choice
//!   rules and retry policy;
//! - [`Engine`]: runs executions of a definition, records AWS-shaped history and counts;
//! - [`broker::ActivityBroker`]: activity tasks waiting for workers;
//! - [`endpoint`]: a loopback HTTP server speaking the Step Functions JSON protocol for
//!   activity workers (`aws-sdk-sfn` with `endpoint_url`);
//! - [`stack`]: the whole local stack (engine, in-process Lambdas, worker processes, health check).
//!
//! Every wait is divided by [`EngineConfig::time_scale`].

pub mod asl;
pub mod broker;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod history;
mod interpreter;
pub mod stack;

pub use broker::{ActivityBroker, ActivityInfo, BrokerError, ClaimEvent, ClaimedTask, PendingTask};
pub use engine::{
    Engine, EngineConfig, ExecutionHandle, ExecutionResult, ExecutionStatus, ExecutionSummary,
    LambdaInvoker, MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, TaskFailure,
};
pub use error::{DefinitionError, EngineError, StatesError};
pub use history::{Counts, HistoryEvent};
