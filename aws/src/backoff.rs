//! The one retry loop of our own AWS calls: [`retry`] with a [`Backoff`] from `boa_core`, on
//! [`PortError::is_retryable`] errors only (throttling, 5xx, timeouts, connection errors).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use boa_core::retry::Backoff;

use crate::ports::PortError;

/// Sleeps between tries; injectable so tests run instantly and see every delay.
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, d: Duration);
}

/// The real sleeper.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

/// Runs `call` until it succeeds, fails with a final error, or `backoff.tries` are used up.
/// `what` names the call in the logs (never a token).
pub async fn retry<T, F, Fut>(
    backoff: &Backoff,
    sleeper: &dyn Sleeper,
    what: &str,
    mut call: F,
) -> Result<T, PortError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PortError>>,
{
    let mut n = 0;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && n + 1 < backoff.tries.max(1) => {
                let wait = backoff.delay(n);
                tracing::warn!(call = what, error = %e, attempt = n + 1, wait_s = wait.as_secs_f64(), "retrying");
                sleeper.sleep(wait).await;
                n += 1;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(tries: u32) -> Backoff {
        Backoff {
            tries,
            base: Duration::from_millis(1),
            cap: Duration::from_millis(4),
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let calls = AtomicU32::new(0);
        let r = retry(&quick(5), &TokioSleeper, "t", || async {
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
    async fn final_errors_are_not_retried_and_tries_are_bounded() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(&quick(5), &TokioSleeper, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PortError::TaskGone("TaskTimedOut".into()))
        })
        .await;
        assert_eq!(r, Err(PortError::TaskGone("TaskTimedOut".into())));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(&quick(3), &TokioSleeper, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PortError::NoCapacity("x".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "capacity is not retried here"
        );

        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(&quick(3), &TokioSleeper, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PortError::Transient("x".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
