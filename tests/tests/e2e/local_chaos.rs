//! Chaos, bounded and seeded: workers killed mid-task, launches throttled and refused, instances
//! that boot without a worker, Lambda invocations failing, and tasks that run longer than the
//! workers' lease, heartbeat and health-check periods. The run must still end with every requested task exactly once in its
//! results, and no worker process may outlive the stack.

use std::collections::BTreeSet;
use std::time::Duration;

use boa_core::results::Status;
use boa_core::{BuildInput, NormalizedResults, Pipeline};
use e2e_tests::local_cli::{group_alive, root, worker_bin};
use engine::ExecutionStatus;
use local::stack::{Faults, INJECTED_FAILURES, LocalOptions, LocalStack};

fn normalized(stack: &LocalStack, arn: &str) -> NormalizedResults {
    stack
        .results(arn)
        .expect("NormalizeResults ran and wrote the results object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_task_is_reported_exactly_once_and_no_worker_is_left() {
    let run_dir = tempfile::tempdir().unwrap();
    let pipeline_path = root().join("pipeline.toml");
    let mut opts = LocalOptions::new(&pipeline_path, worker_bin(), run_dir.path());
    // ×300: a 5-minute heartbeat is 1 s, so a killed worker is noticed quickly.
    opts.time_scale = 300.0;
    opts.boot_time = Duration::from_secs(30);
    opts.seed = 42;
    opts.faults = Faults {
        kill_worker: 0.3,
        throttle_launch: 0.25,
        no_capacity: 0.15,
        fail_lambda: 0.1,
        dead_boot: 0.15,
        dead_boot_first: 0,
        bad_launch: 0.0,
        seed: 42,
    };
    // Tasks longer than every period they meet at ×300: the lease (idle timeout 2 s + margin
    // 0.4 s), the heartbeat interval (0.67 s) and the health check (1 s).
    opts.extra_env = vec![("BOA_EXAMPLE_SLEEP".into(), "3".into())];
    let t0 = std::time::Instant::now();
    let stack = LocalStack::start(opts).await.unwrap();

    let p = Pipeline::load(&pipeline_path).unwrap();
    let tokens = [
        "4.28.2",
        "4.27.0",
        "debian-12-bookworm",
        "ubuntu-22.04-jammy",
        "ubuntu-20.04-focal",
    ];
    let input = BuildInput::from_tokens(&p, &tokens, chrono::Local::now().date_naive()).unwrap();
    let handle = stack.run(&input, "chaos-42").unwrap();
    let arn = handle.arn().to_string();
    let result = tokio::time::timeout(Duration::from_secs(240), handle.wait())
        .await
        .expect("the chaos run ends within its bound");
    eprintln!(
        "chaos run ended after {:?}: {:?} {:?}",
        t0.elapsed(),
        result.status,
        result.counts
    );
    let counters = stack.fleet().counters();
    let lambdas = stack.lambda_invocations();
    let pids = stack.fleet().started_pids();
    stack.shutdown().await;
    eprintln!(
        "stack shut down after {:?}; fleet {counters:?}; lambdas {lambdas:?}",
        t0.elapsed()
    );

    // The run ended on its own terms: results normalized, no state machine crash.
    assert!(
        matches!(
            result.status,
            ExecutionStatus::Succeeded | ExecutionStatus::Failed
        ),
        "{result:?}"
    );
    if result.status == ExecutionStatus::Failed {
        assert_eq!(result.error.as_deref(), Some("Build.Failed"), "{result:?}");
    }
    let r = normalized(&stack, &arn);
    let requested: Vec<(String, boa_core::Item)> = input.requested_tasks(&p).unwrap();
    let want: BTreeSet<(String, Vec<(String, String)>)> = requested
        .iter()
        .map(|(s, i)| (s.clone(), i.clone().into_iter().collect()))
        .collect();
    let got: Vec<(String, Vec<(String, String)>)> = r
        .tasks
        .iter()
        .map(|t| (t.step.clone(), t.item.clone().into_iter().collect()))
        .collect();
    assert_eq!(got.len(), requested.len(), "each task once: {r:#?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    // A succeeded task names its worker; a failed one its error.
    for t in &r.tasks {
        match t.status {
            Status::Succeeded => assert!(t.instance_id.is_some(), "{t:?}"),
            Status::Failed => assert!(t.error.is_some(), "{t:?}"),
            Status::Skipped => assert!(t.reason.is_some(), "{t:?}"),
        }
    }

    // The faults did happen, and were survived by retries.
    assert!(counters.killed_by_chaos > 0, "{counters:?}");
    assert!(
        counters.throttled + counters.no_capacity > 0,
        "{counters:?}"
    );
    assert!(counters.dead_boots > 0, "{counters:?}");
    // Dead boots were reaped by the health check; no live worker was (leases stay fresh).
    let reaped: Vec<String> = stack
        .health_runs()
        .into_iter()
        .filter_map(Result::ok)
        .flat_map(|r| r.reaped)
        .collect();
    assert!(
        reaped.iter().any(|r| r.contains("never registered")),
        "{reaped:?}"
    );
    assert!(
        !reaped.iter().any(|r| r.contains("lease expired")),
        "a live worker was reaped: {reaped:?}"
    );
    assert!(
        lambdas.get(INJECTED_FAILURES).copied().unwrap_or(0) > 0,
        "{lambdas:?}"
    );
    assert!(
        r.tasks.iter().any(|t| t.attempts.unwrap_or(1) > 1),
        "a killed task is retried: {r:#?}"
    );

    // No worker process (or script) outlives the stack.
    assert!(!pids.is_empty());
    let alive: Vec<u32> = pids.into_iter().filter(|p| group_alive(*p)).collect();
    assert!(alive.is_empty(), "still running: {alive:?}");
}

// ---------------------------------------------------------------------------------------------
// The worker lifecycle under real timing: one small pipeline at ×300, where the idle timeout
// (10 min) is 2 s, the lease margin 0.4 s, the health check 1 s, the boot timeout (30 min here, so
// a worker process slow to start on a loaded machine is not taken for dead) 6 s and the launch
// deadline (30 min) 6 s.

const LIFE: &str = r#"
name = "life"

[[axis]]
name = "version"
pattern = '^\d+$'

[defaults.worker]
ami = "ami-0123456789abcdef0"
instance_types = ["c7i.large", "c6i.large"]
idle_timeout = "10m"
boot_timeout = "30m"
max_workers = 4

[[step]]
name = "Build"
script = "build.sh"
timeout = "2h"
heartbeat = "5m"
"#;

/// `LIFE_MODE=long`: sleeps `LIFE_SLEEP_<version>` (default 0.2) seconds.
/// `LIFE_MODE=interrupt`: on attempts 1 and 2 the script SIGTERMs its worker (as a spot
/// interruption would) and waits to be killed.
const BUILD_SH: &str = r#"#!/bin/sh
set -eu
case "${LIFE_MODE:-}" in
  interrupt)
    if [ "$BOA_ATTEMPT" -le 2 ]; then
      echo "attempt $BOA_ATTEMPT: interrupting my worker"
      kill -TERM "$PPID"
      sleep 30
    fi ;;
  *)
    eval "s=\${LIFE_SLEEP_${BOA_VERSION}:-0.2}"
    sleep "$s" ;;
esac
echo "built $BOA_VERSION on attempt $BOA_ATTEMPT"
"#;

struct Life {
    _dir: tempfile::TempDir,
    stack: LocalStack,
    pipeline: Pipeline,
}

async fn life(faults: Faults, env: &[(&str, &str)], parameters_once: bool) -> Life {
    life_of(LIFE, faults, env, parameters_once).await
}

async fn life_of(toml: &str, faults: Faults, env: &[(&str, &str)], parameters_once: bool) -> Life {
    let dir = tempfile::tempdir().unwrap();
    let pipeline_path = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline_path, toml).unwrap();
    std::fs::write(dir.path().join("build.sh"), BUILD_SH).unwrap();
    let mut opts = LocalOptions::new(&pipeline_path, worker_bin(), dir.path().join("run"));
    opts.time_scale = 300.0;
    opts.boot_time = Duration::from_secs(30);
    opts.faults = faults;
    opts.parallel_parameters_once = parameters_once;
    opts.extra_env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stack = LocalStack::start(opts).await.unwrap();
    let pipeline = Pipeline::load(&pipeline_path).unwrap();
    Life {
        _dir: dir,
        stack,
        pipeline,
    }
}

impl Life {
    async fn run(
        &self,
        versions: &[&str],
        name: &str,
    ) -> (engine::ExecutionResult, NormalizedResults) {
        let handle = self.start(versions, name);
        let arn = handle.arn().to_string();
        let result = tokio::time::timeout(Duration::from_secs(90), handle.wait())
            .await
            .expect("the run ends within its bound");
        (result, normalized(&self.stack, &arn))
    }

    fn start(&self, versions: &[&str], name: &str) -> engine::ExecutionHandle {
        let input =
            BuildInput::from_tokens(&self.pipeline, versions, chrono::Local::now().date_naive())
                .unwrap();
        self.stack.run(&input, name).unwrap()
    }

    fn reaped(&self) -> Vec<String> {
        self.stack
            .health_runs()
            .into_iter()
            .filter_map(Result::ok)
            .flat_map(|r| r.reaped)
            .collect()
    }

    fn health_launched(&self) -> usize {
        self.stack
            .health_runs()
            .into_iter()
            .filter_map(Result::ok)
            .map(|r| r.launched.len())
            .sum()
    }
}

fn only_task(r: &NormalizedResults) -> &boa_core::TaskRecord {
    assert_eq!(r.tasks.len(), 1, "{r:#?}");
    &r.tasks[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_longer_than_lease_heartbeat_and_health_rounds_finishes_on_its_first_try() {
    // 6 s real = 30 min of pipeline time: 2.5 leases, 18 heartbeats, 6 health-check rounds.
    let l = life(
        Faults::none(),
        &[("LIFE_MODE", "long"), ("LIFE_SLEEP_1", "6")],
        false,
    )
    .await;
    let (result, r) = l.run(&["1"], "long-1").await;
    let health_rounds = l.stack.health_runs().len();
    l.stack.shutdown().await;
    assert_eq!(result.status, ExecutionStatus::Succeeded, "{result:?}");
    let t = only_task(&r);
    assert_eq!(t.status, Status::Succeeded, "{t:?}");
    assert_eq!(t.attempts, Some(1), "{t:?}");
    assert!(health_rounds >= 4, "{health_rounds} health rounds");
    assert!(l.reaped().is_empty(), "{:?}", l.reaped());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_that_die_at_boot_are_replaced_after_the_boot_deadline() {
    let faults = Faults {
        dead_boot_first: 2,
        ..Faults::none()
    };
    let l = life(faults, &[], false).await;
    let (result, r) = l.run(&["1"], "dead-boots").await;
    let counters = l.stack.fleet().counters();
    l.stack.shutdown().await;
    assert_eq!(result.status, ExecutionStatus::Succeeded, "{result:?}");
    let t = only_task(&r);
    assert_eq!(t.status, Status::Succeeded, "{t:?}");
    // The task itself was never retried: its dead workers were replaced under it.
    assert_eq!(t.attempts, Some(1), "{t:?}");
    assert_eq!(counters.dead_boots, 2, "{counters:?}");
    assert_eq!(counters.instances_launched, 3, "{counters:?}");
    let reaped = l.reaped();
    assert_eq!(reaped.len(), 2, "{reaped:?}");
    assert!(
        reaped.iter().all(|r| r.contains("never registered")),
        "{reaped:?}"
    );
    // Both replacements came from health-check rounds, each with its own ClientToken.
    assert_eq!(l.health_launched(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_launch_error_fails_the_task_with_its_code_within_one_prepare() {
    let faults = Faults {
        bad_launch: 1.0,
        ..Faults::none()
    };
    let l = life(faults, &[], false).await;
    let (result, r) = l.run(&["1"], "bad-ami").await;
    let counters = l.stack.fleet().counters();
    let lambdas = l.stack.lambda_invocations();
    l.stack.shutdown().await;
    assert_eq!(result.status, ExecutionStatus::Failed, "{result:?}");
    let t = only_task(&r);
    assert_eq!(t.status, Status::Failed, "{t:?}");
    assert_eq!(t.error.as_deref(), Some("Ec2.LaunchFailed"), "{t:?}");
    let cause = t.cause.clone().unwrap_or_default();
    assert!(cause.contains("InvalidAMIID.NotFound"), "{cause}");
    assert_eq!(lambdas.get("start-workers"), Some(&1), "{lambdas:?}");
    assert_eq!(counters.run_instances_calls, 1, "{counters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_anywhere_fails_the_task_as_no_capacity_after_the_launch_deadline() {
    let faults = Faults {
        no_capacity: 1.0,
        ..Faults::none()
    };
    let l = life(faults, &[], false).await;
    let t0 = std::time::Instant::now();
    let (result, r) = l.run(&["1"], "no-capacity").await;
    let took = t0.elapsed();
    let lambdas = l.stack.lambda_invocations();
    l.stack.shutdown().await;
    assert_eq!(result.status, ExecutionStatus::Failed, "{result:?}");
    let t = only_task(&r);
    assert_eq!(t.error.as_deref(), Some("Ec2.NoCapacity"), "{t:?}");
    let cause = t.cause.clone().unwrap_or_default();
    assert!(cause.contains("InsufficientInstanceCapacity"), "{cause}");
    // Prepare was tried once plus once per capacity retry, spread over the launch deadline
    // (30 min = 6 s at ×300), and no more.
    let deadline = l
        .stack
        .pipeline()
        .step("Build")
        .unwrap()
        .worker
        .launch_deadline;
    let cap = boa_core::retry::capacity_retrier(deadline);
    assert_eq!(
        lambdas.get("start-workers"),
        Some(&u64::from(1 + cap.max_attempts)),
        "{lambdas:?}"
    );
    assert!(took >= Duration::from_secs(6), "{took:?}");
}

async fn interrupted_twice(parameters_once: bool) {
    let l = life(
        Faults::none(),
        &[("LIFE_MODE", "interrupt")],
        parameters_once,
    )
    .await;
    let (result, r) = l.run(&["1"], "interrupted").await;
    let counters = l.stack.fleet().counters();
    l.stack.shutdown().await;
    assert_eq!(result.status, ExecutionStatus::Succeeded, "{result:?}");
    let t = only_task(&r);
    assert_eq!(t.status, Status::Succeeded, "{t:?}");
    assert_eq!(t.attempts, Some(3), "{t:?}");
    // Three instances, each launched at once by the attempt's Prepare (a reused ClientToken
    // would have answered with the dead instance and left the task to the health check).
    assert_eq!(counters.instances_launched, 3, "{counters:?}");
    assert_eq!(l.health_launched(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_interrupted_twice_runs_on_three_instances_and_says_three_attempts() {
    interrupted_twice(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_when_the_engine_evaluates_a_retried_parallels_parameters_once() {
    interrupted_twice(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_executions_share_workers_and_none_is_reaped_when_one_ends() {
    // One worker at most: the worker launched for the first execution serves the second one's
    // tasks after the first execution has ended (the old reaper killed it then).
    let one_worker = LIFE.replace("max_workers = 4", "max_workers = 1");
    let l = life_of(
        &one_worker,
        Faults::none(),
        &[
            ("LIFE_SLEEP_1", "0.3"),
            ("LIFE_SLEEP_2", "1.5"),
            ("LIFE_SLEEP_3", "1.5"),
        ],
        false,
    )
    .await;
    let a = l.start(&["1"], "first");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = l.start(&["2", "3"], "second");
    let (a_arn, b_arn) = (a.arn().to_string(), b.arn().to_string());
    let bound = Duration::from_secs(90);
    let ra = tokio::time::timeout(bound, a.wait()).await.unwrap();
    let a_ended = std::time::Instant::now();
    let rb = tokio::time::timeout(bound, b.wait()).await.unwrap();
    assert!(
        a_ended.elapsed() > Duration::from_secs(2),
        "the runs overlapped"
    );
    assert_eq!(ra.status, ExecutionStatus::Succeeded, "{ra:?}");
    assert_eq!(rb.status, ExecutionStatus::Succeeded, "{rb:?}");
    for arn in [&a_arn, &b_arn] {
        for t in &normalized(&l.stack, arn).tasks {
            assert_eq!(t.status, Status::Succeeded, "{t:?}");
            assert_eq!(t.attempts, Some(1), "not interrupted: {t:?}");
        }
    }
    let counters = l.stack.fleet().counters();
    assert_eq!(counters.instances_launched, 1, "{counters:?}");
    assert!(l.reaped().is_empty(), "{:?}", l.reaped());
    // Once both have ended the worker idles out (2 s) by itself.
    let t0 = std::time::Instant::now();
    while !l.stack.fleet().alive().is_empty() && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        l.stack.fleet().alive().is_empty(),
        "{:?}",
        l.stack.fleet().alive()
    );
    l.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_racing_an_exclusive_step_never_have_two_of_its_workers_alive() {
    let exclusive = LIFE.replace(
        "script = \"build.sh\"",
        "script = \"build.sh\"\nexclusive = true",
    );
    let l = life_of(
        &exclusive,
        Faults::none(),
        &[
            ("LIFE_SLEEP_1", "0.5"),
            ("LIFE_SLEEP_2", "0.5"),
            ("LIFE_SLEEP_3", "0.5"),
        ],
        false,
    )
    .await;
    // Three executions (four tasks) reach the exclusive step at the same moment.
    let runs = [
        l.start(&["1"], "race-a"),
        l.start(&["2"], "race-b"),
        l.start(&["3", "1"], "race-c"),
    ];
    let mut arns = vec![];
    for h in runs {
        arns.push(h.arn().to_string());
        let r = tokio::time::timeout(Duration::from_secs(90), h.wait())
            .await
            .unwrap();
        assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    }
    let counters = l.stack.fleet().counters();
    l.stack.shutdown().await;
    for arn in &arns {
        for t in &normalized(&l.stack, arn).tasks {
            assert_eq!(t.status, Status::Succeeded, "{t:?}");
        }
    }
    assert_eq!(
        counters
            .peak_alive_per_activity
            .get("build-on-aws-life-Build"),
        Some(&1),
        "{counters:?}"
    );
}
