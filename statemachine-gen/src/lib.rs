//! build-on-aws statemachine-gen: turns a validated [`Pipeline`] into
//!
//! - the Step Functions definition (Amazon States Language JSON): [`generate`],
//! - a Mermaid diagram of the pipeline: [`mermaid`](mod@mermaid),
//! - a static report of states, transitions, history events and payload size for a given input,
//!   against the Step Functions quotas: [`report`](mod@report).
//!
//! The machine's shape is a contract: the Lambdas (`parse-input`, `start-workers`,
//! `normalize-results`, `check-for-failures`) and the local engine read and write the payload
//! paths written here. See [`asl`] for the shape.

pub mod arns;
pub mod asl;
pub mod mermaid;
pub mod report;

pub use arns::{Arns, LAMBDAS, Target};
pub use asl::{generate, lookahead};
pub use mermaid::mermaid;
pub use report::{QuotaError, Report, check_quotas, report};

pub use boa_core::Pipeline;

/// `version` → `Version`: how axis names appear in state names.
pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `make-binary_package` → `MakeBinaryPackage`: lambda and axis names in CamelCase.
pub(crate) fn camel(s: &str) -> String {
    s.split(['-', '_']).map(capitalize).collect()
}
