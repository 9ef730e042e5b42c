//! Local mode: the generated state machine in the embedded engine, the Lambda handlers
//! in-process, and workers as local processes of the real `worker` binary.
//!
//! Each run keeps what it changes in its own folder (`<run dir>/runs/<name>/`: logs, tags, work
//! folders, the stack's objects), so runs started in one folder at once do not meet. Ctrl-C or
//! SIGTERM stops the execution (ABORTED, as `StopExecution`), stops every worker and script of
//! the run, saves the run record and exits 130/143; if the CLI is killed outright, its workers
//! die with it (parent-death signal) and their scripts with them (each script's guard).

use std::path::{Path, PathBuf};
use std::time::Duration;

use boa_aws::ports::HistoryEvent;
use local::stack::{LocalOptions, LocalStack, RunRecord};

use crate::execution::{self, Follow, Shown, Signals};
use crate::progress::{TaskKey, task_results};
use crate::{Cli, CliError, Outcome, html, load_input};

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

/// How often a local run is read (DescribeExecution, GetExecutionHistory) while it runs.
const POLL: Duration = Duration::from_millis(250);

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
    let signals = Signals::watch()?;
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
        run_stubs: !local_args.no_stubs,
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
    // From here on, as on AWS: the SDK client (pointed at the engine's endpoint, with the run's
    // key) starts and follows the execution.
    stack.prepare(&input);
    let sfn = aws_sdk_sfn::Client::new(stack.sdk_config());
    let sm = stack.config().state_machine_arn.clone();
    let arn = match execution::start(&sfn, &sm, &name, &input.execution_input(&p)).await {
        Ok(a) => a,
        Err(e) => {
            stack.shutdown().await;
            return Err(CliError::Failed(format!("cannot start the run: {e}")));
        }
    };
    let mut record = RunRecord::starting(&name, &arn, local_args.time_scale);
    if let Err(e) = record.save(&run_dir) {
        eprintln!("build-on-aws: could not save the run record: {e}");
    }
    let workers = || stack.workers_alive();
    let followed = execution::follow(
        &sfn,
        &arn,
        &stack.objects(),
        Follow {
            requested: &requested,
            time_scale: local_args.time_scale,
            poll: POLL,
            workers: Some(&workers),
            signals: Some(signals),
        },
    )
    .await;
    let followed = match followed {
        Ok(f) => f,
        Err(e) => {
            stack.shutdown().await;
            return Err(e);
        }
    };
    let ended = followed.ended;
    record.status = ended.described.status.clone();
    record.error = ended.described.error.clone();
    record.cause = ended.described.cause.clone();
    record.normalized = ended.results.clone();
    // What AWS does not report: the engine's counts, the Lambdas and the fleet.
    if let Ok(Some(r)) = stack.engine().result(&arn) {
        record.counts = r.counts;
    }
    record.lambda_invocations = stack.lambda_invocations();
    // Every worker and script of the run is gone before the record says the run ended.
    stack.shutdown().await;
    record.fleet = stack.fleet().counters();
    record.instances = stack.fleet().spans();
    record.api_calls = stack.engine().api_calls();
    record.ended = Some(chrono::Utc::now());
    if let Err(e) = record
        .save_history(&run_dir, &ended.history)
        .and_then(|()| record.save(&run_dir).map(|_| ()))
    {
        eprintln!("build-on-aws: could not save the run record: {e}");
    }
    if let Some(path) = &cli.common.html {
        write_html(path, &record, &ended.history, &p)?;
    }
    let outcome = show(
        &record,
        ended.results.as_ref(),
        cli.common.json,
        &p,
        &run_dir,
    );
    match followed.interrupted {
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
    execution::write_html(
        path,
        &html::Report {
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
        },
    )
}

/// Shows a local run from its record and results, as [`execution::show`] shows any run.
fn show(
    record: &RunRecord,
    results: Option<&boa_core::NormalizedResults>,
    json: bool,
    p: &boa_core::Pipeline,
    run_dir: &Path,
) -> Result<Outcome, CliError> {
    let status = record.shown_status();
    if status == "RUNNING" && !json {
        return Err(CliError::Failed(format!(
            "run {} is still running (started {}); ask again when it has ended",
            record.name,
            record
                .started
                .map(|s| s
                    .with_timezone(&chrono::Local)
                    .format("%H:%M:%S")
                    .to_string())
                .unwrap_or_default()
        )));
    }
    execution::show(
        &Shown {
            name: &record.name,
            status: &status,
            error: record.error.as_deref(),
            cause: record.cause.as_deref(),
            results,
            time_scale: record.time_scale,
            footer: Some(format!(
                "run {} ({status}); logs in {}; `build-on-aws status {}` shows this again",
                record.name,
                local::stack::record::run_folder(run_dir, &record.name)
                    .join("logs")
                    .display(),
                record.name
            )),
        },
        json,
        p,
    )
}

/// `build-on-aws status [RUN] [--list] [--html FILE]` for local runs: the same reads as for an
/// AWS run, of what the run saved: the history it read through the API, and the results
/// NormalizeResults named in it, from the run's bucket (its folder).
pub async fn status(
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
    let mut record =
        RunRecord::load(run_dir, name).map_err(|e| CliError::BadInput(e.to_string()))?;
    let history: Vec<HistoryEvent> = record.load_history(run_dir).unwrap_or_default();
    if !history.is_empty() {
        let objects = local::stack::run_objects(run_dir, Some(&record.name));
        record.normalized = task_results(&history, &objects)
            .await
            .map_err(CliError::Failed)?;
    }
    if let Some(path) = html_path {
        write_html(path, &record, &history, &p)?;
    }
    let out = show(&record, record.normalized.as_ref(), json, &p, run_dir);
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
