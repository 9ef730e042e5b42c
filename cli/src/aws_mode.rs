//! AWS mode: start an execution of the deployed state machine, print where to watch it, and
//! optionally follow it to the end, through the one path of [`crate::execution`] (which local
//! mode takes too, against the embedded engine's endpoint).

use std::path::Path;
use std::time::Duration;

use crate::execution::{self, Ended, Follow, Shown};
use crate::{Cli, CliError, Outcome, html, load_input};

/// The Step Functions console page of an execution.
pub fn console_url(execution_arn: &str) -> String {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    )
}

async fn client() -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&boa_aws::adapters::load_sdk_config().await)
}

/// The stack's bucket, where NormalizeResults writes the results, with the ambient credentials.
async fn objects() -> boa_aws::adapters::S3Objects {
    boa_aws::adapters::S3Objects::new(&boa_aws::adapters::load_sdk_config().await)
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
    let arn = execution::start(&sfn, sm, &name, &input.execution_input(&p)).await?;
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
    let followed = execution::follow(
        &sfn,
        &arn,
        &objects().await,
        Follow {
            requested: &requested,
            time_scale: 1.0,
            poll: Duration::from_secs(5),
            workers: None,
            signals: None,
        },
    )
    .await?;
    finish(
        &arn,
        &followed.ended,
        cli.common.json,
        cli.common.html.as_deref(),
        &p,
    )
}

/// Shows an AWS execution that has ended (and writes its report page).
fn finish(
    arn: &str,
    e: &Ended,
    json: bool,
    html_path: Option<&Path>,
    p: &boa_core::Pipeline,
) -> Result<Outcome, CliError> {
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let d = &e.described;
    if let Some(path) = html_path {
        // Counts are what the history shows; Step Functions reports no transitions or launches.
        execution::write_html(
            path,
            &html::Report {
                title: name,
                status: &d.status,
                execution_arn: arn,
                error: d.error.as_deref(),
                cause: d.cause.as_deref(),
                pipeline: p,
                results: e.results.as_ref(),
                history: &e.history,
                counts: None,
                time_scale: 1.0,
                workers: &[],
            },
        )?;
    }
    execution::show(
        &Shown {
            name,
            status: &d.status,
            error: d.error.as_deref(),
            cause: d.cause.as_deref(),
            results: e.results.as_ref(),
            time_scale: 1.0,
            footer: None,
        },
        json,
        p,
    )
}

/// `build-on-aws status ARN`: the same reads as following a run to its end.
pub async fn status(
    arn: &str,
    json: bool,
    html_path: Option<&Path>,
    pipeline: &Path,
) -> Result<Outcome, CliError> {
    let p = boa_core::Pipeline::load(pipeline).map_err(|e| CliError::BadInput(e.to_string()))?;
    let sfn = client().await;
    let described = execution::describe(&sfn, arn).await?;
    if described.status == "RUNNING" {
        let progress = boa_aws::adapters::SfnExecutions(sfn.clone())
            .history_with_children(arn)
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
    let ended = execution::read_ended(&sfn, arn, described, &objects().await).await?;
    finish(arn, &ended, json, html_path, &p)
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
