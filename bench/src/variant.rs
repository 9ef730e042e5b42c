//! The pipelines the benchmark runs, written into a temporary folder: variants of the example
//! pipeline with more distros and the bench's own sleep script, and a one-step fan-out for the
//! throughput run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use boa_core::{Item, Pipeline};

/// Every step of an example variant runs this script: it sleeps for its task's duration, read
/// from its own file in the folder named by [`DURATIONS_VAR`].
pub const TASK_SCRIPT: &str = "bench-task.sh";
/// The throughput pipeline's script.
pub const NOOP_SCRIPT: &str = "bench-noop.sh";
/// The worker environment variable naming the durations folder.
pub const DURATIONS_VAR: &str = "BENCH_DURATIONS";
pub const DURATIONS_DIR: &str = "durations";

fn axis_var(axis: &str) -> String {
    format!("BOA_{}", axis.to_uppercase())
}

/// Writes `pipeline.toml` into `dir`: the example's steps exactly (after, needs, exclusive,
/// timeouts, heartbeats, done_when, env, worker settings), its inner axis listing
/// `inner_values`, no per-version overrides, and every step running [`TASK_SCRIPT`] (no init,
/// after or cleanup scripts). With `min_workers`, a step that fans out over the inner axis may
/// have at least that many workers.
pub fn example_variant(
    example: &Path,
    dir: &Path,
    inner_values: &[String],
    min_workers: Option<u32>,
) -> Result<PathBuf> {
    let p = Pipeline::load(example).map_err(|e| anyhow!("{e}"))?;
    let inner = p
        .inner_axis()
        .ok_or_else(|| anyhow!("{} has no inner axis to widen", example.display()))?
        .name
        .clone();
    let outer = p.outer_axis().name.clone();
    let src = std::fs::read_to_string(example)?;
    let mut doc: toml::Table = toml::from_str(&src).context("parsing the example pipeline")?;
    doc.insert(
        "name".into(),
        toml::Value::String(format!("{}-bench", p.name)),
    );
    if let Some(axes) = doc.get_mut("axis").and_then(toml::Value::as_array_mut) {
        for a in axes.iter_mut().filter_map(toml::Value::as_table_mut) {
            a.remove("override");
            if a.get("name").and_then(toml::Value::as_str) == Some(inner.as_str()) {
                a.insert(
                    "values".into(),
                    toml::Value::Array(
                        inner_values
                            .iter()
                            .map(|v| toml::Value::String(v.clone()))
                            .collect(),
                    ),
                );
                a.remove("default");
            }
        }
    }
    let default_max = p.default_worker.max_workers;
    if let Some(steps) = doc.get_mut("step").and_then(toml::Value::as_array_mut) {
        for s in steps.iter_mut().filter_map(toml::Value::as_table_mut) {
            s.insert("script".into(), toml::Value::String(TASK_SCRIPT.into()));
            for k in ["init_script", "after_script", "cleanup_script"] {
                s.remove(k);
            }
            let fans_out = s
                .get("for_each")
                .and_then(toml::Value::as_array)
                .is_some_and(|f| f.iter().any(|a| a.as_str() == Some(inner.as_str())));
            if let (true, Some(min)) = (fans_out, min_workers) {
                let w = s
                    .entry("worker")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let Some(w) = w.as_table_mut() {
                    let now = w
                        .get("max_workers")
                        .and_then(toml::Value::as_integer)
                        .unwrap_or(i64::from(default_max));
                    w.insert(
                        "max_workers".into(),
                        toml::Value::Integer(now.max(min.into())),
                    );
                }
            }
        }
    }
    std::fs::create_dir_all(dir)?;
    // The shell's own `read`, not a lookup program: a 10 × 25 run starts 250 of these at once
    // on the machine's two cores, where each extra program (an awk was one) is a fork, an exec
    // and a dynamic link taken from the orchestration being measured.
    let script = format!(
        "#!/bin/sh\n\
         # build-on-aws bench: sleep for this task's seeded duration.\n\
         set -eu\n\
         d=0\n\
         read -r d <\"${DURATIONS_VAR}/$BOA_STEP ${{{o}:--}} ${{{i}:--}}\" || true\n\
         exec sleep \"${{d:-0}}\"\n",
        o = axis_var(&outer),
        i = axis_var(&inner),
    );
    write_script(&dir.join(TASK_SCRIPT), &script)?;
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, toml::to_string(&doc)?)?;
    Pipeline::load(&path).map_err(|e| anyhow!("the bench variant does not load: {e}"))?;
    Ok(path)
}

/// Writes the durations folder of a variant: per task, a file `<step> <outer> <inner>` (`-` for
/// an axis the task does not have) holding its seconds. Returns the folder's path.
pub fn write_durations(
    p: &Pipeline,
    dir: &Path,
    durations: &[(String, Item, f64)],
) -> Result<PathBuf> {
    let outer = &p.outer_axis().name;
    let inner = p.inner_axis().map(|a| a.name.clone()).unwrap_or_default();
    let folder = dir.join(DURATIONS_DIR);
    std::fs::create_dir_all(&folder)?;
    for (step, item, secs) in durations {
        let get = |k: &str| item.get(k).cloned().unwrap_or_else(|| "-".into());
        let name = format!("{step} {} {}", get(outer), get(&inner));
        if name.contains('/') {
            return Err(anyhow!("task '{name}' cannot name a durations file"));
        }
        std::fs::write(folder.join(name), format!("{secs:.3}\n"))?;
    }
    Ok(folder)
}

/// A pipeline of one step (`Noop`) fanning out over `shards` values of an inner axis `shard`,
/// with an outer axis `batch` (`b1`, `b2`…) so several executions can share the fleet.
pub fn throughput_pipeline(dir: &Path, shards: usize, max_workers: u32) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let values: Vec<String> = (0..shards).map(|i| format!("\"s{i:04}\"")).collect();
    let text = format!(
        r#"# build-on-aws bench: {shards} no-op tasks per execution.
name = "throughput"

[[axis]]
name = "batch"
pattern = '^b\d+$'
distributed = true
max_concurrency = 8

[[axis]]
name = "shard"
values = [{values}]

[defaults.worker]
ami = "ami-00000000000000000"
instance_types = ["c7i.large"]
market = "on-demand"
max_workers = {max_workers}
idle_timeout = "10m"

[[step]]
name = "Noop"
for_each = ["batch", "shard"]
script = "{NOOP_SCRIPT}"
timeout = "1h"
heartbeat = "10m"
"#,
        values = values.join(", ")
    );
    write_script(&dir.join(NOOP_SCRIPT), "#!/bin/sh\nexit 0\n")?;
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text)?;
    Pipeline::load(&path).map_err(|e| anyhow!("the throughput pipeline does not load: {e}"))?;
    Ok(path)
}

fn write_script(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Step → the steps it comes after.
pub fn after_map(p: &Pipeline) -> BTreeMap<String, Vec<String>> {
    p.steps
        .iter()
        .map(|s| (s.name.clone(), s.after.clone()))
        .collect()
}

/// Distro-like names for a variant: the example's own values first, then `distro-NN`.
pub fn inner_values(p: &Pipeline, n: usize) -> Vec<String> {
    let own = match p.inner_axis().map(|a| &a.values) {
        Some(boa_core::pipeline::AxisValues::List(v)) => v.clone(),
        _ => vec![],
    };
    let mut out: Vec<String> = own.into_iter().take(n).collect();
    let mut k = 0;
    while out.len() < n {
        let name = format!("distro-{k:02}");
        if !out.contains(&name) {
            out.push(name);
        }
        k += 1;
    }
    out
}
