//! The integration tests of `worker`, in one binary (one link of the dependency tree, not one per file).

mod support;

mod agent;
mod bin;
