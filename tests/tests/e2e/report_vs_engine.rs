//! The generator's static report (`statemachine-gen --report`) predicts what a run costs; the
//! embedded engine counts what it did. On the happy path the two must agree, and the report's
//! payload estimate must not be smaller than the largest payload the engine saw.

use boa_aws::ports::Executions;
use std::time::Duration;

use boa_core::history_event::EventType;
use boa_core::{BuildInput, Pipeline};
use e2e_tests::local_cli::{root, worker_bin};
use engine::ExecutionStatus;
use local::stack::{LocalOptions, LocalStack};

async fn happy_run(tokens: &[&str]) {
    let run_dir = tempfile::tempdir().unwrap();
    let pipeline_path = root().join("pipeline.toml");
    let mut opts = LocalOptions::new(&pipeline_path, worker_bin(), run_dir.path());
    opts.boot_time = Duration::from_secs(5);
    opts.extra_env = vec![("BOA_EXAMPLE_SLEEP".into(), "0".into())];
    // The report counts the pipeline's state machine; the lookahead machine's executions (and
    // their start-workers calls) are the stack's other machine, counted apart.
    opts.lookahead = false;
    let stack = LocalStack::start(opts).await.unwrap();
    let p = Pipeline::load(&pipeline_path).unwrap();
    let input = BuildInput::from_tokens(&p, tokens, chrono::Local::now().date_naive()).unwrap();
    let handle = stack.run(&input, "report-vs-engine").unwrap();
    let arn = handle.arn().to_string();
    let result = tokio::time::timeout(Duration::from_secs(120), handle.wait())
        .await
        .expect("the run ends within its bound");
    let lambdas = stack.lambda_invocations();
    let activities = stack
        .executions()
        .history(&arn)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventType::ActivityScheduled)
        .count() as u64;
    stack.shutdown().await;
    assert_eq!(result.status, ExecutionStatus::Succeeded, "{result:?}");

    let report = statemachine_gen::report::report(&p, &input);
    let c = result.counts;
    // Lambdas the machine invoked; the health check runs beside it on a schedule.
    let machine_lambdas: u64 = lambdas
        .iter()
        .filter(|(name, _)| !name.contains("health-check"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        (
            c.state_transitions,
            c.history_events,
            machine_lambdas,
            activities,
        ),
        (
            report.transitions_happy,
            report.history_events_happy,
            report.lambda_invocations,
            report.activity_tasks,
        ),
        "{tokens:?}: engine (transitions, events, Lambda calls, activity tasks) vs the report; Lambda calls {lambdas:?}\n{report}"
    );
    assert!(
        report.payload_bytes >= c.max_payload_bytes,
        "{tokens:?}: the report estimates {} bytes at {}, the engine saw {}",
        report.payload_bytes,
        report.payload_state,
        c.max_payload_bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_version_three_distros() {
    happy_run(&[
        "4.28.2",
        "debian-12-bookworm",
        "ubuntu-22.04-jammy",
        "ubuntu-20.04-focal",
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_versions_two_distros() {
    happy_run(&[
        "4.28.2",
        "4.27.0",
        "4.26.1",
        "debian-12-bookworm",
        "ubuntu-22.04-jammy",
    ])
    .await;
}
