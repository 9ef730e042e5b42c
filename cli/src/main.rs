//! `build-on-aws`: start a run of the release pipeline (on AWS, or locally), follow it, print
//! every task's result, and exit 0 when nothing failed, 1 when a task failed, 2 for bad input.

mod aws_mode;
mod local_mode;
mod progress;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use boa_core::{BuildInput, Pipeline};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Start and follow a build-on-aws run.
///
/// TOKENS name what to build, in any order: versions, distros (or the values of your pipeline's
/// axes) and step names. Nothing named means: every step, every default value, and today's
/// nightly version when the pipeline allows it.
///
/// Without AWS credentials and a state machine (BOA_STATE_MACHINE_ARN), the run is local: the
/// generated state machine runs in an embedded engine and workers are local processes.
#[derive(Debug, Parser)]
#[command(name = "build-on-aws", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,

    /// Versions, distros and step names, in any order.
    tokens: Vec<String>,

    /// Run locally (embedded engine, local worker processes), even with AWS credentials.
    #[arg(long, conflicts_with = "aws")]
    local: bool,

    /// Run on AWS, even if no credentials are visible (they may come from the instance).
    #[arg(long)]
    aws: bool,

    /// Follow the run until it ends and exit 0/1 (local runs always do).
    #[arg(long)]
    wait: bool,

    /// Print the normalized results as JSON instead of the table.
    #[arg(long)]
    json: bool,

    /// Launch no instances and ignore done_when: tasks wait for workers you start yourself.
    #[arg(long, group = "mode")]
    fake_ec2: bool,

    /// Launch nothing and mark every task skipped: a dry run of the state machine.
    #[arg(long, group = "mode")]
    skip_ec2: bool,

    /// Run the scripts in test mode (BOA_MODE=test).
    #[arg(long, group = "mode")]
    test: bool,

    /// The pipeline file.
    #[arg(long, env = "BOA_PIPELINE", default_value = "pipeline.toml")]
    pipeline: PathBuf,

    /// ARN of the deployed state machine (AWS mode).
    #[arg(long, env = "BOA_STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,

    /// Local mode: divide every wait (retries, boot, idle, health-check period) by this.
    #[arg(
        long,
        env = "BOA_TIME_SCALE",
        default_value_t = 100.0,
        help_heading = "Local mode"
    )]
    time_scale: f64,

    /// Local mode: simulated worker boot time in seconds (before the time scale).
    #[arg(long, default_value_t = 30.0, help_heading = "Local mode")]
    boot_time: f64,

    /// Local mode: where logs, worker folders, run records and done-check objects live.
    #[arg(
        long,
        env = "BOA_RUN_DIR",
        default_value = ".build-on-aws",
        help_heading = "Local mode"
    )]
    run_dir: PathBuf,

    /// Local mode: set KEY=VALUE in every worker's (and so every script's) environment; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env, help_heading = "Local mode")]
    env: Vec<(String, String)>,

    /// Local mode: seed for retry jitter and injected faults.
    #[arg(long, default_value_t = 1, help_heading = "Local mode")]
    seed: u64,

    /// Local mode: fraction (0-1) of tasks whose worker is killed mid-task.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Fault injection (local mode)"
    )]
    kill_workers: f64,

    /// Local mode: fraction of launches refused with RequestLimitExceeded.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Fault injection (local mode)"
    )]
    throttle_launches: f64,

    /// Local mode: fraction of launches refused with InsufficientInstanceCapacity.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Fault injection (local mode)"
    )]
    refuse_launches: f64,

    /// Local mode: fraction of launches refused for good (InvalidAMIID.NotFound, as a bad AMI).
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Fault injection (local mode)"
    )]
    bad_launches: f64,

    /// Local mode: fraction of instances that boot without a worker (replaced after the step's
    /// boot_timeout).
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Fault injection (local mode)"
    )]
    dead_boots: f64,

    /// Local mode: fraction of Lambda invocations that fail.
    #[arg(
        long,
        default_value_t = 0.0,
        help_heading = "Fault injection (local mode)"
    )]
    fail_lambdas: f64,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the results of a finished (or failed) execution: an execution ARN (AWS), a local run
    /// name, or nothing for the latest local run.
    Status {
        execution: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// The pipeline file.
        #[arg(long, env = "BOA_PIPELINE", default_value = "pipeline.toml")]
        pipeline: PathBuf,
        /// Where local run records live.
        #[arg(long, env = "BOA_RUN_DIR", default_value = ".build-on-aws")]
        run_dir: PathBuf,
    },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v))
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!(
            "'{s}' is not KEY=VALUE (e.g. --env BOA_EXAMPLE_SLEEP=1)"
        )),
    }
}

/// Exit codes.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

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
        "\nExamples:\n  build-on-aws --local 4.28.2 ubuntu-22.04-jammy debian-12-bookworm\n  build-on-aws --local MakeSourceTarball --skip-ec2\n  build-on-aws --wait 4.28.2                 # on AWS, follow until done\n  build-on-aws status                        # results of the latest local run\n\nExit codes: 0 nothing failed, 1 a task failed, 2 bad input or configuration.",
    );
    s
}

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
    std::env::var_os("BOA_PIPELINE").map_or_else(|| PathBuf::from("pipeline.toml"), PathBuf::from)
}

impl Cli {
    fn mode_tokens(&self) -> Vec<String> {
        let mut t = self.tokens.clone();
        for (on, flag) in [
            (self.fake_ec2, "--fake-ec2"),
            (self.skip_ec2, "--skip-ec2"),
            (self.test, "--test"),
        ] {
            if on {
                t.push(flag.to_string());
            }
        }
        t
    }
}

/// Loads the pipeline and validates the tokens; errors are printed and mean exit 2.
pub fn load_input(pipeline: &Path, tokens: &[String]) -> Result<(Pipeline, BuildInput), String> {
    let p = Pipeline::load(pipeline).map_err(|e| e.to_string())?;
    let today = chrono::Local::now().date_naive();
    let input = BuildInput::from_tokens(&p, tokens, today).map_err(|e| e.message)?;
    Ok((p, input))
}

fn aws_configured() -> bool {
    let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if env("AWS_ACCESS_KEY_ID") || env("AWS_PROFILE") || env("AWS_WEB_IDENTITY_TOKEN_FILE") {
        return true;
    }
    std::env::var_os("HOME").is_some_and(|h| {
        let aws = Path::new(&h).join(".aws");
        aws.join("credentials").is_file() || aws.join("config").is_file()
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let help = pipeline_help(&pipeline_arg(&args));
    let matches = Cli::command().after_long_help(help).get_matches_from(&args);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BOA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("build-on-aws: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let code = rt.block_on(async move {
        if let Some(Cmd::Status { execution, json, pipeline, run_dir }) = &cli.cmd {
            return match execution.as_deref() {
                Some(e) if e.starts_with("arn:") => aws_mode::status(e, *json, pipeline).await,
                other => local_mode::status(run_dir, other, *json, pipeline),
            };
        }
        let aws = !cli.local && (cli.aws || (cli.state_machine_arn.is_some() && aws_configured()));
        if !cli.local && !aws {
            eprintln!(
                "build-on-aws: no AWS state machine configured (BOA_STATE_MACHINE_ARN) or no AWS credentials: running locally. Use --aws to force AWS mode."
            );
        }
        let local = !aws;
        if local {
            local_mode::run(&cli).await
        } else {
            aws_mode::run(&cli).await
        }
    });
    ExitCode::from(code)
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
