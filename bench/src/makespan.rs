//! Section 1: makespan vs critical path, and the serial-launch baseline.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use boa_core::{Item, Pipeline};
use serde::Serialize;

use crate::critical::{self, Task};
use crate::local_run::{self, ActivityRun, RunSpec, StackRun, TIME_SCALE};
use crate::sys::SplitMix64;
use crate::{Ctx, table, timeline, variant};

pub const VERSIONS: usize = 3;
pub const DISTROS: usize = 10;
pub const TARBALL_S: f64 = 0.3;
pub const PACKAGE_S: (f64, f64) = (1.0, 1.5);
pub const PUBLISH_S: f64 = 0.2;

/// The boot times measured (real seconds; ×100 in pipeline time: 50 s and 150 s).
pub const BOOTS_S: [f64; 2] = [0.5, 1.5];
/// The sizes measured: versions × distros. The serial baseline runs at the first only (at
/// 10 × 25 it would take minutes of one-at-a-time boots).
pub const SHAPES: [(usize, usize); 2] = [(VERSIONS, DISTROS), (10, 25)];

/// How workers are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Launching {
    /// Ahead of their tasks, from the pipeline graph and the duration history (ours).
    Lookahead,
    /// When each task is prepared (the previous release).
    JustInTime,
    /// One at a time, each waiting until it runs (the baseline).
    Serial,
}

#[derive(Debug, Clone, Serialize)]
pub struct MakespanRun {
    pub launching: Launching,
    pub status: String,
    /// From starting the execution until it ended.
    pub makespan_s: f64,
    /// What no launching can beat: the longest chain of measured task durations, or the
    /// exclusive step's tasks one after another if that is longer (`critical::lower_bound`),
    /// plus one boot (the first workers').
    pub true_limit_s: f64,
    /// The longest chain of measured task durations plus one boot, the exclusive step's turns
    /// not counted.
    pub chain_limit_s: f64,
    pub makespan_over_true_limit: f64,
    /// The longest chain of boot + measured task duration, every task paying a boot (what
    /// just-in-time launching can reach at best).
    pub critical_path_s: f64,
    /// The same with the planned durations.
    pub planned_critical_path_s: f64,
    pub tasks_succeeded: usize,
    pub tasks: usize,
    pub workers_launched: u64,
    pub run_instances_calls: u64,
    /// Executions of the lookahead state machine started during the run (on AWS each is a
    /// StartExecution, a Wait and a Lambda invocation).
    pub lookahead_executions: usize,
    /// Every EC2 request of the run (DescribeInstances, RunInstances, CreateTags,
    /// TerminateInstances), per worker launched.
    pub ec2_requests: u64,
    pub ec2_requests_per_worker: f64,
    /// Worker-seconds running tasks.
    pub busy_worker_s: f64,
    /// Worker-seconds up and waiting: from a worker's start to its first task, between its
    /// tasks, and the whole life (until it ends or the run does) of one that took none. Not the
    /// idle timeout after a worker's last task, which every launching pays alike.
    pub idle_worker_s: f64,
    pub idle_over_busy: f64,
    /// The machine's CPU busy during the run (0 to 1): near 1, local mode measures the machine
    /// (every worker process shares its cores), not the orchestration.
    pub cpu_busy: Option<f64>,
    /// The critical chain, `Step[item]`.
    pub critical_chain: Vec<String>,
    /// Where the time went, per step.
    pub steps: Vec<timeline::StepTimes>,
}

/// One size and boot time, each launching measured.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub versions: usize,
    pub distros: usize,
    pub tasks: usize,
    pub boot_s: f64,
    /// Ours (lookahead), its median run: the figures the targets are about.
    pub makespan_over_true_limit: f64,
    pub idle_over_busy: f64,
    pub ec2_requests_per_worker: f64,
    pub lookahead: MakespanRun,
    pub just_in_time: Option<MakespanRun>,
    pub serial: Option<MakespanRun>,
    pub just_in_time_over_lookahead: Option<f64>,
    pub serial_over_lookahead: Option<f64>,
    /// Every run's makespan, sorted, per launching.
    pub lookahead_all_s: Vec<f64>,
    pub just_in_time_all_s: Vec<f64>,
    pub serial_all_s: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Makespan {
    pub time_scale: f64,
    pub durations: String,
    pub pipeline_note: String,
    pub cases: Vec<Case>,
}

/// The run with the median makespan, and every makespan (sorted).
fn median_run(mut runs: Vec<MakespanRun>) -> (MakespanRun, Vec<f64>) {
    runs.sort_by(|a, b| a.makespan_s.total_cmp(&b.makespan_s));
    let all = runs.iter().map(|r| r.makespan_s).collect();
    (runs.swap_remove(runs.len() / 2), all)
}

fn label(t: &Task, p: &Pipeline) -> String {
    let item: Vec<&str> = p
        .axes
        .iter()
        .filter_map(|a| t.item.get(&a.name).map(String::as_str))
        .collect();
    format!("{}[{}]", t.step, item.join(" "))
}

/// Planned durations: a root step (no `after`) is the tarball, a step fanning out over the inner
/// axis is a binary package (seeded per task), anything else publishes.
pub fn plan_durations(p: &Pipeline, tasks: &[(String, Item)], seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    tasks
        .iter()
        .map(|(step, _)| {
            let s = p.step(step).expect("requested steps exist");
            if s.after.is_empty() {
                TARBALL_S
            } else if s.fans_out() {
                rng.uniform(PACKAGE_S.0, PACKAGE_S.1)
            } else {
                PUBLISH_S
            }
        })
        .collect()
}

/// One example-shaped run, ready to go.
struct Setup {
    p: Pipeline,
    pipeline: PathBuf,
    durations_dir: PathBuf,
    input: boa_core::BuildInput,
    tasks: Vec<(String, Item)>,
    planned: Vec<f64>,
    /// Shared by every run of the case: its objects folder keeps the duration history.
    run_dir: PathBuf,
}

/// Busy and idle worker-seconds (see [`MakespanRun::idle_worker_s`]), per instance id.
fn busy_idle(run: &StackRun) -> BTreeMap<String, timeline::WorkerTime> {
    let mut by_instance: BTreeMap<&str, Vec<&ActivityRun>> = BTreeMap::new();
    for ex in &run.executions {
        for a in &ex.activities {
            by_instance
                .entry(a.instance_id.as_str())
                .or_default()
                .push(a);
        }
    }
    let secs = |d: chrono::TimeDelta| d.num_milliseconds().max(0) as f64 / 1000.0;
    let mut out = BTreeMap::new();
    for span in &run.spans {
        let Some(up) = span.running else { continue };
        let (mut busy, mut idle) = (0.0, 0.0);
        match by_instance.get_mut(span.id.as_str()) {
            Some(tasks) => {
                tasks.sort_by_key(|a| a.start);
                let mut free_since = up;
                for a in tasks.iter() {
                    idle += secs(a.start - free_since);
                    busy += secs(a.end - a.start);
                    free_since = free_since.max(a.end);
                }
            }
            None => {
                let end = span.ended.unwrap_or(run.ended).min(run.ended);
                idle += secs(end - up);
            }
        }
        out.insert(span.id.clone(), timeline::WorkerTime { busy, idle });
    }
    out
}

async fn one(
    ctx: &Ctx,
    su: &Setup,
    launching: Launching,
    name: &str,
    boot_s: f64,
) -> Result<MakespanRun> {
    let Setup {
        p,
        pipeline,
        durations_dir,
        input,
        tasks,
        planned,
        run_dir,
    } = su;
    let mut spec = RunSpec::new(pipeline, &ctx.worker_bin, run_dir.clone());
    spec.boot_real = std::time::Duration::from_secs_f64(boot_s);
    spec.serial_launches = launching == Launching::Serial;
    spec.lookahead = launching == Launching::Lookahead;
    spec.run_stubs = ctx.stubs;
    spec.seed = ctx.seed;
    spec.durations(durations_dir);
    let run = local_run::run_local(&spec, &[(input.clone(), name.to_string())]).await?;
    let ex = &run.executions[0];
    let results = ex.normalized.as_ref().ok_or_else(|| {
        anyhow!(
            "{name}: the run ended {} without results: {:?}",
            ex.status,
            ex.error
        )
    })?;
    let measured: BTreeMap<(String, Item), Option<f64>> = results
        .tasks
        .iter()
        .map(|t| ((t.step.clone(), t.item.clone()), t.elapsed_s))
        .collect();
    let after = variant::after_map(p);
    let mk = |weights: Vec<f64>| -> Vec<Task> {
        tasks
            .iter()
            .zip(weights)
            .map(|((step, item), w)| Task {
                step: step.clone(),
                item: item.clone(),
                weight_s: w,
            })
            .collect()
    };
    let planned_tasks = mk(planned.iter().map(|d| boot_s + d).collect());
    let deps = critical::dependencies(&after, &planned_tasks);
    let longest = |w: Vec<f64>| critical::longest_path(&w, &deps).map_err(|e| anyhow!(e));
    let planned_cp = longest(planned_tasks.iter().map(|t| t.weight_s).collect())?;
    let durations: Vec<f64> = tasks
        .iter()
        .zip(planned)
        .map(|(k, d)| measured.get(k).copied().flatten().unwrap_or(*d))
        .collect();
    let measured_tasks = mk(durations.iter().map(|d| boot_s + d).collect());
    let cp = longest(measured_tasks.iter().map(|t| t.weight_s).collect())?;
    let chain_limit = longest(durations.clone())?.length_s + boot_s;
    // An exclusive step's tasks run one after another whatever the launching.
    let turns: Vec<bool> = tasks
        .iter()
        .map(|(step, _)| p.step(step).is_some_and(|s| s.exclusive))
        .collect();
    let true_limit =
        critical::lower_bound(&durations, &deps, &turns).map_err(|e| anyhow!(e))? + boot_s;
    let f = &run.fleet;
    let ec2 = f.describe_calls + f.run_instances_calls + f.tag_calls + f.terminate_calls;
    let worker_time = busy_idle(&run);
    let busy: f64 = worker_time.values().map(|w| w.busy).sum();
    let idle: f64 = worker_time.values().map(|w| w.idle).sum();
    Ok(MakespanRun {
        launching,
        status: ex.status.clone(),
        makespan_s: ex.wall_s,
        true_limit_s: true_limit,
        chain_limit_s: chain_limit,
        makespan_over_true_limit: ex.wall_s / true_limit,
        critical_path_s: cp.length_s,
        planned_critical_path_s: planned_cp.length_s,
        tasks_succeeded: results.summary.succeeded,
        tasks: results.summary.total,
        workers_launched: f.instances_launched,
        run_instances_calls: f.run_instances_calls,
        lookahead_executions: run.lookahead_executions,
        ec2_requests: ec2,
        ec2_requests_per_worker: ec2 as f64 / f.instances_launched.max(1) as f64,
        busy_worker_s: busy,
        idle_worker_s: idle,
        idle_over_busy: idle / busy.max(f64::MIN_POSITIVE),
        cpu_busy: run.cpu_busy,
        critical_chain: cp
            .chain
            .iter()
            .map(|&i| label(&measured_tasks[i], p))
            .collect(),
        steps: timeline::steps(
            &ex.history,
            &run.spans,
            &p.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            &worker_time,
        ),
    })
}

async fn setup(ctx: &Ctx, nv: usize, nd: usize, boot_s: f64) -> Result<Setup> {
    let dir = ctx.tmp.join(format!(
        "makespan-{nv}x{nd}-boot{}",
        (boot_s * 1000.0) as u64
    ));
    let example = Pipeline::load(&ctx.example).map_err(|e| anyhow!("{e}"))?;
    let distros = variant::inner_values(&example, nd);
    let versions: Vec<String> = (0..nv).map(|i| format!("4.{}.0", 30 + i)).collect();
    let packages = nv * nd;
    // Every binary package may have its own worker: the makespan measures orchestration, not
    // the example's cap of 25 package workers.
    let pipeline = variant::example_variant(&ctx.example, &dir, &distros, Some(packages as u32))?;
    let p = Pipeline::load(&pipeline).map_err(|e| anyhow!("{e}"))?;
    let mut tokens = versions.clone();
    tokens.extend(distros.iter().cloned());
    let input = local_run::input(&p, &tokens)?;
    let tasks = input
        .requested_tasks(&p)
        .map_err(|e| anyhow!("{}", e.message))?;
    let planned = plan_durations(&p, &tasks, ctx.seed);
    let durations: Vec<(String, Item, f64)> = tasks
        .iter()
        .zip(&planned)
        .map(|((s, i), d)| (s.clone(), i.clone(), *d))
        .collect();
    let durations_dir = variant::write_durations(&p, &dir, &durations)?;
    Ok(Setup {
        p,
        pipeline,
        durations_dir,
        input,
        tasks,
        planned,
        run_dir: dir.join("run"),
    })
}

pub async fn run(ctx: &Ctx) -> Result<Makespan> {
    let mut cases = vec![];
    let wanted: Vec<(usize, usize, f64)> = if ctx.cases.is_empty() {
        SHAPES
            .iter()
            .flat_map(|&(v, d)| BOOTS_S.map(|b| (v, d, b)))
            .collect()
    } else {
        ctx.cases.clone()
    };
    {
        for (nv, nd, boot_s) in wanted {
            let su = setup(ctx, nv, nd, boot_s).await?;
            let n_tasks = su.tasks.len();
            // One run first, not measured: it leaves each task's elapsed time in the duration
            // history of the run folder, which lookahead reads as a stack on AWS would after
            // its first release.
            eprintln!(
                "bench: makespan {nv}×{nd} ({n_tasks} tasks), boot {boot_s} s: warm-up run (fills the duration history)…"
            );
            one(ctx, &su, Launching::Lookahead, "warm-up", boot_s).await?;
            let mut kinds = vec![Launching::Lookahead];
            if ctx.baselines {
                kinds.push(Launching::JustInTime);
                // One at a time is minutes at 10 × 25: the serial baseline runs at 3 × 10 only.
                if (nv, nd) == SHAPES[0] {
                    kinds.push(Launching::Serial);
                }
            }
            let mut all: BTreeMap<&'static str, Vec<MakespanRun>> = BTreeMap::new();
            for n in 1..=ctx.repeats {
                for &k in &kinds {
                    let key = match k {
                        Launching::Lookahead => "lookahead",
                        Launching::JustInTime => "just-in-time",
                        Launching::Serial => "serial",
                    };
                    eprintln!(
                        "bench: makespan {nv}×{nd}, boot {boot_s} s: {key}, run {n}/{}…",
                        ctx.repeats
                    );
                    let r = one(ctx, &su, k, &format!("{key}-{n}"), boot_s).await?;
                    all.entry(key).or_default().push(r);
                }
            }
            let mut take = |k: &str| all.remove(k).map(median_run);
            let (lookahead, lookahead_all_s) = take("lookahead").expect("measured");
            let just_in_time = take("just-in-time");
            let serial = take("serial");
            cases.push(Case {
                versions: nv,
                distros: nd,
                tasks: n_tasks,
                boot_s,
                makespan_over_true_limit: lookahead.makespan_over_true_limit,
                idle_over_busy: lookahead.idle_over_busy,
                ec2_requests_per_worker: lookahead.ec2_requests_per_worker,
                just_in_time_over_lookahead: just_in_time
                    .as_ref()
                    .map(|(j, _)| j.makespan_s / lookahead.makespan_s),
                serial_over_lookahead: serial
                    .as_ref()
                    .map(|(s, _)| s.makespan_s / lookahead.makespan_s),
                serial_all_s: serial.as_ref().map(|(_, a)| a.clone()).unwrap_or_default(),
                serial: serial.map(|(s, _)| s),
                just_in_time_all_s: just_in_time
                    .as_ref()
                    .map(|(_, a)| a.clone())
                    .unwrap_or_default(),
                just_in_time: just_in_time.map(|(j, _)| j),
                lookahead,
                lookahead_all_s,
            });
        }
    }
    Ok(Makespan {
        time_scale: TIME_SCALE,
        durations: format!(
            "tarball {TARBALL_S} s, binary package {}–{} s (seeded per task), publish {PUBLISH_S} s",
            PACKAGE_S.0, PACKAGE_S.1
        ),
        pipeline_note: format!(
            "the example's steps; package workers capped at the number of packages instead of 25; {}",
            if ctx.stubs {
                "each instance runs its userdata stub"
            } else {
                "instances start their worker directly (the stack makes the stub's checks; --stubs to run them)"
            }
        ),
        cases,
    })
}

pub fn render(m: &Makespan) -> String {
    let mut out = format!(
        "1. Makespan vs the true limit (longest chain of task durations, the exclusive step's turns one after another, + one boot), local mode ×{}, {}; {}\n",
        m.time_scale, m.durations, m.pipeline_note
    );
    let all = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let mut rows = vec![];
    for c in &m.cases {
        let runs = [
            ("lookahead (ours)", Some(&c.lookahead), &c.lookahead_all_s),
            (
                "just in time",
                c.just_in_time.as_ref(),
                &c.just_in_time_all_s,
            ),
            ("serial (baseline)", c.serial.as_ref(), &c.serial_all_s),
        ];
        for (name, r, xs) in runs {
            let Some(r) = r else { continue };
            rows.push(vec![
                format!("{}×{} boot {:.1} s", c.versions, c.distros, c.boot_s),
                name.to_string(),
                table::s(r.makespan_s),
                all(xs),
                table::s(r.true_limit_s),
                table::ratio(r.makespan_over_true_limit),
                format!("{:.1}%", 100.0 * r.idle_over_busy),
                format!("{:.2}", r.ec2_requests_per_worker),
                format!("{}/{}", r.tasks_succeeded, r.tasks),
                r.workers_launched.to_string(),
                r.cpu_busy
                    .map_or("?".into(), |c| format!("{:.0}%", 100.0 * c)),
            ]);
        }
    }
    out.push_str(&table::render(
        &[
            "size",
            "launching",
            "makespan (median)",
            "all runs (s)",
            "true limit",
            "÷ limit",
            "idle ÷ busy",
            "EC2 req/worker",
            "tasks ok",
            "workers",
            "CPU busy",
        ],
        &rows,
    ));
    for c in &m.cases {
        out.push_str(&format!(
            "  {}×{} boot {:.1} s: {}{}; {} lookahead executions; chain-only limit {}; critical chain: {}\n",
            c.versions,
            c.distros,
            c.boot_s,
            c.just_in_time_over_lookahead
                .map(|r| format!("just in time ÷ lookahead {}", table::ratio(r)))
                .unwrap_or_else(|| "no baselines".into()),
            c.serial_over_lookahead
                .map(|r| format!(", serial ÷ lookahead {}", table::ratio(r)))
                .unwrap_or_default(),
            c.lookahead.lookahead_executions,
            table::s(c.lookahead.chain_limit_s),
            c.lookahead.critical_chain.join(" → ")
        ));
    }
    for c in &m.cases {
        for (name, r) in [
            ("lookahead", Some(&c.lookahead)),
            ("just in time", c.just_in_time.as_ref()),
        ] {
            let Some(r) = r else { continue };
            out.push_str(&format!(
                "  {}×{} boot {:.1} s, {name} (median run), per step:\n",
                c.versions, c.distros, c.boot_s
            ));
            out.push_str(&timeline::render(&r.steps));
        }
    }
    out.push_str("  targets: makespan ≤ 1.10 × the true limit, idle ≤ 10 % of busy, ≤ 2.5 EC2 requests per worker\n");
    out
}
