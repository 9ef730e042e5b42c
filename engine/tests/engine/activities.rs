//! Activity tasks: broker semantics, timeouts and heartbeats, and the HTTP endpoint driven by
//! the real `aws-sdk-sfn` client.

use std::time::Duration;

use crate::common::*;
use aws_sdk_sfn::config::{Credentials, Region};
use boa_core::history_event::EventType;
use engine::{BrokerError, Engine, EngineConfig, ExecutionStatus};
use serde_json::{Value, json};

fn activity_machine(extra: Value) -> Value {
    let mut task = json!({"Type": "Task", "Resource": activity("build"), "End": true,
                          "Parameters": {"step": "build", "token.$": "$$.Task.Token", "v.$": "$.v"}});
    if let (Value::Object(t), Value::Object(x)) = (&mut task, extra) {
        t.extend(x);
    }
    json!({"StartAt": "Build", "States": {"Build": task, "Caught": {"Type": "Pass", "End": true}}})
}

async fn wait_pending(e: &Engine) {
    for _ in 0..200 {
        if !e.broker().pending_tasks().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no task was published");
}

async fn client(e: &Engine) -> aws_sdk_sfn::Client {
    client_as(e, "AKIDTEST").await
}

async fn client_as(e: &Engine, access_key: &str) -> aws_sdk_sfn::Client {
    let addr = e.activity_endpoint().await.expect("endpoint starts");
    assert!(addr.ip().is_loopback());
    let conf = aws_sdk_sfn::config::Builder::new()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .http_client(crate::common::http_client())
        .build();
    aws_sdk_sfn::Client::from_conf(conf)
}

#[tokio::test]
async fn unclaimed_task_times_out() {
    let e = engine(Fake::echo(), 100.0);
    // TimeoutSeconds 20 → 200 ms. HeartbeatSeconds does not run while unclaimed.
    let def = activity_machine(json!({"TimeoutSeconds": 20, "HeartbeatSeconds": 5}));
    let t0 = tokio::time::Instant::now();
    let r = run(&e, &def, json!({"v": 1})).await;
    let el = t0.elapsed();
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert!(
        el >= Duration::from_millis(190) && el < Duration::from_millis(1500),
        "{el:?}"
    );
    assert!(
        e.broker().pending_tasks().is_empty(),
        "timed-out task withdrawn"
    );
    let h = e.history(&r.execution_arn).unwrap();
    let sched = h
        .iter()
        .find(|x| x.kind == EventType::ActivityScheduled)
        .unwrap();
    assert_eq!(sched.details["resource"], json!(activity("build")));
    assert_eq!(sched.details["timeoutInSeconds"], json!(20));
    let to = h
        .iter()
        .find(|x| x.kind == EventType::ActivityTimedOut)
        .unwrap();
    assert_eq!(to.previous_event_id, sched.id);
    assert_eq!(to.details["error"], json!("States.Timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_claimed_task_alive_and_silence_times_it_out() {
    let e = engine(Fake::echo(), 100.0);
    // HeartbeatSeconds 10 → 100 ms.
    let def = activity_machine(json!({"HeartbeatSeconds": 10}));
    let mut claims = e.broker().subscribe_claims();
    let h = e.start_execution("m", &def, None, json!({"v": 7})).unwrap();
    wait_pending(&e).await;
    let pending = e.broker().pending_tasks();
    assert_eq!(pending[&activity("build")].len(), 1);
    assert_eq!(pending[&activity("build")][0].state_name, "Build");
    let task = e
        .broker()
        .try_claim(&activity("build"), "w-1")
        .unwrap()
        .unwrap();
    let input: Value = serde_json::from_str(&task.input).unwrap();
    assert_eq!(
        input["token"],
        json!(task.task_token),
        "$$.Task.Token is the task token"
    );
    assert_eq!(input["v"], json!(7));
    let claim = claims.recv().await.unwrap();
    assert_eq!(
        (claim.worker_name.as_str(), claim.state_name.as_str()),
        ("w-1", "Build")
    );
    assert!(e.broker().pending_tasks().is_empty());
    // 400 ms of work with a heartbeat every 40 ms: no timeout.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        e.broker().send_task_heartbeat(&task.task_token).unwrap();
    }
    e.broker()
        .send_task_success(&task.task_token, r#"{"done": true}"#)
        .unwrap();
    let r = h.wait().await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(r.output, Some(json!({"done": true})));
    // Finished token: TaskTimedOut, like AWS.
    assert!(matches!(
        e.broker().send_task_heartbeat(&task.task_token),
        Err(BrokerError::TaskTimedOut(_))
    ));
    assert!(matches!(
        e.broker().send_task_success("nope", "{}"),
        Err(BrokerError::InvalidToken(_))
    ));

    // No heartbeat: States.HeartbeatTimeout about 100 ms after the claim.
    let h = e.start_execution("m", &def, None, json!({"v": 1})).unwrap();
    wait_pending(&e).await;
    let task = e
        .broker()
        .try_claim(&activity("build"), "w-2")
        .unwrap()
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let r = h.wait().await;
    assert_eq!(r.error.as_deref(), Some("States.HeartbeatTimeout"));
    assert!(t0.elapsed() < Duration::from_millis(1000));
    assert!(matches!(
        e.broker().send_task_success(&task.task_token, "{}"),
        Err(BrokerError::TaskTimedOut(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_round_trip_heartbeat_and_success() {
    let e = engine(Fake::echo(), 1.0);
    let c = client(&e).await;
    let def = activity_machine(json!({"HeartbeatSeconds": 60, "TimeoutSeconds": 600}));
    let h = e
        .start_execution("m", &def, Some("sdk-1"), json!({"v": "x"}))
        .unwrap();
    let got = c
        .get_activity_task()
        .activity_arn(activity("build"))
        .worker_name("i-0abc")
        .send()
        .await
        .expect("GetActivityTask");
    let token = got.task_token().expect("a task").to_string();
    let input: Value = serde_json::from_str(got.input().unwrap()).unwrap();
    assert_eq!(input["step"], json!("build"));
    c.send_task_heartbeat()
        .task_token(&token)
        .send()
        .await
        .expect("heartbeat");
    c.send_task_success()
        .task_token(&token)
        .output(r#"{"instance_id": "i-0abc", "elapsed_s": 3}"#)
        .send()
        .await
        .expect("SendTaskSuccess");
    let r = h.wait().await;
    assert_eq!(
        r.output,
        Some(json!({"instance_id": "i-0abc", "elapsed_s": 3}))
    );
    let hist = e.history(&r.execution_arn).unwrap();
    let kinds: Vec<EventType> = hist.iter().map(|x| x.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            EventType::ExecutionStarted,
            EventType::TaskStateEntered,
            EventType::ActivityScheduled,
            EventType::ActivityStarted,
            EventType::ActivitySucceeded,
            EventType::TaskStateExited,
            EventType::ExecutionSucceeded
        ]
    );
    assert_eq!(hist[3].details["workerName"], json!("i-0abc"));
    assert_eq!(hist[3].previous_event_id, hist[2].id);
    assert_eq!(hist[4].previous_event_id, hist[3].id);

    // Stale token → TaskTimedOut through the SDK.
    let err = c
        .send_task_success()
        .task_token(&token)
        .output("{}")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_task_timed_out());
    let err = c
        .send_task_heartbeat()
        .task_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_invalid_token());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_failure_reaches_catch() {
    let e = engine(Fake::echo(), 1.0);
    let c = client(&e).await;
    let def = activity_machine(json!({"Catch": [
        {"ErrorEquals": ["Worker.Interrupted"], "Next": "Caught", "ResultPath": "$.interrupted"},
        {"ErrorEquals": ["Worker.ScriptFailed"], "Next": "Caught", "ResultPath": "$.failed"}]}));
    let h = e.start_execution("m", &def, None, json!({"v": 1})).unwrap();
    let got = c
        .get_activity_task()
        .activity_arn(activity("build"))
        .worker_name("w")
        .send()
        .await
        .unwrap();
    c.send_task_failure()
        .task_token(got.task_token().unwrap())
        .error("Worker.ScriptFailed")
        .cause("exit status 2; log tail...")
        .send()
        .await
        .unwrap();
    let r = h.wait().await;
    assert_eq!(r.status, ExecutionStatus::Succeeded);
    assert_eq!(
        r.output,
        Some(
            json!({"v": 1, "failed": {"Error": "Worker.ScriptFailed", "Cause": "exit status 2; log tail..."}})
        )
    );
    let hist = e.history(&r.execution_arn).unwrap();
    let failed = hist
        .iter()
        .find(|x| x.kind == EventType::ActivityFailed)
        .unwrap();
    assert_eq!(failed.details["error"], json!("Worker.ScriptFailed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_long_poll_and_activity_errors() {
    let e = engine(Fake::echo(), 1.0);
    let c = client(&e).await;
    let created = c.create_activity().name("publish").send().await.unwrap();
    assert_eq!(created.activity_arn(), activity("publish"));
    let d = c
        .describe_activity()
        .activity_arn(activity("publish"))
        .send()
        .await
        .unwrap();
    assert_eq!(d.name(), "publish");
    // Nothing pending: held for poll_wait (300 ms in tests) then empty.
    let t0 = tokio::time::Instant::now();
    let got = c
        .get_activity_task()
        .activity_arn(activity("publish"))
        .send()
        .await
        .unwrap();
    assert!(got.task_token().is_none());
    assert!(
        t0.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t0.elapsed()
    );
    // A poll that is waiting gets a task published later.
    let e2 = e.clone();
    let publisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let def = json!({"StartAt": "P", "States": {"P": {"Type": "Task", "Resource": activity("publish"), "End": true}}});
        e2.start_execution("m", &def, None, json!({"n": 1}))
            .unwrap()
    });
    let got = c
        .get_activity_task()
        .activity_arn(activity("publish"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.input(), Some(r#"{"n":1}"#));
    c.send_task_success()
        .task_token(got.task_token().unwrap())
        .output("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(
        publisher.await.unwrap().wait().await.output,
        Some(json!([1]))
    );
    // Bad output JSON → InvalidOutput; unknown activity → ActivityDoesNotExist.
    let err = c
        .send_task_success()
        .task_token("t")
        .output("{not json")
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_invalid_output());
    let err = c
        .get_activity_task()
        .activity_arn(activity("nope"))
        .send()
        .await
        .unwrap_err();
    assert!(err.into_service_error().is_activity_does_not_exist());
}

#[tokio::test]
async fn an_endpoint_with_an_access_key_answers_only_requests_signed_with_it() {
    let e = Engine::new(
        EngineConfig {
            poll_wait: Duration::from_millis(100),
            endpoint_access_key: Some("BOALOCALRUNSECRET".into()),
            ..EngineConfig::default()
        },
        Fake::echo(),
    );
    let stranger = client_as(&e, "AKIDSOMEONEELSE").await;
    let err = stranger
        .get_activity_task()
        .activity_arn(activity("publish"))
        .send()
        .await
        .unwrap_err();
    let code = aws_sdk_sfn::error::ProvideErrorMetadata::code(&err).map(str::to_string);
    assert_eq!(
        code.as_deref(),
        Some("UnrecognizedClientException"),
        "{err:?}"
    );
    let own = client_as(&e, "BOALOCALRUNSECRET").await;
    own.create_activity().name("publish").send().await.unwrap();
    let got = own
        .get_activity_task()
        .activity_arn(activity("publish"))
        .send()
        .await
        .unwrap();
    assert!(got.task_token().is_none());
}
