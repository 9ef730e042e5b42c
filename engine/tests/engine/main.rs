//! The engine's integration tests, one binary: state types and input/output processing, Retry and
//! Catch, activities (broker, timeouts, heartbeats, the HTTP endpoint with the real client).

mod activities;
mod common;
mod retry_catch;
mod states;
