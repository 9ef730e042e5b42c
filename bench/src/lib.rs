//! `bench`: the benchmarks of build-on-aws (`cargo run --release -p bench`).
//!
//! 1. [`makespan`]: makespan of an example-shaped run in local mode vs its critical path, and a
//!    serial-launch baseline;
//! 2. [`lambdas`]: start-up time and memory of each Lambda binary through a loopback Runtime
//!    API, beside an equivalent Python + boto3 handler;
//! 3. [`throughput`]: 1,000 no-op activity tasks end to end;
//! 4. [`cost`]: state transitions, history events, Lambda invocations and EC2 requests counted
//!    by the engine, beside the generator's static report.

use std::path::PathBuf;

pub mod cost;
pub mod critical;
pub mod lambdas;
pub mod local_run;
pub mod makespan;
pub mod runtime_api;
pub mod sys;
pub mod table;
pub mod throughput;
pub mod timeline;
pub mod variant;

/// What every section needs.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The workspace root.
    pub root: PathBuf,
    /// The example pipeline (`pipeline.toml`).
    pub example: PathBuf,
    /// The worker binary local runs start.
    pub worker_bin: PathBuf,
    /// Where the Lambda binaries are (`<dir>/<name>` or `<dir>/<name>/bootstrap`).
    pub lambda_dir: PathBuf,
    /// A scratch folder for pipelines, run folders and logs.
    pub tmp: PathBuf,
    pub seed: u64,
    pub lambda_runs: usize,
    /// Runs of each makespan and throughput measurement (the median run is shown).
    pub repeats: usize,
    /// Most worker processes of the throughput run.
    pub throughput_workers: u32,
    pub python: Option<PathBuf>,
    /// Makespan cases to measure (versions, distros, boot seconds); empty: the default four.
    pub cases: Vec<(usize, usize, f64)>,
    /// Makespan: also measure just-in-time launching and the serial baseline.
    pub baselines: bool,
    /// Makespan: local instances run their userdata stub (see [`local_run::RunSpec::run_stubs`]).
    pub stubs: bool,
}
