//! AWS mode: start an execution of the deployed state machine, print where to watch it, and
//! optionally follow it to the end.

use std::path::Path;
use std::time::Duration;

use boa_aws::ports::Executions;
use boa_core::history_event::EventType;

use crate::progress::{Progress, TaskKey, task_results};
use crate::{Cli, CliError, Outcome, html, load_input, table};

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
        if cli.common.html.is_some() {
            eprintln!(
                "build-on-aws: --html writes the report when the run ends: add --wait, or later run `build-on-aws status {arn} --html FILE`"
            );
        }
        return Ok(Outcome::Started);
    }
    let requested = input.requested_tasks(&p).unwrap_or_default();
    follow(
        &sfn,
        &arn,
        &requested,
        cli.common.json,
        cli.common.html.as_deref(),
        &p,
    )
    .await
}

async fn follow(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    requested: &[TaskKey],
    json: bool,
    html_path: Option<&Path>,
    p: &boa_core::Pipeline,
) -> Result<Outcome, CliError> {
    let ex = boa_aws::adapters::SfnExecutions(sfn.clone());
    let start = std::time::Instant::now();
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
            bar.set_message(Progress::from_history(&h, requested).line(
                requested.len(),
                None,
                start.elapsed(),
                1.0,
            ));
        }
        if status != "RUNNING" {
            bar.finish_and_clear();
            let h = ex.history(arn).await.unwrap_or_default();
            let results = results_of(&h).await?;
            write_html(html_path, arn, &status, &h, p, results.as_ref())?;
            return finish(results, &h, &status, json, p);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// The execution's task results: the object NormalizeResults named, read from S3 with the
/// ambient credentials (or what had finished, for an execution that ended before it).
async fn results_of(
    history: &[boa_aws::ports::HistoryEvent],
) -> Result<Option<boa_core::NormalizedResults>, CliError> {
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let objects = boa_aws::adapters::S3Objects::new(&aws);
    task_results(history, &objects)
        .await
        .map_err(CliError::Failed)
}

fn finish(
    results: Option<boa_core::NormalizedResults>,
    history: &[boa_aws::ports::HistoryEvent],
    status: &str,
    json: bool,
    p: &boa_core::Pipeline,
) -> Result<Outcome, CliError> {
    let order: Vec<String> = p.axes.iter().map(|a| a.name.clone()).collect();
    match results {
        Some(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", table::render(&r, &order, 1.0));
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

/// The report page of an execution, from its history (counts the history shows; Step Functions
/// does not report transitions or launches).
fn write_html(
    path: Option<&Path>,
    arn: &str,
    status: &str,
    history: &[boa_aws::ports::HistoryEvent],
    p: &boa_core::Pipeline,
    results: Option<&boa_core::NormalizedResults>,
) -> Result<(), CliError> {
    let Some(path) = path else {
        return Ok(());
    };
    let last_failure = history.iter().rev().find(|e| {
        matches!(
            e.kind,
            EventType::ExecutionFailed | EventType::ExecutionAborted
        )
    });
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let page = html::render(&html::Report {
        title: name,
        status,
        execution_arn: arn,
        error: last_failure.and_then(|e| e.error.as_deref()),
        cause: last_failure.and_then(|e| e.cause.as_deref()),
        pipeline: p,
        results,
        history,
        counts: None,
        time_scale: 1.0,
        workers: &[],
    });
    std::fs::write(path, page)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
    eprintln!("build-on-aws: report written to {}", path.display());
    Ok(())
}

pub async fn status(
    arn: &str,
    json: bool,
    html_path: Option<&Path>,
    pipeline: &Path,
) -> Result<Outcome, CliError> {
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
                let r = crate::progress::attempts(&h);
                let ended = r.iter().filter(|a| a.ended.is_some()).count();
                format!(
                    "{ended} task attempts ended, {} running so far",
                    r.len() - ended
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
    let results = results_of(&h).await?;
    write_html(html_path, arn, &status, &h, &p, results.as_ref())?;
    finish(results, &h, &status, json, &p)
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
