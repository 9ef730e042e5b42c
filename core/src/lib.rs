//! build-on-aws without AWS: the pipeline model, the build input and plan, task payloads and
//! results, the error-name table, the one retry policy and backoff, and the worker's environment
//! names. Every other crate of build-on-aws depends on this one; it depends on none of them and on
//! no AWS SDK, so the generator and the deploy template build without it.

pub mod duration;
pub mod errors;
pub mod history;
pub mod history_event;
pub mod input;
pub mod lookahead;
pub mod names;
pub mod pipeline;
pub mod results;
pub mod retry;
pub mod stack;
pub mod task;
pub mod worker_env;

pub use errors::{ErrorName, NamedError};
pub use input::{BuildInput, Item, MachineInput, Mode, RunScope};
pub use pipeline::{Pipeline, PipelineError, Step};
pub use results::{NormalizedResults, RunSummary, Status, TaskRecord};
