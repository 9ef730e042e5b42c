//! State input/output paths: InputPath/OutputPath filtering and ResultPath writing.

use serde_json::{Map, Value};

use super::jsonpath::{Path, Segment};
use crate::error::StatesError;

/// An optional path field that distinguishes "absent" (default `$`) from JSON `null`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IoPath {
    #[default]
    Default,
    Null,
    Path(Path),
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
        IoPath::Path(p) if p.as_str() == "$" => Ok(value),
        IoPath::Path(p) => p.query(&value, context),
    }
}

/// ResultPath: `null` keeps the input, `$` (default) replaces it, otherwise the result is written
/// into (a copy of) the input at the path, creating intermediate objects.
///
/// Chosen where AWS is unclear: writing through a non-object intermediate value (e.g. a string)
/// or an array index past the end is a `States.Runtime` error.
pub fn apply_result_path(path: &IoPath, input: Value, result: Value) -> Result<Value, StatesError> {
    let path = match path {
        IoPath::Default => return Ok(result),
        IoPath::Null => return Ok(input),
        IoPath::Path(p) => p,
    };
    let p = path.as_str();
    let segs = path
        .segments()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn result_path_creates_nested_and_null_discards() {
        let input = json!({"a": 1});
        let out = apply_result_path(
            &IoPath::Path(Path::parse("$.x.y.z").unwrap()),
            input.clone(),
            json!(5),
        )
        .unwrap();
        assert_eq!(out, json!({"a": 1, "x": {"y": {"z": 5}}}));
        assert_eq!(
            apply_result_path(&IoPath::Null, input.clone(), json!(5)).unwrap(),
            input
        );
        assert_eq!(
            apply_result_path(&IoPath::Default, input.clone(), json!(5)).unwrap(),
            json!(5)
        );
        let err = apply_result_path(
            &IoPath::Path(Path::parse("$.a.b").unwrap()),
            input,
            json!(5),
        )
        .unwrap_err();
        assert_eq!(err.error, "States.Runtime");
        let arr = apply_result_path(
            &IoPath::Path(Path::parse("$.l[1]").unwrap()),
            json!({"l": [0, 0]}),
            json!(7),
        )
        .unwrap();
        assert_eq!(arr, json!({"l": [0, 7]}));
    }
}
