//! Section 1: makespan vs critical path, and the serial-launch baseline.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use boa_core::{Item, Pipeline};
use serde::Serialize;

use crate::critical::{self, Task};
use crate::local_run::{self, BOOT_S, RunSpec, TIME_SCALE};
use crate::sys::SplitMix64;
use crate::{Ctx, table, variant};

pub const VERSIONS: usize = 3;
pub const DISTROS: usize = 10;
pub const TARBALL_S: f64 = 0.3;
pub const PACKAGE_S: (f64, f64) = (1.0, 1.5);
pub const PUBLISH_S: f64 = 0.2;

#[derive(Debug, Clone, Serialize)]
pub struct MakespanRun {
    pub status: String,
    /// From starting the execution until it ended.
    pub makespan_s: f64,
    /// Longest chain of boot + measured task duration (the worker's `elapsed_s`).
    pub critical_path_s: f64,
    /// The same with the planned durations.
    pub planned_critical_path_s: f64,
    pub ratio: f64,
    pub tasks_succeeded: usize,
    pub tasks: usize,
    pub workers_launched: u64,
    pub run_instances_calls: u64,
    /// The critical chain, `Step[item]`.
    pub critical_chain: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Makespan {
    pub versions: usize,
    pub distros: usize,
    pub tasks: usize,
    pub boot_s: f64,
    pub time_scale: f64,
    pub durations: String,
    pub pipeline_note: String,
    pub ours: MakespanRun,
    pub serial: MakespanRun,
    pub serial_over_ours: f64,
    /// Every run's makespan, sorted.
    pub ours_all_s: Vec<f64>,
    pub serial_all_s: Vec<f64>,
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
    durations_file: PathBuf,
    input: boa_core::BuildInput,
    tasks: Vec<(String, Item)>,
    planned: Vec<f64>,
}

async fn one(ctx: &Ctx, su: &Setup, serial: bool, n: usize) -> Result<MakespanRun> {
    let Setup {
        p,
        pipeline,
        durations_file,
        input,
        tasks,
        planned,
    } = su;
    let which = if serial { "serial" } else { "ours" };
    let mut spec = RunSpec::new(
        pipeline,
        &ctx.worker_bin,
        ctx.tmp.join(format!("makespan-{which}-{n}")),
    );
    spec.serial_launches = serial;
    spec.seed = ctx.seed;
    spec.durations(durations_file);
    let name = format!("makespan-{which}-{n}");
    let run = local_run::run_local(&spec, &[(input.clone(), name)]).await?;
    let ex = &run.executions[0];
    let results = ex.normalized.as_ref().ok_or_else(|| {
        anyhow!(
            "{which}: the run ended {} without results: {:?}",
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
    let planned_tasks = mk(planned.iter().map(|d| BOOT_S + d).collect());
    let deps = critical::dependencies(&after, &planned_tasks);
    let planned_cp = critical::longest_path(
        &planned_tasks.iter().map(|t| t.weight_s).collect::<Vec<_>>(),
        &deps,
    )
    .map_err(|e| anyhow!(e))?;
    let measured_tasks = mk(tasks
        .iter()
        .zip(planned)
        .map(|(k, d)| BOOT_S + measured.get(k).copied().flatten().unwrap_or(*d))
        .collect());
    let cp = critical::longest_path(
        &measured_tasks
            .iter()
            .map(|t| t.weight_s)
            .collect::<Vec<_>>(),
        &deps,
    )
    .map_err(|e| anyhow!(e))?;
    Ok(MakespanRun {
        status: ex.status.clone(),
        makespan_s: ex.wall_s,
        critical_path_s: cp.length_s,
        planned_critical_path_s: planned_cp.length_s,
        ratio: ex.wall_s / cp.length_s,
        tasks_succeeded: results.summary.succeeded,
        tasks: results.summary.total,
        workers_launched: run.fleet.instances_launched,
        run_instances_calls: run.fleet.run_instances_calls,
        critical_chain: cp
            .chain
            .iter()
            .map(|&i| label(&measured_tasks[i], p))
            .collect(),
    })
}

pub async fn run(ctx: &Ctx) -> Result<Makespan> {
    let dir = ctx.tmp.join("makespan");
    let example = Pipeline::load(&ctx.example).map_err(|e| anyhow!("{e}"))?;
    let distros = variant::inner_values(&example, DISTROS);
    let versions: Vec<String> = (0..VERSIONS).map(|i| format!("4.{}.0", 30 + i)).collect();
    let packages = VERSIONS * DISTROS;
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
    let durations_file = variant::write_durations(&p, &dir, &durations)?;
    let su = Setup {
        p,
        pipeline,
        durations_file,
        input,
        tasks,
        planned,
    };
    let mut all = [vec![], vec![]];
    for n in 1..=ctx.repeats {
        for (k, serial) in [false, true].into_iter().enumerate() {
            eprintln!(
                "bench: makespan: {} tasks ({VERSIONS} versions × {DISTROS} distros), {} launches, run {n}/{}…",
                su.tasks.len(),
                if serial { "serial" } else { "concurrent" },
                ctx.repeats
            );
            all[k].push(one(ctx, &su, serial, n).await?);
        }
    }
    let [ours_all, serial_all] = all;
    let (ours, ours_all_s) = median_run(ours_all);
    let (serial, serial_all_s) = median_run(serial_all);
    Ok(Makespan {
        versions: VERSIONS,
        distros: DISTROS,
        tasks: su.tasks.len(),
        boot_s: BOOT_S,
        time_scale: TIME_SCALE,
        durations: format!(
            "tarball {TARBALL_S} s, binary package {}–{} s (seeded per task), publish {PUBLISH_S} s",
            PACKAGE_S.0, PACKAGE_S.1
        ),
        pipeline_note: format!(
            "the example's steps with {DISTROS} distros; package workers capped at {packages} instead of 25"
        ),
        serial_over_ours: serial.makespan_s / ours.makespan_s,
        ours,
        serial,
        ours_all_s,
        serial_all_s,
    })
}

pub fn render(m: &Makespan) -> String {
    let mut out = format!(
        "1. Makespan vs critical path: {} versions × {} distros = {} tasks, local mode, boot {:.2} s, {}\n",
        m.versions, m.distros, m.tasks, m.boot_s, m.durations
    );
    let all = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let row = |name: &str, r: &MakespanRun, xs: &[f64]| {
        vec![
            name.to_string(),
            table::s(r.makespan_s),
            all(xs),
            table::s(r.critical_path_s),
            table::ratio(r.ratio),
            format!("{}/{}", r.tasks_succeeded, r.tasks),
            r.workers_launched.to_string(),
        ]
    };
    out.push_str(&table::render(
        &[
            "launches",
            "makespan (median)",
            "all runs (s)",
            "critical path",
            "ratio",
            "tasks ok",
            "workers",
        ],
        &[
            row("concurrent (ours)", &m.ours, &m.ours_all_s),
            row("serial (baseline)", &m.serial, &m.serial_all_s),
        ],
    ));
    out.push_str(&format!(
        "  serial ÷ ours: {}   (critical path = longest chain of boot + measured task time; planned {:.2} s)\n",
        table::ratio(m.serial_over_ours),
        m.ours.planned_critical_path_s
    ));
    out.push_str(&format!(
        "  critical chain: {}\n",
        m.ours.critical_chain.join(" → ")
    ));
    out
}
