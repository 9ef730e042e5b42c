//! JSONPath reading (through `serde_json_path`), Reference Path writing (ResultPath), and
//! payload templates (Parameters / ResultSelector / ItemSelector with `.$` keys).

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::intrinsics;
use crate::error::StatesError;

/// One step of a definite ("reference") path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Field(String),
    Index(usize),
}

/// Parses a *reference path*: `$`, then `.name`, `['name']`, `["name"]` or `[n]` steps only.
/// Returns `None` when the path uses any other JSONPath feature (wildcards, filters, slices, unions,
/// descendants); such paths are "indefinite" and are answered with an array of every match.
pub fn reference_segments(path: &str) -> Option<Vec<Segment>> {
    let rest = path.strip_prefix('$')?;
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.is_empty() || name == "*" || name.contains(['?', '(', ')', '@']) {
                    return None;
                }
                out.push(Segment::Field(name));
            }
            '[' => {
                i += 1;
                let quote = *chars.get(i)?;
                if quote == '\'' || quote == '"' {
                    i += 1;
                    let mut name = String::new();
                    loop {
                        let c = *chars.get(i)?;
                        i += 1;
                        if c == '\\' {
                            name.push(*chars.get(i)?);
                            i += 1;
                        } else if c == quote {
                            break;
                        } else {
                            name.push(c);
                        }
                    }
                    if chars.get(i) != Some(&']') {
                        return None;
                    }
                    i += 1;
                    out.push(Segment::Field(name));
                } else {
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    if start == i || chars.get(i) != Some(&']') {
                        return None;
                    }
                    let n: String = chars[start..i].iter().collect();
                    i += 1;
                    out.push(Segment::Index(n.parse().ok()?));
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

fn get_segments<'a>(value: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    let mut cur = value;
    for s in segments {
        cur = match (s, cur) {
            (Segment::Field(f), Value::Object(m)) => m.get(f)?,
            (Segment::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Evaluates a path that starts with `$` (against `input`) or `$$` (against the context object).
/// A reference path must select exactly one value; any other JSONPath returns the array of its
/// matches (AWS behaviour). A missing value is `Ok(None)`.
pub fn query_opt(path: &str, input: &Value, context: &Value) -> Result<Option<Value>, StatesError> {
    let (path, doc) = match path.strip_prefix("$$") {
        Some(rest) => (format!("${rest}"), context),
        None => (path.to_string(), input),
    };
    if !path.starts_with('$') {
        return Err(StatesError::runtime(format!(
            "invalid JSONPath {path:?}: must start with '$'"
        )));
    }
    if let Some(segs) = reference_segments(&path) {
        return Ok(get_segments(doc, &segs).cloned());
    }
    let jp = JsonPath::parse(&path)
        .map_err(|e| StatesError::runtime(format!("invalid JSONPath {path:?}: {e}")))?;
    let nodes: Vec<Value> = jp.query(doc).all().into_iter().cloned().collect();
    Ok(Some(Value::Array(nodes)))
}

/// Like [`query_opt`] but a missing value is a `States.Runtime` error naming the path.
pub fn query(path: &str, input: &Value, context: &Value) -> Result<Value, StatesError> {
    query_opt(path, input, context)?.ok_or_else(|| {
        StatesError::runtime(format!(
            "Invalid path '{path}': the path could not be found in the input"
        ))
    })
}

/// Checks at parse time that a path is usable.
pub fn validate_path(path: &str) -> Result<(), String> {
    let p = match path.strip_prefix("$$") {
        Some(rest) => format!("${rest}"),
        None => path.to_string(),
    };
    if !p.starts_with('$') {
        return Err(format!("{path:?} is not a JSONPath (must start with '$')"));
    }
    if reference_segments(&p).is_some() {
        return Ok(());
    }
    JsonPath::parse(&p)
        .map(|_| ())
        .map_err(|e| format!("invalid JSONPath {path:?}: {e}"))
}

/// Checks at parse time that a path is a reference path (ResultPath).
pub fn validate_reference_path(path: &str) -> Result<(), String> {
    reference_segments(path)
        .map(|_| ())
        .ok_or_else(|| format!("{path:?} is not a reference path ($, .field, ['field'], [index])"))
}

/// An optional path field that distinguishes "absent" (default `$`) from JSON `null`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IoPath {
    #[default]
    Default,
    Null,
    Path(String),
}

/// InputPath / OutputPath: `null` gives `{}`, default is the whole value.
pub fn apply_filter_path(
    path: &IoPath,
    value: Value,
    context: &Value,
) -> Result<Value, StatesError> {
    match path {
        IoPath::Default => Ok(value),
        IoPath::Null => Ok(Value::Object(Map::new())),
        IoPath::Path(p) if p == "$" => Ok(value),
        IoPath::Path(p) => query(p, &value, context),
    }
}

/// ResultPath: `null` keeps the input, `$` (default) replaces it, otherwise the result is written
/// into (a copy of) the input at the path, creating intermediate objects.
///
/// Chosen where AWS is unclear: writing through a non-object intermediate value (e.g. a string)
/// or an array index past the end is a `States.Runtime` error.
pub fn apply_result_path(path: &IoPath, input: Value, result: Value) -> Result<Value, StatesError> {
    let p = match path {
        IoPath::Default => return Ok(result),
        IoPath::Null => return Ok(input),
        IoPath::Path(p) => p,
    };
    let segs = reference_segments(p)
        .ok_or_else(|| StatesError::runtime(format!("ResultPath {p:?} is not a reference path")))?;
    if segs.is_empty() {
        return Ok(result);
    }
    let mut root = input;
    if !root.is_object() && matches!(segs[0], Segment::Field(_)) {
        return Err(StatesError::runtime(format!(
            "Unable to apply ResultPath {p:?}: the state input is not a JSON object"
        )));
    }
    let mut cur = &mut root;
    for (n, seg) in segs.iter().enumerate() {
        let last = n + 1 == segs.len();
        cur = match seg {
            Segment::Field(f) => {
                let obj = match cur {
                    Value::Object(o) => o,
                    _ => {
                        return Err(StatesError::runtime(format!(
                            "Unable to apply ResultPath {p:?}: '{f}' is inside a value that is not an object"
                        )));
                    }
                };
                if last {
                    obj.insert(f.clone(), result);
                    return Ok(root);
                }
                let entry = obj
                    .entry(f.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if entry.is_null() {
                    *entry = Value::Object(Map::new());
                }
                entry
            }
            Segment::Index(i) => {
                let arr = match cur {
                    Value::Array(a) if *i < a.len() => a,
                    _ => {
                        return Err(StatesError::runtime(format!(
                            "Unable to apply ResultPath {p:?}: index {i} does not exist"
                        )));
                    }
                };
                if last {
                    arr[*i] = result;
                    return Ok(root);
                }
                &mut arr[*i]
            }
        };
    }
    Ok(root)
}

/// Evaluates a payload template: keys ending in `.$` take a JSONPath (`$…`), a context path
/// (`$$…`) or an intrinsic function call (`States.…`). Nested objects and objects inside arrays
/// are processed too (chosen: AWS documents nested objects; arrays are handled the same way).
pub fn eval_template(
    template: &Value,
    input: &Value,
    context: &Value,
) -> Result<Value, StatesError> {
    match template {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                if let Some(key) = k.strip_suffix(".$") {
                    let expr = v.as_str().ok_or_else(|| {
                        StatesError::runtime(format!("the value of field '{k}' must be a string"))
                    })?;
                    out.insert(key.to_string(), eval_expression(expr, input, context, k)?);
                } else {
                    out.insert(k.clone(), eval_template(v, input, context)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .map(|v| eval_template(v, input, context))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// A `.$` value: a path or an intrinsic function call.
pub fn eval_expression(
    expr: &str,
    input: &Value,
    context: &Value,
    field: &str,
) -> Result<Value, StatesError> {
    let trimmed = expr.trim();
    if trimmed.starts_with('$') {
        query(trimmed, input, context).map_err(|e| {
            StatesError::runtime(format!(
                "The JSONPath '{trimmed}' specified for the field '{field}' could not be found in the input ({})",
                e.cause
            ))
        })
    } else if trimmed.starts_with("States.") {
        intrinsics::evaluate(trimmed, input, context)
    } else {
        Err(StatesError::runtime(format!(
            "the value of field '{field}' must be a JSONPath or an intrinsic function, got {expr:?}"
        )))
    }
}

/// Parse-time validation of a payload template.
pub fn validate_template(template: &Value) -> Result<(), String> {
    match template {
        Value::Object(m) => {
            for (k, v) in m {
                if k.ends_with(".$") {
                    let s = v
                        .as_str()
                        .ok_or_else(|| format!("field '{k}' must be a string"))?
                        .trim();
                    if s.starts_with('$') {
                        validate_path(s).map_err(|e| format!("field '{k}': {e}"))?;
                    } else if s.starts_with("States.") {
                        intrinsics::parse(s).map_err(|e| format!("field '{k}': {e}"))?;
                    } else {
                        return Err(format!(
                            "field '{k}' must be a JSONPath or an intrinsic function, got {s:?}"
                        ));
                    }
                } else {
                    validate_template(v)?;
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(validate_template),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_paths_parse() {
        assert_eq!(
            reference_segments("$.a['b c'][2].d"),
            Some(vec![
                Segment::Field("a".into()),
                Segment::Field("b c".into()),
                Segment::Index(2),
                Segment::Field("d".into())
            ])
        );
        assert_eq!(reference_segments("$"), Some(vec![]));
        assert_eq!(reference_segments("$.a[*]"), None);
        assert_eq!(reference_segments("$..a"), None);
        assert_eq!(reference_segments("$.a[0:2]"), None);
    }

    #[test]
    fn query_definite_and_indefinite() {
        let doc = json!({"a": [{"x": 1}, {"x": 2}], "b": {"c": "d"}});
        let ctx = json!({"Execution": {"Name": "e1"}});
        assert_eq!(query("$.b.c", &doc, &ctx).unwrap(), json!("d"));
        assert_eq!(query("$.a[*].x", &doc, &ctx).unwrap(), json!([1, 2]));
        assert_eq!(query("$$.Execution.Name", &doc, &ctx).unwrap(), json!("e1"));
        let e = query("$.nope", &doc, &ctx).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains("$.nope"));
    }

    #[test]
    fn result_path_creates_nested_and_null_discards() {
        let input = json!({"a": 1});
        let out =
            apply_result_path(&IoPath::Path("$.x.y.z".into()), input.clone(), json!(5)).unwrap();
        assert_eq!(out, json!({"a": 1, "x": {"y": {"z": 5}}}));
        assert_eq!(
            apply_result_path(&IoPath::Null, input.clone(), json!(5)).unwrap(),
            input
        );
        assert_eq!(
            apply_result_path(&IoPath::Default, input.clone(), json!(5)).unwrap(),
            json!(5)
        );
        let err = apply_result_path(&IoPath::Path("$.a.b".into()), input, json!(5)).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        let arr = apply_result_path(
            &IoPath::Path("$.l[1]".into()),
            json!({"l": [0, 0]}),
            json!(7),
        )
        .unwrap();
        assert_eq!(arr, json!({"l": [0, 7]}));
    }

    #[test]
    fn template_nested_and_arrays() {
        let t = json!({"k.$": "$.v", "lit": 1, "n": {"m.$": "$$.C"}, "arr": [{"q.$": "$.v"}]});
        let out = eval_template(&t, &json!({"v": "V"}), &json!({"C": 3})).unwrap();
        assert_eq!(
            out,
            json!({"k": "V", "lit": 1, "n": {"m": 3}, "arr": [{"q": "V"}]})
        );
        assert!(validate_template(&json!({"k.$": "nope"})).is_err());
        assert!(validate_template(&json!({"k.$": "$.a[?("})).is_err());
    }
}
