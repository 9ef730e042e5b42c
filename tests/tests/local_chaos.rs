//! Chaos, bounded and seeded: workers killed mid-task, launches throttled and refused, Lambda
//! invocations failing. The run must still end with every requested task exactly once in its
//! results, and no worker process may outlive the stack.

use std::collections::BTreeSet;
use std::time::Duration;

use common::results::Status;
use common::{BuildInput, NormalizedResults, Pipeline};
use e2e_tests::local_cli::{group_alive, root, worker_bin};
use local::ExecutionStatus;
use local::stack::{Faults, INJECTED_FAILURES, LocalOptions, LocalStack};

fn normalized(stack: &LocalStack, arn: &str) -> NormalizedResults {
    stack
        .history(arn)
        .iter()
        .rev()
        .find(|e| {
            e.kind == "TaskStateExited" && e.state_name.as_deref() == Some("NormalizeResults")
        })
        .and_then(|e| serde_json::from_str(e.payload.as_deref()?).ok())
        .expect("NormalizeResults ran and its output is in the history")
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
        seed: 42,
    };
    // Tasks long enough for the chaos monkey to find them busy.
    opts.extra_env = vec![("BOA_EXAMPLE_SLEEP".into(), "0.4".into())];
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
    let result = tokio::time::timeout(Duration::from_secs(150), handle.wait())
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
    let requested: Vec<(String, common::Item)> = input.requested_tasks(&p).unwrap();
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
