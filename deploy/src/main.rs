//! `deploy`: generates the CloudFormation template of a build-on-aws stack and the pipeline bundle.
//! `deploy/deploy.sh` is the one command people run; it calls this binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use boa_core::Pipeline;
use clap::{Parser, Subcommand};
use deploy::template::{base_name, code_parameter};
use deploy::{
    TemplateOptions, iam_problems, isolation_problems, name_problems, substitution_problems,
    template,
};
use statemachine_gen::LAMBDAS;

/// Generates the CloudFormation template of a build-on-aws stack from pipeline.toml.
///
/// Examples:
///   deploy template --out dist/template.json --definition-out dist/statemachine.json
///   deploy bundle --out dist/pipeline
///   deploy info
#[derive(Debug, Parser)]
#[command(name = "deploy", version, verbatim_doc_comment)]
struct Args {
    /// The pipeline file.
    #[arg(
        long,
        global = true,
        default_value = "pipeline.toml",
        env = boa_core::names::cli::PIPELINE
    )]
    pipeline: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes the template (JSON) after checking IAM least privilege and that every resource the
    /// state machine names exists; refuses to write a template that fails.
    Template {
        /// Where to write the template; `-` = stdout.
        #[arg(long, default_value = "-")]
        out: PathBuf,
        /// Also write the state machine definition (with ${…} placeholders) here.
        #[arg(long)]
        definition_out: Option<PathBuf>,
        /// BOA_PIPELINE_FILE as the Lambdas see it.
        #[arg(long, default_value = "/var/task/pipeline.toml")]
        pipeline_file: String,
    },
    /// Copies pipeline.toml and the step scripts into a folder; prints its top-level entries.
    Bundle {
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints, one per line, `stack <default stack name>` and `lambda <crate> <code parameter>`.
    Info,
}

fn load(p: &Path) -> Result<Pipeline> {
    let pipeline = Pipeline::load(p).map_err(|e| anyhow::anyhow!("{e}"))?;
    let problems = name_problems(&pipeline);
    if !problems.is_empty() {
        bail!("{}: {}", p.display(), problems.join("\n  "));
    }
    Ok(pipeline)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if path == Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Template {
            out,
            definition_out,
            pipeline_file,
        } => {
            let p = load(&args.pipeline)?;
            let t = template(&p, &TemplateOptions { pipeline_file });
            let mut problems = iam_problems(&t);
            problems.extend(substitution_problems(&t));
            problems.extend(isolation_problems(&t, &p));
            if !problems.is_empty() {
                bail!(
                    "the generated template fails its checks (a bug in deploy):\n  {}",
                    problems.join("\n  ")
                );
            }
            write(&out, &(serde_json::to_string_pretty(&t)? + "\n"))?;
            if let Some(d) = definition_out {
                let def = t["Resources"]["StateMachine"]["Properties"]["DefinitionString"]
                    .as_str()
                    .unwrap_or_default();
                write(&d, &format!("{def}\n"))?;
            }
        }
        Command::Bundle { out } => {
            load(&args.pipeline)?;
            for e in deploy::bundle(&args.pipeline, &out)? {
                println!("{e}");
            }
        }
        Command::Info => {
            let p = load(&args.pipeline)?;
            println!("stack {}", base_name(&p));
            for l in LAMBDAS {
                println!("lambda {l} {}", code_parameter(l));
            }
        }
    }
    Ok(())
}
