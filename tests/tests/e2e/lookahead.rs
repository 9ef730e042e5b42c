//! Lookahead provisioning end to end in the local stack: a step's worker is launched before the
//! task it waits for ends, takes its task without a boot of its own, and a worker started for a
//! task that never runs (its dependency failed) idles out by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use boa_aws::ports::Executions;
use boa_core::history_event::EventType;
use boa_core::results::Status;
use boa_core::task::SkipKind;
use boa_core::{BuildInput, Pipeline};
use e2e_tests::local_cli::{task, wait_for, worker_bin, write_script};
use engine::ExecutionStatus;
use local::stack::{LocalOptions, LocalStack};

const PIPELINE: &str = r#"
name = "ahead"

[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'

[defaults.worker]
ami = "ami-0123456789abcdef0"
instance_types = ["c7i.large"]
idle_timeout = "2m"
max_workers = 4

[[step]]
name = "Compile"
script = "compile.sh"
retries = 0
expected_duration = "300s"

[[step]]
name = "Package"
after = ["Compile"]
script = "package.sh"
"#;

/// 300 s of pipeline time (3 s at ×100); version 2.0.0 then fails.
const COMPILE_SH: &str = r#"#!/bin/sh
set -eu
sleep 3
if [ "$BOA_VERSION" = 2.0.0 ]; then echo "compiler crashed" >&2; exit 4; fi
echo "compiled $BOA_VERSION"
"#;

const PACKAGE_SH: &str = "#!/bin/sh\necho \"packaged $BOA_VERSION\"\n";

/// When the execution's one activity task of `step` ended (its success or failure event).
async fn task_end(stack: &LocalStack, arn: &str) -> chrono::DateTime<chrono::Utc> {
    let h = stack.executions().history(arn).await.unwrap();
    h.iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventType::ActivitySucceeded | EventType::ActivityFailed
            )
        })
        .filter_map(|e| e.timestamp)
        .min()
        .expect("the Compile task ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_steps_worker_is_up_before_its_dependency_ends_and_an_unneeded_one_idles_out() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline_path = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline_path, PIPELINE).unwrap();
    write_script(&dir.path().join("compile.sh"), COMPILE_SH);
    write_script(&dir.path().join("package.sh"), PACKAGE_SH);
    let mut opts = LocalOptions::new(&pipeline_path, worker_bin(), dir.path().join("run"));
    opts.time_scale = 100.0;
    // 100 s boots (1 s real): Package's worker is launched a boot before Compile's expected end.
    opts.boot_time = Duration::from_secs(100);
    let stack = LocalStack::start(opts).await.unwrap();
    let p = Pipeline::load(&pipeline_path).unwrap();
    let today = chrono::Local::now().date_naive();
    let ok = BuildInput::from_tokens(&p, &["1.0.0"], today).unwrap();
    let bad = BuildInput::from_tokens(&p, &["2.0.0"], today).unwrap();
    let h_ok = stack.run(&ok, "ahead-ok").unwrap();
    let h_bad = stack.run(&bad, "ahead-bad").unwrap();
    let (arn_ok, arn_bad) = (h_ok.arn().to_string(), h_bad.arn().to_string());
    let bound = Duration::from_secs(60);
    let r_ok = tokio::time::timeout(bound, h_ok.wait()).await.unwrap();
    let r_bad = tokio::time::timeout(bound, h_bad.wait()).await.unwrap();
    assert_eq!(r_ok.status, ExecutionStatus::Succeeded, "{r_ok:?}");
    assert_eq!(r_bad.status, ExecutionStatus::Failed, "{r_bad:?}");

    // Each execution started one Package worker ahead (tagged as such, for that execution),
    // and Prepare launched none: two Package instances in all.
    let package: Vec<_> = stack
        .fleet()
        .spans()
        .into_iter()
        .filter(|s| s.step.ends_with("-Package"))
        .collect();
    assert_eq!(package.len(), 2, "{package:#?}");
    let all = boa_aws::ports::Fleet::instances(stack.fleet().as_ref(), &[])
        .await
        .unwrap();
    let tags: BTreeMap<String, BTreeMap<String, String>> =
        all.into_iter().map(|i| (i.id, i.tags)).collect();
    for arn in [&arn_ok, &arn_bad] {
        let ahead: Vec<_> = package
            .iter()
            .filter(|s| {
                let t = &tags[&s.id];
                t.get("build-on-aws:execution") == Some(arn)
                    && t.get("build-on-aws:state").map(String::as_str) == Some("LookaheadPackage")
            })
            .collect();
        assert_eq!(ahead.len(), 1, "{arn}: {package:#?} {tags:#?}");
        // Launched before Compile ended: its boot overlapped the build.
        let end = task_end(&stack, arn).await;
        assert!(
            ahead[0].launched < end,
            "{arn}: Package's worker launched at {}, Compile ended at {end}",
            ahead[0].launched
        );
    }

    // 1.0.0's Package ran on a worker started ahead (workers serve their step's activity,
    // whichever execution started them: it may be the one started for 2.0.0).
    let results = stack.results(&arn_ok).expect("results");
    let pk = task(&results, "Package", &[]);
    assert_eq!(pk.status, Status::Succeeded, "{pk:?}");
    let took = pk.instance_id.clone().unwrap_or_default();
    assert!(package.iter().any(|s| s.id == took), "{pk:?} {package:#?}");

    // 2.0.0's Package was skipped; the other worker took nothing and shut itself down after
    // its idle timeout (2 min, 1.2 s real), not reaped by the health check.
    let results = stack.results(&arn_bad).expect("results");
    let pk = task(&results, "Package", &[]);
    assert_eq!(pk.skip, Some(SkipKind::DependencyFailed), "{pk:?}");
    let idle = package.iter().find(|s| s.id != took).unwrap().id.clone();
    let ended = wait_for(Duration::from_secs(30), || {
        stack
            .fleet()
            .spans()
            .into_iter()
            .find(|s| s.id == idle)
            .and_then(|s| s.ended)
    });
    assert!(ended.is_some(), "the unneeded worker {idle} is still up");
    let reaped: Vec<String> = stack
        .health_runs()
        .into_iter()
        .filter_map(Result::ok)
        .flat_map(|r| r.reaped)
        .collect();
    assert!(
        !reaped.iter().any(|r| r.contains(&idle)),
        "the health check reaped {idle}: {reaped:?}"
    );
    stack.shutdown().await;
}
