//! The integration tests of `core`, in one binary (one link of the dependency tree, not one per file).

mod bad_pipelines;
mod example_pipeline;
mod tokens;
