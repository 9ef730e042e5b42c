//! JSONPath reading (through `serde_json_path`): reference paths (`$.a['b'][0]`), any other
//! JSONPath (answered with the array of its matches), `$` against the state input and `$$` against
//! the context object. [`Path`] is a path compiled once, when the definition is parsed.

use std::fmt;

use serde_json::Value;
use serde_json_path::JsonPath;

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

/// Checks at parse time that a path is a reference path (ResultPath).
pub fn validate_reference_path(path: &str) -> Result<(), String> {
    reference_segments(path)
        .map(|_| ())
        .ok_or_else(|| format!("{path:?} is not a reference path ($, .field, ['field'], [index])"))
}

/// A JSONPath compiled once: its text, which document it reads (`$` input or `$$` context), and
/// either the steps of a reference path or the parsed JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    context: bool,
    kind: PathKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathKind {
    Reference(Vec<Segment>),
    Query(JsonPath),
}

impl Path {
    /// Compiles a path; the error names the path and what is wrong with it.
    pub fn parse(path: &str) -> Result<Path, String> {
        let (p, context) = match path.strip_prefix("$$") {
            Some(rest) => (format!("${rest}"), true),
            None => (path.to_string(), false),
        };
        if !p.starts_with('$') {
            return Err(format!("{path:?} is not a JSONPath (must start with '$')"));
        }
        let kind = match reference_segments(&p) {
            Some(segs) => PathKind::Reference(segs),
            None => PathKind::Query(
                JsonPath::parse(&p).map_err(|e| format!("invalid JSONPath {path:?}: {e}"))?,
            ),
        };
        Ok(Path {
            text: path.to_string(),
            context,
            kind,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The steps of a reference path on the state input (`None` for any other path).
    pub fn segments(&self) -> Option<&[Segment]> {
        match &self.kind {
            PathKind::Reference(segs) if !self.context => Some(segs),
            _ => None,
        }
    }

    /// Evaluates the path against `input` (`$`) or the context object (`$$`). A reference path
    /// selects exactly one value; any other JSONPath returns the array of its matches (AWS
    /// behaviour). A missing value is `None`.
    pub fn query_opt(&self, input: &Value, context: &Value) -> Option<Value> {
        let doc = if self.context { context } else { input };
        match &self.kind {
            PathKind::Reference(segs) => get_segments(doc, segs).cloned(),
            PathKind::Query(jp) => Some(Value::Array(
                jp.query(doc).all().into_iter().cloned().collect(),
            )),
        }
    }

    /// Like [`Path::query_opt`], but a missing value is a `States.Runtime` error naming the path.
    pub fn query(&self, input: &Value, context: &Value) -> Result<Value, StatesError> {
        self.query_opt(input, context)
            .ok_or_else(|| not_found(&self.text))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn not_found(path: &str) -> StatesError {
    StatesError::runtime(format!(
        "Invalid path '{path}': the path could not be found in the input"
    ))
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

    fn query(path: &str, doc: &Value, ctx: &Value) -> Result<Value, StatesError> {
        Path::parse(path).unwrap().query(doc, ctx)
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
    fn compiled_paths_keep_their_text_and_kind() {
        let p = Path::parse("$.a['b c'][2]").unwrap();
        assert_eq!(p.as_str(), "$.a['b c'][2]");
        assert_eq!(p.to_string(), "$.a['b c'][2]");
        assert_eq!(p.segments().map(<[Segment]>::len), Some(3));
        assert_eq!(Path::parse("$$.Execution.Name").unwrap().segments(), None);
        assert_eq!(Path::parse("$.a[*]").unwrap().segments(), None);
        let doc = json!({"a": 1});
        assert_eq!(Path::parse("$.nope").unwrap().query_opt(&doc, &doc), None);
        assert!(Path::parse("a.b").is_err());
        assert!(Path::parse("$.a[?(").is_err());
    }
}
