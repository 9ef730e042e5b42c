//! check-for-failures: pass-through and the readable failure list.

use boa_core::results::ObjectRef;
use boa_core::task::SkipKind;
use boa_core::{NormalizedResults, RunSummary, Status, TaskRecord};
use check_for_failures::{handle, lambda_handler};
use lambda_runtime::{Context, LambdaEvent, Service, service_fn};

fn rec(step: &str, item: &[(&str, &str)], status: Status) -> TaskRecord {
    TaskRecord {
        step: step.into(),
        item: item
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        status,
        skip: (status == Status::Skipped).then_some(SkipKind::Done),
        reason: None,
        instance_id: None,
        log_stream: None,
        elapsed_s: None,
        attempts: None,
        error: None,
        cause: None,
    }
}

fn results(fail: bool) -> RunSummary {
    summary(&normalized(fail), usize::MAX)
}

/// The summary NormalizeResults hands on, with at most `shown` failed records.
fn summary(n: &NormalizedResults, shown: usize) -> RunSummary {
    RunSummary {
        summary: n.summary.clone(),
        results: ObjectRef {
            bucket: "art".into(),
            key: "runs/r1/results.json".into(),
        },
        failed: n.failed().take(shown).cloned().collect(),
    }
}

fn normalized(fail: bool) -> NormalizedResults {
    let mut tasks = vec![
        rec(
            "MakeSourceTarball",
            &[("version", "4.28.2")],
            Status::Succeeded,
        ),
        rec(
            "PublishDockerImages",
            &[("version", "4.28.2")],
            Status::Skipped,
        ),
    ];
    if fail {
        let mut a = rec(
            "MakeBinaryPackage",
            &[("version", "4.28.2"), ("distro", "debian-12-bookworm")],
            Status::Failed,
        );
        a.error = Some("Worker.ScriptFailed".into());
        a.instance_id = Some("i-0abc".into());
        a.log_stream = Some("w_i-0abc".into());
        a.attempts = Some(3);
        a.reason = Some("exit status 2\nmore detail".into());
        let mut b = rec(
            "PublishBinaryPackages",
            &[("version", "4.28.2")],
            Status::Failed,
        );
        b.error = Some("States.Timeout".into());
        b.attempts = Some(1);
        b.cause = Some("\nActivity task timed out".into());
        tasks.push(a);
        tasks.push(b);
    }
    NormalizedResults::new(tasks)
}

#[test]
fn nothing_failed_passes_the_results_through_unchanged() {
    let r = results(false);
    assert_eq!(handle(r.clone()).unwrap(), r);
}

#[test]
fn failures_are_listed_one_per_line_with_everything_needed_to_look() {
    let e = handle(results(true)).unwrap_err();
    assert_eq!(e.name.as_str(), "Build.Failed");
    let lines: Vec<&str> = e.message.lines().collect();
    assert_eq!(lines.len(), 4, "{}", e.message);
    assert_eq!(lines[0], "2 of 4 tasks failed (1 succeeded, 1 skipped):");
    assert_eq!(
        lines[1],
        "- MakeBinaryPackage distro=debian-12-bookworm version=4.28.2: Worker.ScriptFailed on i-0abc, log w_i-0abc, 3 attempts — exit status 2"
    );
    assert_eq!(
        lines[2],
        "- PublishBinaryPackages version=4.28.2: States.Timeout, 1 attempt — Activity task timed out"
    );
    assert_eq!(
        lines[3],
        "every task's record: s3://art/runs/r1/results.json"
    );
}

#[test]
fn failures_beyond_those_handed_on_are_counted_not_dropped() {
    let e = handle(summary(&normalized(true), 1)).unwrap_err();
    let lines: Vec<&str> = e.message.lines().collect();
    assert_eq!(lines[0], "2 of 4 tasks failed (1 succeeded, 1 skipped):");
    assert!(lines[1].starts_with("- MakeBinaryPackage"), "{}", e.message);
    assert_eq!(lines[2], "… and 1 more failed task");
    assert!(lines[3].contains("s3://art/runs/r1/results.json"));
}

#[tokio::test]
async fn the_runtime_sees_build_failed() {
    let mut svc = service_fn(lambda_handler);
    let d = svc
        .call(LambdaEvent::new(results(true), Context::default()))
        .await
        .unwrap_err();
    assert_eq!(d.error_type, "Build.Failed");
    assert!(d.error_message.contains("i-0abc"));
    let ok = svc
        .call(LambdaEvent::new(results(false), Context::default()))
        .await
        .unwrap();
    assert_eq!(ok.summary.total, 2);
}
