//! Retrying AWS calls: capped exponential backoff with full jitter, on
//! [`PortError::is_retryable`] errors only.

use std::future::Future;
use std::time::Duration;

use common::ports::PortError;

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The first backoff ceiling; doubles per attempt.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `n` (0-based): uniform in `[ceiling/2, ceiling]` where
    /// ceiling = min(cap, base·2ⁿ). Half-jitter keeps retries from ever firing back to back.
    pub fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(n.min(30)))
            .min(self.cap);
        let f: f64 = rand::random::<f64>();
        ceiling.mul_f64(0.5 + 0.5 * f)
    }
}

/// Runs `call` until it succeeds, fails with a final error, or the attempts are used up.
/// `what` names the call in the logs (never a token).
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, what: &str, mut call: F) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PortError>>,
{
    let mut n = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && n + 1 < policy.attempts.max(1) => {
                let wait = policy.backoff(n);
                tracing::warn!(call = what, error = %e, attempt = n + 1, wait_s = wait.as_secs_f64(), "retrying");
                tokio::time::sleep(wait).await;
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let calls = AtomicU32::new(0);
        let r = retry(&quick(5), "t", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(PortError::Throttled("slow down".into())),
                1 => Err(PortError::Transient("503".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(r, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn final_errors_are_not_retried_and_attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(&quick(5), "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PortError::TaskGone("TaskTimedOut".into()))
        })
        .await;
        assert_eq!(r, Err(PortError::TaskGone("TaskTimedOut".into())));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(&quick(3), "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PortError::Transient("x".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        for _ in 0..50 {
            let b0 = p.backoff(0);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(800));
            assert!(p.backoff(20) <= Duration::from_millis(1000));
        }
    }
}
