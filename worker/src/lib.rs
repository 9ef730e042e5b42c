//! build-on-aws worker agent.
//!
//! Polls one Step Functions activity, runs the step's scripts for each task (init once, then the
//! task script with heartbeats, then the after script), reports success or a named failure, keeps
//! its instance tags current, and shuts down when idle, done, failed or interrupted.
//!
//! The loop ([`agent::Agent`]) works over ports — [`boa_aws::ports::Activities`],
//! [`tags::Tagger`], [`boa_aws::ports::LogSink`] and an interrupt channel — so tests drive it with fakes;
//! `main.rs` wires the real clients.

pub mod agent;
pub mod cause;
pub mod imds;
pub mod log;
pub mod script;
pub mod shutdown;
pub mod tags;

pub use agent::{Agent, AgentConfig, AgentError, Ending, interrupt_channel};

/// Test-only: `GetActivityTask` operation timeout in seconds (default 70).
pub const POLL_TIMEOUT_VAR: &str = "BOA_POLL_TIMEOUT_S";
/// IMDS base URL override (tests); default `http://169.254.169.254`.
pub const IMDS_ENDPOINT_VAR: &str = "BOA_IMDS_ENDPOINT";
/// Local mode: path of the JSON file the worker keeps its current tags in.
pub const TAGS_FILE_VAR: &str = boa_core::names::local::TAGS_FILE;

/// A short, stable, non-reversible tag for a task token, for logs (tokens are never logged).
pub fn token_hash(token: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    token.hash(&mut h);
    format!("{:08x}", h.finish() as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_hash_is_short_stable_and_hides_the_token() {
        let t = "AAAAKgAAAAIAAAAAAAAAAeyJ0b2tlbiI6InNlY3JldCJ9";
        let h = super::token_hash(t);
        assert_eq!(h.len(), 8);
        assert_eq!(h, super::token_hash(t));
        assert_ne!(h, super::token_hash("other"));
        assert!(!t.contains(&h));
    }
}
