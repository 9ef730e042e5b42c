//! The command line: what a run asks for (tokens and mode), where it runs, and the options of each
//! place, in one group each. Values are checked here, so a bad one is a usage error (exit 2) that
//! names it before anything starts.

use std::path::PathBuf;

use boa_core::{Mode, names};
use clap::{Arg, ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Start and follow a build-on-aws run.
///
/// TOKENS name what to build, in any order: versions, distros (or the values of your pipeline's
/// axes) and step names. Nothing named means: every step, every default value, and today's
/// nightly version when the pipeline allows it.
///
/// Where it runs (--where auto, the default): on AWS when a state machine ARN is configured
/// (--state-machine-arn or BOA_STATE_MACHINE_ARN; deploy prints it), else locally: the generated
/// state machine runs in an embedded engine and workers are local processes. --local and --aws
/// force one or the other. AWS credentials and region come from the usual AWS chain
/// (environment, profile, SSO, instance role).
#[derive(Debug, Parser)]
#[command(name = "build-on-aws", version)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Option<Cmd>,

    /// Versions, distros and step names, in any order (a mode token such as --test after `--`
    /// is taken too).
    pub tokens: Vec<String>,

    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub local: LocalArgs,

    #[command(flatten)]
    pub faults: FaultArgs,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print the results of a finished (or failed) execution: an execution ARN (AWS), a local run
    /// name, or nothing for the latest local run.
    ///
    /// With --html FILE, also writes the run's report page; with --list, lists the local runs of
    /// the run folder instead.
    Status {
        /// An execution ARN, or a local run name (default: the latest local run).
        execution: Option<String>,

        /// List every local run of the run folder (name, status, start, counts), oldest first.
        #[arg(long, conflicts_with = "execution")]
        list: bool,
    },
    /// The embedded Step Functions engine on its own: serve the Step Functions API for any
    /// Amazon States Language machine (like a local Step Functions), or run one machine once.
    ///
    /// Nothing of a pipeline is involved. The engine has no Lambda functions here: a Lambda task
    /// fails with Lambda.ResourceNotFoundException (catch it, or use Pass states to stand in).
    /// engine/README.md lists what is supported.
    Engine {
        #[command(subcommand)]
        cmd: EngineCmd,
    },
}

/// `build-on-aws engine …`
#[derive(Debug, Subcommand)]
pub enum EngineCmd {
    /// Serve the Step Functions API on 127.0.0.1 (never another interface) until Ctrl-C
    ///
    /// Point the AWS CLI or any SDK at it with --endpoint-url (any credentials and region
    /// work): create-state-machine, start-execution, describe-execution,
    /// get-execution-history, list-executions, stop-execution, and the activity calls a
    /// worker makes (get-activity-task, send-task-success…). State lives in memory: it is gone
    /// when the server stops.
    ///
    /// Example:
    ///   build-on-aws engine serve --port 8083 &
    ///   aws stepfunctions --endpoint-url http://127.0.0.1:8083 create-state-machine \
    ///       --name hello --role-arn arn:aws:iam::123456789012:role/any \
    ///       --definition '{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}'
    #[command(verbatim_doc_comment)]
    Serve {
        /// TCP port on 127.0.0.1 (0 picks a free one; the URL is printed).
        #[arg(long, default_value_t = 8083)]
        port: u16,

        /// Divide every wait (Wait states, retry intervals, timeouts, heartbeats) by this.
        #[arg(long, default_value_t = 1.0, value_parser = positive_scale)]
        time_scale: f64,
    },
    /// Run one execution of MACHINE.json and print its status, output and history as JSON.
    ///
    /// Exit status 0 when the execution SUCCEEDED, 1 otherwise (FAILED, TIMED_OUT, ABORTED),
    /// 2 when the definition or input is not valid. Ctrl-C stops the execution (ABORTED).
    /// Lambda tasks fail with Lambda.ResourceNotFoundException; activity tasks wait for a worker
    /// nobody runs (use `engine serve` for activities).
    ///
    /// Example: build-on-aws engine run machine.json --input '{"n": 3}'
    Run {
        /// The state machine definition (Amazon States Language, JSONPath), a JSON file.
        machine: PathBuf,

        /// The execution input, JSON text.
        #[arg(long, default_value = "{}")]
        input: String,

        /// Divide every wait (Wait states, retry intervals, timeouts, heartbeats) by this.
        #[arg(long, default_value_t = 1.0, value_parser = positive_scale)]
        time_scale: f64,
    },
}

fn positive_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

/// Where a run happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Where {
    /// On AWS when a state machine ARN is configured, else locally.
    Auto,
    /// On this machine: embedded engine, local worker processes.
    Local,
    /// On the deployed state machine.
    Aws,
}

/// What the workers do: `--mode` and its shorthands set the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Launch workers; skip tasks whose done_when objects exist.
    Normal,
    /// Run the scripts in test mode (BOA_MODE=test).
    Test,
    /// Launch no instances and ignore done_when: tasks wait for workers you start yourself.
    FakeEc2,
    /// Launch nothing and mark every task skipped: a dry run of the state machine.
    SkipEc2,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Normal => Mode::Normal,
            ModeArg::Test => Mode::Test,
            ModeArg::FakeEc2 => Mode::FakeEc2,
            ModeArg::SkipEc2 => Mode::SkipEc2,
        }
    }
}

/// A flag that stands for `--<target> <value>`: it sets no field of its own, the target's
/// `default_value_ifs` reads it, and the shared group makes it conflict with the target.
fn shorthand(name: &'static str, group: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .action(ArgAction::SetTrue)
        .group(group)
        .help(help)
}

/// What to run, where, and how long to follow it.
#[derive(Debug, Args)]
#[command(arg = shorthand("local", "where-choice", "Same as --where local"))]
#[command(arg = shorthand("aws", "where-choice", "Same as --where aws"))]
#[command(arg = shorthand("test", "mode-choice", "Same as --mode test"))]
#[command(arg = shorthand("fake-ec2", "mode-choice", "Same as --mode fake-ec2"))]
#[command(arg = shorthand("skip-ec2", "mode-choice", "Same as --mode skip-ec2"))]
pub struct RunArgs {
    /// Where the run happens.
    #[arg(
        long = "where",
        value_enum,
        group = "where-choice",
        value_name = "WHERE",
        default_value_t = Where::Auto,
        default_value_ifs = [("local", "true", Some("local")), ("aws", "true", Some("aws"))],
    )]
    pub place: Where,

    /// What the workers do [default: normal].
    #[arg(
        long,
        value_enum,
        group = "mode-choice",
        default_value_ifs = [
            ("test", "true", Some("test")),
            ("fake-ec2", "true", Some("fake-ec2")),
            ("skip-ec2", "true", Some("skip-ec2")),
        ],
    )]
    pub mode: Option<ModeArg>,

    /// Follow the run until it ends and exit 0/1 (local runs always do).
    #[arg(long)]
    pub wait: bool,

    /// Print the execution input the tokens and mode make (JSON) and start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl RunArgs {
    /// The mode given on the command line, if any (`--mode` or a shorthand).
    pub fn mode(&self) -> Option<Mode> {
        self.mode.map(Mode::from)
    }
}

/// Options every command shares (`build-on-aws status` too).
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The pipeline file.
    #[arg(
        long,
        env = names::cli::PIPELINE,
        default_value = "pipeline.toml",
        global = true
    )]
    pub pipeline: PathBuf,

    /// Print the normalized results as JSON instead of the table.
    #[arg(long, global = true)]
    pub json: bool,

    /// Where local runs keep logs, worker folders, run records and done-check objects.
    #[arg(
        long,
        env = names::cli::RUN_DIR,
        default_value = ".build-on-aws",
        global = true
    )]
    pub run_dir: PathBuf,

    /// Also write the run's report to FILE: one self-contained HTML page (no network needed to
    /// view it) with the pipeline graph coloured by outcome, a steps × items grid, each failure
    /// with its error, cause and log tail, a timeline of tasks and worker boots, and the run's
    /// counts. Works for a run (when it ends) and for `status` (local run or execution ARN).
    #[arg(long, value_name = "FILE", global = true)]
    pub html: Option<PathBuf>,
}

/// AWS mode.
#[derive(Debug, Args)]
#[command(next_help_heading = "AWS mode")]
pub struct AwsArgs {
    /// ARN of the deployed state machine (deploy prints it); when set, runs go to AWS unless
    /// --local.
    #[arg(long, env = names::cli::STATE_MACHINE_ARN)]
    pub state_machine_arn: Option<String>,
}

/// Local mode.
#[derive(Debug, Args)]
#[command(next_help_heading = "Local mode")]
pub struct LocalArgs {
    /// Divide every wait (retries, boot, idle, health-check period) by this (1 = real time).
    #[arg(long, env = names::cli::TIME_SCALE, default_value = "100", value_parser = time_scale, allow_negative_numbers = true)]
    pub time_scale: f64,

    /// Simulated worker boot time in seconds (before the time scale).
    #[arg(long, default_value = "30", value_parser = seconds, allow_negative_numbers = true)]
    pub boot_time: f64,

    /// Start each worker when its task is prepared, not ahead of it: by default a step's
    /// workers are started a boot before the tasks they wait for are expected to end (from the
    /// duration history in the run folder), as on AWS.
    #[arg(long)]
    pub no_lookahead: bool,

    /// Start each launched worker directly instead of through its userdata stub: the stack
    /// makes the stub's checks itself (the launch's SHA-256 is the worker binary's) and starts
    /// the worker with the environment the stub exports. For wide runs on few cores, where the
    /// stubs (bash and five tools, about 15 ms of CPU each) of hundreds of instances launched
    /// at once compete with the running tasks; on EC2 each instance runs its own.
    #[arg(long)]
    pub no_stubs: bool,

    /// Set KEY=VALUE in every worker's (and so every script's) environment; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// Seed for retry jitter and injected faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Fault injection (local mode): each a fraction 0–1, seeded by --seed.
#[derive(Debug, Args)]
#[command(next_help_heading = "Fault injection (local mode)")]
pub struct FaultArgs {
    /// Fraction of tasks whose worker is killed mid-task.
    #[arg(long, default_value = "0", value_parser = fraction, allow_negative_numbers = true)]
    pub kill_workers: f64,

    /// Fraction of launches refused with RequestLimitExceeded.
    #[arg(long, default_value = "0", value_parser = fraction, allow_negative_numbers = true)]
    pub throttle_launches: f64,

    /// Fraction of launches refused with InsufficientInstanceCapacity.
    #[arg(long, default_value = "0", value_parser = fraction, allow_negative_numbers = true)]
    pub refuse_launches: f64,

    /// Fraction of launches refused for good (InvalidAMIID.NotFound, as a bad AMI).
    #[arg(long, default_value = "0", value_parser = fraction, allow_negative_numbers = true)]
    pub bad_launches: f64,

    /// Fraction of instances that boot without a worker (replaced after the step's boot_timeout).
    #[arg(long, default_value = "0", value_parser = fraction, allow_negative_numbers = true)]
    pub dead_boots: f64,

    /// Fraction of Lambda invocations that fail.
    #[arg(long, default_value = "0", value_parser = fraction, allow_negative_numbers = true)]
    pub fail_lambdas: f64,
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| "not a number".to_string())
}

/// The time scale's range: past ten thousand, a ten-minute heartbeat is 60 ms and scheduling
/// noise decides the run; below a hundredth, a five-minute health round takes over eight hours.
pub const TIME_SCALE_RANGE: std::ops::RangeInclusive<f64> = 0.01..=10_000.0;

fn time_scale(s: &str) -> Result<f64, String> {
    match number(s)? {
        x if TIME_SCALE_RANGE.contains(&x) => Ok(x),
        _ => Err(format!(
            "give a number from {} to {} (1 = real time, 100 = a hundred times faster)",
            TIME_SCALE_RANGE.start(),
            TIME_SCALE_RANGE.end()
        )),
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match number(s)? {
        x if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("give a number of seconds, 0 or more".into()),
    }
}

fn fraction(s: &str) -> Result<f64, String> {
    match number(s)? {
        x if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err("not a fraction; give a number from 0 to 1".into()),
    }
}

/// Names `--env` must not override: every `BOA_*` name build-on-aws sets for a worker or a task
/// (a pipeline's `env` may not use `BOA_` at all; here the example's own `BOA_EXAMPLE_*` knobs
/// stay usable).
fn reserved_env(k: &str) -> bool {
    let worker = names::worker::ALL;
    let task = [
        names::task::STEP,
        names::task::MODE,
        names::task::ATTEMPT,
        names::task::EXECUTION,
    ];
    let local = [names::local::TAGS_FILE, names::local::OBJECTS];
    worker.contains(&k) || task.contains(&k) || local.contains(&k) || k.starts_with("AWS_")
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, _)) if reserved_env(k) => Err(format!(
            "'{k}' is set by build-on-aws itself (the worker's configuration or a task's coordinates); pick another name, e.g. EXAMPLE_SLEEP"
        )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("build-on-aws").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn shorthands_set_the_same_field_as_their_long_form() {
        for (short, long) in [
            ("--test", ModeArg::Test),
            ("--fake-ec2", ModeArg::FakeEc2),
            ("--skip-ec2", ModeArg::SkipEc2),
        ] {
            assert_eq!(parse(&[short]).unwrap().run.mode, Some(long), "{short}");
        }
        assert_eq!(parse(&[]).unwrap().run.mode, None);
        assert_eq!(parse(&["--local"]).unwrap().run.place, Where::Local);
        assert_eq!(parse(&["--aws"]).unwrap().run.place, Where::Aws);
        assert_eq!(parse(&["--where", "aws"]).unwrap().run.place, Where::Aws);
        assert_eq!(parse(&[]).unwrap().run.place, Where::Auto);
    }

    #[test]
    fn two_modes_or_two_places_conflict() {
        for args in [
            &["--test", "--fake-ec2"][..],
            &["--mode", "test", "--skip-ec2"],
            &["--local", "--aws"],
            &["--where", "aws", "--local"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}"
            );
        }
    }

    #[test]
    fn values_are_checked_when_parsed() {
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert!(parse(&["--time-scale", bad]).is_err(), "{bad}");
        }
        assert_eq!(
            parse(&["--time-scale", "0.5"]).unwrap().local.time_scale,
            0.5
        );
        assert!(parse(&["--boot-time", "-1"]).is_err());
        assert!(parse(&["--kill-workers", "1.5"]).is_err());
        assert_eq!(
            parse(&["--dead-boots", "1"]).unwrap().faults.dead_boots,
            1.0
        );
    }

    #[test]
    fn status_takes_the_global_options_before_or_after_it() {
        for args in [
            &["status", "--json", "--pipeline", "p.toml", "--run-dir", "r"][..],
            &["--json", "--pipeline", "p.toml", "--run-dir", "r", "status"],
        ] {
            let c = parse(args).unwrap();
            assert!(matches!(
                c.cmd,
                Some(Cmd::Status {
                    execution: None,
                    list: false
                })
            ));
            assert!(c.common.json, "{args:?}");
            assert_eq!(c.common.pipeline, PathBuf::from("p.toml"));
            assert_eq!(c.common.run_dir, PathBuf::from("r"));
        }
    }
}
