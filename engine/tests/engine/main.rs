//! The engine's integration tests, one binary: state types and input/output processing, Retry and
//! Catch, activities (broker, timeouts, heartbeats, the HTTP endpoint with the real client),
//! Distributed Map (child executions, Map Runs, ItemReader and ResultWriter objects).

mod activities;
mod api;
mod common;
mod conformance;
mod distributed_map;
mod retry_catch;
mod states;
