//! Runs executions in a [`LocalStack`] and keeps what the sections measure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use boa_aws::ports::HistoryEvent;
use boa_core::history_event::EventType;
use boa_core::{BuildInput, NormalizedResults};
use local::stack::{FleetCounters, LocalOptions, LocalStack};

use crate::sys::proc_status_kib;

/// Simulated worker boot of the makespan and cost runs, seconds (real time).
pub const BOOT_S: f64 = 0.5;
/// Every configured wait of a bench run is divided by it.
pub const TIME_SCALE: f64 = 100.0;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub pipeline: PathBuf,
    pub worker_bin: PathBuf,
    pub run_dir: PathBuf,
    /// Every configured wait is divided by it (retries, heartbeats, idle timeout, health check).
    pub time_scale: f64,
    /// Simulated worker boot, real time.
    pub boot_real: Duration,
    pub extra_env: Vec<(String, String)>,
    /// Launch workers one at a time, each waiting until it runs (the serial baseline).
    pub serial_launches: bool,
    pub seed: u64,
    /// Every execution must end within this.
    pub limit: Duration,
    /// Sample worker and own RSS every 100 ms.
    pub sample_rss: bool,
    /// Start workers ahead of their tasks (lookahead provisioning); off: when each task is
    /// prepared (just in time).
    pub lookahead: bool,
    /// Execution names are prefixed with it (runs sharing a run folder, and so the duration
    /// history, need distinct names).
    pub name_prefix: String,
    /// Each launched instance runs its userdata stub; off (the default here), the stack makes
    /// the stub's checks and starts the worker directly
    /// ([`local::stack::LocalOptions::run_stubs`]).
    pub run_stubs: bool,
}

impl RunSpec {
    pub fn new(pipeline: &Path, worker_bin: &Path, run_dir: PathBuf) -> Self {
        RunSpec {
            pipeline: pipeline.to_path_buf(),
            worker_bin: worker_bin.to_path_buf(),
            run_dir,
            time_scale: TIME_SCALE,
            boot_real: Duration::from_secs_f64(BOOT_S),
            extra_env: vec![],
            serial_launches: false,
            seed: 1,
            limit: Duration::from_secs(120),
            sample_rss: false,
            lookahead: true,
            name_prefix: String::new(),
            run_stubs: false,
        }
    }

    /// Task scripts sleep for the durations in this folder (see [`crate::variant`]).
    pub fn durations(&mut self, dir: &Path) {
        self.extra_env.push((
            crate::variant::DURATIONS_VAR.into(),
            dir.display().to_string(),
        ));
    }
}

/// One execution's outcome.
#[derive(Debug, Clone)]
pub struct Execution {
    pub name: String,
    pub status: String,
    pub error: Option<String>,
    /// From `run` to the end of `wait`.
    pub wall_s: f64,
    pub counts: engine::Counts,
    pub history: Vec<HistoryEvent>,
    pub normalized: Option<NormalizedResults>,
    /// Every activity task that a worker took: which instance, from when to when.
    pub activities: Vec<ActivityRun>,
}

/// One activity task as a worker ran it.
#[derive(Debug, Clone)]
pub struct ActivityRun {
    pub instance_id: String,
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

/// The activity tasks of an engine history, by the worker that took each
/// (ActivityStarted's `workerName`, `w_<instance id>`) and the event that ended it.
pub fn activity_runs(h: &[engine::HistoryEvent]) -> Vec<ActivityRun> {
    let ends: BTreeMap<i64, chrono::DateTime<chrono::Utc>> = h
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventType::ActivitySucceeded
                    | EventType::ActivityFailed
                    | EventType::ActivityTimedOut
            )
        })
        .map(|e| (e.previous_event_id, e.timestamp))
        .collect();
    h.iter()
        .filter(|e| e.kind == EventType::ActivityStarted)
        .filter_map(|e| {
            let worker = e.details.get("workerName")?.as_str()?;
            Some(ActivityRun {
                instance_id: worker.strip_prefix("w_").unwrap_or(worker).to_string(),
                start: e.timestamp,
                end: *ends.get(&e.id)?,
            })
        })
        .collect()
}

impl Execution {
    /// History events of one kind.
    pub fn events(&self, kind: EventType) -> usize {
        self.history.iter().filter(|e| e.kind == kind).count()
    }
}

/// What a run of one stack measured.
#[derive(Debug, Clone)]
pub struct StackRun {
    pub executions: Vec<Execution>,
    /// From the first `run` until every execution ended.
    pub wall_s: f64,
    /// The machine's CPU busy over `wall_s` (0 to 1; every process, the run's and others').
    pub cpu_busy: Option<f64>,
    pub fleet: FleetCounters,
    pub lambdas: BTreeMap<String, u64>,
    /// Most of: the sum of every live worker's RSS (KiB), sampled.
    pub peak_workers_rss_kib: u64,
    /// Most worker processes alive at one sample.
    pub peak_workers: usize,
    /// Most of this process's own RSS (KiB), sampled.
    pub peak_self_rss_kib: u64,
    /// The largest peak (VmHWM, KiB) of a single worker process, sampled.
    pub largest_worker_hwm_kib: u64,
    /// Instances the health check terminated as orphans, with why.
    pub health_reaped: Vec<String>,
    /// Every instance's life (launch, worker running, end), at the end of the run.
    pub spans: Vec<local::stack::InstanceSpan>,
    /// Executions of the lookahead state machine (on AWS, a StartExecution each).
    pub lookahead_executions: usize,
    /// When the run ended (the last execution's end).
    pub ended: chrono::DateTime<chrono::Utc>,
}

/// Starts a stack, runs every `(input, name)` at once, waits for all, shuts the stack down.
pub async fn run_local(spec: &RunSpec, inputs: &[(BuildInput, String)]) -> Result<StackRun> {
    let mut opts = LocalOptions::new(&spec.pipeline, &spec.worker_bin, &spec.run_dir);
    opts.time_scale = spec.time_scale;
    opts.boot_time = spec.boot_real.mul_f64(spec.time_scale);
    opts.extra_env = spec.extra_env.clone();
    opts.seed = spec.seed;
    opts.lookahead = spec.lookahead;
    opts.run_stubs = spec.run_stubs;
    // Each stack its own folder under the shared run folder, as each CLI run has: the runs of a
    // case share the duration history (kept at the folder's top) but no attempt records, locks
    // or logs.
    opts.run_name = inputs
        .first()
        .map(|(_, name)| format!("{}{name}", spec.name_prefix));
    let stack = Arc::new(LocalStack::start(opts).await.map_err(|e| anyhow!(e))?);
    if spec.serial_launches {
        stack.fleet().set_serial_launches(true);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spec.sample_rss.then(|| {
        let (stack, stop) = (Arc::clone(&stack), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut peak_sum, mut peak_n, mut peak_self, mut hwm) = (0u64, 0usize, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let pids = stack.fleet().pids();
                let rss: Vec<u64> = pids
                    .iter()
                    .filter_map(|p| proc_status_kib(*p, "VmRSS"))
                    .collect();
                peak_sum = peak_sum.max(rss.iter().sum());
                peak_n = peak_n.max(rss.len());
                for p in &pids {
                    hwm = hwm.max(proc_status_kib(*p, "VmHWM").unwrap_or(0));
                }
                peak_self =
                    peak_self.max(proc_status_kib(std::process::id(), "VmRSS").unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (peak_sum, peak_n, peak_self, hwm)
        })
    });
    let t0 = Instant::now();
    let cpu0 = crate::sys::cpu_ticks();
    let mut waits = vec![];
    for (input, name) in inputs {
        let name = &format!("{}{name}", spec.name_prefix);
        let h = match stack.run(input, name) {
            Ok(h) => h,
            Err(e) => {
                stack.shutdown().await;
                return Err(anyhow!("cannot start {name}: {e}"));
            }
        };
        let name = name.clone();
        let stack = Arc::clone(&stack);
        let limit = spec.limit;
        let run_dir = spec.run_dir.clone();
        waits.push(tokio::spawn(async move {
            let arn = h.arn().to_string();
            let r = tokio::time::timeout(limit, h.wait()).await;
            let wall_s = t0.elapsed().as_secs_f64();
            let history = stack
                .executions()
                .history_with_children(&arn)
                .await
                .unwrap_or_default();
            // Beside the run's records, for reading a slow run afterwards (`--tmp DIR`).
            if let Ok(text) = serde_json::to_vec(&history) {
                let _ = std::fs::write(
                    local::stack::record::run_folder(&run_dir, &name).join("history.json"),
                    text,
                );
            }
            let activities = stack
                .engine()
                .history(&arn)
                .map(|h| activity_runs(&h))
                .unwrap_or_default();
            match r {
                Ok(r) => Execution {
                    name,
                    status: format!("{:?}", r.status).to_uppercase(),
                    error: r
                        .error
                        .map(|e| format!("{e}: {}", r.cause.unwrap_or_default())),
                    wall_s,
                    counts: r.counts,
                    normalized: stack.results(&arn),
                    history,
                    activities,
                },
                Err(_) => Execution {
                    name,
                    status: "TIMED OUT (bench limit)".into(),
                    error: Some(format!("did not end within {limit:?}")),
                    wall_s,
                    counts: engine::Counts::default(),
                    normalized: None,
                    history,
                    activities,
                },
            }
        }));
    }
    let mut executions = vec![];
    for w in waits {
        executions.push(w.await.map_err(|e| anyhow!("waiting task: {e}"))?);
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let cpu_busy = crate::sys::busy_share(cpu0, crate::sys::cpu_ticks());
    let ended = chrono::Utc::now();
    let spans = stack.fleet().spans();
    let lookahead_executions = stack
        .engine()
        .list_executions(None)
        .iter()
        .filter(|e| e.state_machine_arn.ends_with("-lookahead"))
        .count();
    stop.store(true, Ordering::Relaxed);
    let (peak_workers_rss_kib, peak_workers, peak_self_rss_kib, largest_worker_hwm_kib) =
        match sampler {
            Some(s) => s.await.unwrap_or_default(),
            None => (0, 0, 0, 0),
        };
    let fleet = stack.fleet().counters();
    let lambdas = stack.lambda_invocations();
    let health_reaped = stack
        .health_runs()
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|r| r.reaped.clone())
        .collect();
    stack.shutdown().await;
    Ok(StackRun {
        cpu_busy,
        executions,
        wall_s,
        fleet,
        lambdas,
        peak_workers_rss_kib,
        peak_workers,
        peak_self_rss_kib,
        largest_worker_hwm_kib,
        health_reaped,
        spans,
        lookahead_executions,
        ended,
    })
}

/// The input for these tokens, as `build-on-aws` would parse them.
pub fn input(p: &boa_core::Pipeline, tokens: &[String]) -> Result<BuildInput> {
    BuildInput::from_tokens(p, tokens, chrono::Local::now().date_naive())
        .map_err(|e| anyhow!("{}", e.message))
}
