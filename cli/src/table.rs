//! The end-of-run table and failure list.

use boa_core::results::{NormalizedResults, Status};

fn item_text(item: &boa_core::Item, order: &[String]) -> String {
    order
        .iter()
        .filter_map(|k| item.get(k))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders every task (status, worker, elapsed, attempts) and then the failures with their logs.
/// Elapsed times are pipeline time (what the task takes on AWS: real × `time_scale`), with the
/// real time beside them when the scale is not 1 (local mode).
pub fn render(r: &NormalizedResults, axis_order: &[String], time_scale: f64) -> String {
    let scaled = (time_scale - 1.0).abs() > f64::EPSILON;
    let mut rows: Vec<[String; 6]> = vec![[
        "STEP".into(),
        "FOR".into(),
        "STATUS".into(),
        "WORKER".into(),
        if scaled {
            "ELAPSED (REAL)".into()
        } else {
            "ELAPSED".into()
        },
        "TRIES".into(),
    ]];
    for t in &r.tasks {
        let status = match t.status {
            Status::Succeeded => "succeeded".to_string(),
            Status::Failed => "FAILED".to_string(),
            Status::Skipped => format!(
                "skipped ({})",
                t.skip
                    .and_then(|k| serde_json::to_value(k).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        };
        rows.push([
            t.step.clone(),
            item_text(&t.item, axis_order),
            status,
            t.instance_id.clone().unwrap_or_else(|| "-".into()),
            t.elapsed_s.map_or("-".into(), |e| {
                if scaled {
                    format!("{} ({e:.1}s)", crate::progress::human(e * time_scale))
                } else {
                    crate::progress::human(e)
                }
            }),
            t.attempts.map_or("-".into(), |a| a.to_string()),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let s = &r.summary;
    out.push_str(&format!(
        "\n{} tasks: {} succeeded, {} failed, {} skipped\n",
        s.total, s.succeeded, s.failed, s.skipped
    ));
    let failed: Vec<_> = r.failed().collect();
    if !failed.is_empty() {
        out.push_str("\nFailures:\n");
        for t in failed {
            out.push_str(&format!(
                "  {} {}: {}{}\n",
                t.step,
                item_text(&t.item, axis_order),
                t.error.as_deref().unwrap_or("failed"),
                t.reason
                    .as_deref()
                    .map(|r| format!(" ({})", r.lines().next().unwrap_or_default()))
                    .unwrap_or_default()
            ));
            if let (Some(i), Some(l)) = (&t.instance_id, &t.log_stream) {
                out.push_str(&format!("    worker {i}, log {l}\n"));
            }
        }
    }
    out
}
