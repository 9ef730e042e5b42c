//! Local mode: the generated state machine in the embedded engine, the Lambda handlers
//! in-process, and workers as local processes of the real `worker` binary.
//!
//! Each run keeps what it changes in its own folder (`<run dir>/runs/<name>/`: logs, tags, work
//! folders, the stack's objects), so runs started in one folder at once do not meet. Ctrl-C or
//! SIGTERM stops the execution (ABORTED, as `StopExecution`), stops every worker and script of
//! the run, saves the run record and exits 130/143; if the CLI is killed outright, its workers
//! die with it (parent-death signal) and their scripts with them (each script's guard).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boa_aws::ports::HistoryEvent;
use local::stack::{LocalOptions, LocalStack, RunRecord};
use tokio::signal::unix::{SignalKind, signal};

use crate::progress::{Progress, TaskKey, task_results};
use crate::{Cli, CliError, Outcome, html, load_input, table};

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

/// The error and cause an interrupted run's execution is stopped with.
pub const INTERRUPTED_ERROR: &str = "build-on-aws.Interrupted";

/// SIGINT and SIGTERM, watched from before the stack starts.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> Result<Signals, CliError> {
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

/// Signal numbers (Linux): a run stopped by one exits 128 + its number.
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// The live progress: one updating line with a bar on a terminal, one line per change otherwise.
struct Live {
    bar: Option<indicatif::ProgressBar>,
    last: String,
    start: Instant,
    time_scale: f64,
    total: usize,
}

impl Live {
    fn new(total: usize, time_scale: f64) -> Live {
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

    fn show(&mut self, p: &Progress, workers: usize) {
        let real = self.start.elapsed();
        match &self.bar {
            Some(b) => {
                b.set_position(p.done().min(self.total) as u64);
                b.set_message(p.line(self.total, Some(workers), real, self.time_scale));
            }
            None => {
                let counts = p.counts(self.total, Some(workers));
                if counts != self.last {
                    eprintln!(
                        "  {}",
                        p.line(self.total, Some(workers), real, self.time_scale)
                    );
                    self.last = counts;
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
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
    let mut signals = Signals::watch()?;
    let (local_args, faults) = (&cli.local, &cli.faults);
    let run_dir = absolute(&cli.common.run_dir);
    let name = crate::execution_name(&input.tokens(&p), chrono::Local::now());
    let opts = LocalOptions {
        pipeline_path: absolute(&cli.common.pipeline),
        worker_bin: worker,
        run_dir: run_dir.clone(),
        run_name: Some(name.clone()),
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
        lookahead: !local_args.no_lookahead,
    };
    let stack = LocalStack::start(opts)
        .await
        .map_err(|e| CliError::Failed(format!("cannot start the local stack: {e}")))?;
    let requested: Vec<TaskKey> = input.requested_tasks(&p).unwrap_or_default();
    let total = requested.len();
    eprintln!(
        "build-on-aws: local run {name}: {total} tasks; time ×{}; logs in {}",
        local_args.time_scale,
        stack.own_dir().join("logs").display()
    );
    let handle = match stack.run(&input, &name) {
        Ok(h) => h,
        Err(e) => {
            stack.shutdown().await;
            return Err(CliError::Failed(format!("cannot start the run: {e}")));
        }
    };
    let arn = handle.arn().to_string();
    let mut record = RunRecord::starting(&name, &arn, local_args.time_scale);
    if let Err(e) = record.save(&run_dir) {
        eprintln!("build-on-aws: could not save the run record: {e}");
    }
    let mut live = Live::new(total, local_args.time_scale);
    let wait = handle.wait();
    tokio::pin!(wait);
    let mut interrupted: Option<(i32, &str)> = None;
    let result = loop {
        tokio::select! {
            r = &mut wait => break r,
            sig = signals.next(), if interrupted.is_none() => {
                interrupted = Some(sig);
                live.finish();
                eprintln!("build-on-aws: {}: stopping run {name} (its workers and scripts too)", sig.1);
                if let Err(e) = stack.stop(
                    &arn,
                    INTERRUPTED_ERROR,
                    &format!("{}: the run was stopped by the user", sig.1),
                ) {
                    eprintln!("build-on-aws: could not stop the execution: {e}");
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)), if interrupted.is_none() => {
                if let Ok(h) = stack.executions().history_with_children(&arn).await {
                    live.show(&Progress::from_history(&h, &requested), stack.workers_alive());
                }
            }
        }
    };
    live.finish();
    let history = stack
        .executions()
        .history_with_children(&arn)
        .await
        .unwrap_or_else(|e| {
            eprintln!("build-on-aws: cannot read the run's history: {e}");
            vec![]
        });
    record.status = format!("{:?}", result.status).to_uppercase();
    record.error = result.error.clone();
    record.cause = result.cause.clone();
    record.normalized = match task_results(&history, &stack.objects()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("build-on-aws: {e}");
            None
        }
    };
    record.counts = result.counts;
    record.lambda_invocations = stack.lambda_invocations();
    // Every worker and script of the run is gone before the record says the run ended.
    stack.shutdown().await;
    record.fleet = stack.fleet().counters();
    record.instances = stack.fleet().spans();
    record.ended = Some(chrono::Utc::now());
    if let Err(e) = record
        .save_history(&run_dir, &history)
        .and_then(|()| record.save(&run_dir).map(|_| ()))
    {
        eprintln!("build-on-aws: could not save the run record: {e}");
    }
    if let Some(path) = &cli.common.html {
        write_html(path, &record, &history, &p)?;
    }
    let outcome = report(&record, cli.common.json, &p, &run_dir);
    match interrupted {
        Some((sig, _)) => Ok(Outcome::Interrupted(sig)),
        None => outcome,
    }
}

fn write_html(
    path: &Path,
    record: &RunRecord,
    history: &[HistoryEvent],
    p: &boa_core::Pipeline,
) -> Result<(), CliError> {
    let page = html::render(&html::Report {
        title: &record.name,
        status: &record.shown_status(),
        execution_arn: &record.execution_arn,
        error: record.error.as_deref(),
        cause: record.cause.as_deref(),
        pipeline: p,
        results: record.normalized.as_ref(),
        history,
        counts: Some(html::Counts {
            state_transitions: record.counts.state_transitions,
            history_events: record.counts.history_events,
            max_payload_bytes: record.counts.max_payload_bytes as u64,
            lambda_invocations: record
                .lambda_invocations
                .iter()
                .filter(|(k, _)| k.as_str() != local::stack::INJECTED_FAILURES)
                .map(|(_, v)| v)
                .sum(),
            instances_launched: record.fleet.instances_launched,
        }),
        time_scale: record.time_scale,
        workers: &record
            .instances
            .iter()
            .map(|i| html::WorkerSpan {
                id: i.id.clone(),
                step: i.step.clone(),
                launched: i.launched,
                running: i.running,
                ended: i.ended,
            })
            .collect::<Vec<_>>(),
    });
    std::fs::write(path, page)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
    eprintln!("build-on-aws: report written to {}", path.display());
    Ok(())
}

fn report(
    record: &RunRecord,
    json: bool,
    p: &boa_core::Pipeline,
    run_dir: &Path,
) -> Result<Outcome, CliError> {
    let order: Vec<String> = p.axes.iter().map(|a| a.name.clone()).collect();
    let status = record.shown_status();
    match &record.normalized {
        _ if status == "RUNNING" && !json => Err(CliError::Failed(format!(
            "run {} is still running (started {}); ask again when it has ended",
            record.name,
            record
                .started
                .map(|s| s
                    .with_timezone(&chrono::Local)
                    .format("%H:%M:%S")
                    .to_string())
                .unwrap_or_default()
        ))),
        Some(r) if r.tasks.is_empty() && status != "SUCCEEDED" && !json => {
            println!(
                "run {} ({status}): no task had finished{}",
                record.name,
                record
                    .cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            );
            Ok(Outcome::Failed)
        }
        Some(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
            } else {
                print!("{}", table::render(r, &order, record.time_scale));
                if status == "ABORTED" {
                    println!(
                        "(stopped: only the tasks that had finished are listed; {})",
                        record.cause.clone().unwrap_or_default()
                    );
                }
                println!(
                    "run {} ({status}); logs in {}; `build-on-aws status {}` shows this again",
                    record.name,
                    local::stack::record::run_folder(run_dir, &record.name)
                        .join("logs")
                        .display(),
                    record.name
                );
            }
            if r.summary.failed > 0 || status != "SUCCEEDED" {
                Ok(Outcome::Failed)
            } else {
                Ok(Outcome::Succeeded)
            }
        }
        None if status == "ABORTED" || status == "RUNNING" || status == "KILLED" => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&boa_core::NormalizedResults::new(vec![]))
                        .unwrap_or_default()
                );
            } else {
                println!("run {} ({status}): no task had finished", record.name);
            }
            Ok(Outcome::Failed)
        }
        None => Err(CliError::Failed(format!(
            "run {} ended {status} without results: {} {}",
            record.name,
            record.error.clone().unwrap_or_default(),
            record.cause.clone().unwrap_or_default()
        ))),
    }
}

/// `build-on-aws status [RUN] [--list] [--html FILE]` for local runs.
pub fn status(
    run_dir: &Path,
    name: Option<&str>,
    list: bool,
    json: bool,
    html_path: Option<&Path>,
    pipeline: &Path,
) -> Result<Outcome, CliError> {
    if list {
        return list_runs(run_dir, json);
    }
    let p = boa_core::Pipeline::load(pipeline).map_err(|e| CliError::BadInput(e.to_string()))?;
    let record = RunRecord::load(run_dir, name).map_err(|e| CliError::BadInput(e.to_string()))?;
    if let Some(path) = html_path {
        let history: Vec<HistoryEvent> = record.load_history(run_dir).unwrap_or_default();
        write_html(path, &record, &history, &p)?;
    }
    let out = report(&record, json, &p, run_dir);
    if name.is_none() && !json {
        let others = RunRecord::list(run_dir).len().saturating_sub(1);
        if others > 0 {
            println!(
                "{others} other run{} in {}: `build-on-aws status --list`",
                if others == 1 { "" } else { "s" },
                run_dir.display()
            );
        }
    }
    out
}

/// One line per run of the folder, oldest first.
fn list_runs(run_dir: &Path, json: bool) -> Result<Outcome, CliError> {
    let runs = RunRecord::list(run_dir);
    if runs.is_empty() {
        return Err(CliError::BadInput(format!(
            "no local runs in {} yet: start one with `build-on-aws --local`",
            run_dir.join("runs").display()
        )));
    }
    if json {
        let v: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "status": r.shown_status(),
                    "started": r.started,
                    "ended": r.ended,
                    "summary": r.normalized.as_ref().map(|n| &n.summary),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(Outcome::Succeeded);
    }
    let mut rows = vec![[
        "RUN".to_string(),
        "STATUS".into(),
        "STARTED".into(),
        "TASKS".into(),
    ]];
    for r in &runs {
        rows.push([
            r.name.clone(),
            r.shown_status(),
            r.started
                .map(|s| {
                    s.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| "-".into()),
            r.normalized.as_ref().map_or("-".into(), |n| {
                format!(
                    "{} succeeded, {} failed, {} skipped",
                    n.summary.succeeded, n.summary.failed, n.summary.skipped
                )
            }),
        ]);
    }
    let w: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&w).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(Outcome::Succeeded)
}
