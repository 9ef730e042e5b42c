//! AWS mode: start an execution of the deployed state machine, print where to watch it, and
//! optionally follow it to the end.

use std::path::Path;
use std::time::Duration;

use boa_aws::ports::Executions;
use boa_core::history_event::EventType;

use crate::progress::{Progress, normalized_from_history};
use crate::{Cli, CliError, Outcome, load_input, table};

/// The Step Functions console page of an execution.
pub fn console_url(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
}

async fn client() -> aws_sdk_sfn::Client {
    let cfg = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sfn::Client::new(&cfg)
}

/// A hint for errors that are not the service's answer (credentials, region, network).
fn sdk_error<E, R>(what: String, e: &aws_sdk_sfn::error::SdkError<E, R>) -> CliError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let hint = if matches!(e, aws_sdk_sfn::error::SdkError::ServiceError(_)) {
        ""
    } else {
        " (AWS credentials and region come from the usual chain: environment, profile, SSO, instance role; or run locally with --local)"
    };
    CliError::Failed(format!(
        "{what}: {}{hint}",
        aws_sdk_sfn::error::DisplayErrorContext(e)
    ))
}

pub async fn run(cli: &Cli) -> Result<Outcome, CliError> {
    let (p, input) = load_input(&cli.common.pipeline, &cli.tokens, cli.run.mode())?;
    let Some(sm) = &cli.aws.state_machine_arn else {
        return Err(CliError::BadInput(
            "AWS mode needs the state machine ARN: pass --state-machine-arn or set BOA_STATE_MACHINE_ARN (deploy prints it), or use --local".into(),
        ));
    };
    let name = crate::execution_name(&input.tokens(&p), chrono::Local::now());
    let sfn = client().await;
    let started = sfn
        .start_execution()
        .state_machine_arn(sm)
        .name(&name)
        .input(input.execution_input(&p).to_string())
        .send()
        .await
        .map_err(|e| sdk_error(format!("cannot start an execution of {sm}"), &e))?;
    let arn = started.execution_arn().to_string();
    println!("execution: {arn}");
    println!("console:   {}", console_url(&arn));
    if !cli.run.wait {
        return Ok(Outcome::Started);
    }
    let total = input.requested_tasks(&p).map(|t| t.len()).unwrap_or(0);
    follow(&sfn, &arn, total, cli.common.json, &p).await
}

async fn follow(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    total: usize,
    json: bool,
    p: &boa_core::Pipeline,
) -> Result<Outcome, CliError> {
    let ex = boa_aws::adapters::SfnExecutions(sfn.clone());
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    loop {
        let status = match sfn.describe_execution().execution_arn(arn).send().await {
            Ok(d) => d.status().as_str().to_string(),
            Err(e) => {
                bar.println(format!(
                    "build-on-aws: describe failed (retrying): {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                ));
                "RUNNING".into()
            }
        };
        if let Ok(h) = ex.history(arn).await {
            bar.set_message(Progress::from_history(&h).line(total, None));
        }
        if status != "RUNNING" {
            bar.finish_and_clear();
            let h = ex.history(arn).await.unwrap_or_default();
            return finish(&h, &status, json, p).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn finish(
    history: &[boa_aws::ports::HistoryEvent],
    status: &str,
    json: bool,
    p: &boa_core::Pipeline,
) -> Result<Outcome, CliError> {
    let order: Vec<String> = p.axes.iter().map(|a| a.name.clone()).collect();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let objects = boa_aws::adapters::S3Objects::new(&aws);
    let normalized = normalized_from_history(history, &objects)
        .await
        .map_err(CliError::Failed)?;
    match normalized {
        Some(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", table::render(&r, &order));
            }
            if r.summary.failed > 0 || status != "SUCCEEDED" {
                Ok(Outcome::Failed)
            } else {
                Ok(Outcome::Succeeded)
            }
        }
        None => {
            let why = history
                .iter()
                .rev()
                .find(|e| e.kind == EventType::ExecutionFailed)
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.error.clone().unwrap_or_default(),
                        e.cause.clone().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            Err(CliError::Failed(format!(
                "the execution ended {status} without results {why}"
            )))
        }
    }
}

pub async fn status(arn: &str, json: bool, pipeline: &Path) -> Result<Outcome, CliError> {
    let p = boa_core::Pipeline::load(pipeline).map_err(|e| CliError::BadInput(e.to_string()))?;
    let sfn = client().await;
    let status = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| sdk_error(format!("cannot read {arn}"), &e))?
        .status()
        .as_str()
        .to_string();
    let ex = boa_aws::adapters::SfnExecutions(sfn);
    if status == "RUNNING" {
        let progress = ex
            .history(arn)
            .await
            .map(|h| {
                let p = Progress::from_history(&h);
                format!(
                    "{} succeeded, {} skipped, {} running so far",
                    p.succeeded, p.skipped, p.running
                )
            })
            .unwrap_or_default();
        return Err(CliError::Failed(format!(
            "{arn} is still running ({progress}); ask again when it has ended, or watch it at {}",
            console_url(arn)
        )));
    }
    let h = ex
        .history(arn)
        .await
        .map_err(|e| CliError::Failed(format!("cannot read the history of {arn}: {e}")))?;
    finish(&h, &status, json, &p).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn console_url_uses_the_execution_region() {
        let u = super::console_url("arn:aws:states:eu-west-1:123456789012:execution:sm:run-1");
        assert!(
            u.starts_with("https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#")
        );
        assert!(u.ends_with("execution:sm:run-1"));
    }
}
