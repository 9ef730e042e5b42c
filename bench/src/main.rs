//! `bench`: prints the four benchmark tables of build-on-aws; `--json` prints them as JSON.
//!
//! ```sh
//! cargo run --release -p bench              # builds the release worker and Lambdas first
//! cargo run --release -p bench -- --json    # the same figures as JSON
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use bench::{Ctx, cost, lambdas, makespan, sys, throughput};
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Benchmarks build-on-aws: makespan vs critical path, Lambda start-up, engine throughput and
/// the cost model (engine counts vs the generator's static report). Takes about two minutes on
/// two cores once the release binaries are built.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Print the figures as JSON instead of the tables; with FILE, write the JSON there and
    /// print the tables.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<PathBuf>,

    /// Run only these sections (repeatable).
    #[arg(long, value_enum)]
    only: Vec<Section>,

    /// Do not run `cargo build --release -p bench -p worker -p <the Lambdas' five packages>` first.
    #[arg(long)]
    no_build: bool,

    /// The worker binary local runs start [default: target/release/worker].
    #[arg(long)]
    worker_bin: Option<PathBuf>,

    /// Where the Lambda binaries are, as DIR/<name> or DIR/<name>/bootstrap (e.g. target/lambda
    /// after `cargo lambda build --release`) [default: target/release].
    #[arg(long)]
    lambda_dir: Option<PathBuf>,

    /// Runs per Lambda binary; the table shows the median.
    #[arg(long, default_value_t = 5)]
    lambda_runs: usize,

    /// Runs of each makespan and throughput measurement; the table shows the median run.
    #[arg(long, default_value_t = 3)]
    repeats: usize,

    /// Most worker processes in the throughput run (max_workers of its one step).
    #[arg(long, default_value_t = throughput::WORKERS)]
    throughput_workers: u32,

    /// Python with boto3 for the start-up comparison [default: .tools/venv/bin/python, then
    /// python3].
    #[arg(long)]
    python: Option<PathBuf>,

    /// Makespan: measure only these cases, as VERSIONSxDISTROS@BOOT_SECONDS (repeatable), e.g.
    /// `--case 10x25@1.5` [default: 3x10 and 10x25, each at 0.5 and 1.5].
    #[arg(long, value_name = "VxD@BOOT", value_parser = parse_case)]
    case: Vec<(usize, usize, f64)>,

    /// Makespan: measure lookahead only, without the just-in-time and serial baselines.
    #[arg(long)]
    no_baselines: bool,

    /// Makespan: each local instance runs its userdata stub, as `build-on-aws --local` does
    /// by default. Without it the stack makes the stub's checks and starts the worker directly
    /// (`--no-stubs`): on EC2 the stub runs on each instance's own CPU during its boot, here
    /// hundreds of instances would share two cores (about 15 ms of CPU each).
    #[arg(long)]
    stubs: bool,

    /// Seed of the task durations and the engine's jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Scratch folder: pipelines, run folders (objects, logs, tags, work folders) [default: a
    /// new temporary folder, removed at the end, in /dev/shm when it is a writable folder: on
    /// AWS records go to S3 and logs to CloudWatch, not to a disk the whole fleet shares, and
    /// a local run at 10 × 25 creates thousands of small files]
    #[arg(long)]
    tmp: Option<PathBuf>,

    /// Internal: run the throughput measurement and print its JSON.
    #[arg(long, hide = true)]
    internal_throughput: bool,
}

/// `3x10@0.5` → (3, 10, 0.5).
fn parse_case(s: &str) -> Result<(usize, usize, f64), String> {
    let bad = || format!("'{s}' is not VERSIONSxDISTROS@BOOT_SECONDS (e.g. 3x10@0.5)");
    let (shape, boot) = s.split_once('@').ok_or_else(bad)?;
    let (v, d) = shape.split_once('x').ok_or_else(bad)?;
    let (v, d): (usize, usize) = (v.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let boot: f64 = boot.parse().map_err(|_| bad())?;
    if v == 0 || d == 0 || !(boot >= 0.0 && boot.is_finite()) {
        return Err(bad());
    }
    Ok((v, d, boot))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Makespan,
    Lambdas,
    Throughput,
    Cost,
}

/// The packages of the six Lambdas.
const LAMBDAS: [&str; 5] = lambdas::PACKAGES;

#[derive(Debug, Serialize)]
struct Output {
    date: String,
    machine: sys::Machine,
    /// The profile this bench binary was built with (the engine runs in it).
    profile: &'static str,
    /// Seconds `cargo build --release` of the worker and Lambdas took before the run (0 when
    /// skipped; a no-op build takes about a second).
    build_s: f64,
    /// Seconds the benchmark itself took.
    bench_s: f64,
    worker_bin: String,
    makespan: Option<makespan::Makespan>,
    lambdas: Option<lambdas::Lambdas>,
    throughput: Option<throughput::Throughput>,
    cost: Option<cost::Cost>,
    errors: Vec<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// `cargo build --release` of the worker and the six Lambdas, from their five packages (a no-op
/// when they are fresh).
/// The bench is in the package list so that features resolve as for `cargo run -p bench` and the
/// dependencies built for it are reused (see bench/Cargo.toml).
fn build(root: &Path) -> Result<f64> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "-p", "bench", "-p", "worker"]);
    // `cargo run` gives the bench the variables cargo sets for a crate (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR…). Some build scripts (ring's) rerun when those change, and everything
    // above them is rebuilt: a second cold build of the AWS SDK. The inner cargo must see the
    // environment the outer one saw.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_BIN_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&k.as_ref())
        {
            cmd.env_remove(&key);
        }
    }
    for l in LAMBDAS {
        cmd.args(["-p", l]);
    }
    eprintln!(
        "bench: cargo build --release -p bench -p worker -p {} …",
        LAMBDAS.join(" -p ")
    );
    let t0 = Instant::now();
    let status = cmd.status().context("running cargo")?;
    if !status.success() {
        return Err(anyhow!("cargo build --release failed: {status}"));
    }
    Ok(t0.elapsed().as_secs_f64())
}

fn ctx(args: &Args, tmp: &Path) -> Ctx {
    let root = workspace_root();
    let release = target_dir(&root).join("release");
    Ctx {
        example: root.join("pipeline.toml"),
        // Absolute: each local instance copies it from its own folder.
        worker_bin: args
            .worker_bin
            .as_deref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
            .unwrap_or_else(|| release.join("worker")),
        lambda_dir: args.lambda_dir.clone().unwrap_or(release),
        tmp: tmp.to_path_buf(),
        seed: args.seed,
        lambda_runs: args.lambda_runs,
        repeats: args.repeats.max(1),
        throughput_workers: args.throughput_workers.max(1),
        python: args.python.clone(),
        cases: args.case.clone(),
        baselines: !args.no_baselines,
        stubs: args.stubs,
        root,
    }
}

async fn main_inner(args: Args) -> Result<bool> {
    let tmp_holder;
    let tmp = match &args.tmp {
        Some(t) => {
            std::fs::create_dir_all(t)?;
            std::path::absolute(t)?
        }
        None => {
            let mut b = tempfile::Builder::new();
            b.prefix("boa-bench-");
            let shm = std::path::Path::new("/dev/shm");
            tmp_holder = match shm.is_dir().then(|| b.tempdir_in(shm)) {
                Some(Ok(d)) => d,
                _ => b.tempdir()?,
            };
            tmp_holder.path().to_path_buf()
        }
    };
    let ctx = ctx(&args, &tmp);
    if args.internal_throughput {
        let t = throughput::child(
            &ctx,
            throughput::EXECUTIONS,
            throughput::SHARDS,
            ctx.throughput_workers,
        )
        .await?;
        println!("{}", serde_json::to_string(&t)?);
        return Ok(true);
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "bench: warning: this is a debug build; the engine figures want `cargo run --release -p bench`"
        );
    }
    let build_s = if args.no_build {
        0.0
    } else {
        build(&ctx.root)?
    };
    if !ctx.worker_bin.is_file() {
        return Err(anyhow!(
            "no worker binary at {} (build it with `cargo build --release -p worker` or pass --worker-bin)",
            ctx.worker_bin.display()
        ));
    }
    let want = |s: Section| args.only.is_empty() || args.only.contains(&s);
    let t0 = Instant::now();
    let mut errors = vec![];
    let mut out = Output {
        date: chrono::Local::now().format("%Y-%m-%d").to_string(),
        machine: sys::machine(),
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        build_s,
        bench_s: 0.0,
        worker_bin: ctx.worker_bin.display().to_string(),
        makespan: None,
        lambdas: None,
        throughput: None,
        cost: None,
        errors: vec![],
    };
    // The cost runs go first: their 1 × 3 run supplies the real events the Lambdas are fed.
    let mut captured = None;
    if want(Section::Cost) || want(Section::Lambdas) {
        match cost::run(&ctx).await {
            Ok((c, ev)) => {
                if want(Section::Cost) {
                    out.cost = Some(c);
                }
                captured = Some(ev);
            }
            Err(e) => errors.push(format!("cost: {e:#}")),
        }
    }
    if want(Section::Makespan) {
        match makespan::run(&ctx).await {
            Ok(m) => out.makespan = Some(m),
            Err(e) => errors.push(format!("makespan: {e:#}")),
        }
    }
    if want(Section::Throughput) {
        match throughput::run(&ctx).await {
            Ok(t) => out.throughput = Some(t),
            Err(e) => errors.push(format!("throughput: {e:#}")),
        }
    }
    if want(Section::Lambdas) {
        match &captured {
            Some(ev) => match lambdas::run(&ctx, ev).await {
                Ok(l) => out.lambdas = Some(l),
                Err(e) => errors.push(format!("lambdas: {e:#}")),
            },
            None => errors.push("lambdas: no events (the 1 × 3 local run failed)".into()),
        }
    }
    out.bench_s = t0.elapsed().as_secs_f64();
    out.errors = errors;
    let text = render(&out, args.lambda_runs);
    match args.json.as_deref() {
        Some(p) if p == Path::new("-") => println!("{}", serde_json::to_string_pretty(&out)?),
        Some(p) => {
            std::fs::write(p, serde_json::to_string_pretty(&out)? + "\n")?;
            print!("{text}");
        }
        None => print!("{text}"),
    }
    let agree = out
        .cost
        .as_ref()
        .is_none_or(|c| c.rows.iter().all(|r| r.agree));
    Ok(out.errors.is_empty() && agree)
}

fn render(o: &Output, runs: usize) -> String {
    let m = &o.machine;
    let mut t = format!(
        "build-on-aws bench, {}: {} × {} ({} MiB, {}), {} build; bench took {:.0} s\n\n",
        o.date, m.nproc, m.cpu, m.mem_total_mib, m.os, o.profile, o.bench_s
    );
    if let Some(x) = &o.makespan {
        t.push_str(&makespan::render(x));
        t.push('\n');
    }
    if let Some(x) = &o.lambdas {
        t.push_str(&lambdas::render(x, runs));
        t.push('\n');
    }
    if let Some(x) = &o.throughput {
        t.push_str(&throughput::render(x));
        t.push('\n');
    }
    if let Some(x) = &o.cost {
        t.push_str(&cost::render(x));
        t.push('\n');
    }
    for e in &o.errors {
        t.push_str(&format!("ERROR {e}\n"));
    }
    t
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_case;

    #[test]
    fn a_case_names_its_size_and_boot_and_a_bad_one_says_what_is_expected() {
        assert_eq!(parse_case("10x25@1.5"), Ok((10, 25, 1.5)));
        assert_eq!(parse_case("3x10@0"), Ok((3, 10, 0.0)));
        for bad in ["3x10", "3@0.5", "0x10@0.5", "3x10@-1", "3x10@nan", "ax10@1"] {
            let e = parse_case(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("3x10@0.5"), "{e}");
        }
    }
}
