//! `statemachine-gen`: prints the Step Functions definition of a build-on-aws pipeline, its Mermaid
//! diagram, or a static report of what a given input costs against the Step Functions quotas.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use boa_core::{BuildInput, Pipeline};
use clap::{Parser, ValueEnum};
use statemachine_gen::{Arns, generate, mermaid, report};

/// Generates the build-on-aws state machine from pipeline.toml.
///
/// Examples:
///   statemachine-gen pipeline.toml > definition.json
///   statemachine-gen --format mermaid
///   statemachine-gen --report '4.28.2 4.29.0 ubuntu-22.04-jammy'
#[derive(Debug, Parser)]
#[command(name = "statemachine-gen", version, verbatim_doc_comment)]
struct Args {
    /// The pipeline file.
    #[arg(default_value = "pipeline.toml", env = boa_core::names::cli::PIPELINE)]
    pipeline: PathBuf,

    /// What to print: the ASL definition (json) or a Mermaid flowchart (mermaid). With --report,
    /// json prints the report as JSON instead of text.
    #[arg(long, value_enum)]
    format: Option<Format>,

    /// Print a static report for this input instead (tokens as typed to `build-on-aws run`, e.g.
    /// '4.28.2 ubuntu-22.04-jammy MakeBinaryPackage'): states, state transitions, history events,
    /// Lambda invocations and payload size against the Step Functions quotas.
    #[arg(long, value_name = "TOKENS")]
    report: Option<String>,

    /// AWS region for concrete ARNs (with --account); without both, the definition uses
    /// ${LambdaParseInput}-style placeholders for CloudFormation DefinitionSubstitutions.
    #[arg(long, requires = "account")]
    region: Option<String>,

    /// AWS account id for concrete ARNs (with --region).
    #[arg(long, requires = "region")]
    account: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Json,
    Mermaid,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            if stdout.write_all(out.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(2)
        }
    }
}

/// The text to print, or the message of a usage error (exit 2).
fn run(args: Args) -> Result<String, String> {
    let p = Pipeline::load(&args.pipeline).map_err(|e| e.to_string())?;
    if let Some(tokens) = &args.report {
        if args.format == Some(Format::Mermaid) {
            return Err(
                "--report prints text or, with --format json, JSON; not a Mermaid diagram".into(),
            );
        }
        let tokens: Vec<&str> = tokens.split_whitespace().collect();
        let today = chrono::Utc::now().date_naive();
        let input = BuildInput::from_tokens(&p, &tokens, today).map_err(|e| e.to_string())?;
        let r = report(&p, &input);
        return Ok(match args.format {
            Some(Format::Json) => pretty(&serde_json::to_value(&r).map_err(|e| e.to_string())?),
            _ => r.to_string(),
        });
    }
    match args.format.unwrap_or(Format::Json) {
        Format::Mermaid => Ok(mermaid(&p)),
        Format::Json => {
            let arns = match (args.region, args.account) {
                (Some(region), Some(account)) => Arns::Concrete { region, account },
                _ => Arns::Placeholders,
            };
            Ok(pretty(&generate(&p, &arns)))
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value serialises");
    s.push('\n');
    s
}
