//! Typed model of an ASL (JSONPath dialect) definition, parsed from `serde_json::Value`.
//! Every error names the state and the field.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Value};

use super::choice::{self, Rule};
use super::jsonpath::{self, Path};
use super::paths::IoPath;
use super::retry::{Catcher, Jitter, Retrier};
use super::template::{self, Expression, Template};
use crate::error::{DefinitionError, names};

/// A state machine or a sub-machine (Parallel branch, Map processor).
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    /// Top-level `TimeoutSeconds` (execution timeout); ignored in branches.
    pub timeout_seconds: Option<u64>,
    /// Whether some path of this (sub-)machine may read `$$.Execution.Input`. When not, the
    /// interpreter leaves the execution input out of the context object it builds for every
    /// state, instead of copying it each time.
    pub reads_execution_input: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    pub input_path: IoPath,
    pub output_path: IoPath,
    pub result_path: IoPath,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// `Next`; `None` means `End` (or a terminal state type).
    pub next: Option<String>,
}

/// A number of seconds given literally or by a path into the effective input.
#[derive(Debug, Clone, PartialEq)]
pub enum Seconds {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(Seconds),
    Timestamp(DateTime<FixedOffset>),
    TimestampPath(Path),
}

/// Fail's Error/Cause: literal, path, or intrinsic function.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Literal(String),
    Expr(Expression),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Task {
        resource: String,
        timeout: Option<Seconds>,
        heartbeat: Option<Seconds>,
    },
    Pass {
        result: Option<Value>,
    },
    Choice {
        choices: Vec<(Rule, String)>,
        default: Option<String>,
    },
    Wait(WaitFor),
    Succeed,
    Fail {
        error: Option<Text>,
        cause: Option<Text>,
    },
    Parallel {
        branches: Vec<StateMachine>,
    },
    Map {
        items_path: IoPath,
        /// ItemSelector, or the legacy Parameters of a Map.
        item_selector: Option<Template>,
        /// ItemProcessor, or the legacy Iterator.
        processor: Arc<StateMachine>,
        /// 0 = unlimited (INLINE) or AWS's default of 10,000 (DISTRIBUTED).
        max_concurrency: Seconds,
        /// `ProcessorConfig.Mode` `DISTRIBUTED`: what only a Distributed Map has.
        distributed: Option<Box<Distributed>>,
    },
}

/// A percentage given literally or by a path into the effective input.
#[derive(Debug, Clone, PartialEq)]
pub enum Percentage {
    Fixed(f64),
    Path(Path),
}

/// `ProcessorConfig.ExecutionType` of a Distributed Map's child workflow executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExecutionType {
    Standard,
    /// Run like STANDARD children by this engine (with their own history).
    Express,
}

/// The fields of a Distributed Map
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html>).
#[derive(Debug, Clone, PartialEq)]
pub struct Distributed {
    pub execution_type: ChildExecutionType,
    /// Where the items come from instead of `ItemsPath`.
    pub item_reader: Option<ItemReader>,
    pub result_writer: Option<ResultWriter>,
    pub tolerated_failure_count: Option<Seconds>,
    pub tolerated_failure_percentage: Option<Percentage>,
    /// Names the Map Run and child state machine (`<machine>/<Label>`); default: the state name.
    pub label: Option<String>,
}

/// The S3 read an `ItemReader` makes
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSource {
    /// `arn:aws:states:::s3:getObject` with `ReaderConfig.InputType` `JSON`: the object is a
    /// JSON array whose elements are the items.
    JsonObject,
    /// `arn:aws:states:::s3:listObjectsV2`: one item per object under `Prefix`
    /// (`{"Key", "Size", "LastModified", "StorageClass"}`).
    ListObjects,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemReader {
    pub source: ItemSource,
    /// `Bucket` and `Key` (getObject) or `Bucket` and `Prefix` (listObjectsV2); `.$` allowed.
    pub parameters: Template,
    /// `ReaderConfig.MaxItems(Path)`: read at most this many items.
    pub max_items: Option<Seconds>,
}

/// `ResultWriter` with `arn:aws:states:::s3:putObject`: `Bucket` and `Prefix` (`.$` allowed).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultWriter {
    pub parameters: Template,
}

pub const S3_GET_OBJECT: &str = "arn:aws:states:::s3:getObject";
pub const S3_LIST_OBJECTS_V2: &str = "arn:aws:states:::s3:listObjectsV2";
pub const S3_PUT_OBJECT: &str = "arn:aws:states:::s3:putObject";

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Task { .. } => "Task",
            Kind::Pass { .. } => "Pass",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map { .. } => "Map",
        }
    }
}

const IO: [&str; 2] = ["InputPath", "OutputPath"];
const FLOW: [&str; 2] = ["Next", "End"];
const RESULT: [&str; 5] = [
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "Retry",
    "Catch",
];

fn allowed(ty: &str) -> Option<Vec<&'static str>> {
    let mut v: Vec<&'static str> = vec!["Type", "Comment"];
    match ty {
        "Task" => {
            v.extend(IO.iter().chain(&FLOW).chain(&RESULT));
            v.extend([
                "Resource",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
            ]);
        }
        "Pass" => v.extend(
            IO.iter()
                .chain(&FLOW)
                .chain(&["Parameters", "ResultPath", "Result"]),
        ),
        "Choice" => v.extend(IO.iter().chain(&["Choices", "Default"])),
        "Wait" => v.extend(IO.iter().chain(&FLOW).chain(&[
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
        ])),
        "Succeed" => v.extend(IO),
        "Fail" => v.extend(["Error", "Cause", "ErrorPath", "CausePath"]),
        "Parallel" => {
            v.extend(IO.iter().chain(&FLOW).chain(&RESULT));
            v.push("Branches");
        }
        "Map" => {
            v.extend(IO.iter().chain(&FLOW).chain(&RESULT));
            // ItemReader, ItemBatcher, ResultWriter, ToleratedFailure* and Label are checked
            // against ProcessorConfig.Mode when the Map is parsed.
            v.extend([
                "ItemReader",
                "ItemBatcher",
                "ResultWriter",
                "ItemsPath",
                "ItemSelector",
                "ItemProcessor",
                "Iterator",
                "MaxConcurrency",
                "MaxConcurrencyPath",
                "ToleratedFailurePercentage",
                "ToleratedFailurePercentagePath",
                "ToleratedFailureCount",
                "ToleratedFailureCountPath",
                "Label",
            ]);
        }
        _ => return None,
    }
    Some(v)
}

/// Parses a top-level definition.
pub fn parse_definition(def: &Value) -> Result<StateMachine, DefinitionError> {
    let obj = def
        .as_object()
        .ok_or_else(|| DefinitionError::new("the definition must be a JSON object"))?;
    if let Some(q) = obj.get("QueryLanguage")
        && q != "JSONPath"
    {
        return Err(DefinitionError::new(format!(
            "QueryLanguage {q} is not supported (only JSONPath)"
        )));
    }
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "StartAt" | "States" | "Comment" | "Version" | "TimeoutSeconds" | "QueryLanguage"
        ) {
            return Err(DefinitionError::new(format!("unknown top-level field {k}")));
        }
    }
    let mut m = parse_machine(obj, "")?;
    m.timeout_seconds = match obj.get("TimeoutSeconds") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            DefinitionError::new("TimeoutSeconds must be a non-negative integer")
        })?),
    };
    Ok(m)
}

fn parse_machine(obj: &Map<String, Value>, scope: &str) -> Result<StateMachine, DefinitionError> {
    let err = |m: String| DefinitionError::new(format!("{scope}{m}"));
    let start_at = obj
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or_else(|| err("missing string field StartAt".into()))?
        .to_string();
    let states_obj = obj
        .get("States")
        .and_then(Value::as_object)
        .ok_or_else(|| err("missing object field States".into()))?;
    let mut states = BTreeMap::new();
    for (name, v) in states_obj {
        states.insert(name.clone(), parse_state(name, v, scope)?);
    }
    if !states.contains_key(&start_at) {
        return Err(err(format!("StartAt {start_at:?} is not a state")));
    }
    for s in states.values() {
        let mut targets: Vec<(&str, &String)> = Vec::new();
        if let Some(n) = &s.next {
            targets.push(("Next", n));
        }
        for c in &s.catch {
            targets.push(("Catch.Next", &c.next));
        }
        if let Kind::Choice { choices, default } = &s.kind {
            targets.extend(choices.iter().map(|(_, n)| ("Choices.Next", n)));
            if let Some(d) = default {
                targets.push(("Default", d));
            }
        }
        for (field, t) in targets {
            if !states.contains_key(t) {
                return Err(err(format!(
                    "state {:?}: {field} {t:?} is not a state in the same scope",
                    s.name
                )));
            }
        }
    }
    Ok(StateMachine {
        start_at,
        states,
        timeout_seconds: None,
        reads_execution_input: obj.values().any(may_read_execution_input),
    })
}

/// Context fields that never lead to `$$.Execution.Input`.
const CONTEXT_FIELDS_WITHOUT_INPUT: [&str; 8] = [
    ".Execution.Id",
    ".Execution.Name",
    ".Execution.StartTime",
    ".Execution.RoleArn",
    ".StateMachine",
    ".State",
    ".Map",
    ".Task",
];

/// Whether a string of the definition may read the execution input: every `$$` in it must be
/// followed by one of [`CONTEXT_FIELDS_WITHOUT_INPUT`] (then a non-name character) for the
/// answer to be no; `$$`, `$$.Execution`, `$$..x` or `$$['Execution']` count as reading it.
fn may_read_execution_input(v: &Value) -> bool {
    match v {
        Value::String(s) => s.match_indices("$$").any(|(i, _)| {
            let rest = &s[i + 2..];
            !CONTEXT_FIELDS_WITHOUT_INPUT.iter().any(|f| {
                rest.strip_prefix(f).is_some_and(|after| {
                    !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
        }),
        Value::Array(a) => a.iter().any(may_read_execution_input),
        Value::Object(o) => o.values().any(may_read_execution_input),
        _ => false,
    }
}

fn parse_state(name: &str, v: &Value, scope: &str) -> Result<State, DefinitionError> {
    let e = |m: String| DefinitionError::new(format!("{scope}state {name:?}: {m}"));
    let obj = v.as_object().ok_or_else(|| e("must be an object".into()))?;
    let ty = obj
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| e("missing string field Type".into()))?;
    let ok_fields = allowed(ty).ok_or_else(|| e(format!("unknown Type {ty:?}")))?;
    for k in obj.keys() {
        if !ok_fields.contains(&k.as_str()) {
            return Err(e(format!("field {k} is not allowed in a {ty} state")));
        }
    }
    let str_field = |f: &str| -> Result<Option<String>, DefinitionError> {
        match obj.get(f) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(e(format!("field {f} must be a string"))),
        }
    };
    let path_field = |f: &str| -> Result<Option<Path>, DefinitionError> {
        str_field(f)?
            .map(|p| Path::parse(&p).map_err(|m| e(format!("field {f}: {m}"))))
            .transpose()
    };
    let io_path = |f: &str, reference: bool| -> Result<IoPath, DefinitionError> {
        match obj.get(f) {
            None => Ok(IoPath::Default),
            Some(Value::Null) => Ok(IoPath::Null),
            Some(Value::String(p)) => {
                if reference {
                    jsonpath::validate_reference_path(p)
                        .map_err(|m| e(format!("field {f}: {m}")))?;
                }
                let p = Path::parse(p).map_err(|m| e(format!("field {f}: {m}")))?;
                Ok(IoPath::Path(p))
            }
            Some(_) => Err(e(format!("field {f} must be a string or null"))),
        }
    };
    let template = |f: &str| -> Result<Option<Template>, DefinitionError> {
        obj.get(f)
            .map(|t| Template::compile(t).map_err(|m| e(format!("field {f}: {m}"))))
            .transpose()
    };
    let seconds = |f: &str| -> Result<Option<Seconds>, DefinitionError> {
        let path = format!("{f}Path");
        match (obj.get(f), path_field(&path)?) {
            (Some(_), Some(_)) => Err(e(format!("only one of {f} and {path} may be given"))),
            (Some(v), None) => v
                .as_u64()
                .map(|n| Some(Seconds::Fixed(n)))
                .ok_or_else(|| e(format!("field {f} must be a non-negative integer"))),
            (None, Some(p)) => Ok(Some(Seconds::Path(p))),
            (None, None) => Ok(None),
        }
    };

    let terminal = matches!(ty, "Choice" | "Succeed" | "Fail");
    let next = str_field("Next")?;
    let end = obj.get("End").map(|v| v.as_bool() == Some(true));
    if !terminal {
        match (&next, end) {
            (Some(_), Some(true)) => return Err(e("has both Next and End".into())),
            (None, None | Some(false)) => return Err(e("needs Next or \"End\": true".into())),
            _ => {}
        }
    }

    let kind = match ty {
        "Task" => {
            let resource =
                str_field("Resource")?.ok_or_else(|| e("missing field Resource".into()))?;
            Kind::Task {
                resource,
                timeout: seconds("TimeoutSeconds")?,
                heartbeat: seconds("HeartbeatSeconds")?,
            }
        }
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Choice" => {
            let arr = obj
                .get("Choices")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| e("Choices must be a non-empty array".into()))?;
            let mut choices = Vec::new();
            for (i, c) in arr.iter().enumerate() {
                let at = format!("Choices[{i}]");
                let rule = choice::parse_rule(c, &at).map_err(e)?;
                let n = c
                    .get("Next")
                    .and_then(Value::as_str)
                    .ok_or_else(|| e(format!("{at}: missing string field Next")))?;
                choices.push((rule, n.to_string()));
            }
            Kind::Choice {
                choices,
                default: str_field("Default")?,
            }
        }
        "Wait" => {
            let ts = str_field("Timestamp")?;
            let tsp = path_field("TimestampPath")?;
            let secs = seconds("Seconds")?;
            match (secs, ts, tsp) {
                (Some(s), None, None) => Kind::Wait(WaitFor::Seconds(s)),
                (None, Some(t), None) => Kind::Wait(WaitFor::Timestamp(
                    DateTime::parse_from_rfc3339(&t)
                        .map_err(|x| e(format!("field Timestamp: {x}")))?,
                )),
                (None, None, Some(p)) => Kind::Wait(WaitFor::TimestampPath(p)),
                _ => {
                    return Err(e(
                        "exactly one of Seconds, SecondsPath, Timestamp, TimestampPath is required"
                            .into(),
                    ));
                }
            }
        }
        "Succeed" => Kind::Succeed,
        "Fail" => {
            let text = |lit: &str, path: &str| -> Result<Option<Text>, DefinitionError> {
                match (str_field(lit)?, str_field(path)?) {
                    (Some(_), Some(_)) => {
                        Err(e(format!("only one of {lit} and {path} may be given")))
                    }
                    (Some(l), None) => Ok(Some(Text::Literal(l))),
                    (None, Some(p)) => {
                        let expr = template::compile_field("x.$", &Value::String(p))
                            .map_err(|m| e(format!("field {path}: {m}")))?;
                        Ok(Some(Text::Expr(expr)))
                    }
                    (None, None) => Ok(None),
                }
            };
            Kind::Fail {
                error: text("Error", "ErrorPath")?,
                cause: text("Cause", "CausePath")?,
            }
        }
        "Parallel" => {
            let arr = obj
                .get("Branches")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| e("Branches must be a non-empty array".into()))?;
            let mut branches = Vec::new();
            for (i, b) in arr.iter().enumerate() {
                let bo = b
                    .as_object()
                    .ok_or_else(|| e(format!("Branches[{i}] must be an object")))?;
                branches.push(parse_machine(
                    bo,
                    &format!("{scope}state {name:?} Branches[{i}]: "),
                )?);
            }
            Kind::Parallel { branches }
        }
        "Map" => {
            let (field, proc) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
                (Some(p), None) => ("ItemProcessor", p),
                (None, Some(p)) => ("Iterator", p),
                _ => {
                    return Err(e(
                        "exactly one of ItemProcessor and Iterator is required".into()
                    ));
                }
            };
            let po = proc
                .as_object()
                .ok_or_else(|| e(format!("{field} must be an object")))?;
            let distributed_mode = processor_mode(po, field).map_err(e)?;
            let mut po = po.clone();
            po.remove("ProcessorConfig");
            let po = &po;
            let processor = parse_machine(po, &format!("{scope}state {name:?} {field}: "))?;
            let distributed = match distributed_mode {
                Some(execution_type) => {
                    Some(Box::new(parse_distributed(obj, execution_type).map_err(e)?))
                }
                None => {
                    for f in [
                        "ItemReader",
                        "ItemBatcher",
                        "ResultWriter",
                        "ToleratedFailurePercentage",
                        "ToleratedFailurePercentagePath",
                        "ToleratedFailureCount",
                        "ToleratedFailureCountPath",
                        "Label",
                    ] {
                        if obj.contains_key(f) {
                            return Err(e(format!(
                                "field {f} is only allowed in a Distributed Map \
                                 ({field}.ProcessorConfig.Mode DISTRIBUTED)"
                            )));
                        }
                    }
                    None
                }
            };
            let item_selector = match (template("ItemSelector")?, template("Parameters")?) {
                (Some(_), Some(_)) => {
                    return Err(e(
                        "only one of ItemSelector and Parameters may be given".into()
                    ));
                }
                (a, b) => a.or(b),
            };
            let items_path = io_path("ItemsPath", false)?;
            if obj.contains_key("ItemsPath") && obj.contains_key("ItemReader") {
                return Err(e("only one of ItemsPath and ItemReader may be given".into()));
            }
            Kind::Map {
                items_path,
                item_selector,
                processor: Arc::new(processor),
                max_concurrency: seconds("MaxConcurrency")?.unwrap_or(Seconds::Fixed(0)),
                distributed,
            }
        }
        _ => unreachable!("checked by allowed()"),
    };

    let mut retry = Vec::new();
    if let Some(r) = obj.get("Retry") {
        let arr = r
            .as_array()
            .ok_or_else(|| e("Retry must be an array".into()))?;
        for (i, r) in arr.iter().enumerate() {
            retry.push(parse_retrier(r, &format!("Retry[{i}]"), i + 1 == arr.len()).map_err(e)?);
        }
    }
    let mut catch = Vec::new();
    if let Some(c) = obj.get("Catch") {
        let arr = c
            .as_array()
            .ok_or_else(|| e("Catch must be an array".into()))?;
        for (i, c) in arr.iter().enumerate() {
            catch.push(parse_catcher(c, &format!("Catch[{i}]"), i + 1 == arr.len()).map_err(e)?);
        }
    }
    let is_map = ty == "Map";
    Ok(State {
        name: name.to_string(),
        kind,
        input_path: io_path("InputPath", false)?,
        output_path: io_path("OutputPath", false)?,
        result_path: io_path("ResultPath", true)?,
        // A Map's Parameters is its legacy ItemSelector.
        parameters: if is_map {
            None
        } else {
            template("Parameters")?
        },
        result_selector: template("ResultSelector")?,
        retry,
        catch,
        next,
    })
}

/// `ProcessorConfig`: `None` for INLINE (the default, and the legacy Iterator), the child
/// execution type for DISTRIBUTED.
fn processor_mode(
    po: &Map<String, Value>,
    field: &str,
) -> Result<Option<ChildExecutionType>, String> {
    let Some(pc) = po.get("ProcessorConfig") else {
        return Ok(None);
    };
    let at = format!("{field}.ProcessorConfig");
    check_keys(pc, &at, &["Mode", "ExecutionType"])?;
    let mode = match pc.get("Mode") {
        None => "INLINE",
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return Err(format!("{at}.Mode must be INLINE or DISTRIBUTED")),
    };
    let ty = pc.get("ExecutionType");
    match mode {
        "INLINE" => match ty {
            None => Ok(None),
            Some(_) => Err(format!(
                "{at}.ExecutionType is only allowed with Mode DISTRIBUTED"
            )),
        },
        "DISTRIBUTED" => {
            if field == "Iterator" {
                return Err(format!(
                    "{at}.Mode DISTRIBUTED needs ItemProcessor (not the legacy Iterator)"
                ));
            }
            match ty.and_then(Value::as_str) {
                Some("STANDARD") => Ok(Some(ChildExecutionType::Standard)),
                Some("EXPRESS") => Ok(Some(ChildExecutionType::Express)),
                _ => Err(format!(
                    "{at}.ExecutionType must be STANDARD or EXPRESS with Mode DISTRIBUTED"
                )),
            }
        }
        other => Err(format!(
            "{at}.Mode {other:?} is not supported (INLINE or DISTRIBUTED)"
        )),
    }
}

/// The Distributed-only fields of a Map state
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html>).
fn parse_distributed(
    obj: &Map<String, Value>,
    execution_type: ChildExecutionType,
) -> Result<Distributed, String> {
    if obj.contains_key("ItemBatcher") {
        return Err(
            "field ItemBatcher is not supported by the local engine (one item per child execution)"
                .into(),
        );
    }
    let item_reader = obj.get("ItemReader").map(parse_item_reader).transpose()?;
    let result_writer = obj
        .get("ResultWriter")
        .map(parse_result_writer)
        .transpose()?;
    let count = match (
        obj.get("ToleratedFailureCount"),
        obj.get("ToleratedFailureCountPath"),
    ) {
        (Some(_), Some(_)) => {
            return Err(
                "only one of ToleratedFailureCount and ToleratedFailureCountPath may be given"
                    .into(),
            );
        }
        (Some(v), None) => Some(Seconds::Fixed(
            v.as_u64()
                .ok_or("field ToleratedFailureCount must be a non-negative integer")?,
        )),
        (None, Some(p)) => Some(Seconds::Path(path_value(p, "ToleratedFailureCountPath")?)),
        (None, None) => None,
    };
    let percentage = match (
        obj.get("ToleratedFailurePercentage"),
        obj.get("ToleratedFailurePercentagePath"),
    ) {
        (Some(_), Some(_)) => {
            return Err("only one of ToleratedFailurePercentage and \
                        ToleratedFailurePercentagePath may be given"
                .into());
        }
        (Some(v), None) => Some(Percentage::Fixed(
            v.as_f64()
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or("field ToleratedFailurePercentage must be a number from 0 to 100")?,
        )),
        (None, Some(p)) => Some(Percentage::Path(path_value(
            p,
            "ToleratedFailurePercentagePath",
        )?)),
        (None, None) => None,
    };
    let label = match obj.get("Label") {
        None => None,
        Some(Value::String(l))
            if !l.is_empty()
                && l.chars().count() <= 40
                && l.chars().all(|c| {
                    !c.is_whitespace() && !c.is_control() && !"<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
                }) =>
        {
            Some(l.clone())
        }
        Some(_) => {
            return Err("field Label must be a string of 1-40 characters without \
                        whitespace or any of <>{}[]?*\"#%\\^|~`$&,;:/"
                .into());
        }
    };
    Ok(Distributed {
        execution_type,
        item_reader,
        result_writer,
        tolerated_failure_count: count,
        tolerated_failure_percentage: percentage,
        label,
    })
}

fn path_value(v: &Value, field: &str) -> Result<Path, String> {
    let p = v
        .as_str()
        .ok_or_else(|| format!("field {field} must be a string"))?;
    Path::parse(p).map_err(|m| format!("field {field}: {m}"))
}

fn parse_item_reader(v: &Value) -> Result<ItemReader, String> {
    let at = "ItemReader";
    check_keys(v, at, &["Resource", "ReaderConfig", "Parameters"])?;
    let resource = v
        .get("Resource")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}.Resource must be a string"))?;
    let rc = v.get("ReaderConfig");
    if let Some(rc) = rc {
        check_keys(
            rc,
            &format!("{at}.ReaderConfig"),
            &["InputType", "MaxItems", "MaxItemsPath"],
        )?;
    }
    let input_type = rc.and_then(|c| c.get("InputType"));
    let source = match resource {
        S3_GET_OBJECT => match input_type.and_then(Value::as_str) {
            Some("JSON") => ItemSource::JsonObject,
            Some(other) => {
                return Err(format!(
                    "{at}.ReaderConfig.InputType {other:?} is not supported by the local engine \
                     (JSON is)"
                ));
            }
            None => {
                return Err(format!(
                    "{at}.ReaderConfig.InputType is required with {S3_GET_OBJECT} (JSON)"
                ));
            }
        },
        S3_LIST_OBJECTS_V2 => {
            if input_type.is_some() {
                return Err(format!(
                    "{at}.ReaderConfig.InputType is not allowed with {S3_LIST_OBJECTS_V2}"
                ));
            }
            ItemSource::ListObjects
        }
        other => {
            return Err(format!(
                "{at}.Resource {other:?} is not supported ({S3_GET_OBJECT} or {S3_LIST_OBJECTS_V2})"
            ));
        }
    };
    let max_items = match (
        rc.and_then(|c| c.get("MaxItems")),
        rc.and_then(|c| c.get("MaxItemsPath")),
    ) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}.ReaderConfig: only one of MaxItems and MaxItemsPath may be given"
            ));
        }
        (Some(n), None) => Some(Seconds::Fixed(n.as_u64().ok_or_else(|| {
            format!("{at}.ReaderConfig.MaxItems must be a non-negative integer")
        })?)),
        (None, Some(p)) => Some(Seconds::Path(path_value(
            p,
            &format!("{at}.ReaderConfig.MaxItemsPath"),
        )?)),
        (None, None) => None,
    };
    let params = v
        .get("Parameters")
        .filter(|p| p.is_object())
        .ok_or_else(|| format!("{at}.Parameters must be an object"))?;
    let (want, required): (&[&str], usize) = match source {
        ItemSource::JsonObject => (&["Bucket", "Key"], 2),
        ItemSource::ListObjects => (&["Bucket", "Prefix"], 1),
    };
    let parameters = s3_parameters(params, &format!("{at}.Parameters"), want, required)?;
    Ok(ItemReader {
        source,
        parameters,
        max_items,
    })
}

fn parse_result_writer(v: &Value) -> Result<ResultWriter, String> {
    let at = "ResultWriter";
    if v.get("WriterConfig").is_some() {
        return Err(format!(
            "{at}.WriterConfig is not supported by the local engine (results are written \
             untransformed, as JSON)"
        ));
    }
    check_keys(v, at, &["Resource", "Parameters"])?;
    match v.get("Resource").and_then(Value::as_str) {
        Some(S3_PUT_OBJECT) => {}
        Some(other) => {
            return Err(format!(
                "{at}.Resource {other:?} is not supported ({S3_PUT_OBJECT})"
            ));
        }
        None => return Err(format!("{at}.Resource must be a string")),
    }
    let params = v
        .get("Parameters")
        .filter(|p| p.is_object())
        .ok_or_else(|| format!("{at}.Parameters must be an object"))?;
    Ok(ResultWriter {
        parameters: s3_parameters(
            params,
            &format!("{at}.Parameters"),
            &["Bucket", "Prefix"],
            1,
        )?,
    })
}

/// Checks an S3 Parameters object: only `allowed` fields (each possibly as `<field>.$`), and the
/// first `required` of them present. Compiles it as a payload template.
fn s3_parameters(
    params: &Value,
    at: &str,
    allowed: &[&str],
    required: usize,
) -> Result<Template, String> {
    let obj = params
        .as_object()
        .ok_or_else(|| format!("{at} must be an object"))?;
    for k in obj.keys() {
        let base = k.strip_suffix(".$").unwrap_or(k);
        if !allowed.contains(&base) {
            return Err(format!("{at}: unknown field {k}"));
        }
    }
    for f in &allowed[..required] {
        if !obj.contains_key(*f) && !obj.contains_key(&format!("{f}.$")) {
            return Err(format!("{at}.{f} is required"));
        }
    }
    Template::compile(params).map_err(|m| format!("{at}: {m}"))
}

fn error_equals(v: &Value, at: &str, last: bool) -> Result<Vec<String>, String> {
    let arr = v
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| format!("{at}: ErrorEquals must be a non-empty array of strings"))?;
    let list = arr
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("{at}: ErrorEquals must contain strings"))?;
    if list.iter().any(|s| s == names::ALL) && (list.len() != 1 || !last) {
        return Err(format!(
            "{at}: States.ALL must appear alone in ErrorEquals and only in the last retrier/catcher"
        ));
    }
    Ok(list)
}

fn check_keys(v: &Value, at: &str, ok: &[&str]) -> Result<(), String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{at}: must be an object"))?;
    for k in obj.keys() {
        if !ok.contains(&k.as_str()) {
            return Err(format!("{at}: unknown field {k}"));
        }
    }
    Ok(())
}

fn parse_retrier(v: &Value, at: &str, last: bool) -> Result<Retrier, String> {
    check_keys(
        v,
        at,
        &[
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        ],
    )?;
    let num = |f: &str, min: f64| -> Result<Option<f64>, String> {
        match v.get(f) {
            None => Ok(None),
            Some(n) => n
                .as_f64()
                .filter(|x| *x >= min)
                .map(Some)
                .ok_or_else(|| format!("{at}.{f}: must be a number >= {min}")),
        }
    };
    let jitter = match v.get("JitterStrategy").map(|j| j.as_str()) {
        None | Some(Some("NONE")) => Jitter::None,
        Some(Some("FULL")) => Jitter::Full,
        Some(_) => return Err(format!("{at}.JitterStrategy: must be FULL or NONE")),
    };
    Ok(Retrier {
        error_equals: error_equals(v, at, last)?,
        interval_seconds: num("IntervalSeconds", 1.0)?.unwrap_or(1.0),
        max_attempts: num("MaxAttempts", 0.0)?.map_or(3, |n| n as u32),
        backoff_rate: num("BackoffRate", 1.0)?.unwrap_or(2.0),
        max_delay_seconds: num("MaxDelaySeconds", 1.0)?,
        jitter,
    })
}

fn parse_catcher(v: &Value, at: &str, last: bool) -> Result<Catcher, String> {
    check_keys(v, at, &["ErrorEquals", "Next", "ResultPath", "Comment"])?;
    let next = v
        .get("Next")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}: missing string field Next"))?;
    let result_path = match v.get("ResultPath") {
        None => IoPath::Default,
        Some(Value::Null) => IoPath::Null,
        Some(Value::String(p)) => {
            jsonpath::validate_reference_path(p).map_err(|m| format!("{at}.ResultPath: {m}"))?;
            IoPath::Path(Path::parse(p).map_err(|m| format!("{at}.ResultPath: {m}"))?)
        }
        Some(_) => return Err(format!("{at}.ResultPath: must be a string or null")),
    };
    Ok(Catcher {
        error_equals: error_equals(v, at, last)?,
        next: next.to_string(),
        result_path,
    })
}

/// Every activity ARN used as a Task resource anywhere in the machine.
pub fn activity_arns(m: &StateMachine, out: &mut Vec<String>) {
    for s in m.states.values() {
        match &s.kind {
            Kind::Task { resource, .. }
                if resource.contains(":activity:") && !out.contains(resource) =>
            {
                out.push(resource.clone());
            }
            Kind::Parallel { branches } => branches.iter().for_each(|b| activity_arns(b, out)),
            Kind::Map { processor, .. } => activity_arns(processor, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(def: Value) -> String {
        parse_definition(&def).unwrap_err().0
    }

    #[test]
    fn parses_a_small_machine() {
        let m = parse_definition(&json!({
            "StartAt": "A",
            "States": {
                "A": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "Next": "B",
                      "Retry": [{"ErrorEquals": ["X"]}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]},
                "B": {"Type": "Succeed"}
            }
        }))
        .unwrap();
        let a = &m.states["A"];
        assert_eq!(a.next.as_deref(), Some("B"));
        assert_eq!(a.retry[0].max_attempts, 3);
        assert_eq!(a.retry[0].interval_seconds, 1.0);
        assert_eq!(a.retry[0].backoff_rate, 2.0);
        assert_eq!(a.retry[1].max_attempts, 0);
    }

    #[test]
    fn finds_reads_of_the_execution_input() {
        let m = |p: &str| {
            parse_definition(&json!({"StartAt": "A", "States": {"A": {"Type": "Pass",
                "Parameters": {"x.$": p}, "End": true}}}))
            .unwrap()
            .reads_execution_input
        };
        assert!(!m("$.a"));
        assert!(!m("$$.Execution.Id"));
        assert!(!m("$$.Map.Item.Value"));
        assert!(!m(
            "States.Format('{}-{}', $$.Execution.Name, $$.State.EnteredTime)"
        ));
        assert!(m("$$.Execution.Input.x"));
        assert!(m("$$.Execution"));
        assert!(m("$$.Execution.IdX"));
        assert!(m("$$"));
        assert!(m("$$..Input"));
        assert!(m("States.JsonToString($$.Execution.Input)"));
    }

    #[test]
    fn errors_name_state_and_field() {
        let e = err(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Resource": "x"}}}),
        );
        assert!(e.contains("\"A\"") && e.contains("Resource"), "{e}");
        let e = err(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Z"}}}));
        assert!(e.contains("Next \"Z\""), "{e}");
        let e = err(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
        );
        assert!(e.contains("Retry[0]") && e.contains("States.ALL"), "{e}");
        let e = err(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "Catch": [{"ErrorEquals": ["States.ALL", "X"], "Next": "A"}]}}}),
        );
        assert!(e.contains("Catch[0]"), "{e}");
        let e = err(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Parameters": {"x.$": "bad"}}}}),
        );
        assert!(e.contains("Parameters") && e.contains("x.$"), "{e}");
        let e = err(json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}));
        assert!(e.contains("Next or"), "{e}");
        let e = err(
            json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "End": true,
            "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "Next": "Q"}}}]}}}),
        );
        assert!(e.contains("Branches[0]") && e.contains("\"B\""), "{e}");
        let e = err(json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "End": true}}}));
        assert!(e.contains("Seconds"), "{e}");
        let e = err(
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "ResultPath": "$.a[*]"}}}),
        );
        assert!(e.contains("ResultPath"), "{e}");
    }
}
