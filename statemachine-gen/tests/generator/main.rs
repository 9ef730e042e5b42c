//! The integration tests of `statemachine-gen`, in one binary (one link of the dependency tree, not one per file).

mod support;

mod cli;
mod definition;
mod report;
