//! record-result and normalize-results against the example pipeline, with a fake bucket.

use std::path::Path;
use std::time::Duration;

use boa_aws::durations::expected_duration;
use boa_aws::fakes::FakeObjects;
use boa_aws::ports::{Objects, PortError};
use boa_core::history::{DEFAULT_EXPECTED_DURATION, DurationHistory, duration_key};
use boa_core::results::{FAILED_IN_PAYLOAD, results_key, task_record_key};
use boa_core::stack::StackConfig;
use boa_core::task::WorkerFailureCause;
use boa_core::{BuildInput, Item, NormalizedResults, Pipeline, Status, TaskRecord};
use normalize_results::record::{self, RecordEvent};
use normalize_results::{NormalizeEvent, handle};
use serde_json::{Value, json};

const EXEC: &str = "arn:aws:states:us-east-1:111122223333:execution:build-on-aws-demo:run-1";

fn example() -> Pipeline {
    Pipeline::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn cfg() -> StackConfig {
    StackConfig::new(
        "build-on-aws-demo",
        "us-east-1",
        "111122223333",
        "s3://art/demo",
    )
}

fn input(p: &Pipeline) -> BuildInput {
    BuildInput::from_json(
        p,
        &json!({"versions": ["4.28.2", "5.1.0"], "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"]}),
        chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
    )
    .unwrap()
}

fn item(pairs: &[(&str, &str)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(iid: &str) -> Value {
    json!({"step": "x", "item": {}, "attempt": 1,
           "prepare": {"status": "pending", "reason": "launched", "launched": [iid]},
           "outcome": {"status": "succeeded", "instance_id": iid, "log_stream": format!("w_{iid}"), "elapsed_s": 2.0}})
}

fn skipped(kind: &str) -> Value {
    json!({"prepare": {"status": "skipped", "skip": kind, "reason": "because"},
           "outcome": {"status": "skipped"}})
}

fn script_failed(iid: &str, tail: &str) -> Value {
    let cause = serde_json::to_string(&WorkerFailureCause {
        instance_id: iid.into(),
        log_stream: format!("w_{iid}"),
        attempt: 2,
        elapsed_s: 9.0,
        status: "exit status 2".into(),
        log_tail: tail.into(),
    })
    .unwrap();
    json!({"Error": "Worker.ScriptFailed", "Cause": cause})
}

async fn record(p: &Pipeline, objects: &FakeObjects, step: &str, it: Item, result: Value) -> Value {
    let c = record::handle(
        RecordEvent {
            step: step.into(),
            item: it,
            execution: EXEC.into(),
            result,
        },
        p,
        objects,
        &cfg(),
    )
    .await
    .unwrap();
    serde_json::to_value(c).unwrap()
}

fn stored(objects: &FakeObjects, step: &str, it: &Item) -> Option<TaskRecord> {
    let key = format!("demo/{}", task_record_key(EXEC, step, it));
    objects
        .body("art", &key)
        .map(|b| serde_json::from_slice(&b).unwrap())
}

#[tokio::test]
async fn a_record_goes_to_the_bucket_and_only_its_status_stays_in_the_payload() {
    let p = example();
    let objects = FakeObjects::new();
    let v = item(&[("version", "4.28.2"), ("distro", "debian-12-bookworm")]);
    let tail = "make: *** [all] Error 2\n".repeat(200);
    let c = record(
        &p,
        &objects,
        "MakeBinaryPackage",
        v.clone(),
        script_failed("i-b", &tail),
    )
    .await;
    assert_eq!(c, json!({"status": "failed"}), "the payload keeps no cause");
    let r = stored(&objects, "MakeBinaryPackage", &v).expect("record written");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("Worker.ScriptFailed"));
    assert_eq!(r.instance_id.as_deref(), Some("i-b"));
    assert_eq!(r.attempts, Some(3));
    assert!(r.cause.unwrap().contains("make: *** [all] Error 2"));

    let t = item(&[("version", "4.28.2")]);
    let c = record(&p, &objects, "MakeSourceTarball", t.clone(), ok("i-s")).await;
    assert_eq!(c, json!({"status": "succeeded"}));
    assert_eq!(
        stored(&objects, "MakeSourceTarball", &t)
            .unwrap()
            .instance_id
            .as_deref(),
        Some("i-s")
    );

    // A dependent's skip keeps its kind, which the next dependents read.
    let c = record(
        &p,
        &objects,
        "PublishBinaryPackages",
        t.clone(),
        skipped("dependency-failed"),
    )
    .await;
    assert_eq!(c, json!({"status": "skipped", "skip": "dependency-failed"}));
    // A step that was not asked for writes nothing.
    let c = record(
        &p,
        &objects,
        "PublishDockerImages",
        t.clone(),
        skipped("not-requested"),
    )
    .await;
    assert_eq!(c, json!({"status": "skipped", "skip": "not-requested"}));
    assert!(stored(&objects, "PublishDockerImages", &t).is_none());
}

#[tokio::test]
async fn record_refuses_a_step_the_pipeline_does_not_have_and_names_s3_failures() {
    let p = example();
    let objects = FakeObjects::new();
    let ev = |step: &str| RecordEvent {
        step: step.into(),
        item: item(&[("version", "1.0.0")]),
        execution: EXEC.into(),
        result: ok("i-1"),
    };
    let e = record::handle(ev("../../etc"), &p, &objects, &cfg())
        .await
        .unwrap_err();
    assert_eq!(e.name.as_str(), "Input.Invalid");
    assert!(e.message.contains("../../etc"), "{}", e.message);
    objects.fail(PortError::Other("AccessDenied: no".into()));
    let e = record::handle(ev("MakeSourceTarball"), &p, &objects, &cfg())
        .await
        .unwrap_err();
    assert_eq!(e.name.as_str(), "Aws.CallFailed");
    assert!(
        e.message
            .contains("s3://art/demo/runs/run-1/tasks/MakeSourceTarball/"),
        "{}",
        e.message
    );
}

fn results_object(objects: &FakeObjects) -> NormalizedResults {
    let b = objects
        .body("art", &format!("demo/{}", results_key(EXEC)))
        .expect("results.json written");
    serde_json::from_slice(&b).unwrap()
}

#[tokio::test]
async fn every_requested_task_appears_once_in_request_order_lost_ones_included() {
    let p = example();
    let objects = FakeObjects::new();
    let inp = input(&p);
    // Record every task except one, which is lost.
    for (i, (step, it)) in inp.requested_tasks(&p).unwrap().into_iter().enumerate() {
        if step == "PublishDockerImages" && it["version"] == "4.28.2" {
            continue;
        }
        let result = if step == "MakeBinaryPackage" && it["version"] == "5.1.0" {
            script_failed("i-b", "boom")
        } else {
            ok(&format!("i-{i}"))
        };
        record(&p, &objects, &step, it, result).await;
    }
    let run = handle(
        NormalizeEvent {
            input: inp.clone(),
            execution: EXEC.into(),
            results: json!([{}, {}]),
        },
        &p,
        &objects,
        &cfg(),
    )
    .await
    .unwrap();
    let out = results_object(&objects);
    let got: Vec<_> = out
        .tasks
        .iter()
        .map(|t| (t.step.clone(), t.item.clone()))
        .collect();
    assert_eq!(
        got,
        inp.requested_tasks(&p).unwrap(),
        "one record per requested task, in order"
    );
    assert_eq!(run.summary, out.summary);
    assert_eq!(
        (out.summary.total, out.summary.succeeded, out.summary.failed),
        (11, 8, 3)
    );
    let lost = out
        .tasks
        .iter()
        .find(|t| t.step == "PublishDockerImages" && t.item["version"] == "4.28.2")
        .unwrap();
    assert_eq!(lost.status, Status::Failed);
    assert!(
        lost.reason
            .as_deref()
            .unwrap()
            .contains("its stage was lost")
    );
    assert_eq!(run.failed.len(), 3);
    assert_eq!(
        run.results.to_string(),
        "s3://art/demo/runs/run-1/results.json"
    );
}

#[tokio::test]
async fn a_caught_map_failure_is_named_in_every_lost_task() {
    let p = example();
    let objects = FakeObjects::new();
    handle(
        NormalizeEvent {
            input: input(&p),
            execution: EXEC.into(),
            results: json!({"Error": "States.DataLimitExceeded", "Cause": "too big"}),
        },
        &p,
        &objects,
        &cfg(),
    )
    .await
    .unwrap();
    let out = results_object(&objects);
    assert_eq!((out.summary.total, out.summary.failed), (11, 11));
    for t in &out.tasks {
        let r = t.reason.as_deref().unwrap();
        assert!(
            r.contains("lost") && r.contains("States.DataLimitExceeded: too big"),
            "{r}"
        );
    }
}

/// The old design carried every record through the payload and lost them all past 256 KiB: 300
/// failures with 2 KiB log tails are ~700 KB of records. All are kept; the payload is not.
#[tokio::test]
async fn records_past_the_old_payload_bound_are_all_kept_and_the_payload_stays_small() {
    let p = example();
    let objects = FakeObjects::new();
    let versions: Vec<String> = (1..=60).map(|i| format!("5.{i}.0")).collect();
    let inp = BuildInput::from_json(
        &p,
        &json!({"versions": versions, "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"],
                "steps": ["MakeBinaryPackage", "MakeSourceTarball", "PublishSourceTarball"]}),
        chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
    )
    .unwrap();
    let tasks = inp.requested_tasks(&p).unwrap();
    assert!(tasks.len() >= 240, "{}", tasks.len());
    let tail = "x".repeat(2048);
    for (step, it) in tasks.clone() {
        record(&p, &objects, &step, it, script_failed("i-f", &tail)).await;
    }
    let run = handle(
        NormalizeEvent {
            input: inp,
            execution: EXEC.into(),
            results: json!([]),
        },
        &p,
        &objects,
        &cfg(),
    )
    .await
    .unwrap();
    let out = results_object(&objects);
    assert_eq!(out.tasks.len(), tasks.len());
    assert!(
        out.tasks
            .iter()
            .all(|t| t.status == Status::Failed && t.instance_id.is_some())
    );
    let all = serde_json::to_string(&out).unwrap().len();
    assert!(
        all > 256 * 1024,
        "the records ({all} bytes) outgrow the old payload bound"
    );
    assert_eq!(run.failed.len(), FAILED_IN_PAYLOAD);
    assert_eq!(run.summary.failed, tasks.len());
    let payload = serde_json::to_string(&run).unwrap().len();
    assert!(
        payload < 128 * 1024,
        "NormalizeResults' output is {payload} bytes"
    );
}

#[tokio::test]
async fn a_bad_input_is_input_invalid() {
    let p = example();
    let mut inp = input(&p);
    inp.steps = vec!["MakeBinaryPackage".into()];
    inp.axes
        .insert("distro".into(), vec!["ubuntu-24.04-noble".into()]);
    inp.axes.insert("version".into(), vec!["4.28.2".into()]);
    let e = handle(
        NormalizeEvent {
            input: inp,
            execution: EXEC.into(),
            results: json!([]),
        },
        &p,
        &FakeObjects::new(),
        &cfg(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.name.as_str(), "Input.Invalid");
    assert!(e.message.contains("ubuntu-24.04-noble"), "{}", e.message);
}

fn history(objects: &FakeObjects, step: &str, it: &Item) -> Option<DurationHistory> {
    let key = format!("demo/{}", duration_key(step, it));
    objects
        .body("art", &key)
        .map(|b| serde_json::from_slice(&b).unwrap())
}

fn succeeded_in(iid: &str, elapsed_s: f64) -> Value {
    let mut v = ok(iid);
    v["outcome"]["elapsed_s"] = json!(elapsed_s);
    v
}

#[tokio::test]
async fn a_succeeded_task_keeps_its_last_durations_outside_the_run_and_failures_do_not() {
    let p = example();
    let objects = FakeObjects::new();
    let cfg = cfg();
    let step = p.step("MakeBinaryPackage").unwrap();
    let v = item(&[("version", "4.28.2"), ("distro", "debian-12-bookworm")]);
    let other = item(&[("version", "4.28.2"), ("distro", "ubuntu-24.04-noble")]);

    // No history yet: the step's `expected_duration` setting (40m in the example).
    assert_eq!(
        expected_duration(&objects, &cfg, step, &v).await,
        Duration::from_secs(40 * 60)
    );
    // A step without the setting: the documented fallback.
    let tarball = p.step("MakeSourceTarball").unwrap();
    assert_eq!(tarball.expected_duration, None);
    assert_eq!(
        expected_duration(&objects, &cfg, tarball, &item(&[("version", "4.28.2")])).await,
        DEFAULT_EXPECTED_DURATION
    );

    for (n, s) in [900.0, 100.0, 200.0, 300.0, 400.0, 500.0]
        .into_iter()
        .enumerate()
    {
        record(
            &p,
            &objects,
            "MakeBinaryPackage",
            v.clone(),
            succeeded_in(&format!("i-{n}"), s),
        )
        .await;
    }
    // A failed run says nothing about how long a build takes.
    record(
        &p,
        &objects,
        "MakeBinaryPackage",
        v.clone(),
        script_failed("i-f", "boom"),
    )
    .await;
    let h = history(&objects, "MakeBinaryPackage", &v).expect("history written");
    assert_eq!(
        h.elapsed_s,
        vec![100.0, 200.0, 300.0, 400.0, 500.0],
        "the last 5, oldest first"
    );
    assert_eq!(
        expected_duration(&objects, &cfg, step, &v).await,
        Duration::from_secs(300),
        "the median of the kept values"
    );
    // Per (step, axis values): another distro has its own (none yet).
    assert!(history(&objects, "MakeBinaryPackage", &other).is_none());
    assert_eq!(
        expected_duration(&objects, &cfg, step, &other).await,
        Duration::from_secs(40 * 60)
    );
    // The entry lives beside the runs, not in one: it outlives them.
    let keys = objects.keys("art");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("demo/durations/MakeBinaryPackage/")),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("runs/") && k.contains("durations")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn local_durations_are_kept_in_pipeline_seconds_and_a_bad_entry_is_replaced() {
    let p = example();
    let objects = FakeObjects::new();
    let mut cfg = cfg();
    cfg.time_scale = 100.0;
    let t = item(&[("version", "5.1.0")]);
    let key = format!("demo/{}", duration_key("MakeSourceTarball", &t));
    Objects::put(&objects, "art", &key, b"not json")
        .await
        .unwrap();
    let c = record::handle(
        RecordEvent {
            step: "MakeSourceTarball".into(),
            item: t.clone(),
            execution: EXEC.into(),
            result: succeeded_in("i-1", 1.5),
        },
        &p,
        &objects,
        &cfg,
    )
    .await
    .unwrap();
    assert_eq!(c.status, Status::Succeeded);
    let h = history(&objects, "MakeSourceTarball", &t).unwrap();
    assert_eq!(
        h.elapsed_s,
        vec![150.0],
        "1.5 s at time scale 100 is 150 pipeline seconds"
    );
}
