//! Conformance tests for state types, input/output processing, the context object, intrinsics,
//! history and counts.

use crate::common::*;
use boa_core::history_event::EventType;
use engine::{EngineConfig, ExecutionStatus};
use serde_json::{Value, json};
use std::time::Duration;

fn choice_machine(rule: Value) -> Value {
    let mut rule = rule;
    rule["Next"] = json!("Yes");
    json!({
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [rule], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": "yes", "End": true},
            "No": {"Type": "Pass", "Result": "no", "End": true}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_choice_operator() {
    let e = engine(Fake::echo(), 1.0);
    let t1 = "2024-01-01T00:00:00Z";
    let t2 = "2024-06-01T12:00:00Z";
    let input = json!({"s": "b", "n": 5, "b": true, "t": t1, "null": null,
                       "o": {"s": "b", "n": 5, "b": true, "t": t1, "a": "a", "big": 9, "late": t2}});
    let cases: Vec<(Value, bool)> = vec![
        (json!({"Variable": "$.s", "StringEquals": "b"}), true),
        (json!({"Variable": "$.s", "StringEquals": "c"}), false),
        (json!({"Variable": "$.n", "StringEquals": "5"}), false),
        (
            json!({"Variable": "$.s", "StringEqualsPath": "$.o.s"}),
            true,
        ),
        (json!({"Variable": "$.s", "StringLessThan": "c"}), true),
        (json!({"Variable": "$.s", "StringLessThan": "b"}), false),
        (
            json!({"Variable": "$.s", "StringLessThanPath": "$.o.a"}),
            false,
        ),
        (json!({"Variable": "$.s", "StringGreaterThan": "a"}), true),
        (
            json!({"Variable": "$.s", "StringGreaterThanPath": "$.o.a"}),
            true,
        ),
        (
            json!({"Variable": "$.s", "StringLessThanEquals": "b"}),
            true,
        ),
        (
            json!({"Variable": "$.s", "StringLessThanEqualsPath": "$.o.a"}),
            false,
        ),
        (
            json!({"Variable": "$.s", "StringGreaterThanEquals": "c"}),
            false,
        ),
        (
            json!({"Variable": "$.s", "StringGreaterThanEqualsPath": "$.o.s"}),
            true,
        ),
        (
            json!({"Variable": "$.o.late", "StringMatches": "2024-*T12:*"}),
            true,
        ),
        (
            json!({"Variable": "$.o.late", "StringMatches": "2023*"}),
            false,
        ),
        (json!({"Variable": "$.n", "NumericEquals": 5.0}), true),
        (json!({"Variable": "$.n", "NumericEquals": 6}), false),
        (json!({"Variable": "$.s", "NumericEquals": 5}), false),
        (
            json!({"Variable": "$.n", "NumericEqualsPath": "$.o.n"}),
            true,
        ),
        (json!({"Variable": "$.n", "NumericLessThan": 6}), true),
        (json!({"Variable": "$.n", "NumericLessThan": 5}), false),
        (
            json!({"Variable": "$.n", "NumericLessThanPath": "$.o.big"}),
            true,
        ),
        (json!({"Variable": "$.n", "NumericGreaterThan": 4.5}), true),
        (
            json!({"Variable": "$.n", "NumericGreaterThanPath": "$.o.big"}),
            false,
        ),
        (json!({"Variable": "$.n", "NumericLessThanEquals": 5}), true),
        (
            json!({"Variable": "$.n", "NumericLessThanEqualsPath": "$.o.n"}),
            true,
        ),
        (
            json!({"Variable": "$.n", "NumericGreaterThanEquals": 6}),
            false,
        ),
        (
            json!({"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.o.n"}),
            true,
        ),
        (json!({"Variable": "$.b", "BooleanEquals": true}), true),
        (json!({"Variable": "$.b", "BooleanEquals": false}), false),
        (
            json!({"Variable": "$.b", "BooleanEqualsPath": "$.o.b"}),
            true,
        ),
        (
            json!({"Variable": "$.t", "TimestampEquals": "2024-01-01T01:00:00+01:00"}),
            true,
        ),
        (
            json!({"Variable": "$.t", "TimestampEqualsPath": "$.o.t"}),
            true,
        ),
        (json!({"Variable": "$.t", "TimestampLessThan": t2}), true),
        (
            json!({"Variable": "$.t", "TimestampLessThanPath": "$.o.late"}),
            true,
        ),
        (
            json!({"Variable": "$.t", "TimestampGreaterThan": t2}),
            false,
        ),
        (
            json!({"Variable": "$.t", "TimestampGreaterThanPath": "$.o.late"}),
            false,
        ),
        (
            json!({"Variable": "$.t", "TimestampLessThanEquals": t1}),
            true,
        ),
        (
            json!({"Variable": "$.t", "TimestampLessThanEqualsPath": "$.o.t"}),
            true,
        ),
        (
            json!({"Variable": "$.t", "TimestampGreaterThanEquals": t2}),
            false,
        ),
        (
            json!({"Variable": "$.t", "TimestampGreaterThanEqualsPath": "$.o.t"}),
            true,
        ),
        (json!({"Variable": "$.s", "TimestampEquals": t1}), false),
        (json!({"Variable": "$.null", "IsNull": true}), true),
        (json!({"Variable": "$.s", "IsNull": true}), false),
        (json!({"Variable": "$.missing", "IsPresent": false}), true),
        (json!({"Variable": "$.s", "IsPresent": true}), true),
        (json!({"Variable": "$.missing", "IsPresent": true}), false),
        (json!({"Variable": "$.n", "IsNumeric": true}), true),
        (json!({"Variable": "$.s", "IsNumeric": true}), false),
        (json!({"Variable": "$.s", "IsString": true}), true),
        (json!({"Variable": "$.n", "IsString": false}), true),
        (json!({"Variable": "$.b", "IsBoolean": true}), true),
        (json!({"Variable": "$.t", "IsTimestamp": true}), true),
        (json!({"Variable": "$.s", "IsTimestamp": true}), false),
        (
            json!({"And": [{"Variable": "$.s", "StringEquals": "b"}, {"Variable": "$.n", "NumericEquals": 5}]}),
            true,
        ),
        (
            json!({"And": [{"Variable": "$.s", "StringEquals": "b"}, {"Variable": "$.n", "NumericEquals": 6}]}),
            false,
        ),
        (
            json!({"Or": [{"Variable": "$.s", "StringEquals": "x"}, {"Variable": "$.n", "NumericEquals": 5}]}),
            true,
        ),
        (
            json!({"Or": [{"Variable": "$.s", "StringEquals": "x"}, {"Variable": "$.n", "NumericEquals": 6}]}),
            false,
        ),
        (
            json!({"Not": {"Variable": "$.s", "StringEquals": "x"}}),
            true,
        ),
        (
            json!({"Not": {"Variable": "$.s", "StringEquals": "b"}}),
            false,
        ),
    ];
    // All executions run at once on one engine.
    let handles: Vec<_> = cases
        .iter()
        .map(|(rule, _)| {
            e.start_execution(
                "choices",
                &choice_machine(rule.clone()),
                None,
                input.clone(),
            )
            .unwrap()
        })
        .collect();
    for ((rule, want), h) in cases.iter().zip(handles) {
        let r = h.wait().await;
        assert_eq!(
            r.status,
            ExecutionStatus::Succeeded,
            "{rule}: {:?}",
            r.error
        );
        let got = r.output == Some(json!("yes"));
        assert_eq!(got, *want, "rule {rule}");
    }
}

#[tokio::test]
async fn choice_errors() {
    let e = engine(Fake::echo(), 1.0);
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericEquals": 1, "Next": "D"}]},
        "D": {"Type": "Succeed"}}});
    let r = run(&e, &def, json!({"x": 2})).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("States.NoChoiceMatched"));
    let r = run(&e, &def, json!({"y": 1})).await;
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert!(r.cause.unwrap().contains("$.x"));
    let r = run(&e, &def, json!({"x": 1})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(r.output, Some(json!({"x": 1})));
}

#[tokio::test]
async fn input_output_processing_in_aws_order() {
    let fake = Fake::new(|_, p, _| Ok(json!({"got": p, "extra": 1})));
    let e = engine(fake.clone(), 1.0);
    let def = single(json!({
        "Type": "Task", "Resource": lambda("f"), "End": true,
        "InputPath": "$.in",
        "Parameters": {"a.$": "$.x", "lit": 2, "ctx.$": "$$.State.Name", "nested": {"b.$": "$.y[1]"}},
        "ResultSelector": {"g.$": "$.got", "e.$": "$.extra"},
        "ResultPath": "$.res.deep",
        "OutputPath": "$.res"
    }));
    let r = run(
        &e,
        &def,
        json!({"in": {"x": "X", "y": [0, 9]}, "other": true}),
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{:?}", r.cause);
    let sent = json!({"a": "X", "lit": 2, "ctx": "S", "nested": {"b": 9}});
    assert_eq!(fake.calls()[0].payload, sent);
    // ResultPath writes into the *raw* state input (not the InputPath-filtered one).
    assert_eq!(r.output, Some(json!({"deep": {"g": sent, "e": 1}})));
}

#[tokio::test]
async fn null_paths_and_pass_state() {
    let fake = Fake::new(|_, p, _| Ok(json!({"seen": p})));
    let e = engine(fake.clone(), 1.0);
    let input = json!({"k": 1});
    let r = run(
        &e,
        &single(json!({"Type": "Task", "Resource": lambda("f"), "End": true, "InputPath": null, "ResultPath": null})),
        input.clone(),
    )
    .await;
    assert_eq!(fake.calls()[0].payload, json!({}));
    assert_eq!(r.output, Some(input.clone()));
    let r = run(
        &e,
        &single(json!({"Type": "Pass", "End": true, "OutputPath": null})),
        input.clone(),
    )
    .await;
    assert_eq!(r.output, Some(json!({})));
    let r = run(
        &e,
        &single(json!({"Type": "Pass", "End": true, "Result": {"r": 2}, "ResultPath": "$.out"})),
        input.clone(),
    )
    .await;
    assert_eq!(r.output, Some(json!({"k": 1, "out": {"r": 2}})));
    let r = run(
        &e,
        &single(json!({"Type": "Pass", "End": true, "Parameters": {"p.$": "$.k"}, "ResultPath": "$.k2"})),
        input.clone(),
    )
    .await;
    assert_eq!(r.output, Some(json!({"k": 1, "k2": {"p": 1}})));
    // Indefinite paths give arrays.
    let r = run(
        &e,
        &single(json!({"Type": "Pass", "End": true, "InputPath": "$.a[*].v"})),
        json!({"a": [{"v": 1}, {"v": 2}]}),
    )
    .await;
    assert_eq!(r.output, Some(json!([1, 2])));
    // A missing InputPath is a States.Runtime failure that a Catch cannot catch.
    let r = run(
        &e,
        &json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": lambda("f"), "InputPath": "$.missing", "End": true,
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "X"}]},
            "X": {"Type": "Succeed"}}}),
        input,
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
}

#[tokio::test]
async fn lambda_invoke_integration_wraps_payload() {
    let fake = Fake::new(|f, p, _| Ok(json!({"fn": f, "p": p})));
    let e = engine(fake.clone(), 1.0);
    let def = single(json!({
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
        "Parameters": {"FunctionName": lambda("start-workers"), "Payload": {"x.$": "$.x"}},
        "ResultSelector": {"body.$": "$.Payload", "code.$": "$.StatusCode"}
    }));
    let r = run(&e, &def, json!({"x": 3})).await;
    assert_eq!(
        r.output,
        Some(json!({"body": {"fn": "start-workers", "p": {"x": 3}}, "code": 200}))
    );
    let kinds: Vec<EventType> = e
        .history(&r.execution_arn)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert!(
        kinds.contains(&EventType::TaskScheduled) && kinds.contains(&EventType::TaskSucceeded),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn unknown_resource_fails_naming_it() {
    let e = engine(Fake::echo(), 1.0);
    let r = run(
        &e,
        &single(
            json!({"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": true}),
        ),
        json!({}),
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert!(r.cause.unwrap().contains("sqs:sendMessage"));
}

#[tokio::test]
async fn context_object() {
    let e = engine(Fake::echo(), 1.0);
    let def = json!({"StartAt": "Ctx", "States": {"Ctx": {"Type": "Pass", "End": true, "Parameters": {
        "id.$": "$$.Execution.Id", "name.$": "$$.Execution.Name", "input.$": "$$.Execution.Input",
        "start.$": "$$.Execution.StartTime", "sm.$": "$$.StateMachine.Id", "smName.$": "$$.StateMachine.Name",
        "state.$": "$$.State.Name", "entered.$": "$$.State.EnteredTime", "retry.$": "$$.State.RetryCount"}}}});
    let h = e
        .start_execution("ctx-machine", &def, Some("run-1"), json!({"a": 1}))
        .unwrap();
    let r = h.wait().await;
    let o = r.output.unwrap();
    assert_eq!(
        o["id"],
        json!("arn:aws:states:us-east-1:123456789012:execution:ctx-machine:run-1")
    );
    assert_eq!(o["name"], json!("run-1"));
    assert_eq!(o["input"], json!({"a": 1}));
    assert_eq!(
        o["sm"],
        json!("arn:aws:states:us-east-1:123456789012:stateMachine:ctx-machine")
    );
    assert_eq!(o["smName"], json!("ctx-machine"));
    assert_eq!(o["state"], json!("Ctx"));
    assert_eq!(o["retry"], json!(0));
    for k in ["start", "entered"] {
        let s = o[k].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(s).is_ok(), "{k}: {s}");
    }
    // Map.Item.Index / Value in ItemSelector.
    let def = single(json!({"Type": "Map", "End": true, "ItemsPath": "$.items",
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "tag.$": "$.tag"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}));
    let r = run(&e, &def, json!({"items": ["a", "b"], "tag": "T"})).await;
    assert_eq!(
        r.output,
        Some(json!([{"i": 0, "v": "a", "tag": "T"}, {"i": 1, "v": "b", "tag": "T"}]))
    );
    // Duplicate execution names are refused.
    assert!(
        e.start_execution("ctx-machine", &def, Some("run-1"), json!({}))
            .is_err()
    );
}

#[tokio::test]
async fn intrinsic_functions_in_parameters() {
    let e = engine(Fake::echo(), 1.0);
    let def = single(json!({"Type": "Pass", "End": true, "Parameters": {
        "msg.$": "States.Format('{} built {} on {}', $.who, States.ArrayLength($.d), $.d[0])",
        "merged.$": "States.JsonMerge(States.JsonMerge($.m[0], $.m[1], false), $.m[2], false)",
        "parsed.$": "States.StringToJson($.js)",
        "str.$": "States.JsonToString($.m[0])",
        "arr.$": "States.Array($.who, 1)",
        "has.$": "States.ArrayContains($.d, 'jammy')",
        "item.$": "States.ArrayGetItem($.d, 1)",
        "sum.$": "States.MathAdd($.n, 1)",
        "uuid.$": "States.UUID()"}}));
    let input = json!({"who": "ci", "d": ["focal", "jammy"], "js": "{\"z\":[1]}", "n": 41,
                       "m": [{"a": 1, "k": {"x": 1}}, {"b": 2, "k": {"y": 2}}, {"a": 3}]});
    let r = run(&e, &def, input).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{:?}", r.cause);
    let o = r.output.unwrap();
    assert_eq!(o["msg"], json!("ci built 2 on focal"));
    assert_eq!(o["merged"], json!({"a": 3, "k": {"y": 2}, "b": 2}));
    assert_eq!(o["parsed"], json!({"z": [1]}));
    assert_eq!(o["str"], json!("{\"a\":1,\"k\":{\"x\":1}}"));
    assert_eq!(o["arr"], json!(["ci", 1]));
    assert_eq!(o["has"], json!(true));
    assert_eq!(o["item"], json!("jammy"));
    assert_eq!(o["sum"], json!(42));
    assert_eq!(o["uuid"].as_str().map(str::len), Some(36));
}

#[tokio::test]
async fn intrinsic_failure_is_catchable_on_a_task() {
    let fake = Fake::echo();
    let e = engine(fake.clone(), 1.0);
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": lambda("f"), "End": true,
              "Parameters": {"x.$": "States.ArrayGetItem($.a, 9)"},
              "Catch": [{"ErrorEquals": ["States.IntrinsicFailure"], "Next": "H", "ResultPath": "$.err"}]},
        "H": {"Type": "Pass", "End": true}}});
    let r = run(&e, &def, json!({"a": [1]})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(
        r.output.unwrap()["err"]["Error"],
        json!("States.IntrinsicFailure")
    );
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn wait_states_scale_time() {
    let e = engine(Fake::echo(), 100.0);
    let t0 = tokio::time::Instant::now();
    let r = run(
        &e,
        &single(json!({"Type": "Wait", "Seconds": 30, "End": true})),
        json!({"a": 1}),
    )
    .await;
    let el = t0.elapsed();
    assert_eq!(r.output, Some(json!({"a": 1})));
    assert!(
        el >= Duration::from_millis(300) && el < Duration::from_millis(1500),
        "{el:?}"
    );
    let t0 = tokio::time::Instant::now();
    run(
        &e,
        &single(json!({"Type": "Wait", "SecondsPath": "$.s", "End": true})),
        json!({"s": 20}),
    )
    .await;
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(200) && el < Duration::from_millis(1400),
        "{el:?}"
    );
    let future = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
    let t0 = tokio::time::Instant::now();
    run(
        &e,
        &single(json!({"Type": "Wait", "TimestampPath": "$.t", "End": true})),
        json!({"t": future}),
    )
    .await;
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(250) && el < Duration::from_millis(1400),
        "{el:?}"
    );
    let t0 = tokio::time::Instant::now();
    run(
        &e,
        &single(json!({"Type": "Wait", "Timestamp": "2001-01-01T00:00:00Z", "End": true})),
        json!({}),
    )
    .await;
    assert!(t0.elapsed() < Duration::from_millis(200));
    let r = run(
        &e,
        &single(json!({"Type": "Wait", "SecondsPath": "$.s", "End": true})),
        json!({"s": "x"}),
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
}

#[tokio::test]
async fn fail_state_error_and_cause() {
    let e = engine(Fake::echo(), 1.0);
    let r = run(
        &e,
        &single(json!({"Type": "Fail", "Error": "Build.Failed", "Cause": "2 tasks"})),
        json!({}),
    )
    .await;
    assert_eq!(
        (r.status, r.error.as_deref(), r.cause.as_deref()),
        (
            ExecutionStatus::Failed,
            Some("Build.Failed"),
            Some("2 tasks")
        )
    );
    let r = run(
        &e,
        &single(
            json!({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('n={}', $.n)"}),
        ),
        json!({"e": "Dyn.Error", "n": 3}),
    )
    .await;
    assert_eq!(
        (r.error.as_deref(), r.cause.as_deref()),
        (Some("Dyn.Error"), Some("n=3"))
    );
}

#[tokio::test]
async fn data_limit_exceeded() {
    let big = "x".repeat(300_000);
    let fake = Fake::new(move |_, _, _| Ok(json!({"blob": big})));
    let e = engine(fake, 1.0);
    // States.ALL does not catch it.
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": lambda("f"), "End": true,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}]},
        "H": {"Type": "Succeed"}}});
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("States.DataLimitExceeded"));
    assert!(r.counts.max_payload_bytes > 262_144);
    // Naming it explicitly does.
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": lambda("f"), "End": true, "ResultPath": "$.err",
              "Catch": [{"ErrorEquals": ["States.DataLimitExceeded"], "Next": "H", "ResultPath": "$.err"}]},
        "H": {"Type": "Succeed"}}});
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    // Pass output over the limit, and execution input over the limit.
    let r = run(
        &e,
        &single(json!({"Type": "Pass", "End": true, "Result": "y".repeat(270_000)})),
        json!({}),
    )
    .await;
    assert_eq!(r.error.as_deref(), Some("States.DataLimitExceeded"));
    assert!(
        e.start_execution(
            "m",
            &single(json!({"Type": "Succeed"})),
            None,
            json!("z".repeat(270_000))
        )
        .is_err()
    );
    // Just under the limit is fine.
    let r = run(
        &e,
        &single(json!({"Type": "Pass", "End": true, "Result": "y".repeat(200_000)})),
        json!({}),
    )
    .await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert!(r.counts.max_payload_bytes >= 200_000 && r.counts.max_payload_bytes < 262_144);
}

#[tokio::test]
async fn history_sequence_and_counts() {
    let fake = Fake::new(|_, _, n| {
        if n == 0 {
            Err(fail("Aws.Throttled", "slow down"))
        } else {
            Ok(json!({"ok": true}))
        }
    });
    let e = engine(fake, 1000.0);
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Next": "T"},
        "T": {"Type": "Task", "Resource": lambda("f"), "Next": "C",
              "Retry": [{"ErrorEquals": ["Aws.Throttled"], "IntervalSeconds": 1}]},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Done"}]},
        "Done": {"Type": "Succeed"}}});
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    let h = e.history(&r.execution_arn).unwrap();
    let kinds: Vec<EventType> = h.iter().map(|x| x.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            EventType::ExecutionStarted,
            EventType::PassStateEntered,
            EventType::PassStateExited,
            EventType::TaskStateEntered,
            EventType::LambdaFunctionScheduled,
            EventType::LambdaFunctionStarted,
            EventType::LambdaFunctionFailed,
            EventType::LambdaFunctionScheduled,
            EventType::LambdaFunctionStarted,
            EventType::LambdaFunctionSucceeded,
            EventType::TaskStateExited,
            EventType::ChoiceStateEntered,
            EventType::ChoiceStateExited,
            EventType::SucceedStateEntered,
            EventType::SucceedStateExited,
            EventType::ExecutionSucceeded
        ]
    );
    for (i, ev) in h.iter().enumerate() {
        assert_eq!(ev.id, i as i64 + 1);
        assert_eq!(ev.previous_event_id, i as i64);
    }
    assert_eq!(h[3].details["name"], json!("T"));
    assert_eq!(h[4].details["resource"], json!(lambda("f")));
    assert_eq!(h[6].details["error"], json!("Aws.Throttled"));
    // 4 states entered + 1 retry.
    assert_eq!(r.counts.state_transitions, 5);
    assert_eq!(r.counts.history_events, h.len() as u64);
    let listed = e.list_executions(Some(ExecutionStatus::Succeeded));
    assert!(listed.iter().any(|s| s.execution_arn == r.execution_arn));
    assert!(e.list_executions(Some(ExecutionStatus::Failed)).is_empty());
}

#[tokio::test]
async fn history_limit_fails_the_execution() {
    let e = engine::Engine::new(
        EngineConfig {
            max_history_events: 40,
            ..EngineConfig::default()
        },
        Fake::echo(),
    );
    let def = single(json!({"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}));
    let ok = run(&e, &def, json!([1, 2, 3])).await;
    assert_eq!(ok.status, ExecutionStatus::Succeeded);
    let r = run(&e, &def, Value::Array((0..50).map(Value::from).collect())).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert!(r.cause.unwrap().contains("history"));
    assert_eq!(r.counts.history_events, 41);
}

#[tokio::test]
async fn definition_errors_are_reported_before_running() {
    let e = engine(Fake::echo(), 1.0);
    let err = e
        .start_execution(
            "m",
            &single(json!({"Type": "Task", "End": true})),
            None,
            json!({}),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"S\"") && err.contains("Resource"), "{err}");
    assert!(e.list_executions(None).is_empty());
}

#[tokio::test]
async fn stop_execution_aborts() {
    let e = engine(Fake::echo(), 1.0);
    let h = e
        .start_execution(
            "m",
            &single(json!({"Type": "Wait", "Seconds": 3600, "End": true})),
            None,
            json!({}),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    e.stop_execution(h.arn(), Some("User.Stop"), Some("bye"))
        .unwrap();
    let r = h.wait().await;
    assert_eq!(r.status, ExecutionStatus::Aborted);
    assert_eq!(r.error.as_deref(), Some("User.Stop"));
    assert_eq!(
        e.history(&r.execution_arn).unwrap().last().unwrap().kind,
        EventType::ExecutionAborted
    );
}

#[tokio::test]
async fn execution_timeout() {
    let e = engine(Fake::echo(), 100.0);
    let def = json!({"StartAt": "W", "TimeoutSeconds": 10, "States": {"W": {"Type": "Wait", "Seconds": 1000, "End": true}}});
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::TimedOut);
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
}
