//! The Step Functions API the engine's endpoint serves, driven by the real `aws-sdk-sfn`
//! client: operation shapes, error `__type`s and HTTP status codes, pagination tokens,
//! idempotent StartExecution. Expectations cite the Step Functions API reference,
//! <https://docs.aws.amazon.com/step-functions/latest/apireference/>.

use std::sync::Arc;

use crate::common::*;
use aws_sdk_sfn::types::ExecutionStatus as Status;
use engine::{Engine, EngineConfig, NoLambdas};
use serde_json::{Value, json};

fn pass_machine() -> Value {
    json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": true}, "ResultPath": "$.r", "End": true}}})
}

/// A machine that stays RUNNING until stopped (an hour's Wait).
fn waiting_machine() -> Value {
    json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}})
}

fn lambda_free_engine() -> Engine {
    Engine::new(EngineConfig::default(), Arc::new(NoLambdas))
}

/// API_CreateStateMachine.html: same name and definition is idempotent; another definition is
/// `StateMachineAlreadyExists`; a bad definition `InvalidDefinition`; all HTTP 400
/// (https://docs.aws.amazon.com/step-functions/latest/apireference/API_CreateStateMachine.html).
#[tokio::test]
async fn state_machine_lifecycle_and_errors() {
    let e = lambda_free_engine();
    let c = sfn(&e).await;
    let arn = create_machine(&c, "m1", &pass_machine()).await;
    assert_eq!(arn, "arn:aws:states:us-east-1:123456789012:stateMachine:m1");
    // Idempotent.
    assert_eq!(create_machine(&c, "m1", &pass_machine()).await, arn);
    let err = c
        .create_state_machine()
        .name("m1")
        .definition(waiting_machine().to_string())
        .role_arn("arn:aws:iam::123456789012:role/test")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("StateMachineAlreadyExists".into(), 400));
    for bad in [
        "not json".to_string(),
        json!({"StartAt": "Missing", "States": {"P": {"Type": "Pass", "End": true}}}).to_string(),
        json!({"StartAt": "P", "States": {"P": {"Type": "Teleport", "End": true}}}).to_string(),
    ] {
        let err = c
            .create_state_machine()
            .name("bad")
            .definition(bad)
            .role_arn("arn:aws:iam::123456789012:role/test")
            .send()
            .await
            .unwrap_err();
        assert_eq!(api_err(&err), ("InvalidDefinition".into(), 400));
    }
    let err = c
        .create_state_machine()
        .name("has space")
        .definition(pass_machine().to_string())
        .role_arn("arn:aws:iam::123456789012:role/test")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("InvalidName".into(), 400));

    let d = c
        .describe_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), "m1");
    assert_eq!(d.r#type().as_str(), "STANDARD");
    assert_eq!(
        serde_json::from_str::<Value>(d.definition()).unwrap(),
        pass_machine()
    );
    let listed = c.list_state_machines().send().await.unwrap();
    assert_eq!(listed.state_machines().len(), 1);
    assert_eq!(listed.state_machines()[0].state_machine_arn(), arn);

    // An execution keeps the definition it started with
    // (API_DescribeStateMachineForExecution.html).
    let first = start_and_wait(&c, &arn, &json!({})).await;
    let upd = c
        .update_state_machine()
        .state_machine_arn(&arn)
        .definition(waiting_machine().to_string())
        .send()
        .await
        .unwrap();
    assert!(upd.revision_id().is_some());
    let for_exec = c
        .describe_state_machine_for_execution()
        .execution_arn(first.execution_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(for_exec.definition()).unwrap(),
        pass_machine()
    );
    let err = c
        .update_state_machine()
        .state_machine_arn(&arn)
        .definition("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err).0, "InvalidDefinition");

    c.delete_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap();
    let err = c
        .describe_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("StateMachineDoesNotExist".into(), 400));
    let err = c
        .start_execution()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("StateMachineDoesNotExist".into(), 400));
    let err = c
        .describe_state_machine()
        .state_machine_arn("not-an-arn")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("InvalidArn".into(), 400));
    let err = c
        .describe_execution()
        .execution_arn("arn:aws:states:us-east-1:123456789012:execution:m1:nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("ExecutionDoesNotExist".into(), 400));
}

/// API_StartExecution.html: the same name and input while the execution runs answers the same
/// execution; another input, or the same name once it has ended, is `ExecutionAlreadyExists`.
/// API_StopExecution.html: the execution ends ABORTED with the error and cause given.
#[tokio::test]
async fn start_execution_is_idempotent_by_name_and_input() {
    let e = lambda_free_engine();
    let c = sfn(&e).await;
    let sm = create_machine(&c, "waits", &waiting_machine()).await;
    let start = |input: &'static str| {
        c.start_execution()
            .state_machine_arn(&sm)
            .name("once")
            .input(input)
            .send()
    };
    let a = start(r#"{"x": 1}"#).await.unwrap();
    let b = start(r#"{"x":1}"#).await.unwrap();
    assert_eq!(a.execution_arn(), b.execution_arn());
    assert_eq!(a.start_date(), b.start_date());
    let err = start(r#"{"x": 2}"#).await.unwrap_err();
    assert_eq!(api_err(&err), ("ExecutionAlreadyExists".into(), 400));
    let err = c
        .start_execution()
        .state_machine_arn(&sm)
        .input("{not json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("InvalidExecutionInput".into(), 400));

    let running = c
        .describe_execution()
        .execution_arn(a.execution_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(running.status(), &Status::Running);
    assert_eq!(running.name(), Some("once"));
    c.stop_execution()
        .execution_arn(a.execution_arn())
        .error("Operator.Stop")
        .cause("enough")
        .send()
        .await
        .unwrap();
    let d = wait_done(&c, a.execution_arn()).await;
    assert_eq!(d.status(), &Status::Aborted);
    assert_eq!(d.error(), Some("Operator.Stop"));
    assert_eq!(d.cause(), Some("enough"));
    assert!(d.stop_date().is_some());
    let h = api_history(&c, a.execution_arn()).await;
    assert_eq!(
        types(&h),
        ["ExecutionStarted", "WaitStateEntered", "ExecutionAborted"]
    );
    let ab = h[2].execution_aborted_event_details().unwrap();
    assert_eq!(ab.error(), Some("Operator.Stop"));
    // Closed: the same name is refused whatever the input.
    let err = start(r#"{"x": 1}"#).await.unwrap_err();
    assert_eq!(api_err(&err).0, "ExecutionAlreadyExists");
}

/// API_ListExecutions.html: most recent first, `statusFilter`, `maxResults` pages with a
/// `nextToken` until the last page; an unusable token is `InvalidToken` (HTTP 400).
#[tokio::test]
async fn list_executions_pages_and_filters() {
    let e = lambda_free_engine();
    let c = sfn(&e).await;
    let sm = create_machine(&c, "quick", &pass_machine()).await;
    let waits = create_machine(&c, "slow", &waiting_machine()).await;
    let mut names = Vec::new();
    for i in 0..5 {
        let name = format!("run-{i}");
        let s = c
            .start_execution()
            .state_machine_arn(&sm)
            .name(&name)
            .send()
            .await
            .unwrap();
        wait_done(&c, s.execution_arn()).await;
        names.push(name);
    }
    let slow = c
        .start_execution()
        .state_machine_arn(&waits)
        .send()
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = c
            .list_executions()
            .state_machine_arn(&sm)
            .max_results(2)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(p.executions().len() <= 2);
        seen.extend(p.executions().iter().map(|x| x.name().to_string()));
        // A new execution between pages does not shift them.
        if pages == 1 {
            let s = c
                .start_execution()
                .state_machine_arn(&sm)
                .name("late")
                .send()
                .await
                .unwrap();
            wait_done(&c, s.execution_arn()).await;
        }
        match p.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    names.reverse();
    assert_eq!(seen, names);
    assert_eq!(pages, 3);
    let running = c
        .list_executions()
        .state_machine_arn(&waits)
        .status_filter(Status::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(running.executions().len(), 1);
    assert_eq!(
        running.executions()[0].execution_arn(),
        slow.execution_arn()
    );
    let none = c
        .list_executions()
        .state_machine_arn(&sm)
        .status_filter(Status::Failed)
        .send()
        .await
        .unwrap();
    assert!(none.executions().is_empty());
    let err = c
        .list_executions()
        .state_machine_arn(&sm)
        .next_token("bogus")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("InvalidToken".into(), 400));
    let err = c
        .list_executions()
        .state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("StateMachineDoesNotExist".into(), 400));
    c.stop_execution()
        .execution_arn(slow.execution_arn())
        .send()
        .await
        .unwrap();
}

/// API_GetExecutionHistory.html: pages of `maxResults` events with a `nextToken`;
/// `reverseOrder` lists the latest first; `includeExecutionData: false` leaves out inputs and
/// outputs; an unusable token is `InvalidToken`.
#[tokio::test]
async fn execution_history_pages_reverse_and_data() {
    let e = lambda_free_engine();
    let c = sfn(&e).await;
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Pass", "Next": "C"},
        "C": {"Type": "Pass", "End": true}}});
    let sm = create_machine(&c, "three", &def).await;
    let d = start_and_wait(&c, &sm, &json!({"secret": 1})).await;
    let arn = d.execution_arn();
    let all = api_history(&c, arn).await;
    assert_eq!(all.len(), 8);
    assert_eq!(
        all.iter().map(|e| e.id()).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    let started = all[0].execution_started_event_details().unwrap();
    assert_eq!(started.input(), Some(r#"{"secret":1}"#));
    let entered = all[1].state_entered_event_details().unwrap();
    assert_eq!(entered.name(), "A");

    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = c
            .get_execution_history()
            .execution_arn(arn)
            .max_results(3)
            .reverse_order(true)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        pages += 1;
        paged.extend(p.events().iter().map(|e| e.id()));
        match p.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, (1..=8).rev().collect::<Vec<_>>());

    let bare = c
        .get_execution_history()
        .execution_arn(arn)
        .include_execution_data(false)
        .send()
        .await
        .unwrap();
    let s = bare.events()[0].execution_started_event_details().unwrap();
    assert_eq!(s.input(), None);
    assert!(
        bare.events()[1]
            .state_entered_event_details()
            .unwrap()
            .input()
            .is_none()
    );

    let err = c
        .get_execution_history()
        .execution_arn(arn)
        .next_token("boa.ex.1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("InvalidToken".into(), 400));
}

/// A Lambda function the engine does not have fails its task with
/// `Lambda.ResourceNotFoundException`
/// (https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html), which a Catch
/// can handle like any task error.
#[tokio::test]
async fn unknown_lambda_fails_as_resource_not_found() {
    let e = lambda_free_engine();
    let c = sfn(&e).await;
    let def = json!({"StartAt": "Call", "States": {
        "Call": {"Type": "Task", "Resource": lambda("nobody-home"), "End": true}}});
    let sm = create_machine(&c, "calls", &def).await;
    let d = start_and_wait(&c, &sm, &json!({})).await;
    assert_eq!(d.status(), &Status::Failed);
    assert_eq!(d.error(), Some("Lambda.ResourceNotFoundException"));
    let h = api_history(&c, d.execution_arn()).await;
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionFailed",
            "ExecutionFailed"
        ]
    );
    let f = h[4].lambda_function_failed_event_details().unwrap();
    assert_eq!(f.error(), Some("Lambda.ResourceNotFoundException"));
}

/// API_ListActivities.html, API_DeleteActivity.html.
#[tokio::test]
async fn activities_list_and_delete() {
    let e = lambda_free_engine();
    let c = sfn(&e).await;
    let a = c.create_activity().name("build").send().await.unwrap();
    c.create_activity().name("test").send().await.unwrap();
    let l = c.list_activities().send().await.unwrap();
    let names: Vec<&str> = l.activities().iter().map(|a| a.name()).collect();
    assert_eq!(names, ["build", "test"]);
    c.delete_activity()
        .activity_arn(a.activity_arn())
        .send()
        .await
        .unwrap();
    let l = c.list_activities().send().await.unwrap();
    assert_eq!(l.activities().len(), 1);
    let err = c
        .describe_activity()
        .activity_arn(a.activity_arn())
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("ActivityDoesNotExist".into(), 400));
}

/// An embedder's `start_execution` registers its machine, so the API lists it and describes its
/// executions.
#[tokio::test]
async fn embedded_executions_are_visible_through_the_api() {
    let e = engine(Fake::echo(), 1.0);
    let c = sfn(&e).await;
    let r = run(&e, &pass_machine(), json!({"a": 1})).await;
    let d = c
        .describe_execution()
        .execution_arn(&r.execution_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), &Status::Succeeded);
    assert_eq!(output(&d), json!({"a": 1, "r": {"ok": true}}));
    let sms = c.list_state_machines().send().await.unwrap();
    assert_eq!(sms.state_machines()[0].name(), "test-machine");
    let m = c
        .describe_state_machine_for_execution()
        .execution_arn(&r.execution_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(m.definition()).unwrap(),
        pass_machine()
    );
}

/// A Distributed Map's Map Run through the API: API_ListMapRuns.html, API_DescribeMapRun.html,
/// and API_ListExecutions.html with `mapRunArn` (the child workflow executions, with paging);
/// a child's history through GetExecutionHistory; an unknown Map Run is `ResourceNotFound`.
#[tokio::test]
async fn distributed_map_runs_and_children() {
    let e = engine(Fake::echo(), 1000.0);
    let c = sfn(&e).await;
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items",
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let sm = create_machine(&c, "dmap", &def).await;
    let d = start_and_wait(&c, &sm, &json!({"items": [1, 2, 3]})).await;
    assert_eq!(d.status(), &Status::Succeeded);
    assert_eq!(output(&d), json!([1, 2, 3]));
    let runs = c
        .list_map_runs()
        .execution_arn(d.execution_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(runs.map_runs().len(), 1);
    let run_arn = runs.map_runs()[0].map_run_arn().to_string();
    let desc = c
        .describe_map_run()
        .map_run_arn(&run_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(desc.status().as_str(), "SUCCEEDED");
    let counts = desc.item_counts().unwrap();
    assert_eq!((counts.total(), counts.succeeded()), (3, 3));
    let mut children = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let p = c
            .list_executions()
            .map_run_arn(&run_arn)
            .max_results(2)
            .set_next_token(token.take())
            .send()
            .await
            .unwrap();
        children.extend(p.executions().iter().cloned());
        match p.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(children.len(), 3);
    assert!(
        children
            .iter()
            .all(|x| x.map_run_arn() == Some(run_arn.as_str()))
    );
    let h = api_history(&c, children[0].execution_arn()).await;
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    // The parent's own executions list does not include the children.
    let top = c
        .list_executions()
        .state_machine_arn(&sm)
        .send()
        .await
        .unwrap();
    assert_eq!(top.executions().len(), 1);
    let parent = api_history(&c, d.execution_arn()).await;
    let t = types(&parent);
    assert!(t.contains(&"MapRunStarted".to_string()), "{t:?}");
    let started = parent
        .iter()
        .find_map(|e| e.map_run_started_event_details())
        .unwrap();
    assert_eq!(started.map_run_arn(), Some(run_arn.as_str()));
    let err = c
        .describe_map_run()
        .map_run_arn(format!("{run_arn}x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(api_err(&err), ("ResourceNotFound".into(), 400));
}
