//! Helpers shared by the statemachine-gen tests: pipelines, a walk over every state, a tiny
//! evaluator of ASL payload templates, and the outside validator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use boa_core::Pipeline;
use serde_json::{Map, Value};
use statemachine_gen::Arns;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn example() -> Pipeline {
    Pipeline::load(&workspace().join("pipeline.toml")).unwrap_or_else(|e| panic!("{e}"))
}

pub fn concrete() -> Arns {
    Arns::Concrete {
        region: "us-east-1".into(),
        account: "123456789012".into(),
    }
}

pub fn parse(src: &str) -> Pipeline {
    Pipeline::parse(src).unwrap_or_else(|e| panic!("{e}"))
}

const AXES: &str = r#"
name = "t"
[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'
nightly = true
[[axis]]
name = "distro"
values = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"]
max_concurrency = 4
"#;

/// One step, one axis.
pub fn one_step_one_axis() -> Pipeline {
    parse(
        r#"
name = "one"
[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'
[[step]]
name = "Build"
script = "build.sh"
timeout = "1h"
heartbeat = "1m"
"#,
    )
}

/// A → B, A → C, B + C → D; B fans out over the distros.
pub fn diamond() -> Pipeline {
    parse(&format!(
        r#"{AXES}
[[step]]
name = "A"
script = "a.sh"
[[step]]
name = "B"
for_each = ["version", "distro"]
after = ["A"]
script = "b.sh"
[[step]]
name = "C"
after = ["A"]
script = "c.sh"
retries = 0
[[step]]
name = "D"
after = ["B", "C"]
needs = "any-succeeded"
script = "d.sh"
"#
    ))
}

/// Two axes declared? No: only the outer one, with three chained steps.
pub fn no_inner_axis() -> Pipeline {
    parse(
        r#"
name = "flat"
[[axis]]
name = "release"
values = ["stable", "beta"]
max_concurrency = 1
[[step]]
name = "Fetch"
script = "f.sh"
[[step]]
name = "Compile"
after = ["Fetch"]
script = "c.sh"
timeout = "3h"
heartbeat = "15m"
[[step]]
name = "Ship"
after = ["Compile"]
script = "s.sh"
retries = 5
"#,
    )
}

/// A fan-out step that is exclusive, as the last block.
pub fn exclusive_fan_out() -> Pipeline {
    parse(&format!(
        r#"{AXES}
[[step]]
name = "Prepare"
script = "p.sh"
[[step]]
name = "Upload"
for_each = ["version", "distro"]
after = ["Prepare"]
exclusive = true
script = "u.sh"
"#
    ))
}

/// `n` fan-out steps in a chain after one per-version step: a lot of tasks per version.
pub fn many_fan_out_steps(n: usize) -> Pipeline {
    parse(&fan_out_chain(AXES, n))
}

/// `many_fan_out_steps(n)` with its outer (version) Map distributed.
pub fn distributed(n: usize) -> Pipeline {
    let axes = AXES.replacen("nightly = true", "nightly = true\ndistributed = true", 1);
    parse(&fan_out_chain(&axes, n))
}

fn fan_out_chain(axes: &str, n: usize) -> String {
    let mut src = format!("{axes}\n[[step]]\nname = \"Source\"\nscript = \"s.sh\"\n");
    for i in 0..n {
        let after = if i == 0 {
            "Source".to_string()
        } else {
            format!("Pkg{}", i - 1)
        };
        src.push_str(&format!(
            "[[step]]\nname = \"Pkg{i}\"\nfor_each = [\"version\", \"distro\"]\nafter = [\"{after}\"]\nscript = \"p.sh\"\n"
        ));
    }
    src
}

/// Every pipeline the validator and the property tests run over.
pub fn all() -> Vec<(&'static str, Pipeline)> {
    vec![
        ("example", example()),
        ("distributed", distributed(2)),
        ("one_step_one_axis", one_step_one_axis()),
        ("diamond", diamond()),
        ("no_inner_axis", no_inner_axis()),
        ("exclusive_fan_out", exclusive_fan_out()),
    ]
}

/// A state, where it sits, and the states that enclose it (outermost first).
#[derive(Debug, Clone)]
pub struct Visit {
    pub name: String,
    pub state: Value,
    /// (name, state) of every enclosing Map/Parallel, outermost first.
    pub ancestors: Vec<(String, Value)>,
    /// The `States` object this state belongs to.
    pub scope: Map<String, Value>,
}

/// Every state of the definition, depth first, in definition order.
pub fn visit(def: &Value) -> Vec<Visit> {
    let mut out = vec![];
    walk(def["States"].as_object().unwrap(), &mut vec![], &mut out);
    out
}

fn walk(states: &Map<String, Value>, anc: &mut Vec<(String, Value)>, out: &mut Vec<Visit>) {
    for (name, st) in states {
        out.push(Visit {
            name: name.clone(),
            state: st.clone(),
            ancestors: anc.clone(),
            scope: states.clone(),
        });
        let children: Vec<&Map<String, Value>> = match st["Type"].as_str() {
            Some("Parallel") => st["Branches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["States"].as_object().unwrap())
                .collect(),
            Some("Map") => vec![st["ItemProcessor"]["States"].as_object().unwrap()],
            _ => vec![],
        };
        anc.push((name.clone(), st.clone()));
        for c in children {
            walk(c, anc, out);
        }
        anc.pop();
    }
}

/// Finds a state by name anywhere in the definition.
pub fn find(def: &Value, name: &str) -> Value {
    visit(def)
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no state {name}"))
        .state
}

/// Reads a simple JSONPath (`$`, `$.a.b`, `$$.Map.Item.Value`, `$[0].x`) from `input`/`ctx`.
pub fn path(p: &str, input: &Value, ctx: &Value) -> Value {
    let (root, rest) = if let Some(r) = p.strip_prefix("$$") {
        (ctx, r)
    } else {
        (
            input,
            p.strip_prefix('$')
                .unwrap_or_else(|| panic!("bad path {p}")),
        )
    };
    let mut cur = root.clone();
    let rest = rest.replace('[', ".[");
    for seg in rest.split('.').filter(|s| !s.is_empty()) {
        cur = if let Some(i) = seg.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            cur[i.parse::<usize>().unwrap()].clone()
        } else {
            cur.get(seg)
                .cloned()
                .unwrap_or_else(|| panic!("path {p}: no '{seg}' in {cur}"))
        };
    }
    cur
}

/// Evaluates an ASL payload template (`Parameters`, `ItemSelector`, `ResultSelector`):
/// keys ending in `.$` take a path's value; intrinsic functions are not supported.
pub fn template(t: &Value, input: &Value, ctx: &Value) -> Value {
    match t {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.strip_suffix(".$") {
                    Some(k) => {
                        let p = v.as_str().unwrap();
                        assert!(!p.starts_with("States."), "intrinsic in {k}: {p}");
                        out.insert(k.to_string(), path(p, input, ctx));
                    }
                    None => {
                        out.insert(k.clone(), template(v, input, ctx));
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Runs the outside validator on a definition; Err holds its output.
pub fn asl_validate(def: &Value) -> Result<(), String> {
    let bin = workspace().join(".tools/node/node_modules/.bin/asl-validator");
    assert!(
        bin.exists(),
        "{} is missing: run tools/setup to install the pinned outside tools",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("definition.json");
    std::fs::write(&f, serde_json::to_string_pretty(def).unwrap()).unwrap();
    let out = Command::new(&bin)
        .arg("--json-path")
        .arg(&f)
        .output()
        .expect("run asl-validator");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
