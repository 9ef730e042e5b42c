//! The one path of a run, on AWS and locally alike: start an execution with the Step Functions
//! SDK client, follow it (DescribeExecution, and GetExecutionHistory of it and its Distributed
//! Maps' children through the SFN adapter), read what it ended with (results through
//! [`task_results`]) and show it. AWS mode gives it a client of the deployed stack; local mode a
//! client pointed at the embedded engine's endpoint with the run's key, and the run's folder as
//! the bucket.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use boa_aws::adapters::SfnExecutions;
use boa_aws::ports::{HistoryEvent, Objects};
use boa_core::NormalizedResults;
use tokio::signal::unix::{SignalKind, signal};

use crate::progress::{Progress, TaskKey, task_results};
use crate::{CliError, Outcome, html, table};

/// The error an interrupted run's execution is stopped with.
pub const INTERRUPTED_ERROR: &str = "build-on-aws.Interrupted";

/// Signal numbers (Linux): a run stopped by one exits 128 + its number.
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// SIGINT and SIGTERM, watched from before the run starts.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn watch() -> Result<Signals, CliError> {
        let w = |k: SignalKind, name: &str| {
            signal(k).map_err(|e| CliError::Failed(format!("cannot watch {name}: {e}")))
        };
        Ok(Signals {
            int: w(SignalKind::interrupt(), "SIGINT")?,
            term: w(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// The next signal: (number, name).
    async fn next(&mut self) -> (i32, &'static str) {
        tokio::select! {
            _ = self.int.recv() => (SIGINT, "SIGINT"),
            _ = self.term.recv() => (SIGTERM, "SIGTERM"),
        }
    }
}

/// A hint for errors that are not the service's answer (credentials, region, network).
pub fn sdk_error<E, R>(what: String, e: &aws_sdk_sfn::error::SdkError<E, R>) -> CliError
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

/// Starts an execution of `state_machine_arn` named `name` with `input`; returns its ARN.
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &serde_json::Value,
) -> Result<String, CliError> {
    let started = sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                format!("cannot start an execution of {state_machine_arn}"),
                &e,
            )
        })?;
    Ok(started.execution_arn().to_string())
}

/// What DescribeExecution says of an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
}

pub async fn describe(sfn: &aws_sdk_sfn::Client, arn: &str) -> Result<Described, CliError> {
    let d = sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(|e| sdk_error(format!("cannot read {arn}"), &e))?;
    Ok(Described {
        status: d.status().as_str().to_string(),
        error: d.error().map(str::to_string),
        cause: d.cause().map(str::to_string),
    })
}

/// An execution that has ended, as the API tells it.
#[derive(Debug, Clone)]
pub struct Ended {
    pub described: Described,
    /// Its history, its Distributed Maps' children's after it.
    pub history: Vec<HistoryEvent>,
    pub results: Option<NormalizedResults>,
}

/// Reads an execution that has ended: DescribeExecution, its history (children included) and its
/// task results from `objects`.
pub async fn read_ended(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    described: Described,
    objects: &dyn Objects,
) -> Result<Ended, CliError> {
    let history = SfnExecutions(sfn.clone())
        .history_with_children(arn)
        .await
        .map_err(|e| CliError::Failed(format!("cannot read the history of {arn}: {e}")))?;
    let results = task_results(&history, objects)
        .await
        .map_err(CliError::Failed)?;
    Ok(Ended {
        described,
        history,
        results,
    })
}

/// The live progress: one updating line with a bar on a terminal, one line per change otherwise.
pub struct Live {
    bar: Option<indicatif::ProgressBar>,
    last: String,
    start: Instant,
    time_scale: f64,
    total: usize,
}

impl Live {
    pub fn new(total: usize, time_scale: f64) -> Live {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {bar:20} {wide_msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Live {
            bar,
            last: String::new(),
            start: Instant::now(),
            time_scale,
            total,
        }
    }

    fn show(&mut self, p: &Progress, workers: Option<usize>) {
        let real = self.start.elapsed();
        match &self.bar {
            Some(b) => {
                b.set_position(p.done().min(self.total) as u64);
                b.set_message(p.line(self.total, workers, real, self.time_scale));
            }
            None => {
                let counts = p.counts(self.total, workers);
                if counts != self.last {
                    eprintln!("  {}", p.line(self.total, workers, real, self.time_scale));
                    self.last = counts;
                }
            }
        }
    }

    fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// How to follow a run.
pub struct Follow<'a> {
    pub requested: &'a [TaskKey],
    /// Pipeline time = real time × this (local mode's time scale; 1 on AWS).
    pub time_scale: f64,
    /// How often DescribeExecution and GetExecutionHistory are called.
    pub poll: Duration,
    /// Workers alive now, when the follower knows (local mode).
    pub workers: Option<&'a dyn Fn() -> usize>,
    /// Stop the execution (StopExecution) on SIGINT/SIGTERM; `None` leaves it running (AWS).
    pub signals: Option<Signals>,
}

/// How following ended.
pub struct Followed {
    pub ended: Ended,
    /// The signal that stopped the run, if one did: (number, name).
    pub interrupted: Option<(i32, &'static str)>,
}

/// Follows an execution to its end, showing its progress, and reads what it ended with. With
/// signals, the first SIGINT/SIGTERM stops the execution (`StopExecution`, ABORTED).
pub async fn follow(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    objects: &dyn Objects,
    mut f: Follow<'_>,
) -> Result<Followed, CliError> {
    let ex = SfnExecutions(sfn.clone());
    let mut live = Live::new(f.requested.len(), f.time_scale);
    let mut interrupted: Option<(i32, &'static str)> = None;
    let described = loop {
        let d = match describe(sfn, arn).await {
            Ok(d) => d,
            Err(e) => {
                live.println(&format!("build-on-aws: {e} (retrying)"));
                Described {
                    status: "RUNNING".into(),
                    error: None,
                    cause: None,
                }
            }
        };
        if d.status != "RUNNING" {
            break d;
        }
        if interrupted.is_none()
            && let Ok(h) = ex.history_with_children(arn).await
        {
            live.show(
                &Progress::from_history(&h, f.requested),
                f.workers.map(|w| w()),
            );
        }
        let sleep = tokio::time::sleep(f.poll);
        match f.signals.as_mut().filter(|_| interrupted.is_none()) {
            Some(signals) => tokio::select! {
                () = sleep => {}
                sig = signals.next() => {
                    interrupted = Some(sig);
                    live.finish();
                    eprintln!("build-on-aws: {}: stopping run {} (its workers and scripts too)", sig.1, arn.rsplit(':').next().unwrap_or(arn));
                    if let Err(e) = sfn
                        .stop_execution()
                        .execution_arn(arn)
                        .error(INTERRUPTED_ERROR)
                        .cause(format!("{}: the run was stopped by the user", sig.1))
                        .send()
                        .await
                    {
                        eprintln!(
                            "build-on-aws: could not stop the execution: {}",
                            aws_sdk_sfn::error::DisplayErrorContext(&e)
                        );
                    }
                }
            },
            None => sleep.await,
        }
    };
    live.finish();
    let ended = read_ended(sfn, arn, described, objects).await?;
    Ok(Followed { ended, interrupted })
}

/// What is shown of a run that has ended (or, for `status`, one that has not).
pub struct Shown<'a> {
    pub name: &'a str,
    pub status: &'a str,
    pub error: Option<&'a str>,
    pub cause: Option<&'a str>,
    pub results: Option<&'a NormalizedResults>,
    pub time_scale: f64,
    /// The line under the table (where the logs are, how to see it again).
    pub footer: Option<String>,
}

/// Prints the results (a table, or `--json`) and says how the run ended.
pub fn show(s: &Shown<'_>, json: bool, p: &boa_core::Pipeline) -> Result<Outcome, CliError> {
    let order: Vec<String> = p.axes.iter().map(|a| a.name.clone()).collect();
    let (name, status) = (s.name, s.status);
    match s.results {
        Some(r) if r.tasks.is_empty() && status != "SUCCEEDED" && !json => {
            println!(
                "run {name} ({status}): no task had finished{}",
                s.cause.map(|c| format!(" ({c})")).unwrap_or_default()
            );
            Ok(Outcome::Failed)
        }
        Some(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
            } else {
                print!("{}", table::render(r, &order, s.time_scale));
                if status == "ABORTED" {
                    println!(
                        "(stopped: only the tasks that had finished are listed; {})",
                        s.cause.unwrap_or_default()
                    );
                }
                if let Some(f) = &s.footer {
                    println!("{f}");
                }
            }
            if r.summary.failed > 0 || status != "SUCCEEDED" {
                Ok(Outcome::Failed)
            } else {
                Ok(Outcome::Succeeded)
            }
        }
        None if matches!(status, "ABORTED" | "RUNNING" | "KILLED") => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&NormalizedResults::new(vec![]))
                        .unwrap_or_default()
                );
            } else {
                println!("run {name} ({status}): no task had finished");
            }
            Ok(Outcome::Failed)
        }
        None => Err(CliError::Failed(format!(
            "run {name} ended {status} without results: {} {}",
            s.error.unwrap_or_default(),
            s.cause.unwrap_or_default()
        ))),
    }
}

/// Writes the report page.
pub fn write_html(path: &Path, report: &html::Report<'_>) -> Result<(), CliError> {
    std::fs::write(path, html::render(report))
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
    eprintln!("build-on-aws: report written to {}", path.display());
    Ok(())
}
