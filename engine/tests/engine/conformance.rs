//! Conformance: small machines run THROUGH the Step Functions API (the real `aws-sdk-sfn`
//! client against the engine's endpoint), each expectation taken from the Step Functions
//! Developer Guide page cited above it, with the history event sequence of each.

use std::time::Duration;

use crate::common::*;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput as Described;
use aws_sdk_sfn::types::{ExecutionStatus as Status, HistoryEvent as Event};
use engine::Engine;
use serde_json::{Value, json};

/// Creates `def` under a fresh name, runs it with `input` and returns the described execution
/// and its whole history (all through the API).
async fn go(e: &Engine, def: Value, input: Value) -> (Described, Vec<Event>) {
    let c = sfn(e).await;
    let name = format!("m{}", uuid::Uuid::new_v4().simple());
    let sm = create_machine(&c, &name, &def).await;
    let d = start_and_wait(&c, &sm, &input).await;
    let h = api_history(&c, d.execution_arn()).await;
    (d, h)
}

fn echo_engine() -> Engine {
    engine(Fake::echo(), 1000.0)
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/state-pass.html,
/// https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html,
/// https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html,
/// https://docs.aws.amazon.com/step-functions/latest/dg/state-succeed.html: Pass passes its
/// input (or its Result at ResultPath), Wait delays and passes its input, Choice takes the first
/// matching rule's Next, Succeed ends the execution with its input as output. History: each
/// state's `…StateEntered`/`…StateExited`, Succeed included.
#[tokio::test]
async fn pass_wait_choice_succeed() {
    let e = echo_engine();
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.p", "Next": "W"},
        "W": {"Type": "Wait", "Seconds": 1, "Next": "C"},
        "C": {"Type": "Choice", "Choices": [
            {"Variable": "$.p.x", "NumericGreaterThan": 5, "Next": "Never"},
            {"And": [{"Variable": "$.n", "IsPresent": true}, {"Variable": "$.n", "StringEquals": "a"}], "Next": "Done"}],
            "Default": "Never"},
        "Never": {"Type": "Fail", "Error": "Wrong"},
        "Done": {"Type": "Succeed"}}});
    let (d, h) = go(&e, def, json!({"n": "a"})).await;
    assert_eq!(d.status(), &Status::Succeeded);
    assert_eq!(output(&d), json!({"n": "a", "p": {"x": 1}}));
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "ChoiceStateEntered",
            "ChoiceStateExited",
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(
        h.iter().map(|e| e.previous_event_id()).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html: no rule matching and
/// no Default fails the execution with `States.NoChoiceMatched`;
/// https://docs.aws.amazon.com/step-functions/latest/dg/state-fail.html: a Fail state stops the
/// execution as FAILED with its Error and Cause.
#[tokio::test]
async fn fail_and_no_choice_matched() {
    let e = echo_engine();
    let def = json!({"StartAt": "F", "States": {
        "F": {"Type": "Fail", "Error": "Custom.Error", "Cause": "because"}}});
    let (d, h) = go(&e, def, json!({})).await;
    assert_eq!(d.status(), &Status::Failed);
    assert_eq!(
        (d.error(), d.cause()),
        (Some("Custom.Error"), Some("because"))
    );
    assert_eq!(
        types(&h),
        ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]
    );
    let f = h[2].execution_failed_event_details().unwrap();
    assert_eq!(f.error(), Some("Custom.Error"));

    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.v", "NumericEquals": 1, "Next": "D"}]},
        "D": {"Type": "Succeed"}}});
    let (d, h) = go(&e, def, json!({"v": 2})).await;
    assert_eq!(d.error(), Some("States.NoChoiceMatched"));
    assert_eq!(
        types(&h),
        ["ExecutionStarted", "ChoiceStateEntered", "ExecutionFailed"]
    );
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html:
/// InputPath → Parameters → task → ResultSelector → ResultPath → OutputPath, in that order;
/// `.$` keys take paths (of the input, or `$$.` of the context object); ResultPath merges the
/// result into the state's raw input.
#[tokio::test]
async fn input_and_output_processing_in_order() {
    let e = echo_engine();
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "InputPath": "$.lib",
        "Parameters": {"FunctionName": "echo", "Payload": {"book.$": "$.title", "static": "s", "state.$": "$$.State.Name"}},
        "ResultSelector": {"got.$": "$.Payload.book", "code.$": "$.StatusCode"},
        "ResultPath": "$.lib.result",
        "OutputPath": "$.lib",
        "End": true}}});
    let (d, h) = go(&e, def, json!({"lib": {"title": "Dune"}, "other": 1})).await;
    assert_eq!(d.status(), &Status::Succeeded);
    assert_eq!(
        output(&d),
        json!({"title": "Dune", "result": {"got": "Dune", "code": 200}})
    );
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let sched = h[2].task_scheduled_event_details().unwrap();
    assert_eq!(sched.resource_type(), "lambda");
    assert_eq!(
        serde_json::from_str::<Value>(sched.parameters()).unwrap(),
        json!({"FunctionName": "echo", "Payload": {"book": "Dune", "static": "s", "state": "T"}})
    );
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html:
/// `"ResultPath": "$"` (the default) replaces the input with the result, `null` discards the
/// result and keeps the input, a path adds the result to the input there.
#[tokio::test]
async fn result_path_forms() {
    let e = echo_engine();
    let def = json!({"StartAt": "Replace", "States": {
        "Replace": {"Type": "Pass", "Result": {"r": 1}, "ResultPath": "$", "Next": "Discard"},
        "Discard": {"Type": "Pass", "Result": "lost", "ResultPath": null, "Next": "Add"},
        "Add": {"Type": "Pass", "Result": "kept", "ResultPath": "$.deep.er", "End": true}}});
    let (d, _) = go(&e, def, json!({"in": true})).await;
    assert_eq!(output(&d), json!({"r": 1, "deep": {"er": "kept"}}));
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html: the values
/// each function's examples give.
#[tokio::test]
async fn intrinsic_functions() {
    let e = echo_engine();
    let params = json!({
        "format.$": "States.Format('Hello, my name is {}.', $.name)",
        "toJson.$": "States.StringToJson($.text)",
        "toString.$": "States.JsonToString($.obj)",
        "array.$": "States.Array('Foo', 2020, $.obj, null)",
        "partition.$": "States.ArrayPartition($.nums, 4)",
        "contains.$": "States.ArrayContains($.nums, 5)",
        "range.$": "States.ArrayRange(1, 9, 2)",
        "item.$": "States.ArrayGetItem($.nums, 5)",
        "length.$": "States.ArrayLength($.nums)",
        "unique.$": "States.ArrayUnique($.dups)",
        "merged.$": "States.JsonMerge($.a, $.b, false)",
        "add.$": "States.MathAdd($.n, -1)",
        "split.$": "States.StringSplit($.csv, ',')",
        "uuid.$": "States.UUID()"
    });
    let def = json!({"StartAt": "I", "States": {"I": {"Type": "Pass", "Parameters": params, "End": true}}});
    let input = json!({
        "name": "Arnav", "text": "{\"number\": 20}", "obj": {"k": "v"},
        "nums": [1, 2, 3, 4, 5, 6, 7, 8, 9], "dups": [1, 2, 3, 3, 3, 3, 3, 3, 4],
        "a": {"a": {"a1": 1}, "x": 1}, "b": {"a": {"a2": 2}, "y": 2},
        "n": 111, "csv": "1,2,3,4,5"
    });
    let (d, h) = go(&e, def, input).await;
    assert_eq!(d.status(), &Status::Succeeded, "{:?}", d.cause());
    let mut out = output(&d);
    let uuid = out["uuid"].take();
    assert_eq!(uuid.as_str().map(str::len), Some(36), "{uuid}");
    assert_eq!(
        out,
        json!({
            "format": "Hello, my name is Arnav.",
            "toJson": {"number": 20},
            "toString": "{\"k\":\"v\"}",
            "array": ["Foo", 2020, {"k": "v"}, null],
            "partition": [[1, 2, 3, 4], [5, 6, 7, 8], [9]],
            "contains": true,
            "range": [1, 3, 5, 7, 9],
            "item": 6,
            "length": 9,
            "unique": [1, 2, 3, 4],
            "merged": {"a": {"a2": 2}, "x": 1, "y": 2},
            "add": 110,
            "split": ["1", "2", "3", "4", "5"],
            "uuid": null
        })
    );
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    // A failing intrinsic is `States.IntrinsicFailure`
    // (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html).
    let def = json!({"StartAt": "I", "States": {"I": {"Type": "Pass",
        "Parameters": {"x.$": "States.StringToJson($.notJson)"}, "End": true}}});
    let (d, _) = go(&e, def, json!({"notJson": "{nope"})).await;
    assert_eq!(d.status(), &Status::Failed);
    assert_eq!(d.error(), Some("States.IntrinsicFailure"));
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html: retriers
/// are tried in order and the first whose ErrorEquals matches applies; `States.ALL` matches any
/// error name and must stand alone as the last retrier/catcher (a definition otherwise is
/// invalid); once retries are spent the catchers apply in order and the error output
/// (`Error`, `Cause`) goes to the catcher's ResultPath. Each attempt is a new
/// `LambdaFunctionScheduled`.
#[tokio::test]
async fn retry_then_catch_in_order() {
    let fake = Fake::new(|_, _, n| {
        Err(fail(
            if n == 0 {
                "Custom.First"
            } else {
                "Other.Error"
            },
            &format!("attempt {n}"),
        ))
    });
    let e = engine(fake.clone(), 1000.0);
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": lambda("f"),
              "Retry": [
                  {"ErrorEquals": ["Custom.First"], "MaxAttempts": 1, "IntervalSeconds": 1},
                  {"ErrorEquals": ["States.ALL"], "MaxAttempts": 1, "IntervalSeconds": 1}],
              "Catch": [
                  {"ErrorEquals": ["Custom.First"], "Next": "Wrong"},
                  {"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Handled"}],
              "End": true},
        "Wrong": {"Type": "Fail", "Error": "Wrong"},
        "Handled": {"Type": "Pass", "End": true}}});
    let (d, h) = go(&e, def, json!({"in": 1})).await;
    assert_eq!(d.status(), &Status::Succeeded);
    assert_eq!(
        output(&d),
        json!({"in": 1, "err": {"Error": "Other.Error", "Cause": "attempt 2"}})
    );
    assert_eq!(fake.calls().len(), 3);
    let t = types(&h);
    assert_eq!(
        t.iter().filter(|t| *t == "LambdaFunctionScheduled").count(),
        3
    );
    assert_eq!(
        &t[t.len() - 5..],
        [
            "LambdaFunctionFailed",
            "TaskStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );

    let c = sfn(&e).await;
    for bad in [
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("f"), "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("f"), "End": true,
            "Catch": [{"ErrorEquals": ["States.ALL", "X"], "Next": "T"}]}}}),
    ] {
        let err = c
            .create_state_machine()
            .name("all-not-last")
            .definition(bad.to_string())
            .role_arn("arn:aws:iam::123456789012:role/test")
            .send()
            .await
            .unwrap_err();
        assert_eq!(api_err(&err), ("InvalidDefinition".into(), 400));
    }
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html:
/// `States.Runtime` (e.g. a path that matches nothing in the input) is never retried and a
/// `States.ALL` catcher does not catch it; the execution fails.
#[tokio::test]
async fn states_runtime_is_neither_retried_nor_caught() {
    let fake = Fake::echo();
    let e = engine(fake.clone(), 1000.0);
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": lambda("f"), "InputPath": "$.missing",
              "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true},
        "Caught": {"Type": "Pass", "End": true}}});
    let (d, h) = go(&e, def, json!({"here": 1})).await;
    assert_eq!(d.status(), &Status::Failed);
    assert_eq!(d.error(), Some("States.Runtime"));
    assert!(fake.calls().is_empty());
    assert_eq!(
        types(&h),
        ["ExecutionStarted", "TaskStateEntered", "ExecutionFailed"]
    );
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html:
/// `States.DataLimitExceeded` when a state's output is larger than the payload quota
/// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: 256 KiB); a
/// terminal error `States.ALL` does not catch.
#[tokio::test]
async fn data_limit_exceeded_is_terminal() {
    let e = echo_engine();
    let def = json!({"StartAt": "Big", "States": {
        "Big": {"Type": "Task", "Resource": lambda("f"),
                "Parameters": {"a.$": "$.s", "b.$": "$.s"},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": true},
        "Caught": {"Type": "Pass", "End": true}}});
    let (d, _) = go(&e, def, json!({"s": "x".repeat(150 * 1024)})).await;
    assert_eq!(d.status(), &Status::Failed);
    assert_eq!(d.error(), Some("States.DataLimitExceeded"));
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/state-parallel.html: the output is the
/// array of the branches' outputs; if any branch fails the whole Parallel state fails with that
/// branch's error (and Catch on the Parallel handles it). History: ParallelStateStarted, the
/// branches' events, ParallelStateSucceeded/Failed.
#[tokio::test]
async fn parallel_output_and_failure() {
    let e = echo_engine();
    let ok = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "b", "End": true}}}]}}});
    let (d, h) = go(&e, ok, json!({})).await;
    assert_eq!(output(&d), json!(["a", "b"]));
    let t = types(&h);
    assert_eq!(
        &t[..3],
        [
            "ExecutionStarted",
            "ParallelStateEntered",
            "ParallelStateStarted"
        ]
    );
    assert_eq!(
        &t[t.len() - 3..],
        [
            "ParallelStateSucceeded",
            "ParallelStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(t.iter().filter(|t| *t == "PassStateExited").count(), 2);

    let failing = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Next": "After", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "Branch.Broke", "Cause": "b"}}}],
            "Catch": [{"ErrorEquals": ["Branch.Broke"], "ResultPath": "$.e", "Next": "After"}]},
        "After": {"Type": "Pass", "End": true}}});
    let (d, h) = go(&e, failing, json!({"x": 1})).await;
    assert_eq!(d.status(), &Status::Succeeded);
    assert_eq!(output(&d)["e"]["Error"], "Branch.Broke");
    assert!(types(&h).contains(&"ParallelStateFailed".to_string()));
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/state-map-inline.html: each item runs the
/// ItemProcessor with `$$.Map.Item.Index` / `.Value`; the output is the array of results in item
/// order; a failing iteration fails the Map state with its error. History: MapStateStarted,
/// MapIterationStarted/Succeeded (or Failed) per item, MapStateSucceeded (or Failed).
#[tokio::test]
async fn map_items_context_and_failure() {
    let e = echo_engine();
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let (d, h) = go(&e, def, json!({"items": ["a", "b"]})).await;
    assert_eq!(output(&d), json!([{"i": 0, "v": "a"}, {"i": 1, "v": "b"}]));
    let t = types(&h);
    assert_eq!(
        &t[..3],
        ["ExecutionStarted", "MapStateEntered", "MapStateStarted"]
    );
    assert_eq!(t.iter().filter(|t| *t == "MapIterationStarted").count(), 2);
    assert_eq!(
        t.iter().filter(|t| *t == "MapIterationSucceeded").count(),
        2
    );
    assert_eq!(
        &t[t.len() - 3..],
        ["MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"]
    );
    let started = h[2].map_state_started_event_details().unwrap();
    assert_eq!(started.length(), 2);

    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
        "ItemProcessor": {"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$", "StringEquals": "bad", "Next": "F"}], "Default": "OK"},
            "F": {"Type": "Fail", "Error": "Item.Bad", "Cause": "bad item"},
            "OK": {"Type": "Succeed"}}},
        "End": true}}});
    let (d, h) = go(&e, def, json!({"items": ["good", "bad"]})).await;
    assert_eq!(d.status(), &Status::Failed);
    assert_eq!(d.error(), Some("Item.Bad"));
    let t = types(&h);
    assert!(t.contains(&"MapIterationFailed".to_string()));
    assert_eq!(&t[t.len() - 2..], ["MapStateFailed", "ExecutionFailed"]);
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html: a task running longer
/// than TimeoutSeconds fails with `States.Timeout`; an activity whose worker sends no heartbeat
/// for HeartbeatSeconds fails with `States.HeartbeatTimeout`. History: LambdaFunctionTimedOut /
/// ActivityTimedOut.
#[tokio::test]
async fn timeout_and_heartbeat() {
    // The Lambda takes 2 s of real time; TimeoutSeconds 10 at time scale 100 is 0.1 s.
    let fake = Fake::with_delay(Duration::from_secs(2), |_, p, _| Ok(p.clone()));
    let e = engine(fake, 100.0);
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("slow"),
        "TimeoutSeconds": 10, "End": true}}});
    let (d, h) = go(&e, def, json!({})).await;
    assert_eq!(d.error(), Some("States.Timeout"));
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionTimedOut",
            "ExecutionFailed"
        ]
    );

    let e = echo_engine();
    let c = sfn(&e).await;
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": activity("hb"),
        "TimeoutSeconds": 100000, "HeartbeatSeconds": 60, "End": true}}});
    let sm = create_machine(&c, "heartbeat", &def).await;
    let s = c
        .start_execution()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    // The worker takes the task and never heartbeats (60 s at time scale 1000: 60 ms).
    let mut token = None;
    for _ in 0..100 {
        let t = c
            .get_activity_task()
            .activity_arn(activity("hb"))
            .worker_name("w")
            .send()
            .await
            .unwrap();
        if let Some(t) = t.task_token() {
            token = Some(t.to_string());
            break;
        }
    }
    let token = token.expect("the task was published");
    let d = wait_done(&c, s.execution_arn()).await;
    assert_eq!(d.error(), Some("States.HeartbeatTimeout"));
    let h = api_history(&c, d.execution_arn()).await;
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "ActivityScheduled",
            "ActivityStarted",
            "ActivityTimedOut",
            "ExecutionFailed"
        ]
    );
    // https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html:
    // a timed-out task's token is answered with `TaskTimedOut`.
    let err = c
        .send_task_success()
        .task_token(token)
        .output("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("TaskTimedOut".into(), 400));
}

/// https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html: the
/// context object's Execution (Id, Name, Input), StateMachine (Id, Name), State (Name,
/// RetryCount). `$$.State.RetryCount` counts the retries of the state being run: a Parallel
/// retried once sees 1 in its Parameters on the second attempt.
#[tokio::test]
async fn context_object_and_retry_count_under_a_retried_parallel() {
    let fake = Fake::new(|_, p, n| {
        if n == 0 {
            Err(fail("Flaky", "first attempt"))
        } else {
            Ok(p.clone())
        }
    });
    let e = engine(fake, 1000.0);
    let def = json!({"StartAt": "Ctx", "States": {
        "Ctx": {"Type": "Pass", "Parameters": {
            "id.$": "$$.Execution.Id", "name.$": "$$.Execution.Name", "input.$": "$$.Execution.Input",
            "sm.$": "$$.StateMachine.Id", "smName.$": "$$.StateMachine.Name",
            "state.$": "$$.State.Name", "retry.$": "$$.State.RetryCount"},
            "ResultPath": "$.ctx", "Next": "Par"},
        "Par": {"Type": "Parallel",
            "Parameters": {"rc.$": "$$.State.RetryCount"},
            "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 1, "IntervalSeconds": 1}],
            "Branches": [{"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": lambda("flaky"), "End": true}}}],
            "ResultPath": "$.par", "End": true}}});
    let c = sfn(&e).await;
    let sm = create_machine(&c, "ctx", &def).await;
    let s = c
        .start_execution()
        .state_machine_arn(&sm)
        .name("ctx-run")
        .input(r#"{"k": 1}"#)
        .send()
        .await
        .unwrap();
    let d = wait_done(&c, s.execution_arn()).await;
    assert_eq!(d.status(), &Status::Succeeded, "{:?}", d.cause());
    let out = output(&d);
    assert_eq!(
        out["ctx"],
        json!({"id": s.execution_arn(), "name": "ctx-run", "input": {"k": 1},
               "sm": sm, "smName": "ctx", "state": "Ctx", "retry": 0})
    );
    assert_eq!(out["par"], json!([{"rc": 1}]));
    let h = api_history(&c, s.execution_arn()).await;
    let t = types(&h);
    assert_eq!(t.iter().filter(|t| *t == "ParallelStateStarted").count(), 2);
    assert_eq!(t.iter().filter(|t| *t == "ParallelStateFailed").count(), 1);
    assert_eq!(
        t.iter().filter(|t| *t == "ParallelStateSucceeded").count(),
        1
    );
}
