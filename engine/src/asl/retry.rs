//! Retry and Catch: error matching, retry delays, and a small seeded RNG for jitter.

use std::time::Duration;

use super::paths::IoPath;
use crate::error::{StatesError, names};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    #[default]
    None,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter: Jitter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: IoPath,
}

/// Does an `ErrorEquals` list match this error?
///
/// - `States.Runtime` is never matched (AWS: not retriable, not catchable).
/// - `States.DataLimitExceeded` is a terminal error: `States.ALL`/`States.TaskFailed` do not match
///   it; naming it explicitly does (chosen: AWS documents only that the wildcards skip it).
/// - `States.ALL` matches every other error.
/// - `States.TaskFailed` matches every other error except `States.Timeout` (AWS documentation).
pub fn error_matches(error_equals: &[String], error: &str) -> bool {
    if error == names::RUNTIME {
        return false;
    }
    error_equals.iter().any(|e| {
        if e == error {
            return true;
        }
        if error == names::DATA_LIMIT_EXCEEDED {
            return false;
        }
        match e.as_str() {
            names::ALL => true,
            names::TASK_FAILED => error != names::TIMEOUT,
            _ => false,
        }
    })
}

/// Per-state-entry retry bookkeeping: each retrier keeps its own attempt count.
#[derive(Debug, Clone)]
pub struct RetryState {
    attempts: Vec<u32>,
    /// Total retries so far in this state entry (`$$.State.RetryCount`).
    pub retry_count: u32,
}

impl RetryState {
    pub fn new(retriers: &[Retrier]) -> Self {
        Self {
            attempts: vec![0; retriers.len()],
            retry_count: 0,
        }
    }

    /// AWS semantics: the *first* retrier whose ErrorEquals matches decides. If it has used up
    /// its MaxAttempts, the error is not retried (later retriers are not consulted).
    /// Returns the (unscaled) delay before the next attempt, or `None` to give up.
    pub fn next_delay(
        &mut self,
        retriers: &[Retrier],
        err: &StatesError,
        rng: &mut SplitMix64,
    ) -> Option<Duration> {
        let (i, r) = retriers
            .iter()
            .enumerate()
            .find(|(_, r)| error_matches(&r.error_equals, &err.error))?;
        let n = self.attempts[i];
        if n >= r.max_attempts {
            return None;
        }
        self.attempts[i] += 1;
        self.retry_count += 1;
        let mut delay = r.interval_seconds * r.backoff_rate.powi(n as i32);
        if let Some(max) = r.max_delay_seconds {
            delay = delay.min(max);
        }
        if r.jitter == Jitter::Full {
            // Chosen: FULL jitter picks uniformly in [0, delay] (AWS: "randomizes the delay").
            delay *= rng.next_f64();
        }
        Some(Duration::from_secs_f64(delay.max(0.0)))
    }
}

/// The first catcher whose ErrorEquals matches.
pub fn find_catcher<'a>(catchers: &'a [Catcher], err: &StatesError) -> Option<&'a Catcher> {
    catchers
        .iter()
        .find(|c| error_matches(&c.error_equals, &err.error))
}

/// Deterministic tiny RNG (SplitMix64) so jittered retries are reproducible for a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(errs: &[&str], interval: f64, max: u32, backoff: f64, max_delay: Option<f64>) -> Retrier {
        Retrier {
            error_equals: errs.iter().map(|s| s.to_string()).collect(),
            interval_seconds: interval,
            max_attempts: max,
            backoff_rate: backoff,
            max_delay_seconds: max_delay,
            jitter: Jitter::None,
        }
    }

    #[test]
    fn matching_rules() {
        let all = vec!["States.ALL".to_string()];
        let tf = vec!["States.TaskFailed".to_string()];
        assert!(error_matches(&all, "Foo"));
        assert!(!error_matches(&all, "States.Runtime"));
        assert!(!error_matches(&all, "States.DataLimitExceeded"));
        assert!(error_matches(
            &["States.DataLimitExceeded".into()],
            "States.DataLimitExceeded"
        ));
        assert!(error_matches(&tf, "Worker.ScriptFailed"));
        assert!(!error_matches(&tf, "States.Timeout"));
        assert!(!error_matches(&["A".into()], "B"));
    }

    #[test]
    fn backoff_cap_and_per_retrier_counts() {
        let retriers = vec![
            r(&["A"], 2.0, 3, 3.0, Some(10.0)),
            r(&["B"], 1.0, 1, 2.0, None),
        ];
        let mut st = RetryState::new(&retriers);
        let mut rng = SplitMix64::new(1);
        let a = StatesError::new("A", "");
        let b = StatesError::new("B", "");
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        assert_eq!(secs(st.next_delay(&retriers, &a, &mut rng)), Some(2.0));
        assert_eq!(secs(st.next_delay(&retriers, &b, &mut rng)), Some(1.0));
        assert_eq!(secs(st.next_delay(&retriers, &a, &mut rng)), Some(6.0));
        assert_eq!(st.next_delay(&retriers, &b, &mut rng), None);
        assert_eq!(secs(st.next_delay(&retriers, &a, &mut rng)), Some(10.0)); // 18 capped
        assert_eq!(st.next_delay(&retriers, &a, &mut rng), None);
        assert_eq!(st.retry_count, 4);
    }

    #[test]
    fn first_match_wins_even_when_exhausted() {
        let retriers = vec![
            r(&["A"], 1.0, 0, 2.0, None),
            r(&["States.ALL"], 1.0, 5, 2.0, None),
        ];
        let mut st = RetryState::new(&retriers);
        let mut rng = SplitMix64::new(1);
        assert_eq!(
            st.next_delay(&retriers, &StatesError::new("A", ""), &mut rng),
            None
        );
        assert!(
            st.next_delay(&retriers, &StatesError::new("C", ""), &mut rng)
                .is_some()
        );
    }

    #[test]
    fn full_jitter_is_seeded_and_bounded() {
        let mut ret = r(&["A"], 10.0, 50, 1.0, None);
        ret.jitter = Jitter::Full;
        let retriers = vec![ret];
        let run = |seed| {
            let mut st = RetryState::new(&retriers);
            let mut rng = SplitMix64::new(seed);
            (0..20)
                .map(|_| {
                    st.next_delay(&retriers, &StatesError::new("A", ""), &mut rng)
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let x = run(7);
        assert_eq!(x, run(7));
        assert_ne!(x, run(8));
        assert!(x.iter().all(|d| d.as_secs_f64() <= 10.0));
        assert!(x.iter().any(|d| d.as_secs_f64() < 9.0));
    }
}
