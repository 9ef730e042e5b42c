//! The Amazon States Language (JSONPath dialect): definition model, paths, intrinsic functions,
//! payload templates, choice rules and retry policy. Parsing compiles every path-bearing template
//! once; the interpreter (a layer above) evaluates the compiled form.
//!
//! Layers inside (each module imports only modules listed before it):
//! `jsonpath` → `intrinsics` → `template` → `paths` → `choice`, `retry` → `parse`.

pub mod choice;
pub mod intrinsics;
pub mod jsonpath;
pub mod parse;
pub mod paths;
pub mod retry;
pub mod template;

pub use parse::{Kind, State, StateMachine, parse_definition};
