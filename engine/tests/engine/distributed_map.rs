//! Distributed Map: items from an object (ItemReader) or ItemsPath, child executions with their
//! own history, MaxConcurrency, tolerated failures, ResultWriter files, stop, parse errors.

use std::time::Duration;

use boa_core::history_event::EventType;
use engine::{EngineConfig, ExecutionStatus};
use serde_json::{Value, json};

use crate::common::*;

/// The generator's shape: versions read from a JSON object, one child per version running a
/// Lambda, results written under `results_prefix`.
fn versions_machine(extra: Value) -> Value {
    let mut map = json!({
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                       "ReaderConfig": {"InputType": "JSON"},
                       "Parameters": {"Bucket": "my-bucket", "Key.$": "$.plan_key"}},
        "ItemSelector": {"item": {"version.$": "$$.Map.Item.Value.version"}, "input.$": "$.input"},
        "MaxConcurrency": 2,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Prepare",
            "States": {
                "Prepare": {"Type": "Pass", "Parameters": {
                    "version.$": "$.item.version", "input.$": "$.input",
                    "execution.$": "$$.Execution.Id"}, "Next": "Build"},
                "Build": {"Type": "Task", "Resource": lambda("build"), "End": true}
            }
        },
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                         "Parameters": {"Bucket": "my-bucket", "Prefix.$": "$.results_prefix"}},
        "ResultPath": "$.map_run",
        "Next": "Done"
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            map.as_object_mut().unwrap().remove(k);
        } else {
            map[k] = v.clone();
        }
    }
    json!({"StartAt": "ForEachVersion", "States": {
        "ForEachVersion": map,
        "Done": {"Type": "Succeed"}}})
}

/// Fails the build of version "3", echoes the others after a short pause.
fn failing_build() -> std::sync::Arc<Fake> {
    Fake::with_delay(Duration::from_millis(30), |_, p, _| {
        if p["version"] == json!("3") {
            Err(fail("Build.Failed", "version 3 does not compile"))
        } else {
            Ok(json!({"built": p["version"]}))
        }
    })
}

fn write_plan(folder: &std::path::Path, n: usize) {
    let items: Vec<Value> = (1..=n).map(|v| json!({"version": v.to_string()})).collect();
    std::fs::create_dir_all(folder.join("plans")).unwrap();
    std::fs::write(
        folder.join("plans/plan.json"),
        serde_json::to_vec(&items).unwrap(),
    )
    .unwrap();
}

fn input() -> Value {
    json!({"plan_key": "plans/plan.json", "results_prefix": "results", "input": {"run": 7}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerated_failures_write_the_result_files() {
    let folder = temp_folder("dmap");
    write_plan(&folder, 5);
    let fake = failing_build();
    let e = engine_with_objects(fake.clone(), &folder, 25_000);
    let def = versions_machine(json!({"ToleratedFailurePercentage": 100}));
    let r = run(&e, &def, input()).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");

    // The Map's result is the small ResultWriter object, at ResultPath.
    let out = r.output.clone().unwrap();
    let map_run_arn = out["map_run"]["MapRunArn"].as_str().unwrap().to_string();
    assert!(
        map_run_arn.starts_with(
            "arn:aws:states:us-east-1:123456789012:mapRun:test-machine/ForEachVersion:"
        ),
        "{map_run_arn}"
    );
    let run_id = map_run_arn.rsplit(':').next().unwrap();
    let manifest_key = format!("results/{run_id}/manifest.json");
    assert_eq!(
        out["map_run"]["ResultWriterDetails"],
        json!({"Bucket": "my-bucket", "Key": manifest_key})
    );
    assert_eq!(out["input"], json!({"run": 7}));

    // manifest.json lists the files written.
    let manifest = read_json(&folder.join(&manifest_key));
    assert_eq!(manifest["DestinationBucket"], json!("my-bucket"));
    assert_eq!(manifest["MapRunArn"], json!(map_run_arn));
    assert_eq!(manifest["ResultFiles"]["PENDING"], json!([]));
    for (status, n) in [("SUCCEEDED", 4), ("FAILED", 1)] {
        let files = manifest["ResultFiles"][status].as_array().unwrap();
        assert_eq!(files.len(), 1, "{status}");
        let key = format!("results/{run_id}/{status}_0.json");
        assert_eq!(files[0]["Key"], json!(key));
        let size = std::fs::metadata(folder.join(&key)).unwrap().len();
        assert_eq!(files[0]["Size"], json!(size));
        let entries = read_json(&folder.join(&key));
        assert_eq!(entries.as_array().unwrap().len(), n, "{status}");
    }
    assert!(
        !folder
            .join(format!("results/{run_id}/PENDING_0.json"))
            .exists()
    );

    // FAILED_0.json: the failed child with its error and cause.
    let failed = read_json(&folder.join(format!("results/{run_id}/FAILED_0.json")));
    let f = &failed[0];
    assert_eq!(f["Status"], json!("FAILED"));
    assert_eq!(f["Error"], json!("Build.Failed"));
    assert_eq!(f["Cause"], json!("version 3 does not compile"));
    let f_input: Value = serde_json::from_str(f["Input"].as_str().unwrap()).unwrap();
    assert_eq!(
        f_input,
        json!({"item": {"version": "3"}, "input": {"run": 7}})
    );
    let failed_arn = f["ExecutionArn"].as_str().unwrap();
    assert!(failed_arn.starts_with(
        "arn:aws:states:us-east-1:123456789012:execution:test-machine/ForEachVersion:"
    ));
    assert_eq!(
        f["StateMachineArn"],
        json!("arn:aws:states:us-east-1:123456789012:stateMachine:test-machine/ForEachVersion")
    );
    for k in ["Name", "StartDate", "StopDate"] {
        assert!(f[k].is_string(), "{k} in {f}");
    }
    // SUCCEEDED_0.json: the others, in item order, with their outputs.
    let ok = read_json(&folder.join(format!("results/{run_id}/SUCCEEDED_0.json")));
    let versions: Vec<Value> = ok
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(x["Status"], json!("SUCCEEDED"));
            serde_json::from_str::<Value>(x["Output"].as_str().unwrap()).unwrap()["built"].clone()
        })
        .collect();
    assert_eq!(
        versions,
        vec![json!("1"), json!("2"), json!("4"), json!("5")]
    );

    // MaxConcurrency 2 bounds the children running at once.
    assert_eq!(fake.calls().len(), 5);
    assert!(fake.max_in_flight.load(std::sync::atomic::Ordering::SeqCst) <= 2);

    // The parent has no per-item events.
    let h = e.history(&r.execution_arn).unwrap();
    let kinds: Vec<EventType> = h.iter().map(|x| x.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            EventType::ExecutionStarted,
            EventType::MapStateEntered,
            EventType::MapStateStarted,
            EventType::MapRunStarted,
            EventType::MapRunSucceeded,
            EventType::MapStateSucceeded,
            EventType::MapStateExited,
            EventType::SucceedStateEntered,
            EventType::SucceedStateExited,
            EventType::ExecutionSucceeded
        ]
    );
    assert_eq!(h[3].details["mapRunArn"], json!(map_run_arn));

    // The Map Run and its children, each with its own history.
    let runs = e.map_runs(&r.execution_arn).unwrap();
    assert_eq!(runs.len(), 1);
    let mr = &runs[0];
    assert_eq!(mr.map_run_arn, map_run_arn);
    assert_eq!(mr.status, ExecutionStatus::Succeeded);
    assert_eq!(mr.max_concurrency, 2);
    assert_eq!(mr.item_counts.total, 5);
    assert_eq!(mr.item_counts.succeeded, 4);
    assert_eq!(mr.item_counts.failed, 1);
    assert_eq!(mr.item_counts.pending, 0);
    let children = e.child_executions(&map_run_arn).unwrap();
    assert_eq!(children.len(), 5);
    let mut child_transitions = 0;
    for (i, c) in children.iter().enumerate() {
        assert_eq!(c.map_run_arn.as_deref(), Some(map_run_arn.as_str()));
        let ch = e.history(&c.execution_arn).unwrap();
        assert_eq!(ch[0].kind, EventType::ExecutionStarted);
        assert!(
            ch.iter()
                .any(|x| x.kind == EventType::LambdaFunctionScheduled)
        );
        let last = ch.last().unwrap();
        if i == 2 {
            assert_eq!(c.execution_arn, failed_arn);
            assert_eq!(c.status, ExecutionStatus::Failed);
            assert_eq!(last.kind, EventType::ExecutionFailed);
            assert_eq!(last.details["error"], json!("Build.Failed"));
        } else {
            assert_eq!(c.status, ExecutionStatus::Succeeded);
            assert_eq!(last.kind, EventType::ExecutionSucceeded);
        }
        child_transitions += 2;
    }
    // `$$.Execution.Id` in a child is the child's ARN.
    let mut seen: Vec<String> = fake
        .calls()
        .iter()
        .map(|c| c.payload["execution"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut arns: Vec<String> = children.iter().map(|c| c.execution_arn.clone()).collect();
    arns.sort();
    assert_eq!(seen, arns);

    // Listing: children only when asked for.
    assert_eq!(e.list_executions(None).len(), 1);
    assert_eq!(e.list_executions_including_children(None).len(), 6);
    // Counts: the parent's own, plus every child's.
    assert_eq!(r.own_counts.history_events, h.len() as u64);
    assert_eq!(r.own_counts.state_transitions, 2);
    assert_eq!(r.counts.state_transitions, 2 + child_transitions);
    assert!(r.counts.history_events > r.own_counts.history_events + 5 * 6);
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn default_tolerance_fails_the_map_run_and_leaves_items_pending() {
    let folder = temp_folder("dmap-fail");
    write_plan(&folder, 6);
    let e = engine_with_objects(failing_build(), &folder, 25_000);
    // One child at a time: versions 1 and 2 succeed, 3 fails, 4-6 never start.
    let def = versions_machine(json!({"MaxConcurrency": 1}));
    let r = run(&e, &def, input()).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(
        r.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    let h = e.history(&r.execution_arn).unwrap();
    let run_failed = h
        .iter()
        .find(|x| x.kind == EventType::MapRunFailed)
        .expect("MapRunFailed");
    assert_eq!(
        run_failed.details["error"],
        json!("States.ExceedToleratedFailureThreshold")
    );
    assert!(h.iter().any(|x| x.kind == EventType::MapStateFailed));
    let mr = &e.map_runs(&r.execution_arn).unwrap()[0];
    assert_eq!(mr.status, ExecutionStatus::Failed);
    assert_eq!(
        (
            mr.item_counts.succeeded,
            mr.item_counts.failed,
            mr.item_counts.pending
        ),
        (2, 1, 3)
    );
    // The results are written all the same, the unstarted items as PENDING.
    let run_id = mr.map_run_arn.rsplit(':').next().unwrap();
    let manifest = read_json(&folder.join(format!("results/{run_id}/manifest.json")));
    assert_eq!(
        manifest["ResultFiles"]["PENDING"].as_array().unwrap().len(),
        1
    );
    let pending = read_json(&folder.join(format!("results/{run_id}/PENDING_0.json")));
    let versions: Vec<Value> = pending
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            serde_json::from_str::<Value>(p["Input"].as_str().unwrap()).unwrap()["item"]["version"]
                .clone()
        })
        .collect();
    assert_eq!(versions, vec![json!("4"), json!("5"), json!("6")]);

    // A tolerated count of 1 lets the same run succeed; the Map is catchable otherwise.
    let r = run(
        &e,
        &versions_machine(json!({"MaxConcurrency": 1, "ToleratedFailureCount": 1})),
        input(),
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    let caught = versions_machine(json!({"MaxConcurrency": 1,
        "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Done",
                   "ResultPath": "$.error"}]}));
    let r = run(&e, &caught, input()).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(
        r.output.unwrap()["error"]["Error"],
        json!("States.ExceedToleratedFailureThreshold")
    );
    let _ = std::fs::remove_dir_all(&folder);
}

/// A Choice loop that runs `$.loops` times: 4 events per turn.
fn looping_processor(mode: &str) -> Value {
    let mut p = json!({
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Parameters": {"n": 0, "loops.$": "$.loops", "id.$": "$.id"}, "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.n", "NumericLessThanPath": "$.loops", "Next": "Step"}],
                "Default": "Done"},
            "Step": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)", "loops.$": "$.loops", "id.$": "$.id"}, "Next": "Check"},
            "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id"}, "End": true}
        }
    });
    if mode == "DISTRIBUTED" {
        p["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_child_has_its_own_history_limit() {
    let folder = temp_folder("dmap-limit");
    let e = engine_with_objects(Fake::echo(), &folder, 200);
    let items: Vec<Value> = (0..60).map(|i| json!({"id": i, "loops": 3})).collect();
    let machine = |mode: &str, extra: Value| {
        let mut m = json!({"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 8,
                           "ItemProcessor": looping_processor(mode), "End": true});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        single(m)
    };
    // Inline, 60 items x ~20 events overflow the 200-event history.
    let inline = run(&e, &machine("INLINE", json!({})), json!({"items": items})).await;
    assert_eq!(inline.status, ExecutionStatus::Failed);
    assert_eq!(inline.error.as_deref(), Some("States.Runtime"));

    // Distributed, each child has its own 200 events; without ResultWriter the result is the
    // array of outputs in item order.
    let r = run(
        &e,
        &machine("DISTRIBUTED", json!({})),
        json!({"items": items}),
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    let ids: Vec<Value> = r
        .output
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, (0..60).map(Value::from).collect::<Vec<_>>());
    assert!(r.own_counts.history_events < 20);
    assert!(r.counts.history_events > 200);

    // A child that loops past 200 events fails alone (tolerated here).
    let mut items2 = items.clone();
    items2[7] = json!({"id": 7, "loops": 100});
    let r = run(
        &e,
        &machine("DISTRIBUTED", json!({"ToleratedFailureCount": 1})),
        json!({"items": items2}),
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out[7]["Status"], json!("FAILED"));
    assert_eq!(out[7]["Error"], json!("States.Runtime"));
    assert!(out[7]["Cause"].as_str().unwrap().contains("history"));
    assert_eq!(out[8]["id"], json!(8));
    let child = e.history(out[7]["ExecutionArn"].as_str().unwrap()).unwrap();
    assert_eq!(child.len(), 201);
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn list_objects_reader() {
    let folder = temp_folder("dmap-list");
    for k in ["in/b.txt", "in/a.txt", "in/sub/c.txt", "other/d.txt"] {
        let p = folder.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, k).unwrap();
    }
    let e = engine_with_objects(Fake::echo(), &folder, 25_000);
    let def = single(json!({"Type": "Map", "End": true,
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                       "Parameters": {"Bucket": "b", "Prefix": "in/"}},
        "ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "size.$": "$$.Map.Item.Value.Size",
                         "index.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                          "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}));
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{r:?}");
    assert_eq!(
        r.output.unwrap(),
        json!([{"key": "in/a.txt", "size": 8, "index": 0},
               {"key": "in/b.txt", "size": 8, "index": 1},
               {"key": "in/sub/c.txt", "size": 12, "index": 2}])
    );
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn reader_without_object_store_fails_naming_it() {
    let e = engine(Fake::echo(), 1000.0);
    let r = run(&e, &versions_machine(json!({})), input()).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert!(r.cause.unwrap().contains("object store"));
    // A missing object is States.ItemReaderFailed.
    let folder = temp_folder("dmap-missing");
    let e = engine_with_objects(Fake::echo(), &folder, 25_000);
    let r = run(&e, &versions_machine(json!({})), input()).await;
    assert_eq!(r.error.as_deref(), Some("States.ItemReaderFailed"));
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_parent_aborts_the_children() {
    let folder = temp_folder("dmap-stop");
    write_plan(&folder, 4);
    let fake = Fake::with_delay(Duration::from_secs(3600), |_, p, _| Ok(p.clone()));
    let e = engine_with_objects(fake.clone(), &folder, 25_000);
    let h = e
        .start_execution("m", &versions_machine(json!({})), None, input())
        .unwrap();
    for _ in 0..1000 {
        if fake.calls().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.calls().len(), 2);
    e.stop_execution(h.arn(), Some("User.Stop"), None).unwrap();
    let r = h.wait().await;
    assert_eq!(r.status, ExecutionStatus::Aborted);
    let mr = &e.map_runs(&r.execution_arn).unwrap()[0];
    assert_eq!(mr.status, ExecutionStatus::Aborted);
    assert_eq!((mr.item_counts.aborted, mr.item_counts.pending), (2, 2));
    for c in e.child_executions(&mr.map_run_arn).unwrap() {
        assert_eq!(c.status, ExecutionStatus::Aborted);
        let last = e.history(&c.execution_arn).unwrap().pop().unwrap();
        assert_eq!(last.kind, EventType::ExecutionAborted);
    }
    let kinds: Vec<EventType> = e
        .history(&r.execution_arn)
        .unwrap()
        .iter()
        .map(|x| x.kind.clone())
        .collect();
    assert!(kinds.contains(&EventType::MapRunAborted), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventType::ExecutionAborted));
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test]
async fn parse_errors_name_the_bad_field() {
    let e = engine(Fake::echo(), 1.0);
    let err = |extra: Value| {
        e.start_execution("m", &versions_machine(extra), None, input())
            .unwrap_err()
            .to_string()
    };
    let inline = |field: &str, v: Value| {
        let mut m = json!({"Type": "Map", "End": true,
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}});
        m[field] = v;
        e.start_execution("m", &single(m), None, json!([]))
            .unwrap_err()
            .to_string()
    };
    for (extra, want) in [
        (
            json!({"ItemBatcher": {"MaxItemsPerBatch": 10}}),
            "ItemBatcher",
        ),
        (
            json!({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                               "Parameters": {"Bucket": "b", "Key": "k"}}}),
            "ReaderConfig.InputType",
        ),
        (
            json!({"ItemReader": {"Resource": "arn:aws:states:::dynamodb:scan",
                               "Parameters": {"Bucket": "b"}}}),
            "ItemReader.Resource",
        ),
        (
            json!({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                               "ReaderConfig": {"InputType": "JSON"},
                               "Parameters": {"Bucket": "b"}}}),
            "ItemReader.Parameters.Key",
        ),
        (json!({"ItemsPath": "$.items"}), "ItemsPath and ItemReader"),
        (
            json!({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                 "Parameters": {"Prefix": "p"}}}),
            "ResultWriter.Parameters.Bucket",
        ),
        (
            json!({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject",
                                 "WriterConfig": {"OutputType": "JSONL"},
                                 "Parameters": {"Bucket": "b"}}}),
            "ResultWriter.WriterConfig",
        ),
        (
            json!({"ToleratedFailurePercentage": 150}),
            "ToleratedFailurePercentage",
        ),
        (
            json!({"ToleratedFailureCount": 1, "ToleratedFailureCountPath": "$.n"}),
            "ToleratedFailureCountPath",
        ),
        (
            json!({"ToleratedFailureCount": -1}),
            "ToleratedFailureCount",
        ),
        (json!({"Label": "has space"}), "Label"),
    ] {
        let msg = err(extra.clone());
        assert!(
            msg.contains(want) && msg.contains("ForEachVersion"),
            "{extra}: {msg}"
        );
    }
    let mut def = versions_machine(json!({}));
    def["States"]["ForEachVersion"]["ItemProcessor"]["ProcessorConfig"] =
        json!({"Mode": "DISTRIBUTED"});
    let msg = e
        .start_execution("m", &def, None, input())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ProcessorConfig.ExecutionType"), "{msg}");
    def["States"]["ForEachVersion"]["ItemProcessor"]["ProcessorConfig"] =
        json!({"Mode": "PARALLEL"});
    let msg = e
        .start_execution("m", &def, None, input())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("ProcessorConfig.Mode"), "{msg}");
    // Distributed-only fields in an INLINE Map.
    for f in [
        "ToleratedFailurePercentage",
        "ToleratedFailureCount",
        "Label",
    ] {
        let v = if f == "Label" { json!("l") } else { json!(1) };
        let msg = inline(f, v);
        assert!(msg.contains(f) && msg.contains("Distributed"), "{msg}");
    }
}

#[tokio::test]
async fn config_without_objects_still_builds_with_default() {
    // EngineConfig gained `objects`; `..Default::default()` callers are unchanged.
    let c = EngineConfig {
        time_scale: 10.0,
        ..EngineConfig::default()
    };
    assert!(c.objects.is_none());
    assert!(format!("{c:?}").contains("time_scale"));
}
