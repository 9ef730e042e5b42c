//! normalize-results against the example pipeline.

use std::path::Path;

use boa_core::task::WorkerFailureCause;
use boa_core::{BuildInput, Pipeline, Status};
use normalize_results::{NormalizeEvent, handle};
use serde_json::{Value, json};

fn example() -> Pipeline {
    Pipeline::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn input(p: &Pipeline) -> BuildInput {
    BuildInput::from_json(
        p,
        &json!({"versions": ["4.28.2", "5.1.0"], "distros": ["debian-12-bookworm", "ubuntu-24.04-noble"]}),
        chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
    )
    .unwrap()
}

fn ok(step: &str, item: Value, iid: &str) -> Value {
    json!({"step": step, "item": item, "attempt": 1,
           "prepare": {"status": "pending", "reason": "launched", "launched": [iid]},
           "outcome": {"status": "succeeded", "instance_id": iid, "log_stream": format!("w_{iid}"), "elapsed_s": 2.0}})
}

fn skipped_dep(step: &str, item: Value) -> Value {
    json!({"step": step, "item": item,
           "prepare": {"status": "skipped", "skip": "dependency-failed", "reason": "dependency MakeBinaryPackage: none of its 2 tasks succeeded"},
           "outcome": {"status": "skipped"}})
}

fn event(p: &Pipeline, results: Value) -> NormalizeEvent {
    let input = input(p);
    let plan = input.plan(p).unwrap();
    NormalizeEvent {
        input,
        plan,
        results,
    }
}

#[test]
fn every_requested_task_appears_exactly_once_including_lost_and_failed_map() {
    let p = example();
    let v1 = json!({"version": "4.28.2"});
    let v2 = json!({"version": "5.1.0"});
    let cause = serde_json::to_string(&WorkerFailureCause {
        instance_id: "i-b".into(),
        log_stream: "w_i-b".into(),
        attempt: 2,
        elapsed_s: 9.0,
        status: "exit status 2".into(),
        log_tail: "make: *** [all] Error 2".into(),
    })
    .unwrap();
    let results = json!([
        // The second version's state first: states are matched by their item, not position.
        {"item": {"version": "5.1.0", "distro": ["debian-12-bookworm", "ubuntu-24.04-noble"]}, "results": {
            "MakeSourceTarball": ok("MakeSourceTarball", v2.clone(), "i-s2"),
            "MakeBinaryPackage": {"Error": "States.Runtime", "Cause": "the Map failed\nsecond line"},
            "PublishBinaryPackages": skipped_dep("PublishBinaryPackages", v2.clone()),
            "PublishSourceTarball": skipped_dep("PublishSourceTarball", v2.clone()),
            "PublishDockerImages": skipped_dep("PublishDockerImages", v2.clone())
        }},
        {"item": {"version": "4.28.2", "distro": ["debian-12-bookworm"]}, "results": {
            "MakeSourceTarball": ok("MakeSourceTarball", v1.clone(), "i-s1"),
            "MakeBinaryPackage": [{"Error": "Worker.ScriptFailed", "Cause": cause}],
            "PublishBinaryPackages": ok("PublishBinaryPackages", v1.clone(), "i-p"),
            "PublishSourceTarball": ok("PublishSourceTarball", v1.clone(), "i-t")
            // PublishDockerImages: lost
        }}
    ]);
    let out = handle(event(&p, results), &p).unwrap();
    let want = input(&p).requested_tasks(&p).unwrap();
    let got: Vec<_> = out
        .tasks
        .iter()
        .map(|t| (t.step.clone(), t.item.clone()))
        .collect();
    assert_eq!(got, want, "one record per requested task, in plan order");
    assert_eq!(out.summary.total, 11);
    let find = |step: &str, v: &str, d: Option<&str>| {
        out.tasks
            .iter()
            .find(|t| {
                t.step == step
                    && t.item["version"] == v
                    && d.is_none_or(|d| t.item.get("distro").map(String::as_str) == Some(d))
            })
            .unwrap()
    };
    let bin = find("MakeBinaryPackage", "4.28.2", Some("debian-12-bookworm"));
    assert_eq!(bin.status, Status::Failed);
    assert_eq!(bin.instance_id.as_deref(), Some("i-b"));
    assert_eq!(bin.attempts, Some(3));
    let lost = find("PublishDockerImages", "4.28.2", None);
    assert_eq!(lost.status, Status::Failed);
    assert!(
        lost.reason
            .as_deref()
            .unwrap()
            .contains("its stage was lost"),
        "{lost:?}"
    );
    for d in ["debian-12-bookworm", "ubuntu-24.04-noble"] {
        let t = find("MakeBinaryPackage", "5.1.0", Some(d));
        assert_eq!(t.status, Status::Failed);
        assert_eq!(t.error.as_deref(), Some("States.Runtime"));
    }
    assert_eq!(
        find("PublishDockerImages", "5.1.0", None).status,
        Status::Skipped
    );
    assert_eq!(
        find("PublishSourceTarball", "4.28.2", None).status,
        Status::Succeeded
    );
    assert_eq!(
        (
            out.summary.succeeded,
            out.summary.failed,
            out.summary.skipped
        ),
        (4, 4, 3)
    );
}

#[test]
fn fan_out_elements_without_items_are_matched_by_plan_order() {
    let p = example();
    let mut inp = input(&p);
    inp.steps = vec!["MakeBinaryPackage".into()];
    let plan = inp.plan(&p).unwrap();
    let results = json!([
        {"results": {"MakeBinaryPackage": [ok("MakeBinaryPackage", json!({"version": "4.28.2", "distro": "debian-12-bookworm"}), "i-1")]}},
        {"results": {"MakeBinaryPackage": [
            {"Error": "States.Timeout", "Cause": "lost worker"},
            ok("MakeBinaryPackage", json!({"version": "5.1.0", "distro": "ubuntu-24.04-noble"}), "i-3")
        ]}}
    ]);
    let out = handle(
        NormalizeEvent {
            input: inp,
            plan,
            results,
        },
        &p,
    )
    .unwrap();
    let s: Vec<(String, Status)> = out
        .tasks
        .iter()
        .map(|t| (t.item["distro"].clone(), t.status))
        .collect();
    assert_eq!(
        s,
        [
            ("debian-12-bookworm".to_string(), Status::Succeeded),
            ("debian-12-bookworm".to_string(), Status::Failed),
            ("ubuntu-24.04-noble".to_string(), Status::Succeeded),
        ]
    );
    assert_eq!(out.tasks[1].error.as_deref(), Some("States.Timeout"));
}

#[test]
fn a_caught_map_failure_marks_every_task_failed_naming_the_error() {
    let p = example();
    let out = handle(
        event(
            &p,
            json!({"Error": "States.DataLimitExceeded", "Cause": "too big"}),
        ),
        &p,
    )
    .unwrap();
    assert_eq!(out.summary.total, 11);
    assert_eq!(out.summary.failed, 11);
    for t in &out.tasks {
        let r = t.reason.as_deref().unwrap();
        assert!(
            r.contains("lost") && r.contains("States.DataLimitExceeded: too big"),
            "{r}"
        );
    }
}

#[test]
fn a_bad_input_is_input_invalid() {
    let p = example();
    let mut ev = event(&p, json!([]));
    ev.input.steps = vec!["MakeBinaryPackage".into()];
    ev.input
        .axes
        .insert("distro".into(), vec!["ubuntu-24.04-noble".into()]);
    ev.input
        .axes
        .insert("version".into(), vec!["4.28.2".into()]);
    let e = handle(ev, &p).unwrap_err();
    assert_eq!(e.name.as_str(), "Input.Invalid");
    assert!(e.message.contains("ubuntu-24.04-noble"), "{}", e.message);
}
