//! The Step Functions adapters (`SfnExecutions`, `SfnActivities`) through the real aws-sdk-sfn
//! client against moto_server.
//!
//! moto does not run state machines: an execution stays RUNNING and its history is a canned
//! sample; GetActivityTask is not implemented; SendTask* are accepted without effect. What moto
//! cannot show is covered by the fakes (see aws/src/adapters/README-coverage.md).

use boa_aws::adapters::{SfnActivities, SfnExecutions};
use boa_aws::ports::{Activities, Executions, PortError};
use boa_core::history_event::EventType;
use e2e_tests::moto::{ACCOUNT, Moto};

const ROLE: &str = "arn:aws:iam::123456789012:role/build-on-aws-states";

async fn machine(sfn: &aws_sdk_sfn::Client, activity_arn: &str) -> String {
    let def = serde_json::json!({
        "StartAt": "MakeSourceTarball",
        "States": {"MakeSourceTarball": {"Type": "Task", "Resource": activity_arn, "End": true}}
    });
    sfn.create_state_machine()
        .name("build-on-aws-demo")
        .definition(def.to_string())
        .role_arn(ROLE)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string()
}

#[tokio::test]
async fn running_executions_are_listed_and_their_history_read() {
    let moto = Moto::start();
    let sfn = moto.sfn().await;
    let act = sfn
        .create_activity()
        .name("build-on-aws-demo-MakeSourceTarball")
        .send()
        .await
        .unwrap();
    assert_eq!(
        act.activity_arn(),
        format!("arn:aws:states:us-east-1:{ACCOUNT}:activity:build-on-aws-demo-MakeSourceTarball")
    );
    let sm = machine(&sfn, act.activity_arn()).await;
    let ex = SfnExecutions(sfn.clone());
    assert!(ex.running(&sm).await.unwrap().is_empty());
    let mut started = vec![];
    for name in ["run-b", "run-a"] {
        let s = sfn
            .start_execution()
            .state_machine_arn(&sm)
            .name(name)
            .input(r#"{"versions": ["4.28.2"]}"#)
            .send()
            .await
            .unwrap();
        started.push(s.execution_arn().to_string());
    }
    let running = ex.running(&sm).await.unwrap();
    let names: Vec<&str> = running.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["run-a", "run-b"], "sorted by ARN");
    assert!(running.iter().all(|e| e.start.is_some()));
    assert!(ex.is_running(&started[0]).await.unwrap());
    // Stopped executions are no longer listed, nor running.
    sfn.stop_execution()
        .execution_arn(&started[0])
        .send()
        .await
        .unwrap();
    let running = ex.running(&sm).await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].arn, started[1]);
    assert!(!ex.is_running(&started[0]).await.unwrap());
    assert!(ex.is_running(&started[1]).await.unwrap());

    let h = ex.history(&started[1]).await.unwrap();
    assert!(!h.is_empty());
    assert_eq!(h[0].kind, EventType::ExecutionStarted);
    assert!(h.windows(2).all(|w| w[0].id < w[1].id));
    let entered = h
        .iter()
        .find(|e| e.kind.is_state_entered())
        .expect("moto's sample history has a state entered");
    assert!(entered.state_name.is_some(), "{entered:?}");
}

#[tokio::test]
async fn missing_executions_and_machines_are_not_found() {
    let moto = Moto::start();
    let ex = SfnExecutions(moto.sfn().await);
    let missing = format!("arn:aws:states:us-east-1:{ACCOUNT}:execution:build-on-aws-demo:nope");
    let e = ex.history(&missing).await.unwrap_err();
    assert!(matches!(e, PortError::NotFound(_)), "{e:?}");
    let e = ex.is_running(&missing).await.unwrap_err();
    assert!(matches!(e, PortError::NotFound(_)), "{e:?}");
}

#[tokio::test]
async fn task_results_heartbeats_and_failures_are_accepted() {
    let moto = Moto::start();
    let acts = SfnActivities::new(
        &moto.sdk_config().await,
        None,
        boa_aws::adapters::sfn::GET_TASK_TIMEOUT,
    );
    // moto accepts any token for these calls; the requests are well-formed for AWS.
    acts.heartbeat("token-1").await.unwrap();
    acts.succeed(
        "token-1",
        r#"{"instance_id": "i-1", "log_stream": "w_i-1", "elapsed_s": 1.0}"#,
    )
    .await
    .unwrap();
    acts.fail("token-2", "Worker.ScriptFailed", "exit status 2")
        .await
        .unwrap();
}
