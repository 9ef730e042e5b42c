//! Local mode: the generated state machine in the embedded engine, the Lambda handlers
//! in-process, and workers as local processes of the real `worker` binary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use local::stack::{LocalOptions, LocalStack, RunRecord};

use crate::progress::{Progress, normalized_from_history};
use crate::{Cli, CliError, Outcome, load_input, table};

fn worker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os(boa_core::names::local::WORKER_BIN) {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("worker")))
        .unwrap_or_else(|| PathBuf::from("worker"))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

pub async fn run(cli: &Cli) -> Result<Outcome, CliError> {
    let (p, input) = load_input(&cli.common.pipeline, &cli.tokens, cli.run.mode())?;
    // A task's axis values come as BOA_<AXIS>: --env must not replace them.
    let axis_var = |k: &str| {
        p.axes.iter().any(|a| {
            k == format!(
                "{}{}",
                boa_core::names::task::AXIS_PREFIX,
                a.name.to_uppercase()
            )
        })
    };
    if let Some((k, _)) = cli.local.env.iter().find(|(k, _)| axis_var(k)) {
        return Err(CliError::BadInput(format!(
            "--env {k}: '{k}' carries a task's axis value, set by build-on-aws for every task; pick another name"
        )));
    }
    let worker = worker_bin();
    if !worker.is_file() {
        return Err(CliError::Failed(format!(
            "the worker binary is not at {}: build it with `cargo build -p worker` or set BOA_WORKER_BIN (bin/build-on-aws does both)",
            worker.display()
        )));
    }
    let (local_args, faults) = (&cli.local, &cli.faults);
    let run_dir = absolute(&cli.common.run_dir);
    let opts = LocalOptions {
        pipeline_path: absolute(&cli.common.pipeline),
        worker_bin: worker,
        run_dir: run_dir.clone(),
        time_scale: local_args.time_scale,
        boot_time: Duration::from_secs_f64(local_args.boot_time),
        faults: local::stack::Faults {
            kill_worker: faults.kill_workers,
            throttle_launch: faults.throttle_launches,
            no_capacity: faults.refuse_launches,
            fail_lambda: faults.fail_lambdas,
            bad_launch: faults.bad_launches,
            dead_boot: faults.dead_boots,
            dead_boot_first: 0,
            seed: local_args.seed,
        },
        seed: local_args.seed,
        extra_env: local_args.env.clone(),
        parallel_parameters_once: false,
    };
    let stack = LocalStack::start(opts)
        .await
        .map_err(|e| CliError::Failed(format!("cannot start the local stack: {e}")))?;
    let total = input.requested_tasks(&p).map(|t| t.len()).unwrap_or(0);
    let name = crate::execution_name(&input.tokens(&p), chrono::Local::now());
    eprintln!(
        "build-on-aws: local run {name}: {total} tasks; time ×{}; logs in {}",
        local_args.time_scale,
        run_dir.join("logs").display()
    );
    let handle = match stack.run(&input, &name) {
        Ok(h) => h,
        Err(e) => {
            stack.shutdown().await;
            return Err(CliError::Failed(format!("cannot start the run: {e}")));
        }
    };
    let arn = handle.arn().to_string();
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {bar:30} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut last_line = String::new();
    let wait = handle.wait();
    tokio::pin!(wait);
    let result = loop {
        tokio::select! {
            r = &mut wait => break r,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                let h = stack.history(&arn);
                let pr = Progress::from_history(&h);
                let line = pr.line(total, Some(stack.workers_alive()));
                bar.set_position((pr.succeeded + pr.skipped) as u64);
                if tty {
                    bar.set_message(line);
                } else if line != last_line {
                    eprintln!("  {line}");
                    last_line = line;
                }
            }
        }
    };
    bar.finish_and_clear();
    let history = stack.history(&arn);
    let objects = local::stack::LocalObjects::new(run_dir.join("objects"));
    let normalized = match normalized_from_history(&history, &objects).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("build-on-aws: {e}");
            None
        }
    };
    let record = RunRecord {
        name: name.clone(),
        execution_arn: arn,
        status: format!("{:?}", result.status).to_uppercase(),
        error: result.error.clone(),
        cause: result.cause.clone(),
        normalized: normalized.clone(),
        counts: result.counts,
        fleet: stack.fleet().counters(),
    };
    stack.shutdown().await;
    if let Err(e) = record.save(&run_dir) {
        eprintln!("build-on-aws: could not save the run record: {e}");
    }
    report(&record, cli.common.json, &p)
}

fn report(record: &RunRecord, json: bool, p: &boa_core::Pipeline) -> Result<Outcome, CliError> {
    let order: Vec<String> = p.axes.iter().map(|a| a.name.clone()).collect();
    match &record.normalized {
        Some(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
            } else {
                print!("{}", table::render(r, &order));
                println!(
                    "run {} ({}); `build-on-aws status {}` shows this again",
                    record.name, record.status, record.name
                );
            }
            if r.summary.failed > 0 || record.status != "SUCCEEDED" {
                Ok(Outcome::Failed)
            } else {
                Ok(Outcome::Succeeded)
            }
        }
        None => Err(CliError::Failed(format!(
            "run {} ended {} without results: {} {}",
            record.name,
            record.status,
            record.error.clone().unwrap_or_default(),
            record.cause.clone().unwrap_or_default()
        ))),
    }
}

pub fn status(
    run_dir: &Path,
    name: Option<&str>,
    json: bool,
    pipeline: &Path,
) -> Result<Outcome, CliError> {
    let p = boa_core::Pipeline::load(pipeline).map_err(|e| CliError::BadInput(e.to_string()))?;
    let record = RunRecord::load(run_dir, name).map_err(|e| CliError::BadInput(e.to_string()))?;
    report(&record, json, &p)
}
