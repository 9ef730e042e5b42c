//! The pipeline model: `pipeline.toml` parsed and validated.
//!
//! Validation reports every problem at once, each with its line and how to fix it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::duration;
use crate::retry::DEFAULT_BUILD_RETRIES;

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Used in resource names (`build-on-aws-<name>-…`).
    pub name: String,
    /// The axes, outer first. The first axis is the outer Map of the state machine.
    pub axes: Vec<Axis>,
    /// The steps in declaration order.
    pub steps: Vec<Step>,
    /// `[defaults.worker]`, with built-in defaults filled in.
    pub default_worker: WorkerConfig,
}

/// A dimension the pipeline fans out over (e.g. `version`, `distro`).
#[derive(Debug, Clone)]
pub struct Axis {
    pub name: String,
    /// The key of the structured input holding this axis' values (default: name + "s").
    pub input_key: String,
    pub values: AxisValues,
    /// Values used when the input names none (for a list axis: all its values).
    pub default: Vec<String>,
    /// `MaxConcurrency` of the Map over this axis (0 = no limit).
    pub max_concurrency: u32,
    /// The Map over this axis runs as a Distributed Map: each value is a child execution with its
    /// own 25,000-event history (only the outer axis may say so). For runs of thousands of tasks;
    /// `statemachine-gen --report` shows what it costs.
    pub distributed: bool,
    /// Per-value overrides of this axis' list, keyed by another axis' value.
    pub overrides: Vec<AxisOverride>,
}

#[derive(Debug, Clone)]
pub enum AxisValues {
    /// A fixed list (e.g. distros).
    List(Vec<String>),
    /// Any value matching the pattern (e.g. versions); `nightly` means "today's YYYY.MM.DD when none is given".
    Pattern { regex: Regex, nightly: bool },
}

/// "For values of axis `axis` matching `matches`, this axis is `values`."
#[derive(Debug, Clone)]
pub struct AxisOverride {
    pub axis: String,
    pub matches: Regex,
    pub values: Vec<String>,
}

/// What a step needs of the steps it comes `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Needs {
    /// Every dependency task succeeded (or was skipped as done / not requested).
    #[default]
    AllSucceeded,
    /// At least one dependency task succeeded (e.g. publish whatever distros built).
    AnySucceeded,
    /// Dependencies finished, whatever their outcome.
    Finished,
}

impl Needs {
    pub const NAMES: [&'static str; 3] = ["all-succeeded", "any-succeeded", "finished"];
    fn parse(s: &str) -> Option<Needs> {
        match s {
            "all-succeeded" => Some(Needs::AllSucceeded),
            "any-succeeded" => Some(Needs::AnySucceeded),
            "finished" => Some(Needs::Finished),
            _ => None,
        }
    }
}

/// A step of the pipeline: one Step Functions activity, run once per combination of its axes.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub description: Option<String>,
    /// Axes it fans out over, in pipeline axis order (always starts with the outer axis).
    pub for_each: Vec<String>,
    pub after: Vec<String>,
    pub needs: Needs,
    /// Paths relative to the pipeline file's folder.
    pub script: String,
    pub init_script: Option<String>,
    pub after_script: Option<String>,
    pub cleanup_script: Option<String>,
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub heartbeat: Duration,
    /// How long a task of this step is expected to take before it has any duration history
    /// (`expected_duration`); `None`: [`crate::history::DEFAULT_EXPECTED_DURATION`].
    pub expected_duration: Option<Duration>,
    /// How often a build failure is retried.
    pub retries: u32,
    /// At most one worker at a time.
    pub exclusive: bool,
    /// S3 object templates; when all exist the task is skipped as done.
    pub done_when: Vec<Template>,
    /// The resolved worker configuration (defaults + this step's overrides).
    pub worker: WorkerConfig,
    /// 1-based line of the step's `[[step]]` header.
    pub line: usize,
    /// The SHA-256 (hex) of each of its scripts, by path, as [`Pipeline::load`] read them; empty
    /// for a pipeline parsed from text alone.
    pub script_sha256: BTreeMap<String, String>,
}

impl Step {
    /// The step's script paths: `script`, then `init_script`, `after_script`, `cleanup_script`.
    pub fn scripts(&self) -> impl Iterator<Item = &String> {
        [
            Some(&self.script),
            self.init_script.as_ref(),
            self.after_script.as_ref(),
            self.cleanup_script.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// The SHA-256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Step {
    /// Whether this step fans out over the inner axis.
    pub fn fans_out(&self) -> bool {
        self.for_each.len() > 1
    }
}

/// Where workers are bought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    SpotThenOnDemand,
    OnDemand,
    Spot,
}

impl Market {
    pub const NAMES: [&'static str; 3] = ["spot-then-on-demand", "on-demand", "spot"];
    fn parse(s: &str) -> Option<Market> {
        match s {
            "spot-then-on-demand" => Some(Market::SpotThenOnDemand),
            "on-demand" => Some(Market::OnDemand),
            "spot" => Some(Market::Spot),
            _ => None,
        }
    }
}

/// A worker instance configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// An AMI id (`ami-…`) or an SSM parameter (`resolve:ssm:/path`).
    pub ami: String,
    /// Tried in order when capacity is short.
    pub instance_types: Vec<String>,
    pub market: Market,
    pub disk_gb: u32,
    /// Instance profile name; empty = the stack's default worker profile.
    pub instance_profile: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    #[serde(with = "secs")]
    pub idle_timeout: Duration,
    /// How long an instance may take to register (tag itself) before it is terminated as dead.
    #[serde(with = "secs", default = "default_boot_timeout")]
    pub boot_timeout: Duration,
    /// How long an instance usually takes from launch to polling for tasks: lookahead
    /// provisioning starts a step's workers this long before its dependencies are expected to
    /// finish.
    #[serde(with = "secs", default = "default_boot_time")]
    pub boot_time: Duration,
    /// How long a task may go without any worker (launches refused for capacity) before it
    /// fails as `Ec2.NoCapacity`.
    #[serde(with = "secs", default = "default_launch_deadline")]
    pub launch_deadline: Duration,
    /// Per activity.
    pub max_workers: u32,
    /// 0 = unlimited.
    pub max_tasks_per_worker: u32,
    /// The instance metadata service's PUT response hop limit. 1 (the default) keeps the
    /// instance's credentials, and so the step's role, away from containers on the worker; 2 lets
    /// a container build reach them, at that cost.
    #[serde(default = "one_hop")]
    pub imds_hop_limit: u32,
}

fn one_hop() -> u32 {
    1
}

/// Default `boot_timeout`: an EC2 instance that has not registered in 10 minutes is dead.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default `launch_deadline`: 30 minutes without capacity fails the task.
pub const DEFAULT_LAUNCH_DEADLINE: Duration = Duration::from_secs(30 * 60);

fn default_boot_timeout() -> Duration {
    DEFAULT_BOOT_TIMEOUT
}

/// Default `boot_time`: what a generic AMI takes from RunInstances to a polling worker on EC2.
pub const DEFAULT_BOOT_TIME: Duration = Duration::from_secs(60);

fn default_boot_time() -> Duration {
    DEFAULT_BOOT_TIME
}

fn default_launch_deadline() -> Duration {
    DEFAULT_LAUNCH_DEADLINE
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let x = f64::deserialize(d)?;
        Duration::try_from_secs_f64(x).map_err(|e| {
            serde::de::Error::custom(format!(
                "{x} is not a number of seconds a duration can hold: {e}"
            ))
        })
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            ami:
                "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
                    .into(),
            instance_types: vec!["c7i.large".into(), "c6i.large".into()],
            market: Market::SpotThenOnDemand,
            disk_gb: 30,
            instance_profile: String::new(),
            subnets: vec![],
            security_groups: vec![],
            idle_timeout: Duration::from_secs(600),
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            boot_time: DEFAULT_BOOT_TIME,
            launch_deadline: DEFAULT_LAUNCH_DEADLINE,
            max_workers: 10,
            max_tasks_per_worker: 0,
            imds_hop_limit: 1,
        }
    }
}

/// A `done_when` template such as `s3://bucket/{version}/hhvm-{version}.tar.gz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub raw: String,
}

impl Template {
    /// The axis names it uses, in order of appearance.
    pub fn placeholders(&self) -> Vec<String> {
        placeholder_names(&self.raw)
    }

    /// Fills the placeholders; unknown ones are left as they are (validation forbids them).
    pub fn render(&self, item: &BTreeMap<String, String>) -> String {
        let mut out = self.raw.clone();
        for (k, v) in item {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }

    /// Renders and splits into (bucket, key).
    pub fn render_s3(&self, item: &BTreeMap<String, String>) -> Option<(String, String)> {
        let s = self.render(item);
        let rest = s.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty()).then(|| (bucket.to_string(), key.to_string()))
    }
}

fn placeholder_names(s: &str) -> Vec<String> {
    let re = Regex::new(r"\{([^{}]*)\}").expect("static regex");
    re.captures_iter(s).map(|c| c[1].to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Problems

/// One thing wrong with a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Where: e.g. `step[2] (PublishBinaryPackages).heartbeat`.
    pub at: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.at, self.message),
            None => write!(f, "{}: {}", self.at, self.message),
        }
    }
}

/// Everything wrong with a pipeline file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PipelineError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{}:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) model

#[derive(Debug, Default, Deserialize)]
struct RawPipeline {
    name: Option<String>,
    #[serde(default)]
    axis: Vec<RawAxis>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDefaults {
    #[serde(default)]
    worker: RawWorker,
}

#[derive(Debug, Deserialize)]
struct RawAxis {
    name: String,
    input_key: Option<String>,
    values: Option<Vec<String>>,
    pattern: Option<String>,
    nightly: Option<bool>,
    default: Option<Vec<String>>,
    max_concurrency: Option<u32>,
    distributed: Option<bool>,
    #[serde(default, rename = "override")]
    overrides: Vec<RawOverride>,
}

#[derive(Debug, Deserialize)]
struct RawOverride {
    axis: String,
    matches: String,
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct RawStep {
    name: String,
    description: Option<String>,
    #[serde(default)]
    for_each: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
    needs: Option<String>,
    script: Option<String>,
    init_script: Option<String>,
    after_script: Option<String>,
    cleanup_script: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout: Option<String>,
    heartbeat: Option<String>,
    expected_duration: Option<String>,
    retries: Option<u32>,
    #[serde(default)]
    exclusive: bool,
    #[serde(default)]
    done_when: Vec<String>,
    #[serde(default)]
    worker: RawWorker,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct RawWorker {
    ami: Option<String>,
    instance_types: Option<Vec<String>>,
    market: Option<String>,
    disk_gb: Option<u32>,
    instance_profile: Option<String>,
    subnets: Option<Vec<String>>,
    security_groups: Option<Vec<String>>,
    idle_timeout: Option<String>,
    boot_timeout: Option<String>,
    boot_time: Option<String>,
    launch_deadline: Option<String>,
    max_workers: Option<u32>,
    max_tasks_per_worker: Option<u32>,
    imds_hop_limit: Option<u32>,
}

const TOP_KEYS: &[&str] = &["name", "axis", "defaults", "step"];
const AXIS_KEYS: &[&str] = &[
    "name",
    "input_key",
    "values",
    "pattern",
    "nightly",
    "default",
    "max_concurrency",
    "distributed",
    "override",
];
const OVERRIDE_KEYS: &[&str] = &["axis", "matches", "values"];
const STEP_KEYS: &[&str] = &[
    "name",
    "description",
    "for_each",
    "after",
    "needs",
    "script",
    "init_script",
    "after_script",
    "cleanup_script",
    "env",
    "timeout",
    "heartbeat",
    "expected_duration",
    "retries",
    "exclusive",
    "done_when",
    "worker",
];
const WORKER_KEYS: &[&str] = &[
    "ami",
    "instance_types",
    "market",
    "disk_gb",
    "instance_profile",
    "subnets",
    "security_groups",
    "idle_timeout",
    "boot_timeout",
    "boot_time",
    "launch_deadline",
    "max_workers",
    "max_tasks_per_worker",
    "imds_hop_limit",
];

/// Default step timeout and heartbeat.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10 * 60);

// ---------------------------------------------------------------------------------------------
// Locating lines

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

struct Locator<'a> {
    src: &'a str,
    root: Option<toml::Spanned<toml::de::DeValue<'a>>>,
}

impl<'a> Locator<'a> {
    fn new(src: &'a str) -> Self {
        Locator {
            src,
            // A document is a table: `DeValue::parse` reads a single value and fails on one.
            root: toml::de::DeTable::parse(src).ok().map(|t| {
                let span = t.span();
                toml::Spanned::new(span, toml::de::DeValue::Table(t.into_inner()))
            }),
        }
    }

    fn line_of_offset(&self, offset: usize) -> usize {
        self.src[..offset.min(self.src.len())].matches('\n').count() + 1
    }

    /// The line of the deepest existing element along `path`.
    fn line(&self, path: &[Seg]) -> Option<usize> {
        let mut cur = self.root.as_ref()?;
        let mut span = None;
        for seg in path {
            let next = match (seg, cur.get_ref()) {
                (Seg::Key(k), toml::de::DeValue::Table(t)) => t
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                    .map(|(key, v)| {
                        span = Some(key.span());
                        v
                    }),
                (Seg::Index(i), toml::de::DeValue::Array(a)) => a.get(*i),
                _ => None,
            };
            match next {
                Some(v) => {
                    if !matches!(seg, Seg::Key(_)) {
                        span = Some(v.span());
                    }
                    cur = v;
                }
                None => break,
            }
        }
        span.map(|s| self.line_of_offset(s.start))
    }
}

fn path_of(p: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path as P;
    let mut out = vec![];
    let mut cur = p;
    loop {
        match cur {
            P::Root => break,
            P::Seq { parent, index } => {
                out.push(Seg::Index(*index));
                cur = parent;
            }
            P::Map { parent, key } => {
                out.push(Seg::Key(key.clone()));
                cur = parent;
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                cur = parent
            }
        }
    }
    out.reverse();
    out
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    // Optimal string alignment: Levenshtein plus adjacent transpositions ("Biuld" → "Build" is 1),
    // the most common typo.
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate, if it is close enough to be a likely typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let lw = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&lw, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation

struct Checker<'a> {
    loc: Locator<'a>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn add(&mut self, path: Vec<Seg>, at: impl Into<String>, message: impl Into<String>) {
        let line = self.loc.line(&path);
        self.problems.push(Problem {
            line,
            at: at.into(),
            message: message.into(),
        });
    }
}

fn step_at(_index: usize, name: &str) -> String {
    format!("[[step]] {name}")
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

impl Pipeline {
    /// Reads and validates a pipeline file; script paths are checked relative to its folder and
    /// each script's SHA-256 is recorded ([`Step::script_sha256`]): workers launched from this
    /// pipeline run those contents only.
    pub fn load(path: &Path) -> Result<Pipeline, PipelineError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| PipelineError {
            file: file.clone(),
            problems: vec![Problem {
                line: None,
                at: file.clone(),
                message: format!("cannot read it: {e}"),
            }],
        })?;
        let mut p = Pipeline::parse_named(&src, &file)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = vec![];
        for s in &mut p.steps {
            let hashes: BTreeMap<String, String> = s
                .scripts()
                .filter_map(|v| {
                    let bytes = std::fs::read(base.join(v)).ok()?;
                    Some((v.clone(), sha256_hex(&bytes)))
                })
                .collect();
            s.script_sha256 = hashes;
        }
        for s in &p.steps {
            for (k, v) in [
                ("script", Some(&s.script)),
                ("init_script", s.init_script.as_ref()),
                ("after_script", s.after_script.as_ref()),
                ("cleanup_script", s.cleanup_script.as_ref()),
            ] {
                if let Some(v) = v
                    && !base.join(v).is_file()
                {
                    problems.push(Problem {
                        line: Some(s.line),
                        at: format!("{}.{k}", step_at(0, &s.name)),
                        message: format!(
                            "'{v}' does not exist (paths are relative to {})",
                            base.display()
                        ),
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(PipelineError { file, problems })
        }
    }

    /// Parses and validates pipeline TOML (file name `pipeline.toml` in messages).
    pub fn parse(src: &str) -> Result<Pipeline, PipelineError> {
        Pipeline::parse_named(src, "pipeline.toml")
    }

    /// Parses and validates pipeline TOML, naming `file` in messages.
    pub fn parse_named(src: &str, file: &str) -> Result<Pipeline, PipelineError> {
        let mut ck = Checker {
            loc: Locator::new(src),
            problems: vec![],
        };
        let de = match toml::de::Deserializer::parse(src) {
            Ok(d) => d,
            Err(e) => return Err(syntax_error(file, src, &e)),
        };
        let mut unknown = vec![];
        let raw: RawPipeline = match serde_ignored::deserialize(de, |p| unknown.push(path_of(&p))) {
            Ok(r) => r,
            Err(e) => return Err(syntax_error(file, src, &e)),
        };
        for path in unknown {
            report_unknown(&mut ck, &raw, path);
        }
        let p = validate(raw, &mut ck);
        if ck.problems.is_empty() {
            Ok(p)
        } else {
            Err(PipelineError {
                file: file.to_string(),
                problems: ck.problems,
            })
        }
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn axis(&self, name: &str) -> Option<&Axis> {
        self.axes.iter().find(|a| a.name == name)
    }

    /// The outer axis (first declared).
    pub fn outer_axis(&self) -> &Axis {
        &self.axes[0]
    }

    /// The inner axis, if the pipeline has two.
    pub fn inner_axis(&self) -> Option<&Axis> {
        self.axes.get(1)
    }

    /// Steps grouped in stages: each stage's steps depend only on earlier stages, so a stage's
    /// steps can run in parallel. Within a stage, declaration order.
    pub fn stages(&self) -> Vec<Vec<&Step>> {
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        // Validation guarantees no cycles; iterate until fixed point.
        loop {
            let mut changed = false;
            for s in &self.steps {
                let d = s
                    .after
                    .iter()
                    .map(|a| depth.get(a.as_str()).map_or(usize::MAX, |d| d + 1))
                    .max()
                    .unwrap_or(0);
                if d != usize::MAX && depth.get(s.name.as_str()) != Some(&d) {
                    depth.insert(&s.name, d);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let n = depth.values().copied().max().map_or(0, |m| m + 1);
        let mut stages = vec![vec![]; n];
        for s in &self.steps {
            stages[depth[s.name.as_str()]].push(s);
        }
        stages
    }
}

fn syntax_error(file: &str, src: &str, e: &toml::de::Error) -> PipelineError {
    let line = e
        .span()
        .map(|s| src[..s.start.min(src.len())].matches('\n').count() + 1);
    PipelineError {
        file: file.to_string(),
        problems: vec![Problem {
            line,
            at: "TOML".into(),
            message: e.message().trim().to_string(),
        }],
    }
}

fn report_unknown(ck: &mut Checker<'_>, raw: &RawPipeline, path: Vec<Seg>) {
    let (context, known): (String, &[&str]) = match path.as_slice() {
        [_] => ("the top level".into(), TOP_KEYS),
        [Seg::Key(a), Seg::Index(i), Seg::Key(o), Seg::Index(_), _]
            if a == "axis" && o == "override" =>
        {
            (
                format!("[[axis.override]] of axis {}", axis_name(raw, *i)),
                OVERRIDE_KEYS,
            )
        }
        [Seg::Key(a), Seg::Index(i), _] if a == "axis" => {
            (format!("[[axis]] {}", axis_name(raw, *i)), AXIS_KEYS)
        }
        [Seg::Key(d), Seg::Key(w), _] if d == "defaults" && w == "worker" => {
            ("[defaults.worker]".into(), WORKER_KEYS)
        }
        [Seg::Key(d), _] if d == "defaults" => ("[defaults]".into(), &["worker"]),
        [Seg::Key(s), Seg::Index(i), Seg::Key(w), _] if s == "step" && w == "worker" => (
            format!("{}.worker", step_at(*i, &step_name(raw, *i))),
            WORKER_KEYS,
        ),
        [Seg::Key(s), Seg::Index(i), _] if s == "step" => {
            (step_at(*i, &step_name(raw, *i)), STEP_KEYS)
        }
        _ => ("here".into(), &[]),
    };
    let Some(Seg::Key(bad)) = path.last() else {
        return;
    };
    let hint = match suggest(bad, known.iter().copied()) {
        Some(s) => format!("did you mean '{s}'? "),
        None => String::new(),
    };
    let msg = format!(
        "unknown key '{bad}' in {context}; {hint}known keys: {}",
        known.join(", ")
    );
    ck.add(path.clone(), context, msg);
}

fn axis_name(raw: &RawPipeline, i: usize) -> String {
    raw.axis
        .get(i)
        .map_or_else(|| format!("#{}", i + 1), |a| a.name.clone())
}

fn step_name(raw: &RawPipeline, i: usize) -> String {
    raw.step
        .get(i)
        .map_or_else(|| format!("#{}", i + 1), |s| s.name.clone())
}

/// A script path stays inside the pipeline's folder: relative, no `..`, no empty segment.
fn script_path_ok(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && p.split('/').all(|seg| !seg.is_empty() && seg != "..")
}

fn ident_ok(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
}

fn step_name_ok(s: &str) -> bool {
    let mut c = s.chars();
    s.len() <= 60
        && matches!(c.next(), Some(ch) if ch.is_ascii_uppercase())
        && c.all(|ch| ch.is_ascii_alphanumeric())
}

/// Bounds of a duration setting, with the reason a user reads when a value is outside them.
struct Bounds {
    min: Duration,
    max: Duration,
    why: &'static str,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Step timeout: a Step Functions standard execution lasts at most a year.
const TIMEOUT_BOUNDS: Bounds = Bounds {
    min: Duration::from_secs(60),
    max: Duration::from_secs(365 * 24 * 3600),
    why: "a task gets at least a minute and at most a year (the longest a Step Functions execution runs)",
};
/// Heartbeat: the worker beats every third of it, and a beat must get through a slow network.
const HEARTBEAT_BOUNDS: Bounds = Bounds {
    min: Duration::from_secs(30),
    max: Duration::from_secs(365 * 24 * 3600),
    why: "the worker heartbeats every third of it, so under 30 s one slow request fails a healthy task",
};
/// Expected task duration (the default before any history): up to the longest timeout.
const EXPECTED_BOUNDS: Bounds = Bounds {
    min: Duration::from_secs(1),
    max: Duration::from_secs(365 * 24 * 3600),
    why: "a task takes at least a second and at most a year (the longest timeout)",
};
const IDLE_BOUNDS: Bounds = Bounds {
    min: Duration::from_secs(30),
    max: DAY,
    why: "an idle worker waits at least one long poll and at most a day (it costs money while idle)",
};
const BOOT_BOUNDS: Bounds = Bounds {
    min: Duration::from_secs(60),
    max: DAY,
    why: "an EC2 instance needs a minute to boot; after a day it is dead, not slow",
};
const BOOT_TIME_BOUNDS: Bounds = Bounds {
    min: Duration::from_secs(1),
    max: Duration::from_secs(3600),
    why: "it is an estimate of a boot, used to start workers ahead of their tasks",
};
const DEADLINE_BOUNDS: Bounds = Bounds {
    min: Duration::ZERO,
    max: DAY,
    why: "launches are retried for at most a day before the task fails as Ec2.NoCapacity",
};
/// Most retries a step may ask for (each waits up to 300 s and may pay a whole build).
pub const MAX_RETRIES: u32 = 20;
/// Largest root volume: EC2's gp3 limit, 16 TiB.
pub const MAX_DISK_GB: u32 = 16_384;

fn check_duration(
    ck: &mut Checker<'_>,
    value: Option<&String>,
    default: Duration,
    bounds: &Bounds,
    path: Vec<Seg>,
    at: &str,
) -> Duration {
    match value {
        None => default,
        Some(v) => match duration::parse(v) {
            Ok(d) if d < bounds.min || d > bounds.max => {
                ck.add(
                    path,
                    at,
                    format!(
                        "'{v}' is out of range: use {} to {} ({})",
                        duration::format(bounds.min),
                        duration::format(bounds.max),
                        bounds.why
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                ck.add(path, at, e);
                default
            }
        },
    }
}

fn resolve_worker(
    ck: &mut Checker<'_>,
    base: &WorkerConfig,
    raw: &RawWorker,
    path: Vec<Seg>,
    at: &str,
) -> WorkerConfig {
    let mut w = base.clone();
    let sub = |k: &str| {
        let mut p = path.clone();
        p.push(key(k));
        p
    };
    if let Some(v) = &raw.ami {
        if !(v.starts_with("ami-") || v.starts_with("resolve:ssm:")) {
            ck.add(
                sub("ami"),
                format!("{at}.ami"),
                format!(
                    "'{v}' is neither an AMI id (ami-…) nor an SSM parameter (resolve:ssm:/path)"
                ),
            );
        }
        w.ami = v.clone();
    }
    if let Some(v) = &raw.instance_types {
        if v.is_empty() {
            ck.add(
                sub("instance_types"),
                format!("{at}.instance_types"),
                "the list is empty; name at least one instance type, e.g. [\"c7i.2xlarge\"]",
            );
        } else {
            w.instance_types = v.clone();
        }
    }
    if let Some(v) = &raw.market {
        match Market::parse(v) {
            Some(m) => w.market = m,
            None => ck.add(
                sub("market"),
                format!("{at}.market"),
                format!(
                    "'{v}' is not a market; use one of: {}",
                    Market::NAMES.join(", ")
                ),
            ),
        }
    }
    if let Some(v) = raw.disk_gb {
        if v < 8 {
            ck.add(
                sub("disk_gb"),
                format!("{at}.disk_gb"),
                format!("{v} GB is too small for a root volume; use at least 8"),
            );
        } else if v > MAX_DISK_GB {
            ck.add(
                sub("disk_gb"),
                format!("{at}.disk_gb"),
                format!(
                    "{v} GB is more than EC2 allows for a gp3 volume; use at most {MAX_DISK_GB}"
                ),
            );
        }
        w.disk_gb = v;
    }
    if let Some(v) = &raw.instance_profile {
        w.instance_profile = v.clone();
    }
    if let Some(v) = &raw.subnets {
        w.subnets = v.clone();
    }
    if let Some(v) = &raw.security_groups {
        w.security_groups = v.clone();
    }
    w.idle_timeout = check_duration(
        ck,
        raw.idle_timeout.as_ref(),
        w.idle_timeout,
        &IDLE_BOUNDS,
        sub("idle_timeout"),
        &format!("{at}.idle_timeout"),
    );
    w.boot_timeout = check_duration(
        ck,
        raw.boot_timeout.as_ref(),
        w.boot_timeout,
        &BOOT_BOUNDS,
        sub("boot_timeout"),
        &format!("{at}.boot_timeout"),
    );
    w.boot_time = check_duration(
        ck,
        raw.boot_time.as_ref(),
        w.boot_time,
        &BOOT_TIME_BOUNDS,
        sub("boot_time"),
        &format!("{at}.boot_time"),
    );
    w.launch_deadline = check_duration(
        ck,
        raw.launch_deadline.as_ref(),
        w.launch_deadline,
        &DEADLINE_BOUNDS,
        sub("launch_deadline"),
        &format!("{at}.launch_deadline"),
    );
    if let Some(v) = raw.max_workers {
        if v == 0 {
            ck.add(
                sub("max_workers"),
                format!("{at}.max_workers"),
                "0 workers could never run a task; use 1 or more",
            );
        }
        w.max_workers = v;
    }
    if let Some(v) = raw.imds_hop_limit {
        if !(1..=2).contains(&v) {
            ck.add(
                sub("imds_hop_limit"),
                format!("{at}.imds_hop_limit"),
                format!("imds_hop_limit = {v}: use 1 (the default: only the worker reaches the instance's credentials) or 2 (containers on the worker reach them too, and so the step's role)"),
            );
        }
        w.imds_hop_limit = v;
    }
    if let Some(v) = raw.max_tasks_per_worker {
        w.max_tasks_per_worker = v;
    }
    w
}

fn validate(raw: RawPipeline, ck: &mut Checker<'_>) -> Pipeline {
    let name = raw.name.clone().unwrap_or_else(|| "pipeline".into());
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.is_empty()
        || name.len() > 24
    {
        ck.add(
            vec![key("name")],
            "name",
            format!("'{name}' must be 1-24 characters of a-z, 0-9 and '-' (it is used in AWS resource names)"),
        );
    }

    // Axes.
    if raw.axis.is_empty() {
        ck.add(
            vec![],
            "[[axis]]",
            "the pipeline has no axis; declare at least one, e.g. [[axis]] name = \"version\" pattern = '^\\d+\\.\\d+\\.\\d+$'",
        );
    }
    if raw.axis.len() > 2 {
        ck.add(
            vec![key("axis"), Seg::Index(2)],
            "[[axis]]",
            format!(
                "{} axes declared; build-on-aws supports an outer and an inner axis (e.g. version and distro): fold the others into step names or values",
                raw.axis.len()
            ),
        );
    }
    let mut axes: Vec<Axis> = vec![];
    for (i, a) in raw.axis.iter().enumerate() {
        let at = format!("[[axis]] {}", a.name);
        let ap = |k: &str| vec![key("axis"), Seg::Index(i), key(k)];
        if !ident_ok(&a.name) {
            ck.add(
                ap("name"),
                &at,
                format!("axis name '{}' must be lowercase letters, digits and '_', starting with a letter", a.name),
            );
        }
        if axes.iter().any(|b| b.name == a.name) {
            ck.add(
                ap("name"),
                &at,
                format!("axis '{}' is declared twice", a.name),
            );
        }
        if i > 0 && a.distributed == Some(true) {
            ck.add(
                ap("distributed"),
                &at,
                format!(
                    "only the outer axis ('{}') can be distributed: its Map is the one each of whose values becomes a child execution; remove `distributed` here",
                    raw.axis[0].name
                ),
            );
        }
        let values = match (&a.values, &a.pattern) {
            (Some(v), None) => {
                if v.is_empty() {
                    ck.add(
                        ap("values"),
                        &at,
                        "values is empty; list at least one value",
                    );
                }
                let mut seen = BTreeSet::new();
                for x in v {
                    if !seen.insert(x) {
                        ck.add(ap("values"), &at, format!("value '{x}' is listed twice"));
                    }
                    if x.is_empty()
                        || x.starts_with('-')
                        || x.contains(char::is_whitespace)
                        || !x.is_ascii()
                    {
                        ck.add(
                            ap("values"),
                            &at,
                            format!("value '{x}' cannot be typed as a token (plain ASCII, no spaces, not starting with '-')"),
                        );
                    }
                }
                if a.nightly.is_some() {
                    ck.add(ap("nightly"), &at, "nightly only applies to a pattern axis");
                }
                AxisValues::List(v.clone())
            }
            (None, Some(p)) => match Regex::new(p) {
                Ok(r) => AxisValues::Pattern {
                    regex: r,
                    nightly: a.nightly.unwrap_or(false),
                },
                Err(e) => {
                    ck.add(
                        ap("pattern"),
                        &at,
                        format!("pattern '{p}' is not a valid regex: {e}"),
                    );
                    AxisValues::List(vec![])
                }
            },
            (Some(_), Some(_)) => {
                ck.add(
                    ap("pattern"),
                    &at,
                    "give either values (a fixed list) or pattern (free values matching a regex), not both",
                );
                AxisValues::List(vec![])
            }
            (None, None) => {
                ck.add(
                    ap("name"),
                    &at,
                    "give values = [...] (a fixed list) or pattern = '...' (free values matching a regex)",
                );
                AxisValues::List(vec![])
            }
        };
        let default = match (&a.default, &values) {
            (Some(d), AxisValues::List(v)) => {
                for x in d {
                    if !v.contains(x) {
                        ck.add(
                            ap("default"),
                            &at,
                            format!("default '{x}' is not one of the values"),
                        );
                    }
                }
                d.clone()
            }
            (Some(d), AxisValues::Pattern { regex, .. }) => {
                for x in d {
                    if !regex.is_match(x) {
                        ck.add(
                            ap("default"),
                            &at,
                            format!("default '{x}' does not match the pattern"),
                        );
                    }
                }
                d.clone()
            }
            (None, AxisValues::List(v)) => v.clone(),
            (None, AxisValues::Pattern { .. }) => vec![],
        };
        let mut overrides = vec![];
        for (j, o) in a.overrides.iter().enumerate() {
            let op = |k: &str| {
                vec![
                    key("axis"),
                    Seg::Index(i),
                    key("override"),
                    Seg::Index(j),
                    key(k),
                ]
            };
            if !axes.iter().any(|b| b.name == o.axis) {
                ck.add(
                    op("axis"),
                    &at,
                    format!(
                        "override names axis '{}', which is not an axis declared before '{}'",
                        o.axis, a.name
                    ),
                );
            }
            if let AxisValues::List(all) = &values {
                for x in &o.values {
                    if !all.contains(x) {
                        ck.add(
                            op("values"),
                            &at,
                            format!("override value '{x}' is not one of the axis' values"),
                        );
                    }
                }
            }
            match Regex::new(&o.matches) {
                Ok(r) => overrides.push(AxisOverride {
                    axis: o.axis.clone(),
                    matches: r,
                    values: o.values.clone(),
                }),
                Err(e) => ck.add(
                    op("matches"),
                    &at,
                    format!("'{}' is not a valid regex: {e}", o.matches),
                ),
            }
        }
        axes.push(Axis {
            name: a.name.clone(),
            input_key: a
                .input_key
                .clone()
                .unwrap_or_else(|| format!("{}s", a.name)),
            values,
            default,
            max_concurrency: a.max_concurrency.unwrap_or(0),
            distributed: a.distributed.unwrap_or(false),
            overrides,
        });
    }
    let axis_names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();

    // Worker defaults.
    let default_worker = resolve_worker(
        ck,
        &WorkerConfig::default(),
        &raw.defaults.worker,
        vec![key("defaults"), key("worker")],
        "[defaults.worker]",
    );

    // Steps.
    if raw.step.is_empty() {
        ck.add(
            vec![],
            "[[step]]",
            "the pipeline has no step; add at least one [[step]] with a name and a script",
        );
    }
    let step_names: Vec<&str> = raw.step.iter().map(|s| s.name.as_str()).collect();
    let mut steps = vec![];
    for (i, s) in raw.step.iter().enumerate() {
        let at = step_at(i, &s.name);
        let sp = |k: &str| vec![key("step"), Seg::Index(i), key(k)];
        if !step_name_ok(&s.name) {
            ck.add(
                sp("name"),
                &at,
                format!("step name '{}' must be CamelCase letters and digits (it names an activity and a state), e.g. MakeSourceTarball", s.name),
            );
        }
        if step_names[..i].contains(&s.name.as_str()) {
            ck.add(
                sp("name"),
                &at,
                format!(
                    "step name '{}' is used twice; step names must be unique",
                    s.name
                ),
            );
        }
        for a in &axes {
            if let AxisValues::List(v) = &a.values
                && v.contains(&s.name)
            {
                ck.add(
                    sp("name"),
                    &at,
                    format!(
                        "step name '{}' is also a value of axis '{}'; tokens would be ambiguous",
                        s.name, a.name
                    ),
                );
            }
        }
        // for_each: always in axis order; must include the outer axis.
        for f in &s.for_each {
            if !axis_names.contains(&f.as_str()) {
                let hint = suggest(f, axis_names.iter().copied())
                    .map(|h| format!("did you mean '{h}'? "))
                    .unwrap_or_default();
                ck.add(
                    sp("for_each"),
                    &at,
                    format!("unknown axis '{f}'; {hint}axes: {}", axis_names.join(", ")),
                );
            }
        }
        let mut for_each: Vec<String> = axis_names
            .iter()
            .filter(|a| s.for_each.iter().any(|f| f == *a))
            .map(|a| a.to_string())
            .collect();
        if let Some(outer) = axis_names.first()
            && !for_each.iter().any(|f| f == outer)
        {
            if !s.for_each.is_empty() {
                ck.add(
                    sp("for_each"),
                    &at,
                    format!("every step runs per '{outer}' (the outer axis); add it: for_each = [\"{outer}\", ...]"),
                );
            }
            for_each.insert(0, outer.to_string());
        }
        for a in &s.after {
            if a == &s.name {
                ck.add(
                    sp("after"),
                    &at,
                    format!("step '{}' cannot come after itself", s.name),
                );
            } else if !step_names.contains(&a.as_str()) {
                let hint = suggest(a, step_names.iter().copied())
                    .map(|h| format!("did you mean '{h}'? "))
                    .unwrap_or_default();
                ck.add(
                    sp("after"),
                    &at,
                    format!("unknown step '{a}'; {hint}steps: {}", step_names.join(", ")),
                );
            }
        }
        let needs = match &s.needs {
            None => Needs::AllSucceeded,
            Some(n) => Needs::parse(n).unwrap_or_else(|| {
                ck.add(
                    sp("needs"),
                    &at,
                    format!(
                        "'{n}' is not a needs value; use one of: {}",
                        Needs::NAMES.join(", ")
                    ),
                );
                Needs::AllSucceeded
            }),
        };
        if s.needs.is_some() && s.after.is_empty() {
            ck.add(
                sp("needs"),
                &at,
                "needs has no effect without after = [...]",
            );
        }
        let script = s.script.clone().unwrap_or_else(|| {
            ck.add(
                sp("name"),
                &at,
                "the step has no script; add script = \"scripts/<file>.sh\"",
            );
            String::new()
        });
        for (k, v) in [
            ("script", Some(&script)),
            ("init_script", s.init_script.as_ref()),
            ("after_script", s.after_script.as_ref()),
            ("cleanup_script", s.cleanup_script.as_ref()),
        ] {
            if let Some(v) = v.filter(|v| !script_path_ok(v)) {
                ck.add(
                    sp(k),
                    &at,
                    format!("'{v}' must be a relative path inside the pipeline's folder (no leading '/', no '..'), e.g. scripts/build.sh: the scripts are shipped with the pipeline and run on every worker"),
                );
            }
        }
        if let Some(r) = s.retries.filter(|r| *r > MAX_RETRIES) {
            ck.add(
                sp("retries"),
                &at,
                format!("{r} retries is too many; use 0 to {MAX_RETRIES} (each retry may run the whole build again)"),
            );
        }
        let timeout = check_duration(
            ck,
            s.timeout.as_ref(),
            DEFAULT_TIMEOUT,
            &TIMEOUT_BOUNDS,
            sp("timeout"),
            &format!("{at}.timeout"),
        );
        let heartbeat = check_duration(
            ck,
            s.heartbeat.as_ref(),
            DEFAULT_HEARTBEAT.min(timeout),
            &HEARTBEAT_BOUNDS,
            sp("heartbeat"),
            &format!("{at}.heartbeat"),
        );
        if heartbeat >= timeout {
            ck.add(
                sp(if s.heartbeat.is_some() { "heartbeat" } else { "timeout" }),
                &at,
                format!(
                    "heartbeat ({}) must be shorter than timeout ({}), or a lost worker is never noticed before the timeout",
                    duration::format(heartbeat),
                    duration::format(timeout)
                ),
            );
        }
        let expected_duration = s.expected_duration.as_ref().map(|v| {
            check_duration(
                ck,
                Some(v),
                crate::history::DEFAULT_EXPECTED_DURATION,
                &EXPECTED_BOUNDS,
                sp("expected_duration"),
                &format!("{at}.expected_duration"),
            )
        });
        let mut done_when = vec![];
        for t in &s.done_when {
            let tpl = Template { raw: t.clone() };
            if !t.starts_with("s3://") || tpl.render_s3(&BTreeMap::new()).is_none() {
                ck.add(sp("done_when"), &at, format!("'{t}' is not an S3 object template; write s3://bucket/key, e.g. s3://releases/{{version}}/hhvm-{{version}}.tar.gz"));
            } else if t["s3://".len()..]
                .split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
            {
                ck.add(sp("done_when"), &at, format!("'{t}' has an empty, '.' or '..' path segment; write the object's key as it is, e.g. s3://releases/{{version}}/hhvm-{{version}}.tar.gz"));
            }
            for ph in tpl.placeholders() {
                if !for_each.contains(&ph) {
                    let what = if axis_names.contains(&ph.as_str()) {
                        format!(
                            "axis '{ph}', which step '{}' does not fan out over (for_each = [{}])",
                            s.name,
                            for_each.join(", ")
                        )
                    } else {
                        format!(
                            "'{{{ph}}}', which is not an axis ({})",
                            axis_names.join(", ")
                        )
                    };
                    ck.add(sp("done_when"), &at, format!("template '{t}' names {what}"));
                }
            }
            done_when.push(tpl);
        }
        let mut worker = resolve_worker(
            ck,
            &default_worker,
            &s.worker,
            sp("worker"),
            &format!("{at}.worker"),
        );
        if s.exclusive {
            worker.max_workers = 1;
        }
        for k in s.env.keys() {
            if k.is_empty()
                || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || k.starts_with("BOA_")
            {
                ck.add(sp("env"), &at, format!("env name '{k}' must be letters, digits and '_' and must not start with BOA_ (reserved)"));
            }
        }
        steps.push(Step {
            name: s.name.clone(),
            description: s.description.clone(),
            for_each,
            after: s.after.clone(),
            needs,
            script,
            init_script: s.init_script.clone(),
            after_script: s.after_script.clone(),
            cleanup_script: s.cleanup_script.clone(),
            env: s.env.clone(),
            timeout,
            heartbeat,
            expected_duration,
            retries: s.retries.unwrap_or(DEFAULT_BUILD_RETRIES),
            exclusive: s.exclusive,
            done_when,
            worker,
            line: ck.loc.line(&[key("step"), Seg::Index(i)]).unwrap_or(0),
            script_sha256: BTreeMap::new(),
        });
    }

    // Cycles in `after`.
    for cycle in find_cycles(&steps) {
        let first = steps.iter().position(|s| s.name == cycle[0]).unwrap_or(0);
        ck.add(
            vec![key("step"), Seg::Index(first), key("after")],
            step_at(first, &cycle[0]),
            format!(
                "steps depend on each other in a cycle: {}; remove one of these 'after' entries",
                cycle.join(" → ")
            ),
        );
    }

    Pipeline {
        name,
        axes,
        steps,
        default_worker,
    }
}

/// Each distinct cycle once, as step names with the first repeated at the end.
fn find_cycles(steps: &[Step]) -> Vec<Vec<String>> {
    let idx: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut cycles: Vec<Vec<String>> = vec![];
    let mut seen_sets: BTreeSet<Vec<String>> = BTreeSet::new();
    fn dfs(
        n: usize,
        steps: &[Step],
        idx: &BTreeMap<&str, usize>,
        stack: &mut Vec<usize>,
        done: &mut Vec<bool>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if let Some(pos) = stack.iter().position(|&x| x == n) {
            out.push(stack[pos..].to_vec());
            return;
        }
        if done[n] {
            return;
        }
        stack.push(n);
        for a in &steps[n].after {
            if let Some(&m) = idx.get(a.as_str())
                && m != n
            {
                dfs(m, steps, idx, stack, done, out);
            }
        }
        stack.pop();
        done[n] = true;
    }
    let mut done = vec![false; steps.len()];
    let mut raw = vec![];
    for i in 0..steps.len() {
        dfs(i, steps, &idx, &mut vec![], &mut done, &mut raw);
    }
    for c in raw {
        // A cycle found through `after` edges runs backwards; show it in execution order.
        let mut names: Vec<String> = c.iter().rev().map(|&i| steps[i].name.clone()).collect();
        let mut key: Vec<String> = names.clone();
        key.sort();
        if seen_sets.insert(key) {
            names.push(names[0].clone());
            cycles.push(names);
        }
    }
    cycles
}
