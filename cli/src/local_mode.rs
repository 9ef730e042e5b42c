//! Local mode: the generated state machine in the embedded engine, the Lambda handlers
//! in-process, and workers as local processes of the real `worker` binary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use local::stack::{LocalOptions, LocalStack, RunRecord};

use crate::progress::{Progress, normalized_from_history};
use crate::{Cli, EXIT_BAD_INPUT, EXIT_FAILED, load_input, table};

fn worker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BOA_WORKER_BIN") {
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

pub async fn run(cli: &Cli) -> u8 {
    let tokens = cli.mode_tokens();
    let (p, input) = match load_input(&cli.pipeline, &tokens) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("build-on-aws: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    for (flag, rate) in [
        ("--kill-workers", cli.kill_workers),
        ("--throttle-launches", cli.throttle_launches),
        ("--refuse-launches", cli.refuse_launches),
        ("--fail-lambdas", cli.fail_lambdas),
        ("--bad-launches", cli.bad_launches),
        ("--dead-boots", cli.dead_boots),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            eprintln!("build-on-aws: {flag} {rate} is not a fraction; give a number from 0 to 1");
            return EXIT_BAD_INPUT;
        }
    }
    if !(cli.time_scale.is_finite() && cli.time_scale > 0.0) {
        eprintln!(
            "build-on-aws: --time-scale {} must be a positive number (1 = real time)",
            cli.time_scale
        );
        return EXIT_BAD_INPUT;
    }
    let worker = worker_bin();
    if !worker.is_file() {
        eprintln!(
            "build-on-aws: the worker binary is not at {}: build it with `cargo build -p worker` or set BOA_WORKER_BIN (bin/build-on-aws does both)",
            worker.display()
        );
        return EXIT_FAILED;
    }
    let run_dir = absolute(&cli.run_dir);
    let opts = LocalOptions {
        pipeline_path: absolute(&cli.pipeline),
        worker_bin: worker,
        run_dir: run_dir.clone(),
        time_scale: cli.time_scale,
        boot_time: Duration::from_secs_f64(cli.boot_time.max(0.0)),
        faults: local::stack::Faults {
            kill_worker: cli.kill_workers,
            throttle_launch: cli.throttle_launches,
            no_capacity: cli.refuse_launches,
            fail_lambda: cli.fail_lambdas,
            bad_launch: cli.bad_launches,
            dead_boot: cli.dead_boots,
            dead_boot_first: 0,
            seed: cli.seed,
        },
        seed: cli.seed,
        extra_env: cli.env.clone(),
        parallel_parameters_once: false,
    };
    let stack = match LocalStack::start(opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("build-on-aws: cannot start the local stack: {e}");
            return EXIT_FAILED;
        }
    };
    let total = input.requested_tasks(&p).map(|t| t.len()).unwrap_or(0);
    let name = crate::execution_name(&input.tokens(&p), chrono::Local::now());
    eprintln!(
        "build-on-aws: local run {name}: {total} tasks; time ×{}; logs in {}",
        cli.time_scale,
        run_dir.join("logs").display()
    );
    let handle = match stack.run(&input, &name) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("build-on-aws: cannot start the run: {e}");
            stack.shutdown().await;
            return EXIT_FAILED;
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
    let normalized = normalized_from_history(&history);
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
    report(&record, cli.json, &p)
}

fn report(record: &RunRecord, json: bool, p: &boa_core::Pipeline) -> u8 {
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
                EXIT_FAILED
            } else {
                0
            }
        }
        None => {
            eprintln!(
                "build-on-aws: run {} ended {} without results: {} {}",
                record.name,
                record.status,
                record.error.clone().unwrap_or_default(),
                record.cause.clone().unwrap_or_default()
            );
            EXIT_FAILED
        }
    }
}

pub fn status(run_dir: &Path, name: Option<&str>, json: bool, pipeline: &Path) -> u8 {
    let p = match boa_core::Pipeline::load(pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("build-on-aws: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    match RunRecord::load(run_dir, name) {
        Ok(r) => report(&r, json, &p),
        Err(e) => {
            eprintln!("build-on-aws: {e}");
            EXIT_BAD_INPUT
        }
    }
}
