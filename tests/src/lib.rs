//! Workspace-level test helpers for build-on-aws.

pub mod local_cli;
pub mod moto;
