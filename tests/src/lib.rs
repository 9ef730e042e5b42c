//! Workspace-level test helpers for build-on-aws.

pub mod moto;
