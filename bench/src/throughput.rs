//! Section 3, engine throughput: 10,000 no-op activity tasks end to end with local worker
//! processes, in ONE execution: the outer axis (`batch`) is distributed, so each of its
//! [`EXECUTIONS`] values is a child execution with its own history, and each child fans out over
//! [`SHARDS`] shards. Every task's record goes to the run's bucket, not the payload. It runs in a
//! child process of the bench so that `getrusage` peaks are its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow};
use boa_core::Pipeline;
use boa_core::history_event::EventType;
use serde::{Deserialize, Serialize};

use crate::local_run::{self, RunSpec};
use crate::sys::maxrss_kib;
use crate::{Ctx, table, variant};

/// Child executions (values of the distributed outer axis) of the one execution.
pub const EXECUTIONS: usize = 40;
pub const SHARDS: usize = 250;
pub const WORKERS: u32 = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub tasks: usize,
    pub executions: usize,
    pub max_workers: u32,
    pub tasks_succeeded: usize,
    pub statuses: Vec<String>,
    /// Of the median run (by wall time).
    pub wall_s: f64,
    pub tasks_per_s: f64,
    /// Every run's wall time.
    #[serde(default)]
    pub wall_all_s: Vec<f64>,
    /// getrusage(RUSAGE_SELF) of the process running the engine, endpoint, Lambdas and fleet.
    pub engine_maxrss_kib: u64,
    /// Sampled every 100 ms.
    pub engine_peak_rss_sampled_kib: u64,
    /// The largest VmHWM of one worker process, sampled every 100 ms. (getrusage(CHILDREN) is no
    /// use here: a forked child's peak counts the parent's pages it shared before exec.)
    pub largest_worker_hwm_kib: u64,
    /// Sampled every 100 ms: the most RSS all live workers had together, and how many there were.
    pub workers_peak_rss_sum_kib: u64,
    pub workers_peak_alive: usize,
    pub workers_launched: u64,
    pub history_events_total: u64,
    pub state_transitions_total: u64,
    /// Failed activity attempts (retried), e.g. a worker reaped by the health check mid-task;
    /// summed over all runs.
    pub activity_failures: usize,
    /// Workers the health check reaped as orphans, with why; over all runs.
    pub health_reaped: Vec<String>,
}

/// Runs in the child process: the whole measurement.
pub async fn child(
    ctx: &Ctx,
    executions: usize,
    shards: usize,
    workers: u32,
) -> Result<Throughput> {
    let dir = ctx.tmp.join("throughput");
    let pipeline = variant::throughput_pipeline(&dir, shards, workers)?;
    let p = Pipeline::load(&pipeline).map_err(|e| anyhow!("{e}"))?;
    let batches: Vec<String> = (1..=executions).map(|b| format!("b{b}")).collect();
    let inputs = vec![(local_run::input(&p, &batches)?, "throughput".to_string())];
    let mut spec = RunSpec::new(&pipeline, &ctx.worker_bin, dir.join("run"));
    spec.boot_real = Duration::ZERO;
    spec.seed = ctx.seed;
    spec.limit = Duration::from_secs(600);
    spec.sample_rss = true;
    let run = local_run::run_local(&spec, &inputs).await?;
    // The workers were waited for during shutdown: their peaks are in RUSAGE_CHILDREN now.
    let tasks = executions * shards;
    let succeeded = run
        .executions
        .iter()
        .filter_map(|e| e.normalized.as_ref())
        .map(|n| n.summary.succeeded)
        .sum();
    Ok(Throughput {
        tasks,
        executions,
        max_workers: workers,
        tasks_succeeded: succeeded,
        statuses: run.executions.iter().map(|e| e.status.clone()).collect(),
        wall_s: run.wall_s,
        tasks_per_s: tasks as f64 / run.wall_s,
        wall_all_s: vec![run.wall_s],
        engine_maxrss_kib: maxrss_kib(false),
        engine_peak_rss_sampled_kib: run.peak_self_rss_kib,
        largest_worker_hwm_kib: run.largest_worker_hwm_kib,
        workers_peak_rss_sum_kib: run.peak_workers_rss_kib,
        workers_peak_alive: run.peak_workers,
        workers_launched: run.fleet.instances_launched,
        history_events_total: run.executions.iter().map(|e| e.counts.history_events).sum(),
        state_transitions_total: run
            .executions
            .iter()
            .map(|e| e.counts.state_transitions)
            .sum(),
        activity_failures: run
            .executions
            .iter()
            .map(|e| e.events(EventType::ActivityFailed) + e.events(EventType::ActivityTimedOut))
            .sum(),
        health_reaped: run.health_reaped,
    })
}

/// Runs the measurement in a child process of this binary and reads its JSON.
pub async fn run(ctx: &Ctx) -> Result<Throughput> {
    eprintln!(
        "bench: throughput: {} no-op tasks in one execution ({EXECUTIONS} child executions × {SHARDS}), up to {} workers, ×{}…",
        EXECUTIONS * SHARDS,
        ctx.throughput_workers,
        ctx.repeats
    );
    let mut runs = vec![];
    for n in 1..=ctx.repeats {
        runs.push(run_child(ctx, &ctx.tmp.join(format!("throughput-{n}"))).await?);
    }
    runs.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    let mut t = runs[runs.len() / 2].clone();
    t.wall_all_s = runs.iter().map(|r| r.wall_s).collect();
    t.activity_failures = runs.iter().map(|r| r.activity_failures).sum();
    t.health_reaped = runs.iter().flat_map(|r| r.health_reaped.clone()).collect();
    // Memory: the worst run.
    for r in &runs {
        t.engine_maxrss_kib = t.engine_maxrss_kib.max(r.engine_maxrss_kib);
        t.largest_worker_hwm_kib = t.largest_worker_hwm_kib.max(r.largest_worker_hwm_kib);
        t.workers_peak_rss_sum_kib = t.workers_peak_rss_sum_kib.max(r.workers_peak_rss_sum_kib);
    }
    Ok(t)
}

async fn run_child(ctx: &Ctx, tmp: &Path) -> Result<Throughput> {
    // /proc/self/exe still runs this very binary when `cargo build` has replaced the file.
    let exe = if Path::new("/proc/self/exe").exists() {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let out = tokio::process::Command::new(exe)
        .arg("--internal-throughput")
        .arg("--no-build")
        .arg("--worker-bin")
        .arg(&ctx.worker_bin)
        .arg("--seed")
        .arg(ctx.seed.to_string())
        .arg("--throughput-workers")
        .arg(ctx.throughput_workers.to_string())
        .arg("--tmp")
        .arg(tmp)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    if !out.status.success() {
        return Err(anyhow!("the throughput child failed: {}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| anyhow!("the throughput child's output: {e}"))
}

pub fn render(t: &Throughput) -> String {
    let mut out = format!(
        "3. Engine throughput: {} no-op activity tasks in one execution ({} child executions of a Distributed Map × {}), local workers (at most {})\n",
        t.tasks,
        t.executions,
        t.tasks / t.executions.max(1),
        t.max_workers
    );
    out.push_str(&table::render(
        &[
            "tasks ok",
            "wall: median (all runs)",
            "tasks/s",
            "engine peak RSS",
            "workers peak RSS (sum)",
            "largest worker",
            "workers",
        ],
        &[vec![
            format!("{}/{}", t.tasks_succeeded, t.tasks),
            format!(
                "{} ({})",
                table::s(t.wall_s),
                t.wall_all_s
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
            format!("{:.0}", t.tasks_per_s),
            table::mib(t.engine_maxrss_kib),
            format!(
                "{} ({} alive)",
                table::mib(t.workers_peak_rss_sum_kib),
                t.workers_peak_alive
            ),
            table::mib(t.largest_worker_hwm_kib),
            t.workers_launched.to_string(),
        ]],
    ));
    out.push_str(&format!(
        "  {} history events and {} state transitions in all; engine peak RSS is getrusage(SELF) of the process running engine, endpoint, Lambdas and fleet\n",
        t.history_events_total, t.state_transitions_total
    ));
    // Always printed: a fault-free run must show 0 and 0 (overlapping executions share workers;
    // none may be interrupted or reaped while they run).
    out.push_str(&format!(
        "  over all {} runs: {} activity attempts failed and were retried; the health check reaped {} workers{}\n",
        t.wall_all_s.len(),
        t.activity_failures,
        t.health_reaped.len(),
        t.health_reaped
            .first()
            .map(|r| format!(" (e.g. {r})"))
            .unwrap_or_default()
    ));
    if t.statuses.iter().any(|s| s != "SUCCEEDED") {
        out.push_str(&format!("  executions ended: {}\n", t.statuses.join(", ")));
    }
    out
}
