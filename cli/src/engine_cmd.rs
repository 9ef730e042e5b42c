//! `build-on-aws engine serve|run`: the embedded Step Functions engine on its own, for any
//! Amazon States Language machine, with no Lambda functions.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, EngineConfig, ExecutionResult, ExecutionStatus, NoLambdas};
use serde_json::{Value, json};

use crate::args::EngineCmd;
use crate::{CliError, Outcome};

/// SIGINT's number: a run stopped by Ctrl-C exits 130.
const SIGINT: i32 = 2;

pub async fn run(cmd: &EngineCmd) -> Result<Outcome, CliError> {
    match cmd {
        EngineCmd::Serve { port, time_scale } => serve(*port, *time_scale).await,
        EngineCmd::Run {
            machine,
            input,
            time_scale,
        } => {
            let (outcome, report) = run_once(machine, input, *time_scale, ctrl_c()).await?;
            let text = serde_json::to_string_pretty(&report)
                .map_err(|e| CliError::Failed(format!("cannot print the result: {e}")))?;
            println!("{text}");
            Ok(outcome)
        }
    }
}

fn new_engine(time_scale: f64) -> Engine {
    Engine::new(
        EngineConfig {
            time_scale,
            ..EngineConfig::default()
        },
        Arc::new(NoLambdas),
    )
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling: never resolve.
        std::future::pending::<()>().await;
    }
}

/// The lines `engine serve` prints once it listens.
fn serve_banner(addr: SocketAddr, region: &str, account: &str) -> String {
    let url = format!("http://{addr}");
    format!(
        "build-on-aws engine: Step Functions API on {url} (127.0.0.1 only; Ctrl-C stops it; state is kept in memory)\n\
         Point the AWS CLI at it (any credentials and region work):\n\
         \x20 export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION={region}\n\
         \x20 aws stepfunctions --endpoint-url {url} create-state-machine --name hello \\\n\
         \x20     --role-arn arn:aws:iam::{account}:role/any --definition file://machine.json\n\
         \x20 aws stepfunctions --endpoint-url {url} start-execution \\\n\
         \x20     --state-machine-arn arn:aws:states:{region}:{account}:stateMachine:hello --input '{{}}'\n\
         \x20 aws stepfunctions --endpoint-url {url} get-execution-history --execution-arn ARN\n\
         An SDK takes the same URL as its endpoint (aws-sdk-sfn: endpoint_url). Lambda tasks fail with\n\
         Lambda.ResourceNotFoundException: this engine has no functions."
    )
}

async fn serve(port: u16, time_scale: f64) -> Result<Outcome, CliError> {
    let engine = new_engine(time_scale);
    let (addr, task) = engine
        .serve_api(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let c = engine.config();
    println!("{}", serve_banner(addr, &c.region, &c.account_id));
    tokio::select! {
        _ = ctrl_c() => {
            eprintln!("build-on-aws engine: stopped");
            Ok(Outcome::Interrupted(SIGINT))
        }
        r = task => Err(CliError::Failed(format!("the server stopped: {r:?}"))),
    }
}

/// A state machine name from the file's name (the ARN's last part).
fn machine_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if clean.is_empty() {
        "machine".into()
    } else {
        clean
    }
}

fn status_name(s: ExecutionStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// Runs one execution of the machine in `path`; `stop` resolving stops it (ABORTED).
/// Returns how the command ends and the report it prints.
pub async fn run_once(
    path: &Path,
    input: &str,
    time_scale: f64,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(Outcome, Value), CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let definition: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::BadInput(format!("{} is not JSON: {e}", path.display())))?;
    let input: Value = serde_json::from_str(input)
        .map_err(|e| CliError::BadInput(format!("--input is not JSON: {e}")))?;
    let engine = new_engine(time_scale);
    let handle = engine
        .start_execution(&machine_name(path), &definition, None, input)
        .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
    let arn = handle.arn().to_string();
    let mut interrupted = false;
    let wait = handle.wait();
    tokio::pin!(wait);
    tokio::pin!(stop);
    let result: ExecutionResult = tokio::select! {
        r = &mut wait => r,
        _ = &mut stop => {
            interrupted = true;
            engine
                .stop_execution(&arn, Some("Interrupted"), Some("stopped by Ctrl-C"))
                .map_err(|e| CliError::Failed(e.to_string()))?;
            match tokio::time::timeout(Duration::from_secs(10), &mut wait).await {
                Ok(r) => r,
                Err(_) => return Err(CliError::Failed("the execution did not stop".into())),
            }
        }
    };
    let history = engine
        .history(&arn)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let report = json!({
        "executionArn": arn,
        "status": status_name(result.status),
        "output": result.output,
        "error": result.error,
        "cause": result.cause,
        "stateTransitions": result.counts.state_transitions,
        "history": history.iter().map(|e| engine::api::event_json(e, true)).collect::<Vec<_>>(),
    });
    let outcome = match result.status {
        _ if interrupted => Outcome::Interrupted(SIGINT),
        ExecutionStatus::Succeeded => Outcome::Succeeded,
        _ => Outcome::Failed,
    };
    Ok((outcome, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, v: &Value) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    }

    #[tokio::test]
    async fn run_prints_output_and_history_and_fails_on_a_failed_execution() {
        let dir = tempfile::tempdir().unwrap();
        let ok = write(
            dir.path(),
            "add.json",
            &json!({"StartAt": "Add", "States": {"Add": {"Type": "Pass",
                "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "End": true}}}),
        );
        let (o, r) = run_once(&ok, r#"{"a": 2, "b": 3}"#, 1.0, std::future::pending())
            .await
            .unwrap();
        assert_eq!(o, Outcome::Succeeded);
        assert_eq!(r["status"], "SUCCEEDED");
        assert_eq!(r["output"], json!({"sum": 5}));
        assert_eq!(
            r["executionArn"].as_str().unwrap().split(':').nth(6),
            Some("add")
        );
        let types: Vec<&str> = r["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "PassStateEntered",
                "PassStateExited",
                "ExecutionSucceeded"
            ]
        );

        let lambda = write(
            dir.path(),
            "lambda.json",
            &json!({"StartAt": "L", "States": {"L": {"Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:f", "End": true}}}),
        );
        let (o, r) = run_once(&lambda, "{}", 1.0, std::future::pending())
            .await
            .unwrap();
        assert_eq!(o, Outcome::Failed);
        assert_eq!(r["error"], "Lambda.ResourceNotFoundException");

        let bad = write(
            dir.path(),
            "bad.json",
            &json!({"StartAt": "X", "States": {}}),
        );
        let e = run_once(&bad, "{}", 1.0, std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(e, CliError::BadInput(_)), "{e:?}");
        let e = run_once(&ok, "{nope", 1.0, std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(e, CliError::BadInput(_)), "{e:?}");
    }

    #[tokio::test]
    async fn stop_aborts_the_execution() {
        let dir = tempfile::tempdir().unwrap();
        let wait = write(
            dir.path(),
            "wait.json",
            &json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}),
        );
        let (o, r) = run_once(&wait, "{}", 1.0, async {}).await.unwrap();
        assert_eq!(o, Outcome::Interrupted(SIGINT));
        assert_eq!(r["status"], "ABORTED");
    }

    #[test]
    fn banner_names_the_url_and_the_aws_cli() {
        let b = serve_banner(([127, 0, 0, 1], 8083).into(), "us-east-1", "123456789012");
        assert!(b.contains("--endpoint-url http://127.0.0.1:8083"));
        assert!(b.contains("stateMachine:hello"));
    }

    #[test]
    fn machine_names_are_valid() {
        assert_eq!(machine_name(Path::new("/x/my machine.json")), "my_machine");
        assert_eq!(machine_name(Path::new("")), "machine");
    }
}
