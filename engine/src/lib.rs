//! `engine`: the embedded Step Functions engine of build-on-aws. It runs Amazon States Language
//! definitions (JSONPath dialect) in-process, records AWS-shaped history and counts, holds activity
//! tasks for workers, and serves the activity API on loopback. It uses no AWS SDK and knows nothing
//! of build-on-aws' stack; the local stack (`local`) embeds it with the project's Lambdas and
//! worker processes.
//!
//! # Layers
//!
//! Each module imports only modules of the layers above it in this list (no cycles):
//!
//! 1. [`error`], [`quotas`], [`objects`], [`config`]: error types and names, AWS quotas and name
//!    rules, the object-store port of Distributed Maps ([`ObjectStore`], [`FolderObjects`]), the
//!    engine's configuration and its Lambda port;
//! 2. [`asl`]: the definition model, compiled once at parse time
//!    (`jsonpath` → `intrinsics` → `template` → `paths` → `choice`, `retry` → `parse`);
//! 3. [`history`]: AWS-shaped history events (types from `boa_core::history_event`) and counts;
//! 4. [`broker`]: activity tasks waiting for workers, answers routed back by task token;
//! 5. [`endpoint`]: the loopback HTTP server speaking the Step Functions JSON protocol
//!    (`aws-sdk-sfn` with `endpoint_url`); answers the activity operations with the broker and
//!    hands the rest to an [`endpoint::Operations`];
//! 6. [`execution`], [`machines`]: one execution's record, status and result; Map Runs; the
//!    registry of every execution (top-level and Distributed Map children); the state machines;
//! 7. `interpreter`: runs one execution state by state (private); its `distributed` part runs a
//!    Distributed Map as a Map Run of child executions;
//! 8. [`engine`]: the embedding API, [`Engine`];
//! 9. [`api`]: the Step Functions control plane over an [`Engine`] (the endpoint's
//!    [`endpoint::Operations`]), and the API shape of history events.
//!
//! # The Step Functions API
//!
//! [`Engine::activity_endpoint`] (or [`Engine::serve_api`] on a chosen address) serves the
//! activity operations and the control plane, so any Step Functions client (`aws-sdk-sfn`, the
//! AWS CLI with `--endpoint-url`) can create state machines, start executions and read their
//! histories. The engine's README lists what is supported.
//!
//! Every wait is divided by [`EngineConfig::time_scale`].
//!
//! # Distributed Map
//!
//! A Map whose `ItemProcessor.ProcessorConfig.Mode` is `DISTRIBUTED` runs each item as a child
//! workflow execution with its own history (and 25,000-event limit), as
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html> describes;
//! the parent's history only records the Map Run (`MapRunStarted`, `MapRunSucceeded`/`Failed`/
//! `Aborted`). [`Engine::map_runs`], [`Engine::describe_map_run`], [`Engine::child_executions`]
//! and [`Engine::list_executions_including_children`] show them; [`Engine::history`] takes a
//! child's ARN. [`ExecutionResult::counts`] includes the children's counts,
//! [`ExecutionResult::own_counts`] does not. `ItemReader` and `ResultWriter` go through
//! [`EngineConfig::objects`].

pub mod api;
pub mod asl;
pub mod broker;
pub mod config;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod execution;
pub mod history;
mod interpreter;
pub mod machines;
pub mod objects;
pub mod quotas;

pub use broker::{ActivityBroker, ActivityInfo, BrokerError, ClaimEvent, ClaimedTask, PendingTask};
pub use config::{EngineConfig, LambdaInvoker, NoLambdas, TaskFailure};
pub use engine::{Engine, ExecutionHandle};
pub use error::{DefinitionError, EngineError, StatesError};
pub use execution::{
    ExecutionResult, ExecutionStatus, ExecutionSummary, MapRunItemCounts, MapRunSummary,
};
pub use history::{Counts, HistoryEvent};
pub use machines::{ExecutionMachine, StateMachineInfo};
pub use objects::{FolderObjects, ObjectError, ObjectInfo, ObjectStore};
pub use quotas::{MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES};
