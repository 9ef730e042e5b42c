//! A pipeline whose outer axis is `distributed = true`, run end to end in the local stack: each
//! version a child execution with its own history, records in the run's bucket, and the run's
//! results whole even when a task fails and when a child execution fails.

use std::time::Duration;

use boa_aws::ports::Executions;
use boa_core::history_event::EventType;
use boa_core::results::Status;
use boa_core::{BuildInput, NormalizedResults, Pipeline};
use e2e_tests::local_cli::{task, wait_for, worker_bin, write_script};
use engine::ExecutionStatus;
use local::stack::{LocalOptions, LocalStack};

const PIPELINE: &str = r#"
name = "fanout"

[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'
distributed = true
max_concurrency = 4

[[axis]]
name = "distro"
values = ["a", "b"]

[defaults.worker]
ami = "ami-0123456789abcdef0"
instance_types = ["c7i.large"]
idle_timeout = "10m"
max_workers = 6

[[step]]
name = "Build"
for_each = ["version", "distro"]
script = "build.sh"
retries = 0

[[step]]
name = "Publish"
after = ["Build"]
script = "publish.sh"
"#;

/// 1.2.0 on distro b fails; 1.3.0 builds for a long time (its child execution is stopped).
const BUILD_SH: &str = r#"#!/bin/sh
set -eu
if [ "$BOA_VERSION" = 1.2.0 ] && [ "$BOA_DISTRO" = b ]; then
  echo "no compiler for b" >&2
  exit 3
fi
if [ "$BOA_VERSION" = 1.3.0 ]; then sleep 60; fi
echo "built $BOA_VERSION on $BOA_DISTRO"
"#;

const PUBLISH_SH: &str = "#!/bin/sh\necho \"published $BOA_VERSION\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_run_keeps_every_result_through_a_failing_task_and_a_failed_child() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline_path = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline_path, PIPELINE).unwrap();
    write_script(&dir.path().join("build.sh"), BUILD_SH);
    write_script(&dir.path().join("publish.sh"), PUBLISH_SH);
    let mut opts = LocalOptions::new(&pipeline_path, worker_bin(), dir.path().join("run"));
    opts.time_scale = 100.0;
    opts.boot_time = Duration::from_secs(10);
    let stack = LocalStack::start(opts).await.unwrap();
    let p = Pipeline::load(&pipeline_path).unwrap();
    let input = BuildInput::from_tokens(
        &p,
        &["1.1.0", "1.2.0", "1.3.0"],
        chrono::Local::now().date_naive(),
    )
    .unwrap();
    let handle = stack.run(&input, "distributed-run").unwrap();
    let arn = handle.arn().to_string();
    let engine = stack.engine().clone();

    // Each version is a child execution; stop 1.3.0's once its builds are running.
    let child_of_130 = wait_for(Duration::from_secs(60), || {
        let runs = engine.map_runs(&arn).ok()?;
        let children = engine.child_executions(&runs.first()?.map_run_arn).ok()?;
        let c = children
            .into_iter()
            .find(|c| c.input["item"]["version"] == "1.3.0")?;
        let started = engine
            .history(&c.execution_arn)
            .ok()?
            .iter()
            .filter(|e| e.kind == EventType::ActivityStarted)
            .count();
        (started == 2).then_some(c.execution_arn)
    })
    .expect("1.3.0's child execution starts both its builds");
    engine
        .stop_execution(
            &child_of_130,
            Some("Test.Stopped"),
            Some("stopped by the test"),
        )
        .unwrap();

    let result = tokio::time::timeout(Duration::from_secs(120), handle.wait())
        .await
        .expect("the run ends within its bound");
    // A task failed, so CheckForFailures fails the run, after NormalizeResults kept everything.
    assert_eq!(result.status, ExecutionStatus::Failed, "{result:?}");
    assert_eq!(result.error.as_deref(), Some("Build.Failed"));

    // The parent's history holds the Map Run, not the tasks; each child holds its own.
    let parent = stack.executions().history(&arn).await.unwrap();
    assert!(parent.iter().any(|e| e.kind == EventType::MapRunStarted));
    assert!(
        !parent
            .iter()
            .any(|e| e.kind == EventType::ActivityScheduled)
    );
    let runs = engine.map_runs(&arn).unwrap();
    let children = engine.child_executions(&runs[0].map_run_arn).unwrap();
    assert_eq!(children.len(), 3);
    for c in &children {
        let h = stack.executions().history(&c.execution_arn).await.unwrap();
        assert!(
            h.iter().any(|e| e.kind == EventType::ActivityScheduled),
            "{}",
            c.name
        );
    }
    let aborted: Vec<_> = children
        .iter()
        .filter(|c| c.status == ExecutionStatus::Aborted)
        .collect();
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].execution_arn, child_of_130);

    let r: NormalizedResults = stack
        .results(&arn)
        .expect("NormalizeResults wrote the results");
    stack.shutdown().await;
    // Every requested task once: 3 versions × (2 builds + 1 publish).
    assert_eq!(r.tasks.len(), 9, "{r:#?}");
    for d in ["a", "b"] {
        let t = task(&r, "Build", &[("version", "1.1.0"), ("distro", d)]);
        assert_eq!(t.status, Status::Succeeded, "{t:?}");
    }
    let published = task(&r, "Publish", &[("version", "1.1.0")]);
    assert_eq!(published.status, Status::Succeeded, "{published:?}");
    let failed = task(&r, "Build", &[("version", "1.2.0"), ("distro", "b")]);
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.error.as_deref(), Some("Worker.ScriptFailed"));
    assert!(
        failed
            .cause
            .as_deref()
            .unwrap_or_default()
            .contains("no compiler for b"),
        "{failed:?}"
    );
    let skipped = task(&r, "Publish", &[("version", "1.2.0")]);
    assert_eq!(skipped.status, Status::Skipped, "{skipped:?}");
    // The stopped child's tasks are reported, as lost, not dropped.
    for t in r.tasks.iter().filter(|t| t.item["version"] == "1.3.0") {
        assert_eq!(t.status, Status::Failed, "{t:?}");
        assert!(
            t.reason.as_deref().unwrap_or_default().contains("lost"),
            "{t:?}"
        );
    }
    assert_eq!(r.summary.failed, 1 + 3);
}
