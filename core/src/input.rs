//! The build input: what a run asks for, from tokens (`4.28.2 ubuntu-22.04-jammy MakeBinaryPackage
//! --fake-ec2`) or from structured JSON, validated against the pipeline; and the plan the state
//! machine iterates over.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::errors::NamedError;
use crate::pipeline::{AxisValues, Pipeline, suggest};

/// How a run treats EC2 and the scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Launch workers; skip tasks whose `done_when` objects exist.
    #[default]
    Normal,
    /// Launch nothing and ignore `done_when`: the tasks wait for workers started by hand.
    FakeEc2,
    /// Launch nothing and mark every task skipped: exercises the machine without building.
    SkipEc2,
    /// Workers run the scripts in test mode (`BOA_MODE=test`).
    Test,
}

impl Mode {
    pub const FLAGS: [(&'static str, Mode); 3] = [
        ("--fake-ec2", Mode::FakeEc2),
        ("--skip-ec2", Mode::SkipEc2),
        ("--test", Mode::Test),
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::FakeEc2 => "fake-ec2",
            Mode::SkipEc2 => "skip-ec2",
            Mode::Test => "test",
        }
    }
}

/// A validated build input. `axes` holds, for every axis, the requested values (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInput {
    pub axes: BTreeMap<String, Vec<String>>,
    /// Requested steps, in pipeline order.
    pub steps: Vec<String>,
    pub mode: Mode,
}

/// The part of a run every Map iteration carries: the requested steps and the mode, nothing that
/// grows with the number of axis values. `Prepare<Step>` reads both (a step not requested is
/// skipped; `skip-ec2` and `fake-ec2` launch nothing) and the activity input carries the mode.
/// An iteration's own axis values are its item; the run's other values are in the plan, read
/// only at the top level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunScope {
    /// Requested steps, in pipeline order.
    pub steps: Vec<String>,
    pub mode: Mode,
}

impl RunScope {
    /// Whether `step` was asked for in this run.
    pub fn requested(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s == step)
    }
}

/// One iteration of the outer Map: the outer axis value and, if the pipeline has an inner axis,
/// the inner values for it (per-version overrides applied). Serialised as
/// `{"<outer>": "4.28.2", "<inner>": ["debian-12-bookworm", …]}`.
pub type PlanItem = BTreeMap<String, serde_json::Value>;

/// What ParseInput returns and what the state machine iterates over: the whole input (read by
/// NormalizeResults, at the top level only), the run's [`RunScope`] (what each iteration carries)
/// and the plan (the outer Map's items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInput {
    pub input: BuildInput,
    pub run: RunScope,
    pub plan: Vec<PlanItem>,
}

/// A task's coordinates: one value per axis the step fans out over.
pub type Item = BTreeMap<String, String>;

/// A task's coordinates as one object-key segment: `version=5.4.0,distro=bookworm` (`-` for a
/// task with no axis values). Characters other than ASCII letters, digits and `.-_+~` are
/// written `%XX`, so the segment never holds `/`, never is `.` or `..`, and two items never share
/// a key. Used for attempt records and task records alike.
pub fn item_key(item: &Item) -> String {
    if item.is_empty() {
        return "-".into();
    }
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"._+~-".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    let parts: Vec<String> = item
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    parts.join(",")
}

/// The most input we accept, in bytes (a console paste, not a payload).
pub const MAX_INPUT_BYTES: usize = 16 * 1024;

/// Today's nightly version name.
pub fn nightly(today: chrono::NaiveDate) -> String {
    today.format("%Y.%m.%d").to_string()
}

fn flags_list() -> String {
    Mode::FLAGS
        .iter()
        .map(|(f, _)| *f)
        .collect::<Vec<_>>()
        .join(", ")
}

impl BuildInput {
    /// Classifies tokens in any order. Every token that fits nothing is reported, with what would fit.
    pub fn from_tokens<S: AsRef<str>>(
        p: &Pipeline,
        tokens: &[S],
        today: chrono::NaiveDate,
    ) -> Result<BuildInput, NamedError> {
        let mut axes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut steps: Vec<String> = vec![];
        let mut mode: Option<(Mode, String)> = None;
        let mut bad: Vec<String> = vec![];
        for t in tokens {
            let t = t.as_ref().trim();
            if t.is_empty() {
                continue;
            }
            if !t.is_ascii() {
                bad.push(format!(
                    "'{t}' has characters outside ASCII: versions, axis values and step names are plain ASCII (e.g. 4.28.2, not the same digits in another script)"
                ));
                continue;
            }
            if let Some((_, m)) = Mode::FLAGS.iter().find(|(f, _)| *f == t) {
                if let Some((prev, pt)) = &mode
                    && prev != m
                {
                    bad.push(format!(
                        "'{t}' conflicts with '{pt}': give at most one mode flag"
                    ));
                }
                mode = Some((*m, t.to_string()));
                continue;
            }
            if p.step(t).is_some() {
                if !steps.iter().any(|s| s == t) {
                    steps.push(t.to_string());
                }
                continue;
            }
            let axis = p.axes.iter().find(|a| match &a.values {
                AxisValues::List(v) => v.iter().any(|x| x == t),
                AxisValues::Pattern { regex, nightly } => {
                    t.is_ascii() && (regex.is_match(t) || (*nightly && is_nightly(t)))
                }
            });
            if let Some(a) = axis {
                let e = axes.entry(a.name.clone()).or_default();
                if !e.iter().any(|x| x == t) {
                    e.push(t.to_string());
                }
                continue;
            }
            bad.push(explain_unknown(p, t));
        }
        if !bad.is_empty() {
            return Err(NamedError::input(format!(
                "{}\n{}",
                bad.join("\n"),
                what_fits(p)
            )));
        }
        BuildInput::complete(p, axes, steps, mode.map_or(Mode::Normal, |(m, _)| m), today)
    }

    /// Validates a structured input `{"versions": [...], "distros": [...], "steps": [...], "mode": "..."}`
    /// (axis keys are each axis' `input_key`). A JSON string is treated as a token list.
    pub fn from_json(
        p: &Pipeline,
        v: &serde_json::Value,
        today: chrono::NaiveDate,
    ) -> Result<BuildInput, NamedError> {
        let size = v.to_string().len();
        if size > MAX_INPUT_BYTES {
            return Err(NamedError::input(format!(
                "the input is {size} bytes; at most {MAX_INPUT_BYTES} are accepted"
            )));
        }
        match v {
            serde_json::Value::String(s) => {
                let tokens: Vec<&str> = s.split_whitespace().collect();
                BuildInput::from_tokens(p, &tokens, today)
            }
            serde_json::Value::Null => BuildInput::from_tokens::<&str>(p, &[], today),
            serde_json::Value::Object(o) => {
                let mut known: Vec<String> = p.axes.iter().map(|a| a.input_key.clone()).collect();
                known.extend(["steps".into(), "mode".into(), "tokens".into()]);
                let mut problems = vec![];
                for k in o.keys() {
                    if !known.contains(k) {
                        let hint = suggest(k, known.iter().map(|s| s.as_str()))
                            .map(|h| format!(" (did you mean '{h}'?)"))
                            .unwrap_or_default();
                        problems.push(format!(
                            "unknown input key '{k}'{hint}; known keys: {}",
                            known.join(", ")
                        ));
                    }
                }
                let list = |key: &str, problems: &mut Vec<String>| -> Vec<String> {
                    match o.get(key) {
                        None | Some(serde_json::Value::Null) => vec![],
                        Some(serde_json::Value::Array(a)) => a
                            .iter()
                            .filter_map(|x| match x.as_str() {
                                Some(s) => Some(s.to_string()),
                                None => {
                                    problems.push(format!(
                                        "'{key}' must be a list of strings; {x} is not a string"
                                    ));
                                    None
                                }
                            })
                            .collect(),
                        Some(serde_json::Value::String(s)) => vec![s.clone()],
                        Some(x) => {
                            problems.push(format!("'{key}' must be a list of strings, not {x}"));
                            vec![]
                        }
                    }
                };
                // Everything goes through the token classifier so both forms validate the same way.
                let mut tokens: Vec<String> = list("tokens", &mut problems);
                let mut axes: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for a in &p.axes {
                    let vals = list(&a.input_key, &mut problems);
                    for x in &vals {
                        let ok = match &a.values {
                            AxisValues::List(v) => v.contains(x),
                            AxisValues::Pattern { regex, nightly } => {
                                x.is_ascii() && (regex.is_match(x) || (*nightly && is_nightly(x)))
                            }
                        };
                        if !ok {
                            problems.push(format!(
                                "{} '{x}' is not valid: {}",
                                a.name,
                                describe_axis(a)
                            ));
                        }
                    }
                    if !vals.is_empty() {
                        axes.insert(a.name.clone(), vals);
                    }
                }
                let steps = list("steps", &mut problems);
                let names: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
                for s in &steps {
                    if !names.contains(&s.as_str()) {
                        let hint = suggest(s, names.iter().copied())
                            .map(|h| format!(" (did you mean '{h}'?)"))
                            .unwrap_or_default();
                        problems.push(format!(
                            "unknown step '{s}'{hint}; steps: {}",
                            names.join(", ")
                        ));
                    }
                }
                let mode = match o.get("mode") {
                    None | Some(serde_json::Value::Null) => Mode::Normal,
                    Some(m) => serde_json::from_value::<Mode>(m.clone()).unwrap_or_else(|_| {
                        problems.push(format!(
                            "mode {m} is not one of: normal, fake-ec2, skip-ec2, test"
                        ));
                        Mode::Normal
                    }),
                };
                if !problems.is_empty() {
                    return Err(NamedError::input(problems.join("\n")));
                }
                if !tokens.is_empty() {
                    // Tokens merge with the structured fields.
                    for (a, vs) in &axes {
                        let _ = a;
                        tokens.extend(vs.iter().cloned());
                    }
                    tokens.extend(steps.iter().cloned());
                    if let Some((f, _)) = Mode::FLAGS.iter().find(|(_, m)| *m == mode) {
                        tokens.push(f.to_string());
                    }
                    return BuildInput::from_tokens(p, &tokens, today);
                }
                BuildInput::complete(p, axes, steps, mode, today)
            }
            other => Err(NamedError::input(format!(
                "the input must be an object like {{\"versions\": [...], \"steps\": [...]}} or a string of tokens, not {other}"
            ))),
        }
    }

    fn complete(
        p: &Pipeline,
        mut axes: BTreeMap<String, Vec<String>>,
        steps: Vec<String>,
        mode: Mode,
        today: chrono::NaiveDate,
    ) -> Result<BuildInput, NamedError> {
        for a in &p.axes {
            let e = axes.entry(a.name.clone()).or_default();
            if e.is_empty() {
                match &a.values {
                    AxisValues::Pattern { nightly: true, .. } if a.default.is_empty() => {
                        e.push(nightly(today))
                    }
                    _ if !a.default.is_empty() => e.extend(a.default.iter().cloned()),
                    _ => {
                        return Err(NamedError::input(format!(
                            "no {} given and the pipeline has no default; give one, e.g. {}",
                            a.name,
                            describe_axis(a)
                        )));
                    }
                }
            }
        }
        // Steps in pipeline order; none named = all.
        let steps: Vec<String> = if steps.is_empty() {
            p.steps.iter().map(|s| s.name.clone()).collect()
        } else {
            p.steps
                .iter()
                .filter(|s| steps.contains(&s.name))
                .map(|s| s.name.clone())
                .collect()
        };
        let input = BuildInput { axes, steps, mode };
        input.plan(p)?;
        Ok(input)
    }

    /// The outer Map's items, with per-value overrides of the inner axis applied.
    pub fn plan(&self, p: &Pipeline) -> Result<Vec<PlanItem>, NamedError> {
        let outer = p.outer_axis();
        let mut out = vec![];
        for v in self.axes.get(&outer.name).cloned().unwrap_or_default() {
            let mut item = PlanItem::new();
            item.insert(outer.name.clone(), serde_json::Value::String(v.clone()));
            if let Some(inner) = p.inner_axis() {
                let requested = self.axes.get(&inner.name).cloned().unwrap_or_default();
                let allowed: Option<&Vec<String>> = inner
                    .overrides
                    .iter()
                    .find(|o| o.axis == outer.name && o.matches.is_match(&v))
                    .map(|o| &o.values);
                let vals: Vec<String> = match allowed {
                    Some(a) => requested
                        .iter()
                        .filter(|x| a.contains(x))
                        .cloned()
                        .collect(),
                    None => requested.clone(),
                };
                let needs_inner = self
                    .steps
                    .iter()
                    .filter_map(|s| p.step(s))
                    .any(|s| s.fans_out());
                if vals.is_empty() && needs_inner {
                    return Err(NamedError::input(format!(
                        "none of the requested {}s ({}) is built for {} {v}; it builds: {}",
                        inner.name,
                        requested.join(", "),
                        outer.name,
                        allowed.map(|a| a.join(", ")).unwrap_or_default()
                    )));
                }
                item.insert(
                    inner.name.clone(),
                    serde_json::Value::Array(
                        vals.into_iter().map(serde_json::Value::String).collect(),
                    ),
                );
            }
            out.push(item);
        }
        Ok(out)
    }

    /// What every iteration of the run carries: the steps and the mode.
    pub fn scope(&self) -> RunScope {
        RunScope {
            steps: self.steps.clone(),
            mode: self.mode,
        }
    }

    /// The validated input plus its plan: ParseInput's output.
    pub fn machine_input(self, p: &Pipeline) -> Result<MachineInput, NamedError> {
        let plan = self.plan(p)?;
        Ok(MachineInput {
            run: self.scope(),
            input: self,
            plan,
        })
    }

    /// Every requested task as (step, item), in plan order: the records NormalizeResults must produce.
    pub fn requested_tasks(&self, p: &Pipeline) -> Result<Vec<(String, Item)>, NamedError> {
        let plan = self.plan(p)?;
        let outer = &p.outer_axis().name;
        let mut out = vec![];
        for pi in &plan {
            let ov = pi[outer].as_str().unwrap_or_default().to_string();
            for s in self.steps.iter().filter_map(|s| p.step(s)) {
                let base: Item = [(outer.clone(), ov.clone())].into();
                match (s.fans_out(), p.inner_axis()) {
                    (true, Some(inner)) => {
                        for iv in pi[&inner.name].as_array().into_iter().flatten() {
                            let mut it = base.clone();
                            it.insert(
                                inner.name.clone(),
                                iv.as_str().unwrap_or_default().to_string(),
                            );
                            out.push((s.name.clone(), it));
                        }
                    }
                    _ => out.push((s.name.clone(), base)),
                }
            }
        }
        Ok(out)
    }

    /// The structured execution input the state machine's `ParseInput` reads back:
    /// `{"<input_key>": [...] per axis, "steps": [...], "mode": "..."}`.
    pub fn execution_input(&self, p: &Pipeline) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for a in &p.axes {
            m.insert(
                a.input_key.clone(),
                serde_json::json!(self.axes.get(&a.name).cloned().unwrap_or_default()),
            );
        }
        m.insert("steps".into(), serde_json::json!(self.steps));
        m.insert("mode".into(), serde_json::json!(self.mode.as_str()));
        serde_json::Value::Object(m)
    }

    /// The tokens that reproduce this input (for execution names and display).
    pub fn tokens(&self, p: &Pipeline) -> Vec<String> {
        let mut t = vec![];
        for a in &p.axes {
            let vals = self.axes.get(&a.name).cloned().unwrap_or_default();
            if vals != a.default || matches!(a.values, AxisValues::Pattern { .. }) {
                t.extend(vals);
            }
        }
        if self.steps.len() != p.steps.len() {
            t.extend(self.steps.iter().cloned());
        }
        if let Some((f, _)) = Mode::FLAGS.iter().find(|(_, m)| *m == self.mode) {
            t.push(f.to_string());
        }
        t
    }
}

fn is_nightly(t: &str) -> bool {
    chrono::NaiveDate::parse_from_str(t, "%Y.%m.%d").is_ok() && t.len() == 10
}

fn describe_axis(a: &crate::pipeline::Axis) -> String {
    match &a.values {
        AxisValues::List(v) => format!("one of {}", v.join(", ")),
        AxisValues::Pattern { regex, nightly } => format!(
            "a value matching {}{}",
            regex.as_str(),
            if *nightly {
                " or a nightly date YYYY.MM.DD"
            } else {
                ""
            }
        ),
    }
}

fn explain_unknown(p: &Pipeline, t: &str) -> String {
    let mut candidates: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    for a in &p.axes {
        if let AxisValues::List(v) = &a.values {
            candidates.extend(v.iter().map(|s| s.as_str()));
        }
    }
    candidates.extend(Mode::FLAGS.iter().map(|(f, _)| *f));
    match suggest(t, candidates) {
        Some(s) => format!("unknown token '{t}': did you mean '{s}'?"),
        None => format!("unknown token '{t}'"),
    }
}

/// The "what would fit" part of a bad-token message.
pub fn what_fits(p: &Pipeline) -> String {
    let mut lines = vec!["Tokens can be, in any order:".to_string()];
    for a in &p.axes {
        lines.push(format!("  {}: {}", a.name, describe_axis(a)));
    }
    lines.push(format!(
        "  steps: {}",
        p.steps
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    lines.push(format!("  flags: {}", flags_list()));
    lines.join("\n")
}
