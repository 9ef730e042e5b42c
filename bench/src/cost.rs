//! Section 4, cost model: what the engine counted on real local runs beside the generator's static
//! report for the same input.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow};
use boa_core::history_event::EventType;
use boa_core::{Item, Pipeline};
use serde::Serialize;

use crate::local_run::{self, BOOT_S, RunSpec};
use crate::{Ctx, table, variant};

/// (versions, distros) of each row.
pub const SHAPES: [(usize, usize); 3] = [(1, 3), (3, 10), (10, 25)];
/// Every task of a cost run sleeps this long (the counts do not depend on it).
pub const TASK_S: f64 = 0.1;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub state_transitions: u64,
    pub history_events: u64,
    pub lambda_invocations: u64,
    pub activity_tasks: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ec2 {
    pub instances_launched: u64,
    pub run_instances_calls: u64,
    pub describe_calls: u64,
    pub tag_calls: u64,
    pub terminate_calls: u64,
    /// (RunInstances + DescribeInstances + CreateTags + TerminateInstances) ÷ instances launched.
    pub requests_per_worker: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostRow {
    pub versions: usize,
    pub distros: usize,
    pub tasks: usize,
    pub status: String,
    pub wall_s: f64,
    pub engine: Counts,
    pub report: Counts,
    pub agree: bool,
    /// One line per field that differs.
    pub differences: Vec<String>,
    /// Lambda invocations by function, as the engine made them.
    pub lambda_by_function: BTreeMap<String, u64>,
    pub ec2: Ec2,
    /// The engine's largest payload beside the report's estimate (not expected to be equal).
    pub max_payload_bytes: usize,
    /// The history event with the largest payload (`kind state`), to compare with the report's.
    pub max_payload_event: String,
    pub report_payload_bytes: usize,
    pub report_payload_state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    pub note: String,
    pub rows: Vec<CostRow>,
}

/// Lambda events the state machine sent on a real run, by function short name: what the
/// start-up section feeds each binary.
#[derive(Debug, Clone, Default)]
pub struct CapturedEvents {
    pub pipeline: std::path::PathBuf,
    pub events: BTreeMap<String, String>,
}

fn capture(p: &Pipeline, h: &[boa_aws::ports::HistoryEvent]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for e in h
        .iter()
        .filter(|e| e.kind == EventType::LambdaFunctionScheduled)
    {
        let (Some(res), Some(payload)) = (&e.resource, &e.payload) else {
            continue;
        };
        let function = res.rsplit(':').next().unwrap_or_default();
        let Some(short) = statemachine_gen::LAMBDAS
            .iter()
            .find(|l| function.ends_with(&format!("-{l}")))
        else {
            continue;
        };
        if *short == "start-workers" {
            // One that launches without a done-check (no S3 request): a step with no done_when.
            let step = serde_json::from_str::<serde_json::Value>(payload)
                .ok()
                .and_then(|v| v["step"].as_str().map(str::to_string))
                .unwrap_or_default();
            if p.step(&step).is_none_or(|s| !s.done_when.is_empty()) {
                continue;
            }
        }
        out.insert(short.to_string(), payload.clone());
    }
    out
}

/// `kind state (bytes)` of the history event carrying the largest payload.
fn largest_payload(h: &[boa_aws::ports::HistoryEvent]) -> String {
    h.iter()
        .filter_map(|e| Some((e, e.payload.as_ref()?.len())))
        .max_by_key(|(_, n)| *n)
        .map(|(e, n)| {
            format!(
                "{} {} ({n} B)",
                e.kind,
                e.state_name.as_deref().unwrap_or("-")
            )
        })
        .unwrap_or_default()
}

pub async fn run(ctx: &Ctx) -> Result<(Cost, CapturedEvents)> {
    let dir = ctx.tmp.join("cost");
    let example = Pipeline::load(&ctx.example).map_err(|e| anyhow!("{e}"))?;
    let max_distros = SHAPES.iter().map(|s| s.1).max().unwrap_or(1);
    let distros_all = variant::inner_values(&example, max_distros);
    let pipeline = variant::example_variant(&ctx.example, &dir, &distros_all, None)?;
    let p = Pipeline::load(&pipeline).map_err(|e| anyhow!("{e}"))?;
    let mut rows = vec![];
    let mut captured = CapturedEvents {
        pipeline: pipeline.clone(),
        events: BTreeMap::new(),
    };
    for (n, &(nv, nd)) in SHAPES.iter().enumerate() {
        let mut tokens: Vec<String> = (0..nv).map(|i| format!("4.{}.0", 30 + i)).collect();
        tokens.extend(distros_all.iter().take(nd).cloned());
        let input = local_run::input(&p, &tokens)?;
        let tasks = input
            .requested_tasks(&p)
            .map_err(|e| anyhow!("{}", e.message))?;
        eprintln!("bench: cost: {nv} × {nd} ({} tasks)…", tasks.len());
        let durations: Vec<(String, Item, f64)> = tasks
            .iter()
            .map(|(s, i)| (s.clone(), i.clone(), TASK_S))
            .collect();
        let run_dir = dir.join(format!("run-{nv}x{nd}"));
        std::fs::create_dir_all(&run_dir)?;
        let durations_dir = variant::write_durations(&p, &run_dir, &durations)?;
        let mut spec = RunSpec::new(&pipeline, &ctx.worker_bin, run_dir);
        spec.seed = ctx.seed;
        spec.limit = Duration::from_secs(180);
        spec.durations(&durations_dir);
        let name = format!("cost-{nv}x{nd}");
        let run = local_run::run_local(&spec, &[(input.clone(), name)]).await?;
        let ex = &run.executions[0];
        // Kept for inspection when --tmp is given.
        std::fs::write(
            spec.run_dir.join("history.json"),
            serde_json::to_string(&ex.history)?,
        )?;
        if n == 0 {
            captured.events = capture(&p, &ex.history);
        }
        let engine = Counts {
            state_transitions: ex.counts.state_transitions,
            history_events: ex.counts.history_events,
            lambda_invocations: run.lambdas.values().sum(),
            activity_tasks: ex.events(EventType::ActivityScheduled) as u64,
        };
        let rep = statemachine_gen::report::report(&p, &input);
        let report = Counts {
            state_transitions: rep.transitions_happy,
            history_events: rep.history_events_happy,
            lambda_invocations: rep.lambda_invocations,
            activity_tasks: rep.activity_tasks,
        };
        let mut differences = vec![];
        for (what, e, r) in [
            (
                "state transitions",
                engine.state_transitions,
                report.state_transitions,
            ),
            (
                "history events",
                engine.history_events,
                report.history_events,
            ),
            (
                "Lambda invocations",
                engine.lambda_invocations,
                report.lambda_invocations,
            ),
            (
                "activity tasks",
                engine.activity_tasks,
                report.activity_tasks,
            ),
        ] {
            if e != r {
                differences.push(format!("{what}: engine {e}, report {r}"));
            }
        }
        // The report's happy path assumes no retries: say so when the run had some.
        let retried =
            ex.events(EventType::LambdaFunctionFailed) + ex.events(EventType::ActivityFailed);
        if retried > 0 {
            differences.push(format!(
                "the run had {retried} failed Lambda/activity attempts (retried), so it was not the happy path"
            ));
        }
        let f = &run.fleet;
        let requests = f.run_instances_calls + f.describe_calls + f.tag_calls + f.terminate_calls;
        rows.push(CostRow {
            versions: nv,
            distros: nd,
            tasks: tasks.len(),
            status: ex.status.clone(),
            wall_s: ex.wall_s,
            agree: differences.is_empty() && ex.status == "SUCCEEDED",
            engine,
            report,
            differences,
            lambda_by_function: run.lambdas.clone(),
            ec2: Ec2 {
                instances_launched: f.instances_launched,
                run_instances_calls: f.run_instances_calls,
                describe_calls: f.describe_calls,
                tag_calls: f.tag_calls,
                terminate_calls: f.terminate_calls,
                requests_per_worker: requests as f64 / f.instances_launched.max(1) as f64,
            },
            max_payload_bytes: ex.counts.max_payload_bytes,
            max_payload_event: largest_payload(&ex.history),
            report_payload_bytes: rep.payload_bytes,
            report_payload_state: rep.payload_state.clone(),
        });
    }
    Ok((
        Cost {
            note: format!(
                "the example's steps and worker caps, every task {TASK_S} s, boot {BOOT_S} s; engine counts vs `statemachine-gen --report` (happy path)"
            ),
            rows,
        },
        captured,
    ))
}

pub fn render(c: &Cost) -> String {
    let mut out = format!("4. Cost model: engine vs static report ({})\n", c.note);
    let pair = |e: u64, r: u64| {
        if e == r {
            format!("{e}")
        } else {
            format!("{e} ≠ {r}")
        }
    };
    let rows: Vec<Vec<String>> = c
        .rows
        .iter()
        .map(|r| {
            vec![
                format!("{} × {}", r.versions, r.distros),
                r.tasks.to_string(),
                pair(r.engine.state_transitions, r.report.state_transitions),
                pair(r.engine.history_events, r.report.history_events),
                pair(r.engine.lambda_invocations, r.report.lambda_invocations),
                pair(r.engine.activity_tasks, r.report.activity_tasks),
                r.ec2.instances_launched.to_string(),
                format!("{:.2}", r.ec2.requests_per_worker),
                if r.agree { "agree" } else { "DIFFERS" }.to_string(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &[
            "versions × distros",
            "tasks",
            "transitions",
            "history events",
            "Lambda calls",
            "activity tasks",
            "EC2 launches",
            "EC2 req/worker",
            "vs report",
        ],
        &rows,
    ));
    for r in &c.rows {
        let f = &r.ec2;
        out.push_str(&format!(
            "  {} × {}: EC2 requests {} RunInstances + {} DescribeInstances + {} CreateTags + {} TerminateInstances (from Lambdas and health checks); largest payload {} B (report estimate {} B)\n",
            r.versions,
            r.distros,
            f.run_instances_calls,
            f.describe_calls,
            f.tag_calls,
            f.terminate_calls,
            r.max_payload_bytes,
            r.report_payload_bytes
        ));
        for d in &r.differences {
            out.push_str(&format!("    DIFFERS: {d}\n"));
        }
        if r.status != "SUCCEEDED" {
            out.push_str(&format!("    the run ended {}\n", r.status));
        }
    }
    out
}
