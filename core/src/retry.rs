//! Retry policy, in one place: the retriers the generator writes into every Task (and every
//! per-task Parallel) of the state machine (the local engine interprets them), and the one
//! backoff the AWS calls of the Lambdas and the worker wait with ([`Backoff`]). Nothing else
//! invents retry numbers.

use std::time::Duration;

use serde::Serialize;

use crate::errors::{ErrorName, states};

/// What a state calls, which decides its retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// A Lambda task (ParseInput, Prepare*, NormalizeResults…): 5 retries at 5, 10, 20, 40, 80 s.
    Lambda,
    /// One attempt of a pipeline task (Prepare + activity) with `build_retries` retries of a build
    /// failure at 60 s then 300 s; interruptions are retried at once outside that budget. Launch
    /// failures (`Ec2.LaunchFailed`, `Ec2.NoCapacity` after its deadline) are never retried here.
    Activity { build_retries: u32 },
    /// `Prepare<Step>` (start-workers): a Lambda that also retries `Ec2.NoCapacity` at 60 s
    /// doubling to 300 s until `launch_deadline` has passed; `Ec2.LaunchFailed` is never retried.
    Prepare { launch_deadline: Duration },
}

/// First wait before launching again after no capacity anywhere.
pub const CAPACITY_RETRY_FIRST: u64 = 60;
/// Longest wait between launch rounds without capacity.
pub const CAPACITY_RETRY_MAX: u64 = 300;

/// The retrier that waits for capacity: enough attempts that their waits add up to at least
/// `deadline` (at least one).
pub fn capacity_retrier(deadline: Duration) -> Retrier {
    let mut r = Retrier {
        error_equals: names(&[ErrorName::Ec2NoCapacity]),
        interval_seconds: CAPACITY_RETRY_FIRST,
        max_attempts: 1,
        backoff_rate: 2.0,
        max_delay_seconds: Some(CAPACITY_RETRY_MAX),
        jitter_strategy: None,
    };
    while delays(&r).iter().sum::<f64>() < deadline.as_secs_f64() && r.max_attempts < 1000 {
        r.max_attempts += 1;
    }
    r
}

/// One ASL retrier, serialised exactly as ASL wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: u64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delay_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_strategy: Option<&'static str>,
}

/// Default number of retries of a failed build step.
pub const DEFAULT_BUILD_RETRIES: u32 = 2;
/// How often an interrupted worker's task is retried at once before it counts as failed.
pub const INTERRUPTION_RETRIES: u32 = 5;
/// Lambda's own transient errors, as AWS recommends retrying them.
pub const LAMBDA_SERVICE_ERRORS: [&str; 4] = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

fn names(errors: &[ErrorName]) -> Vec<String> {
    errors.iter().map(|e| e.as_str().to_string()).collect()
}

/// The retriers for a state of the given kind, most specific first and `States.ALL` last.
pub fn retriers(kind: TaskKind) -> Vec<Retrier> {
    let never = Retrier {
        error_equals: names(&[
            ErrorName::InputInvalid,
            ErrorName::TestNoRetry,
            ErrorName::BuildFailed,
        ]),
        interval_seconds: 1,
        max_attempts: 0,
        backoff_rate: 1.0,
        max_delay_seconds: None,
        jitter_strategy: None,
    };
    let mut never_launch = never.clone();
    never_launch.error_equals.extend(names(&[
        ErrorName::Ec2LaunchFailed,
        ErrorName::Ec2NoCapacity,
    ]));
    match kind {
        TaskKind::Prepare { launch_deadline } => {
            let mut rs = retriers(TaskKind::Lambda);
            rs[0]
                .error_equals
                .push(ErrorName::Ec2LaunchFailed.as_str().to_string());
            rs.insert(1, capacity_retrier(launch_deadline));
            rs
        }
        TaskKind::Lambda => vec![
            never,
            Retrier {
                error_equals: LAMBDA_SERVICE_ERRORS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                interval_seconds: 2,
                max_attempts: 6,
                backoff_rate: 2.0,
                max_delay_seconds: Some(60),
                jitter_strategy: Some("FULL"),
            },
            Retrier {
                error_equals: vec![states::ALL.to_string()],
                interval_seconds: 5,
                max_attempts: 5,
                backoff_rate: 2.0,
                max_delay_seconds: None,
                jitter_strategy: None,
            },
        ],
        TaskKind::Activity { build_retries } => vec![
            never_launch,
            Retrier {
                error_equals: names(&[ErrorName::WorkerInterrupted]),
                interval_seconds: 1,
                max_attempts: INTERRUPTION_RETRIES,
                backoff_rate: 1.0,
                max_delay_seconds: None,
                jitter_strategy: None,
            },
            Retrier {
                error_equals: vec![states::ALL.to_string()],
                interval_seconds: 60,
                max_attempts: build_retries,
                backoff_rate: 5.0,
                max_delay_seconds: Some(300),
                jitter_strategy: None,
            },
        ],
    }
}

/// The delays (seconds) a retrier waits before each retry, without jitter.
pub fn delays(r: &Retrier) -> Vec<f64> {
    (0..r.max_attempts)
        .map(|i| {
            let d = r.interval_seconds as f64 * r.backoff_rate.powi(i as i32);
            r.max_delay_seconds.map_or(d, |m| d.min(m as f64))
        })
        .collect()
}

/// Worst-case number of attempts of a state under these retriers, when every error is of the
/// kind each retrier handles (used by the static report).
pub fn worst_case_attempts(rs: &[Retrier]) -> u32 {
    1 + rs.iter().map(|r| r.max_attempts).sum::<u32>()
}

/// Capped exponential backoff of our own AWS calls (the ones whose SDK client has its retries
/// off: see `boa_aws`'s crate docs for who retries what).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Tries in all, the first included (1 = no retry).
    pub tries: u32,
    /// The first ceiling; doubles per retry.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// start-workers and the health check against EC2: a Lambda has minutes, and a capacity
    /// error moves on to the next type rather than waiting.
    pub const LAUNCH: Backoff = Backoff {
        tries: 6,
        base: Duration::from_millis(200),
        cap: Duration::from_secs(5),
    };
    /// The worker against Step Functions, EC2 tags and CloudWatch Logs: it has all the time of
    /// its lease and must not lose a result to a brief outage.
    pub const WORKER: Backoff = Backoff {
        tries: 8,
        base: Duration::from_millis(200),
        cap: Duration::from_secs(20),
    };

    /// The ceiling before retry `n` (0-based): `min(cap, base·2ⁿ)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        self.base.saturating_mul(1u32 << n.min(30)).min(self.cap)
    }

    /// The wait before retry `n`: uniform in `[ceiling/2, ceiling]`. Jitter spreads the callers
    /// of one throttled API apart; the half floor keeps a retry from firing back to back.
    pub fn delay(&self, n: u32) -> Duration {
        self.ceiling(n).mul_f64(0.5 + 0.5 * rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_tasks_retry_five_times_doubling_from_five_seconds() {
        let rs = retriers(TaskKind::Lambda);
        let all = rs.last().unwrap();
        assert_eq!(all.error_equals, ["States.ALL"]);
        assert_eq!(delays(all), [5.0, 10.0, 20.0, 40.0, 80.0]);
    }

    #[test]
    fn prepare_waits_for_capacity_until_the_launch_deadline_and_never_retries_refusals() {
        let rs = retriers(TaskKind::Prepare {
            launch_deadline: Duration::from_secs(1800),
        });
        assert!(rs[0].error_equals.contains(&"Ec2.LaunchFailed".to_string()));
        let cap = rs
            .iter()
            .find(|r| r.error_equals == ["Ec2.NoCapacity"])
            .unwrap();
        let waits = delays(cap);
        assert_eq!(waits[..3], [60.0, 120.0, 240.0]);
        let total: f64 = waits.iter().sum();
        assert!(total >= 1800.0, "{waits:?}");
        // One attempt fewer would stop before the deadline.
        assert!(total - waits.last().unwrap() < 1800.0, "{waits:?}");
        // The capacity retrier comes before States.ALL, which would otherwise take the error.
        let all = rs.iter().position(|r| r.error_equals == ["States.ALL"]);
        assert!(rs.iter().position(|r| r.error_equals == ["Ec2.NoCapacity"]) < all);
        // The enclosing Run<Step> never retries either launch error.
        let act = retriers(TaskKind::Activity { build_retries: 2 });
        for e in ["Ec2.NoCapacity", "Ec2.LaunchFailed"] {
            assert!(act[0].error_equals.contains(&e.to_string()), "{e}");
            assert_eq!(act[0].max_attempts, 0);
        }
    }

    #[test]
    fn activity_retries_build_failures_at_60_then_300() {
        let rs = retriers(TaskKind::Activity { build_retries: 2 });
        assert_eq!(delays(rs.last().unwrap()), [60.0, 300.0]);
        let interrupted = rs
            .iter()
            .find(|r| r.error_equals == ["Worker.Interrupted"])
            .unwrap();
        assert_eq!(interrupted.interval_seconds, 1);
        assert!(interrupted.max_attempts > 0);
    }

    #[test]
    fn no_retry_errors_come_first_with_zero_attempts_and_states_all_is_last_and_alone() {
        for kind in [TaskKind::Lambda, TaskKind::Activity { build_retries: 3 }] {
            let rs = retriers(kind);
            assert!(rs[0].error_equals.contains(&"Test.NoRetry".to_string()));
            assert!(rs[0].error_equals.contains(&"Input.Invalid".to_string()));
            assert_eq!(rs[0].max_attempts, 0);
            let pos: Vec<_> = rs
                .iter()
                .enumerate()
                .filter(|(_, r)| r.error_equals.iter().any(|e| e == "States.ALL"))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(pos, [rs.len() - 1]);
            assert_eq!(rs.last().unwrap().error_equals.len(), 1);
        }
    }

    #[test]
    fn serialises_as_asl() {
        let v = serde_json::to_value(&retriers(TaskKind::Lambda)[2]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 5, "BackoffRate": 2.0})
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter() {
        let b = Backoff::LAUNCH;
        assert_eq!(b.ceiling(0), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(1600));
        assert_eq!(b.ceiling(5), b.cap);
        assert_eq!(Backoff::WORKER.ceiling(40), Backoff::WORKER.cap);
        for n in 0..10 {
            let d = b.delay(n);
            assert!(d <= b.ceiling(n) && d >= b.ceiling(n) / 2, "{n}: {d:?}");
        }
    }
}
