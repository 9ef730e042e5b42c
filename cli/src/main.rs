//! `build-on-aws`: start a run of the release pipeline (on AWS, or locally), follow it, print
//! every task's result, and exit 0 when nothing failed, 1 when a task or the run failed, 2 for bad
//! input. `run` says what happened; `main` alone turns that into an exit code.

mod args;
mod aws_mode;
mod engine_cmd;
mod execution;
mod html;
mod local_mode;
mod progress;
mod table;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use boa_core::input::MAX_INPUT_BYTES;
use boa_core::{BuildInput, Mode, Pipeline};
use clap::{CommandFactory, FromArgMatches};

pub use args::{Cli, Cmd, Where};

/// How a command ended, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every task succeeded or was skipped (or a dry run printed its input).
    Succeeded,
    /// An AWS execution was started and not followed (no --wait).
    Started,
    /// The run ended with a failed task, or the execution failed; the results say which.
    Failed,
    /// A local run was stopped by this signal (SIGINT, SIGTERM): exit 128 + its number.
    Interrupted(i32),
}

/// Why a command could not do its work; the message names the bad value and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Bad tokens, pipeline file, option or configuration: nothing was started.
    BadInput(String),
    /// The run could not be started, followed or read.
    Failed(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::BadInput(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

/// Exit codes: 0 nothing failed, 1 a task or the run failed, 2 bad input or usage, 130/143 a
/// local run stopped by Ctrl-C (SIGINT) / SIGTERM.
pub const EXIT_SUCCEEDED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

/// The one place a result becomes an exit code (and an error a message).
fn exit_code(result: Result<Outcome, CliError>) -> u8 {
    match result {
        Ok(Outcome::Succeeded | Outcome::Started) => EXIT_SUCCEEDED,
        Ok(Outcome::Failed) => EXIT_FAILED,
        Ok(Outcome::Interrupted(sig)) => u8::try_from(128 + sig).unwrap_or(EXIT_FAILED),
        Err(e) => {
            eprintln!("build-on-aws: {e}");
            match e {
                CliError::BadInput(_) => EXIT_BAD_INPUT,
                CliError::Failed(_) => EXIT_FAILED,
            }
        }
    }
}

fn pipeline_help(path: &Path) -> String {
    let mut s = String::new();
    match Pipeline::load(path) {
        Ok(p) => {
            s.push_str(&format!("Pipeline {} ({}):\n", p.name, path.display()));
            s.push_str(&boa_core::input::what_fits(&p));
            s.push('\n');
        }
        Err(_) => s.push_str(&format!(
            "(No valid pipeline at {}: pass --pipeline FILE to see its steps and axes.)\n",
            path.display()
        )),
    }
    s.push_str(
        "\nExamples:\n  build-on-aws --local 4.28.2 ubuntu-22.04-jammy debian-12-bookworm\n  build-on-aws --local MakeSourceTarball --skip-ec2\n  build-on-aws --dry-run --mode test 4.28.2   # print the input, start nothing\n  build-on-aws --wait 4.28.2                 # on AWS (state machine ARN set), follow until done\n  build-on-aws status                        # results of the latest local run\n  build-on-aws status --list                 # every local run of the run folder\n  build-on-aws status --html report.html     # the latest run's report page (also: a run, an ARN)\n\nCtrl-C stops a local run: the execution is stopped (ABORTED), its workers and scripts too, and\nthe run record is saved. Each local run keeps its logs, tags and work folders in\n<run dir>/runs/<run name>/, so several runs can share a run folder at once.\n\nExit codes: 0 nothing failed, 1 a task failed, 2 bad input or configuration, 130/143 a local\nrun stopped by SIGINT/SIGTERM.",
    );
    s
}

/// The pipeline named on the command line, read before parsing so `--help` can list its steps.
fn pipeline_arg(args: &[String]) -> PathBuf {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--pipeline" {
            if let Some(v) = it.next() {
                return PathBuf::from(v);
            }
        } else if let Some(v) = a.strip_prefix("--pipeline=") {
            return PathBuf::from(v);
        }
    }
    std::env::var_os(boa_core::names::cli::PIPELINE)
        .map_or_else(|| PathBuf::from("pipeline.toml"), PathBuf::from)
}

/// A subcommand takes the global options (`--pipeline`, `--json`, `--run-dir`) wherever they are
/// given; a run's own options next to it would be ignored, so they are a usage error.
fn only_shared_options_with_a_subcommand(
    cmd: &clap::Command,
    m: &clap::ArgMatches,
) -> Result<(), clap::Error> {
    let Some((sub, _)) = m.subcommand() else {
        return Ok(());
    };
    let given: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set())
        .filter(|a| {
            m.value_source(a.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|a| {
            a.get_long()
                .map_or_else(|| a.get_id().to_string(), |l| format!("--{l}"))
        })
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(cmd.clone().error(
        clap::error::ErrorKind::ArgumentConflict,
        format!(
            "{} starts a run and cannot be used with `{sub}`; `{sub}` takes --pipeline, --json and --run-dir",
            given.join(", ")
        ),
    ))
}

/// Loads the pipeline and validates the tokens, with the command line's mode (if any) in place of
/// a mode token; a mode token that says otherwise is a conflict.
pub fn load_input(
    pipeline: &Path,
    tokens: &[String],
    mode: Option<Mode>,
) -> Result<(Pipeline, BuildInput), CliError> {
    let p = Pipeline::load(pipeline).map_err(|e| CliError::BadInput(e.to_string()))?;
    let today = chrono::Local::now().date_naive();
    let mut input =
        BuildInput::from_tokens(&p, tokens, today).map_err(|e| CliError::BadInput(e.message))?;
    if let Some(m) = mode {
        let other = tokens
            .iter()
            .map(|t| t.trim())
            .find(|t| Mode::FLAGS.iter().any(|(flag, fm)| flag == t && *fm != m));
        if let Some(t) = other {
            return Err(CliError::BadInput(format!(
                "--mode {} conflicts with the token '{t}': give one mode",
                m.as_str()
            )));
        }
        input.mode = m;
    }
    // What ParseInput would refuse is refused here, before anything starts or is launched.
    let size = input.execution_input(&p).to_string().len();
    if size > MAX_INPUT_BYTES {
        return Err(CliError::BadInput(format!(
            "the execution input would be {size} bytes; ParseInput accepts at most {MAX_INPUT_BYTES}: split the request into several runs"
        )));
    }
    let report = statemachine_gen::check_quotas(&p, &input)
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    for w in &report.exceeds {
        eprintln!("build-on-aws: warning: {w}");
    }
    Ok((p, input))
}

/// Runs the command the arguments name.
pub async fn run(cli: Cli) -> Result<Outcome, CliError> {
    if let Some(Cmd::Engine { cmd }) = &cli.cmd {
        return engine_cmd::run(cmd).await;
    }
    if let Some(Cmd::Status { execution, list }) = &cli.cmd {
        let c = &cli.common;
        return match execution.as_deref() {
            Some(e) if e.starts_with("arn:") => {
                aws_mode::status(e, c.json, c.html.as_deref(), &c.pipeline).await
            }
            other => {
                local_mode::status(
                    &c.run_dir,
                    other,
                    *list,
                    c.json,
                    c.html.as_deref(),
                    &c.pipeline,
                )
                .await
            }
        };
    }
    if cli.run.dry_run {
        let (p, input) = load_input(&cli.common.pipeline, &cli.tokens, cli.run.mode())?;
        let json = serde_json::to_string_pretty(&input.execution_input(&p))
            .map_err(|e| CliError::Failed(format!("cannot print the input: {e}")))?;
        println!("{json}");
        return Ok(Outcome::Succeeded);
    }
    let aws = match cli.run.place {
        Where::Local => false,
        Where::Aws => true,
        Where::Auto => cli.aws.state_machine_arn.is_some(),
    };
    if aws {
        aws_mode::run(&cli).await
    } else {
        if cli.run.place == Where::Auto {
            eprintln!(
                "build-on-aws: no AWS state machine configured (--state-machine-arn or BOA_STATE_MACHINE_ARN): running locally. Use --aws to force AWS mode."
            );
        }
        local_mode::run(&cli).await
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let help = pipeline_help(&pipeline_arg(&args));
    let mut cmd = Cli::command().after_long_help(help);
    let cli = cmd
        .try_get_matches_from_mut(&args)
        .and_then(|m| only_shared_options_with_a_subcommand(&cmd, &m).map(|()| m))
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match cli {
        Ok(c) => c,
        Err(e) => {
            // Usage errors (exit 2, naming the argument) and --help/--version (exit 0).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_BAD_INPUT));
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(boa_core::names::cli::LOG)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(CliError::Failed(format!(
            "cannot start the async runtime: {e}"
        ))),
    };
    ExitCode::from(exit_code(result))
}

/// A readable, unique execution name: tokens + user + time + a short random suffix, at most 80
/// characters of `[A-Za-z0-9-_]`.
pub fn execution_name(tokens: &[String], now: chrono::DateTime<chrono::Local>) -> String {
    use rand::RngExt;
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let toks = if tokens.is_empty() {
        "all".to_string()
    } else {
        tokens.join("-")
    };
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let suffix: u32 = rand::rng().random_range(0..0x10000);
    let tail = format!(
        "-{}-{}-{suffix:04x}",
        clean(&user),
        now.format("%Y%m%dT%H%M%S")
    );
    let head_len = 80usize.saturating_sub(tail.len());
    let head: String = clean(&toks).chars().take(head_len).collect();
    format!("{head}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_are_readable_unique_and_valid() {
        let now = chrono::Local::now();
        let t = vec![
            "4.28.2".to_string(),
            "ubuntu-22.04-jammy".into(),
            "--fake-ec2".into(),
        ];
        let a = execution_name(&t, now);
        let b = execution_name(&t, now);
        assert!(
            a.starts_with("4_28_2-ubuntu-22_04-jammy---fake-ec2-"),
            "{a}"
        );
        assert!(a.len() <= 80);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b, "random suffix");
        let long: Vec<String> = (0..40).map(|i| format!("token{i}")).collect();
        assert!(execution_name(&long, now).len() <= 80);
    }

    #[test]
    fn the_mode_option_replaces_a_mode_token_and_conflicts_with_another() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml");
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (_, by_token) = load_input(&p, &t(&["4.28.2", "--test"]), None).unwrap();
        let (_, by_option) = load_input(&p, &t(&["4.28.2"]), Some(Mode::Test)).unwrap();
        let (_, both) = load_input(&p, &t(&["4.28.2", "--test"]), Some(Mode::Test)).unwrap();
        assert_eq!(by_token, by_option);
        assert_eq!(both, by_option);
        let e = load_input(&p, &t(&["4.28.2", "--fake-ec2"]), Some(Mode::Normal)).unwrap_err();
        assert!(
            matches!(&e, CliError::BadInput(m) if m.contains("--mode normal") && m.contains("--fake-ec2")),
            "{e:?}"
        );
    }

    #[test]
    fn outcomes_and_errors_map_to_the_documented_exit_codes() {
        assert_eq!(exit_code(Ok(Outcome::Succeeded)), 0);
        assert_eq!(exit_code(Ok(Outcome::Started)), 0);
        assert_eq!(exit_code(Ok(Outcome::Failed)), 1);
        assert_eq!(exit_code(Ok(Outcome::Interrupted(2))), 130);
        assert_eq!(exit_code(Ok(Outcome::Interrupted(15))), 143);
        assert_eq!(exit_code(Err(CliError::Failed("x".into()))), 1);
        assert_eq!(exit_code(Err(CliError::BadInput("x".into()))), 2);
    }

    #[test]
    fn help_lists_steps_axes_and_examples() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml");
        let h = pipeline_help(&p);
        for s in [
            "MakeBinaryPackage",
            "distro",
            "version",
            "--fake-ec2",
            "Examples",
            "Exit codes",
        ] {
            assert!(h.contains(s), "{s} missing from help:\n{h}");
        }
    }
}
