//! The Amazon States Language (JSONPath dialect): definition model, paths, intrinsic functions,
//! choice rules and retry policy. The interpreter that runs it lives in [`crate::interpreter`].

pub mod choice;
pub mod intrinsics;
pub mod parse;
pub mod paths;
pub mod retry;

pub use parse::{Kind, State, StateMachine, parse_definition};
