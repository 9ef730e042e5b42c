//! build-on-aws core: the pipeline model, the build input and plan, task payloads and results,
//! the error-name table, the one retry-policy constructor, the AWS ports and the worker's
//! environment. Every other crate of build-on-aws depends on this one; it depends on none of them.

pub mod aws;
pub mod duration;
pub mod errors;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod input;
pub mod launch;
pub mod pipeline;
pub mod ports;
pub mod results;
pub mod retry;
pub mod task;
pub mod telemetry;
pub mod worker_env;

pub use errors::{ErrorName, NamedError};
pub use input::{BuildInput, Item, MachineInput, Mode};
pub use pipeline::{Pipeline, PipelineError, Step};
pub use results::{NormalizedResults, Status, TaskRecord};
