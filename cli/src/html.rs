//! The run report: one self-contained HTML page (inline CSS, SVG and a few lines of JS; nothing
//! fetched when it is viewed) for a local run or an AWS execution alike. It is drawn from plain
//! data: the pipeline, the task results ([`NormalizedResults`], read by
//! [`crate::progress::task_results`]) and the execution history.
//!
//! Sections: the pipeline graph (steps in dependency stages, coloured by what happened), a
//! steps × items grid of statuses, each failure with its error, cause, worker and log tail, a
//! timeline of every task attempt (waiting for a worker, then running) in pipeline time, and the
//! run's counts. Every string that comes from the run (axis values, causes, log tails) is
//! escaped: a build script's output cannot inject markup.

use std::collections::BTreeMap;
use std::fmt::Write;

use boa_aws::ports::HistoryEvent;
use boa_core::Pipeline;
use boa_core::history_event::EventType;
use boa_core::input::Item;
use boa_core::results::{NormalizedResults, Status, TaskRecord};
use boa_core::task::WorkerFailureCause;

use crate::progress::{AttemptEnd, attempts, human};

/// What the engine (or the local stack) counted; absent for an AWS execution, whose counts are
/// read from its history.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub state_transitions: u64,
    pub history_events: u64,
    pub max_payload_bytes: u64,
    pub lambda_invocations: u64,
    pub instances_launched: u64,
}

/// A worker instance's life: launched, booted (its worker running), gone.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSpan {
    pub id: String,
    pub step: String,
    pub launched: chrono::DateTime<chrono::Utc>,
    pub running: Option<chrono::DateTime<chrono::Utc>>,
    pub ended: Option<chrono::DateTime<chrono::Utc>>,
}

/// Everything the page shows.
pub struct Report<'a> {
    pub title: &'a str,
    pub status: &'a str,
    pub execution_arn: &'a str,
    pub error: Option<&'a str>,
    pub cause: Option<&'a str>,
    pub pipeline: &'a Pipeline,
    pub results: Option<&'a NormalizedResults>,
    pub history: &'a [HistoryEvent],
    pub counts: Option<Counts>,
    /// Pipeline time = real time × this (local mode); 1 on AWS.
    pub time_scale: f64,
    /// The workers' lives, when known (local runs; empty for an AWS execution).
    pub workers: &'a [WorkerSpan],
}

/// Step Functions Standard workflows' list price per state transition (USD), for the estimate.
pub const USD_PER_TRANSITION: f64 = 0.025 / 1000.0;

/// Escapes text for HTML element content and attribute values (and SVG text).
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Succeeded => "ok",
        Status::Failed => "fail",
        Status::Skipped => "skip",
    }
}

fn item_text(item: &Item, order: &[String]) -> String {
    order
        .iter()
        .filter_map(|k| item.get(k))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Step version distro`: how a task is named on the page (and in `data-task`).
fn task_name(step: &str, item: &Item, order: &[String]) -> String {
    let i = item_text(item, order);
    if i.is_empty() {
        step.to_string()
    } else {
        format!("{step} {i}")
    }
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
.muted{color:#5a6272}.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.b-SUCCEEDED{background:#1f8a4c}.b-FAILED,.b-TIMED_OUT,.b-TIMEDOUT,.b-KILLED{background:#c62f3b}.b-ABORTED{background:#b26a00}.b-RUNNING{background:#2b6cb0}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d8dde6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.ok{background:#d7f2e1}td.fail{background:#f9d4d7;font-weight:600}td.skip{background:#eceef1;color:#5a6272}td.none{color:#aab}
.counts td:first-child{color:#5a6272}.counts td:last-child{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#161b22;color:#e6edf3;padding:8px 10px;border-radius:4px;overflow:auto;max-height:320px;white-space:pre-wrap;word-break:break-all;font-size:12px}
.failure{border-left:4px solid #c62f3b;padding:4px 12px;margin:10px 0;background:#fff}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px;border-radius:2px}
svg text{font:12px system-ui,sans-serif}svg .node text{font-weight:600}
"#;

const COLORS: [(&str, &str); 5] = [
    ("ok", "#2e9d5f"),
    ("fail", "#d33f49"),
    ("skip", "#a5acb8"),
    ("mixed", "#e08a1e"),
    ("none", "#d8dde6"),
];

fn color(class: &str) -> &'static str {
    COLORS
        .iter()
        .find(|(c, _)| *c == class)
        .map_or("#d8dde6", |(_, v)| v)
}

/// Renders the whole page.
pub fn render(r: &Report) -> String {
    let order: Vec<String> = r.pipeline.axes.iter().map(|a| a.name.clone()).collect();
    let tasks: &[TaskRecord] = r.results.map_or(&[], |n| n.tasks.as_slice());
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>build-on-aws · {title}</title><style>{STYLE}</style></head><body data-rendered=\"no\">\n",
        title = esc(r.title)
    );
    let status = esc(r.status);
    let _ = writeln!(
        h,
        "<h1>build-on-aws run <span id=\"run-name\">{}</span> <span class=\"badge b-{status}\" id=\"run-status\">{status}</span></h1>\
         <div class=\"muted\">pipeline <b>{}</b> · execution <code>{}</code></div>",
        esc(r.title),
        esc(&r.pipeline.name),
        esc(r.execution_arn),
    );
    if r.error.is_some_and(|e| !e.is_empty()) || r.cause.is_some_and(|c| !c.is_empty()) {
        let _ = writeln!(
            h,
            "<p class=\"failure\"><b>{}</b> {}</p>",
            esc(r.error.unwrap_or("")),
            esc(r.cause.unwrap_or(""))
        );
    }
    if let Some(n) = r.results {
        let s = &n.summary;
        let _ = writeln!(
            h,
            "<p id=\"summary\">{} tasks: <b>{}</b> succeeded, <b>{}</b> failed, <b>{}</b> skipped</p>",
            s.total, s.succeeded, s.failed, s.skipped
        );
    } else {
        h.push_str("<p id=\"summary\">No task results: the run ended before any task did.</p>\n");
    }
    h.push_str("<div class=\"legend\"><span><i style=\"background:#2e9d5f\"></i>succeeded</span><span><i style=\"background:#d33f49\"></i>failed</span><span><i style=\"background:#a5acb8\"></i>skipped</span><span><i style=\"background:#e08a1e\"></i>some failed</span><span><i style=\"background:#d8dde6\"></i>not run</span></div>\n");

    h.push_str("<h2>Pipeline</h2>\n");
    h.push_str(&graph(r, tasks));
    h.push_str("<h2>Tasks</h2>\n");
    h.push_str(&grid(r.pipeline, tasks, &order, r.time_scale));
    h.push_str(&failures(tasks, &order, r.time_scale));
    h.push_str("<h2>Timeline</h2>\n");
    h.push_str(&timeline(r, &order));
    h.push_str("<h2>Counts</h2>\n");
    h.push_str(&counts(r, tasks));
    let _ = writeln!(
        h,
        "<p class=\"muted\">Written by build-on-aws {} on {}.</p>",
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    // The page checks itself: every task of the grid is there and the graph drew; the marker is
    // what a headless browser's dump shows.
    h.push_str(
        "<script>(function(){try{var t=document.querySelectorAll('[data-task]').length;\
         var g=document.querySelectorAll('#graph .node').length;\
         document.body.setAttribute('data-tasks',String(t));\
         document.body.setAttribute('data-rendered',g>0?'ok':'no-graph');\
         document.querySelectorAll('[data-task]').forEach(function(c){c.addEventListener('mouseenter',function(){\
         var s=c.getAttribute('data-step');document.querySelectorAll('#graph .node').forEach(function(n){\
         n.style.opacity=(n.getAttribute('data-step')===s)?'1':'0.45';});});\
         c.addEventListener('mouseleave',function(){document.querySelectorAll('#graph .node').forEach(function(n){n.style.opacity='1';});});});\
         }catch(e){document.body.setAttribute('data-rendered','error: '+e);}})();</script>\n",
    );
    h.push_str("</body></html>\n");
    h
}

/// The aggregate class of a step's tasks.
fn step_class(step: &str, tasks: &[TaskRecord]) -> (&'static str, String) {
    let mine: Vec<&TaskRecord> = tasks.iter().filter(|t| t.step == step).collect();
    let n = |s: Status| mine.iter().filter(|t| t.status == s).count();
    let (ok, fail, skip) = (n(Status::Succeeded), n(Status::Failed), n(Status::Skipped));
    let class = if mine.is_empty() {
        "none"
    } else if fail > 0 && ok > 0 {
        "mixed"
    } else if fail > 0 {
        "fail"
    } else if ok > 0 {
        "ok"
    } else {
        "skip"
    };
    let mut parts = vec![];
    if ok > 0 {
        parts.push(format!("{ok} ok"));
    }
    if fail > 0 {
        parts.push(format!("{fail} failed"));
    }
    if skip > 0 {
        parts.push(format!("{skip} skipped"));
    }
    if mine.is_empty() {
        parts.push("not run".into());
    }
    (class, parts.join(" · "))
}

/// Whether the history shows `state` entered, and how it ended.
fn state_class(history: &[HistoryEvent], state: &str, status: &str) -> &'static str {
    let named = |e: &&HistoryEvent| e.state_name.as_deref() == Some(state);
    let entered = history
        .iter()
        .filter(named)
        .any(|e| e.kind == EventType::TaskStateEntered);
    let exited = history
        .iter()
        .filter(named)
        .any(|e| e.kind == EventType::TaskStateExited);
    if exited {
        "ok"
    } else if entered && status == "FAILED" {
        "fail"
    } else if entered {
        "mixed"
    } else {
        "none"
    }
}

/// The pipeline graph: ParseInput, then each stage's steps in a column (edges from `after`),
/// then NormalizeResults and CheckForFailures.
fn graph(r: &Report, tasks: &[TaskRecord]) -> String {
    let stages = r.pipeline.stages();
    let (bw, bh, gapx, gapy, pad) = (180.0, 46.0, 40.0, 18.0, 8.0);
    let mut columns: Vec<Vec<(String, &'static str, String)>> = vec![];
    columns.push(vec![(
        "ParseInput".into(),
        state_class(r.history, "ParseInput", r.status),
        "input".into(),
    )]);
    for st in &stages {
        columns.push(
            st.iter()
                .map(|s| {
                    let (c, label) = step_class(&s.name, tasks);
                    (s.name.clone(), c, label)
                })
                .collect(),
        );
    }
    let check = if r.status == "FAILED"
        && r.history
            .iter()
            .any(|e| e.state_name.as_deref() == Some("CheckForFailures"))
    {
        "fail"
    } else {
        state_class(r.history, "CheckForFailures", r.status)
    };
    columns.push(vec![
        (
            "NormalizeResults".into(),
            state_class(r.history, "NormalizeResults", r.status),
            "results".into(),
        ),
        ("CheckForFailures".into(), check, "verdict".into()),
    ]);
    let rows = columns.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let height = pad * 2.0 + rows * bh + (rows - 1.0) * gapy;
    let width = pad * 2.0 + columns.len() as f64 * bw + (columns.len() as f64 - 1.0) * gapx;
    let mut pos: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (ci, col) in columns.iter().enumerate() {
        let x = pad + ci as f64 * (bw + gapx);
        let colh = col.len() as f64 * bh + (col.len() as f64 - 1.0) * gapy;
        let y0 = (height - colh) / 2.0;
        for (ri, (name, _, _)) in col.iter().enumerate() {
            pos.insert(name.clone(), (x, y0 + ri as f64 * (bh + gapy)));
        }
    }
    let mut edges: Vec<(String, String)> = vec![];
    let first: Vec<String> = stages
        .first()
        .map(|s| s.iter().map(|x| x.name.clone()).collect())
        .unwrap_or_default();
    for f in &first {
        edges.push(("ParseInput".into(), f.clone()));
    }
    for s in &r.pipeline.steps {
        for a in &s.after {
            edges.push((a.clone(), s.name.clone()));
        }
    }
    let depended: std::collections::BTreeSet<&str> = r
        .pipeline
        .steps
        .iter()
        .flat_map(|s| s.after.iter().map(String::as_str))
        .collect();
    for s in r
        .pipeline
        .steps
        .iter()
        .filter(|s| !depended.contains(s.name.as_str()))
    {
        edges.push((s.name.clone(), "NormalizeResults".into()));
    }
    edges.push(("NormalizeResults".into(), "CheckForFailures".into()));
    let mut svg = format!(
        "<svg id=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" style=\"max-width:100%;height:auto\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"pipeline graph\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#7a8294\"/></marker></defs>"
    );
    for (a, b) in &edges {
        let (Some(&(ax, ay)), Some(&(bx, by))) = (pos.get(a), pos.get(b)) else {
            continue;
        };
        let (x1, y1, x2, y2) = if (ax - bx).abs() < 1.0 {
            // Same column (NormalizeResults → CheckForFailures): straight down.
            (ax + bw / 2.0, ay + bh, bx + bw / 2.0, by)
        } else {
            (ax + bw, ay + bh / 2.0, bx, by + bh / 2.0)
        };
        let mx = (x1 + x2) / 2.0;
        let _ = write!(
            svg,
            "<path d=\"M{x1:.1},{y1:.1} C{mx:.1},{y1:.1} {mx:.1},{y2:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"#7a8294\" stroke-width=\"1.4\" marker-end=\"url(#arrow)\"/>"
        );
    }
    for col in &columns {
        for (name, class, label) in col {
            let (x, y) = pos[name];
            let fill = color(class);
            let text = if *class == "none" || *class == "skip" {
                "#1d2330"
            } else {
                "#ffffff"
            };
            let _ = write!(
                svg,
                "<g class=\"node {class}\" data-step=\"{n}\" data-class=\"{class}\"><title>{n}: {l}</title>\
                 <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw}\" height=\"{bh}\" rx=\"7\" fill=\"{fill}\" stroke=\"#4a5262\" stroke-width=\"0.6\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty1:.1}\" text-anchor=\"middle\" fill=\"{text}\">{n}</text>\
                 <text x=\"{tx:.1}\" y=\"{ty2:.1}\" text-anchor=\"middle\" fill=\"{text}\" style=\"font-weight:400;font-size:11px\">{l}</text></g>",
                n = esc(name),
                l = esc(label),
                tx = x + bw / 2.0,
                ty1 = y + 19.0,
                ty2 = y + 35.0,
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Steps × items: per outer axis value (version), a table whose rows are the steps and whose
/// columns are the inner axis values (distros); a step that does not fan out spans the row.
fn grid(p: &Pipeline, tasks: &[TaskRecord], order: &[String], scale: f64) -> String {
    if tasks.is_empty() {
        return "<p class=\"muted\">No task results.</p>\n".into();
    }
    let outer = &p.outer_axis().name;
    let inner = p.inner_axis().map(|a| a.name.clone());
    let mut outers: Vec<String> = vec![];
    let mut inners: Vec<String> = vec![];
    for t in tasks {
        if let Some(v) = t.item.get(outer)
            && !outers.contains(v)
        {
            outers.push(v.clone());
        }
        if let Some(v) = inner.as_ref().and_then(|i| t.item.get(i))
            && !inners.contains(v)
        {
            inners.push(v.clone());
        }
    }
    let mut h = String::new();
    for ov in &outers {
        let _ = write!(
            h,
            "<table class=\"grid\"><tr><th>{} {}</th>",
            esc(outer),
            esc(ov)
        );
        if inners.is_empty() {
            h.push_str("<th>status</th>");
        }
        for iv in &inners {
            let _ = write!(h, "<th>{}</th>", esc(iv));
        }
        h.push_str("</tr>\n");
        for s in &p.steps {
            let mine: Vec<&TaskRecord> = tasks
                .iter()
                .filter(|t| t.step == s.name && t.item.get(outer) == Some(ov))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let _ = write!(h, "<tr><th>{}</th>", esc(&s.name));
            let fans = inner
                .as_ref()
                .is_some_and(|i| mine.iter().any(|t| t.item.contains_key(i)));
            if fans {
                for iv in &inners {
                    match mine
                        .iter()
                        .find(|t| inner.as_ref().and_then(|i| t.item.get(i)) == Some(iv))
                    {
                        Some(t) => h.push_str(&cell(t, order, 1, scale)),
                        None => h.push_str("<td class=\"none\">–</td>"),
                    }
                }
            } else {
                h.push_str(&cell(mine[0], order, inners.len().max(1), scale));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    h
}

/// A task's cell; its elapsed time in pipeline time (real × `scale`).
fn cell(t: &TaskRecord, order: &[String], span: usize, scale: f64) -> String {
    let class = status_class(t.status);
    let text = match t.status {
        Status::Succeeded => "succeeded".to_string(),
        Status::Failed => format!("FAILED {}", t.error.as_deref().unwrap_or("")),
        Status::Skipped => format!(
            "skipped{}",
            t.skip
                .and_then(|k| serde_json::to_value(k).ok())
                .and_then(|v| v.as_str().map(|s| format!(" ({s})")))
                .unwrap_or_default()
        ),
    };
    let mut detail = vec![];
    if let Some(e) = t.elapsed_s {
        detail.push(human(e * scale));
    }
    if let Some(a) = t.attempts.filter(|a| *a > 1) {
        detail.push(format!("{a} tries"));
    }
    if let Some(i) = &t.instance_id {
        detail.push(i.clone());
    }
    let title = t
        .reason
        .clone()
        .unwrap_or_else(|| task_name(&t.step, &t.item, order));
    format!(
        "<td class=\"{class}\" colspan=\"{span}\" data-task=\"{}\" data-step=\"{}\" data-status=\"{class}\" title=\"{}\">{}<br><small>{}</small></td>",
        esc(&task_name(&t.step, &t.item, order)),
        esc(&t.step),
        esc(&title),
        esc(&text),
        esc(&detail.join(" · ")),
    )
}

/// Each failed task: its error, its cause (the worker's exit status, worker, log stream and log
/// tail when the cause is a worker's), or the cause as given.
fn failures(tasks: &[TaskRecord], order: &[String], scale: f64) -> String {
    let failed: Vec<&TaskRecord> = tasks
        .iter()
        .filter(|t| t.status == Status::Failed)
        .collect();
    if failed.is_empty() {
        return String::new();
    }
    let mut h = format!("<h2>Failures ({})</h2>\n", failed.len());
    for t in failed {
        let _ = write!(
            h,
            "<div class=\"failure\" data-failure=\"{name}\"><b>{name}</b>: <code>{err}</code>",
            name = esc(&task_name(&t.step, &t.item, order)),
            err = esc(t.error.as_deref().unwrap_or("failed")),
        );
        if let Some(r) = &t.reason {
            let _ = write!(h, " — {}", esc(r));
        }
        let worker: Option<WorkerFailureCause> = t
            .cause
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok());
        match (&worker, &t.cause) {
            (Some(w), _) => {
                let _ = write!(
                    h,
                    "<div class=\"cause\">{} on worker <code>{}</code> after {} (attempt {}), log <code>{}</code></div>\
                     <div class=\"muted\">log tail:</div><pre class=\"log-tail\">{}</pre>",
                    esc(&w.status),
                    esc(&w.instance_id),
                    esc(&human(w.elapsed_s * scale)),
                    w.attempt + 1,
                    esc(&w.log_stream),
                    esc(&w.log_tail),
                );
            }
            (None, Some(c)) => {
                let worker = match (&t.instance_id, &t.log_stream) {
                    (Some(i), Some(l)) => format!(
                        "<div>worker <code>{}</code>, log <code>{}</code></div>",
                        esc(i),
                        esc(l)
                    ),
                    _ => String::new(),
                };
                let _ = write!(h, "{worker}<pre class=\"cause\">{}</pre>", esc(c));
            }
            (None, None) => {}
        }
        h.push_str("</div>\n");
    }
    h
}

/// A Gantt-like timeline of every activity attempt: waiting for a worker (booting or queued),
/// then running, coloured by how it ended; the axis is pipeline time.
fn timeline(r: &Report, order: &[String]) -> String {
    let atts = attempts(r.history);
    let t0 = r
        .history
        .iter()
        .filter_map(|e| e.timestamp)
        .chain(r.workers.iter().map(|w| w.launched))
        .min();
    let t_end = r
        .history
        .iter()
        .filter_map(|e| e.timestamp)
        .chain(r.workers.iter().filter_map(|w| w.ended))
        .max();
    let (Some(t0), Some(t_end)) = (t0, t_end) else {
        return "<p class=\"muted\">No history to draw a timeline from.</p>\n".into();
    };
    if atts.is_empty() {
        return "<p class=\"muted\">No task was handed to a worker.</p>\n".into();
    }
    let secs =
        |t: chrono::DateTime<chrono::Utc>| (t - t0).num_milliseconds().max(0) as f64 / 1000.0;
    let total = secs(t_end).max(0.001);
    let label = |a: &crate::progress::Attempt| {
        format!(
            "{}{}",
            task_name(&a.step, &a.item, order),
            if a.attempt > 0 {
                format!(" #{}", a.attempt + 1)
            } else {
                String::new()
            }
        )
    };
    // An activity is named `<stack>-<Step>`: the step's own name is what the page shows.
    let step_of = |w: &WorkerSpan| {
        r.pipeline
            .steps
            .iter()
            .find(|s| w.step == s.name || w.step.ends_with(&format!("-{}", s.name)))
            .map_or_else(|| w.step.clone(), |s| s.name.clone())
    };
    let worker_label = |w: &WorkerSpan| format!("worker {} ({})", w.id, step_of(w));
    let longest = atts
        .iter()
        .map(|a| label(a).chars().count())
        .chain(r.workers.iter().map(|w| worker_label(w).chars().count()))
        .max()
        .unwrap_or(10);
    let (label_w, chart_w, row_h, top) = (longest as f64 * 7.0 + 16.0, 760.0, 18.0, 26.0);
    let x = |s: f64| label_w + s / total * chart_w;
    let rows = atts.len() + r.workers.len();
    let height = top + rows as f64 * row_h + 10.0;
    let width = label_w + chart_w + 20.0;
    let mut svg = format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" style=\"max-width:100%;height:auto\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"timeline\">"
    );
    // Ticks in pipeline time.
    let pipeline_total = total * r.time_scale;
    let step = nice_step(pipeline_total / 8.0);
    let mut tick = 0.0;
    while tick <= pipeline_total + 1e-9 {
        let px = x(tick / r.time_scale);
        let _ = write!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#e3e7ee\"/><text x=\"{px:.1}\" y=\"14\" text-anchor=\"middle\" fill=\"#5a6272\">{}</text>",
            top - 6.0,
            height - 6.0,
            esc(&human(tick))
        );
        tick += step;
    }
    for (i, a) in atts.iter().enumerate() {
        let y = top + i as f64 * row_h;
        let name = label(a);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#1d2330\">{}</text>",
            label_w - 8.0,
            y + 12.0,
            esc(&name)
        );
        let s = a.scheduled.map_or(0.0, secs);
        let st = a.started.map(secs);
        let en = a.ended.map_or(total, secs);
        // Waiting for a worker (its boot, or a busy fleet).
        let wait_end = st.unwrap_or(en);
        let _ = write!(
            svg,
            "<rect class=\"wait\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"11\" fill=\"#c9d3e3\"><title>{}: waiting for a worker {}</title></rect>",
            x(s),
            y + 3.0,
            (x(wait_end) - x(s)).max(1.0),
            esc(&name),
            esc(&human((wait_end - s) * r.time_scale))
        );
        if let Some(st) = st {
            let fill = match a.end {
                AttemptEnd::Succeeded => color("ok"),
                AttemptEnd::Failed | AttemptEnd::TimedOut => color("fail"),
                _ => color("mixed"),
            };
            let _ = write!(
                svg,
                "<rect class=\"run\" data-attempt=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"13\" rx=\"2\" fill=\"{fill}\"><title>{}: ran {} on {}</title></rect>",
                esc(&name),
                x(st),
                y + 2.0,
                (x(en) - x(st)).max(1.0),
                esc(&name),
                esc(&human((en - st) * r.time_scale)),
                esc(a.instance_id.as_deref().unwrap_or("a worker")),
            );
        }
    }
    // Then each worker's life: booting, then its worker process running (busy or idle).
    for (j, w) in r.workers.iter().enumerate() {
        let y = top + (atts.len() + j) as f64 * row_h;
        let name = worker_label(w);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#5a6272\">{}</text>",
            label_w - 8.0,
            y + 12.0,
            esc(&name)
        );
        let l = secs(w.launched);
        let up = w.running.map(secs);
        let end = w.ended.map_or(total, secs);
        let boot_end = up.unwrap_or(end);
        let _ = write!(
            svg,
            "<rect class=\"boot\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"9\" fill=\"#8fa3c4\"><title>{}: booting {}</title></rect>",
            x(l),
            y + 4.0,
            (x(boot_end) - x(l)).max(1.0),
            esc(&name),
            esc(&human((boot_end - l) * r.time_scale))
        );
        if let Some(up) = up {
            let _ = write!(
                svg,
                "<rect class=\"alive\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"9\" fill=\"#e6ebf3\" stroke=\"#8fa3c4\" stroke-width=\"0.8\"><title>{}: worker running {}</title></rect>",
                x(up),
                y + 4.0,
                (x(end) - x(up)).max(1.0),
                esc(&name),
                esc(&human((end - up) * r.time_scale))
            );
        }
    }
    svg.push_str("</svg>\n");
    let mut h = format!(
        "<div class=\"legend\"><span><i style=\"background:#8fa3c4\"></i>worker booting</span><span><i style=\"background:#e6ebf3;border:1px solid #8fa3c4\"></i>worker running</span><span><i style=\"background:#c9d3e3\"></i>task waiting for a worker</span><span><i style=\"background:#2e9d5f\"></i>ran, succeeded</span><span><i style=\"background:#d33f49\"></i>ran, failed</span><span><i style=\"background:#e08a1e\"></i>stopped while running</span> <span class=\"muted\">pipeline time: {}",
        esc(&human(pipeline_total))
    );
    if (r.time_scale - 1.0).abs() > f64::EPSILON {
        let _ = write!(h, " ({} real, time ×{})", esc(&human(total)), r.time_scale);
    }
    h.push_str("</span></div>\n");
    h.push_str(&svg);
    h
}

/// A round tick step (1, 2, 5 × 10ⁿ seconds, or whole minutes and hours) near `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(0.001);
    let candidates = [
        0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
        600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0, 43200.0, 86400.0,
    ];
    candidates
        .iter()
        .copied()
        .find(|c| *c >= raw)
        .unwrap_or(86400.0)
}

fn counts(r: &Report, tasks: &[TaskRecord]) -> String {
    let from_history = |k: EventType| r.history.iter().filter(|e| e.kind == k).count() as u64;
    let lambda = from_history(EventType::LambdaFunctionScheduled);
    let c = r.counts.unwrap_or(Counts {
        state_transitions: 0,
        history_events: r.history.len() as u64,
        max_payload_bytes: 0,
        lambda_invocations: lambda,
        instances_launched: 0,
    });
    let worker_s: f64 = tasks.iter().filter_map(|t| t.elapsed_s).sum::<f64>() * r.time_scale;
    let attempts = from_history(EventType::ActivityScheduled);
    let mut rows: Vec<(String, String)> = vec![
        ("history events".into(), c.history_events.to_string()),
        (
            "Lambda invocations".into(),
            c.lambda_invocations.to_string(),
        ),
        ("activity attempts".into(), attempts.to_string()),
        (
            "task time on workers (pipeline time)".into(),
            human(worker_s),
        ),
    ];
    if r.counts.is_some() {
        rows.insert(
            0,
            ("state transitions".into(), c.state_transitions.to_string()),
        );
        rows.push((
            "instances launched".into(),
            c.instances_launched.to_string(),
        ));
        rows.push((
            "largest payload".into(),
            format!("{} B", c.max_payload_bytes),
        ));
        rows.push((
            "estimated Step Functions cost".into(),
            format!(
                "${:.4} ({} transitions at $0.025 per 1,000; EC2 time not included)",
                c.state_transitions as f64 * USD_PER_TRANSITION,
                c.state_transitions
            ),
        ));
    }
    let mut h = String::from("<table class=\"counts\">");
    for (k, v) in rows {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(&k), esc(&v));
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        Pipeline::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml"))
            .unwrap()
    }

    #[test]
    fn strings_from_the_run_are_escaped() {
        let evil = "<script>alert(1)</script>\"'&";
        let cause = serde_json::json!({
            "instance_id": "i-<b>", "log_stream": "w_i", "elapsed_s": 1.0,
            "status": "exit status 2", "log_tail": evil,
        })
        .to_string();
        let item: Item = [
            ("version".to_string(), "4.28.2".to_string()),
            (
                "distro".to_string(),
                "<img src=x onerror=alert(1)>".to_string(),
            ),
        ]
        .into();
        let t = TaskRecord {
            step: "MakeBinaryPackage".into(),
            item,
            status: Status::Failed,
            skip: None,
            reason: Some(evil.into()),
            instance_id: Some("i-1".into()),
            log_stream: Some("w_i-1".into()),
            elapsed_s: Some(1.0),
            attempts: Some(1),
            error: Some("Worker.ScriptFailed".into()),
            cause: Some(cause),
        };
        let r = NormalizedResults::new(vec![t]);
        let p = pipeline();
        let page = render(&Report {
            title: "run<1>",
            status: "FAILED",
            execution_arn: "arn:x",
            error: Some("Build.Failed"),
            cause: Some(evil),
            pipeline: &p,
            results: Some(&r),
            history: &[],
            counts: None,
            time_scale: 100.0,
            workers: &[],
        });
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // One script only: the page's own.
        assert_eq!(page.matches("<script>").count(), 1);
    }

    #[test]
    fn an_execution_read_from_its_history_alone_renders_the_same_sections() {
        // The AWS case: no engine counts, no worker spans; results and timings from the history.
        let t0 = chrono::Utc::now();
        let at = |ms: i64| Some(t0 + chrono::Duration::milliseconds(ms));
        let item: Item = [("version".to_string(), "4.28.2".to_string())].into();
        let task = TaskRecord {
            step: "MakeSourceTarball".into(),
            item: item.clone(),
            status: Status::Succeeded,
            skip: None,
            reason: None,
            instance_id: Some("i-0abc".into()),
            log_stream: Some("w_i-0abc".into()),
            elapsed_s: Some(600.0),
            attempts: Some(1),
            error: None,
            cause: None,
        };
        let results = NormalizedResults::new(vec![task]);
        let ev = |id: i64, prev: i64, kind: EventType, ts, payload: Option<String>| HistoryEvent {
            id,
            previous_event_id: prev,
            kind,
            timestamp: ts,
            resource: None,
            state_name: None,
            payload,
            error: None,
            cause: None,
        };
        let input =
            serde_json::json!({"step": "MakeSourceTarball", "item": item, "mode": "normal"});
        let history = vec![
            ev(1, 0, EventType::ExecutionStarted, at(0), None),
            ev(
                2,
                1,
                EventType::ActivityScheduled,
                at(1_000),
                Some(input.to_string()),
            ),
            ev(3, 2, EventType::ActivityStarted, at(90_000), None),
            ev(4, 3, EventType::ActivitySucceeded, at(690_000), None),
            ev(5, 4, EventType::ExecutionSucceeded, at(700_000), None),
        ];
        let p = pipeline();
        let page = render(&Report {
            title: "run-1",
            status: "SUCCEEDED",
            execution_arn: "arn:aws:states:eu-west-1:1:execution:sm:run-1",
            error: None,
            cause: None,
            pipeline: &p,
            results: Some(&results),
            history: &history,
            counts: None,
            time_scale: 1.0,
            workers: &[],
        });
        assert!(
            page.contains("data-task=\"MakeSourceTarball 4.28.2\""),
            "{page}"
        );
        assert!(page.contains("class=\"run\" data-attempt=\"MakeSourceTarball 4.28.2\""));
        assert!(page.contains("<td>history events</td><td>5</td>"), "{page}");
        assert!(
            !page.contains("state transitions"),
            "not known for an AWS execution"
        );
        // Real time is pipeline time on AWS: no "real" beside it.
        assert!(page.contains("pipeline time: 11m 40s</span>"), "{page}");
        assert!(page.contains("10m 00s · i-0abc"), "{page}");
    }
}
