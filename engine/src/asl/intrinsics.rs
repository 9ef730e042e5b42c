//! Intrinsic functions (`States.Format(...)` etc.): a small parser and evaluator.
//!
//! Supported: States.Format, StringToJson, JsonToString, Array, ArrayPartition, ArrayContains,
//! ArrayRange, ArrayGetItem, ArrayLength, ArrayUnique, JsonMerge (shallow and deep), MathAdd,
//! StringSplit, UUID. Not supported (a `States.IntrinsicFailure` naming the function):
//! States.Hash, States.Base64Encode/Decode, States.MathRandom.
//!
//! Chosen where AWS is unclear: every failure while evaluating an intrinsic (wrong argument type,
//! index out of range, path not found inside an argument) is `States.IntrinsicFailure`, which
//! Retry/Catch can match (unlike `States.Runtime`).

use serde_json::{Map, Value};

use super::jsonpath::Path;
use crate::error::StatesError;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Call(String, Vec<Expr>),
    /// A string literal, raw (escapes still in place) so States.Format can tell `\{` from `{`.
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
    Path(Path),
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

/// Parses an intrinsic function call.
pub fn parse(src: &str) -> Result<Expr, String> {
    let mut p = Parser {
        s: src.as_bytes(),
        src,
        i: 0,
    };
    let e = p.call()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after position {} in {src:?}", p.i));
    }
    Ok(e)
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn call(&mut self) -> Result<Expr, String> {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'.')
        {
            self.i += 1;
        }
        let name = &self.src[start..self.i];
        if !name.starts_with("States.") {
            return Err(format!("{:?} is not an intrinsic function", self.src));
        }
        self.ws();
        if self.s.get(self.i) != Some(&b'(') {
            return Err(format!("expected '(' after {name}"));
        }
        self.i += 1;
        let mut args = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b')') {
            self.i += 1;
            return Ok(Expr::Call(name.to_string(), args));
        }
        loop {
            args.push(self.arg()?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    return Ok(Expr::Call(name.to_string(), args));
                }
                _ => return Err(format!("expected ',' or ')' in arguments of {name}")),
            }
        }
    }
    fn arg(&mut self) -> Result<Expr, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("unexpected end of intrinsic function".into()),
            Some(b'\'') => {
                self.i += 1;
                let start = self.i;
                loop {
                    match self.s.get(self.i) {
                        None => return Err("unterminated string literal".into()),
                        Some(b'\\') => self.i += 2,
                        Some(b'\'') => break,
                        _ => self.i += 1,
                    }
                }
                let raw = self.src[start..self.i].to_string();
                self.i += 1;
                Ok(Expr::Str(raw))
            }
            Some(b'$') => {
                // A path runs to the next top-level ',' or ')' (brackets and quotes nest).
                let start = self.i;
                let mut depth = 0i32;
                let mut quote: Option<u8> = None;
                while let Some(&c) = self.s.get(self.i) {
                    if let Some(q) = quote {
                        if c == b'\\' {
                            self.i += 1;
                        } else if c == q {
                            quote = None;
                        }
                    } else {
                        match c {
                            b'\'' | b'"' => quote = Some(c),
                            b'[' | b'(' => depth += 1,
                            b']' => depth -= 1,
                            b')' if depth == 0 => break,
                            b')' => depth -= 1,
                            b',' if depth == 0 => break,
                            _ => {}
                        }
                    }
                    self.i += 1;
                }
                let path = self.src[start..self.i].trim().to_string();
                Ok(Expr::Path(Path::parse(&path)?))
            }
            Some(b'S') => self.call(),
            Some(_) => {
                let start = self.i;
                while let Some(&c) = self.s.get(self.i) {
                    if c == b',' || c == b')' || c.is_ascii_whitespace() {
                        break;
                    }
                    self.i += 1;
                }
                let tok = &self.src[start..self.i];
                match tok {
                    "true" => Ok(Expr::Bool(true)),
                    "false" => Ok(Expr::Bool(false)),
                    "null" => Ok(Expr::Null),
                    _ => match serde_json::from_str::<Value>(tok) {
                        Ok(Value::Number(n)) => Ok(Expr::Num(n)),
                        _ => Err(format!("invalid argument {tok:?}")),
                    },
                }
            }
        }
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::new();
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses and evaluates an intrinsic function call against a state's input and context object.
pub fn evaluate(src: &str, input: &Value, context: &Value) -> Result<Value, StatesError> {
    let e = parse(src).map_err(StatesError::intrinsic)?;
    eval(&e, input, context)
}

/// Evaluates a parsed intrinsic call tree against a state's input and context object.
pub fn eval(e: &Expr, input: &Value, ctx: &Value) -> Result<Value, StatesError> {
    match e {
        Expr::Str(s) => Ok(Value::String(unescape(s))),
        Expr::Num(n) => Ok(Value::Number(n.clone())),
        Expr::Bool(b) => Ok(Value::Bool(*b)),
        Expr::Null => Ok(Value::Null),
        Expr::Path(p) => p
            .query_opt(input, ctx)
            .ok_or_else(|| StatesError::intrinsic(format!("path {p} not found in the input"))),
        Expr::Call(name, args) => call(name, args, input, ctx),
    }
}

fn fail<T>(name: &str, why: impl std::fmt::Display) -> Result<T, StatesError> {
    Err(StatesError::intrinsic(format!(
        "Invalid arguments in {name}: {why}"
    )))
}

fn as_array<'a>(name: &str, v: &'a Value) -> Result<&'a Vec<Value>, StatesError> {
    v.as_array()
        .map_or_else(|| fail(name, format!("expected an array, got {v}")), Ok)
}

fn as_int(name: &str, v: &Value) -> Result<i64, StatesError> {
    match v.as_i64() {
        Some(i) => Ok(i),
        None => match v.as_f64() {
            Some(f) if f.fract() == 0.0 => Ok(f as i64),
            _ => fail(name, format!("expected an integer, got {v}")),
        },
    }
}

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), StatesError> {
    if args.len() < min || args.len() > max {
        return fail(
            name,
            format!("expected {min}..={max} arguments, got {}", args.len()),
        );
    }
    Ok(())
}

fn call(name: &str, arg_exprs: &[Expr], input: &Value, ctx: &Value) -> Result<Value, StatesError> {
    if name == "States.Format" {
        let Some(Expr::Str(template)) = arg_exprs.first() else {
            return fail(name, "the first argument must be a string literal");
        };
        let args = arg_exprs[1..]
            .iter()
            .map(|a| eval(a, input, ctx))
            .collect::<Result<Vec<_>, _>>()?;
        return format(template, &args);
    }
    let args = arg_exprs
        .iter()
        .map(|a| eval(a, input, ctx))
        .collect::<Result<Vec<_>, _>>()?;
    match name {
        "States.StringToJson" => {
            arity(name, &args, 1, 1)?;
            let s = args[0]
                .as_str()
                .map_or_else(|| fail(name, "expected a string"), Ok)?;
            serde_json::from_str(s).or_else(|e| fail(name, e))
        }
        "States.JsonToString" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::String(args[0].to_string()))
        }
        "States.Array" => Ok(Value::Array(args)),
        "States.ArrayPartition" => {
            arity(name, &args, 2, 2)?;
            let a = as_array(name, &args[0])?;
            let n = as_int(name, &args[1])?;
            if n <= 0 {
                return fail(name, "chunk size must be positive");
            }
            Ok(Value::Array(
                a.chunks(n as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            arity(name, &args, 2, 2)?;
            Ok(Value::Bool(as_array(name, &args[0])?.contains(&args[1])))
        }
        "States.ArrayRange" => {
            arity(name, &args, 3, 3)?;
            let (start, end, step) = (
                as_int(name, &args[0])?,
                as_int(name, &args[1])?,
                as_int(name, &args[2])?,
            );
            if step == 0 {
                return fail(name, "step must not be 0");
            }
            let mut out = Vec::new();
            let mut i = start;
            while (step > 0 && i <= end) || (step < 0 && i >= end) {
                out.push(Value::from(i));
                if out.len() > 1000 {
                    return fail(name, "more than 1000 items");
                }
                i += step;
            }
            Ok(Value::Array(out))
        }
        "States.ArrayGetItem" => {
            arity(name, &args, 2, 2)?;
            let a = as_array(name, &args[0])?;
            let i = as_int(name, &args[1])?;
            usize::try_from(i)
                .ok()
                .and_then(|i| a.get(i))
                .cloned()
                .map_or_else(|| fail(name, format!("index {i} out of range")), Ok)
        }
        "States.ArrayLength" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::from(as_array(name, &args[0])?.len()))
        }
        "States.ArrayUnique" => {
            arity(name, &args, 1, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in as_array(name, &args[0])? {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(Value::Array(out))
        }
        "States.JsonMerge" => {
            arity(name, &args, 3, 3)?;
            let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                return fail(name, "the first two arguments must be objects");
            };
            let deep = args[2]
                .as_bool()
                .map_or_else(|| fail(name, "the third argument must be a boolean"), Ok)?;
            Ok(Value::Object(merge(a.clone(), b, deep)))
        }
        "States.MathAdd" => {
            arity(name, &args, 2, 2)?;
            let (a, b) = (as_int(name, &args[0])?, as_int(name, &args[1])?);
            a.checked_add(b)
                .map(Value::from)
                .map_or_else(|| fail(name, "overflow"), Ok)
        }
        "States.StringSplit" => {
            arity(name, &args, 2, 2)?;
            let (Some(s), Some(d)) = (args[0].as_str(), args[1].as_str()) else {
                return fail(name, "both arguments must be strings");
            };
            Ok(Value::Array(
                s.split(|c| d.contains(c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            ))
        }
        "States.UUID" => {
            arity(name, &args, 0, 0)?;
            Ok(Value::String(uuid::Uuid::new_v4().to_string()))
        }
        other => Err(StatesError::intrinsic(format!(
            "intrinsic function {other} is not supported by the local engine"
        ))),
    }
}

fn merge(mut a: Map<String, Value>, b: &Map<String, Value>, deep: bool) -> Map<String, Value> {
    for (k, v) in b {
        match (a.get_mut(k), v) {
            (Some(Value::Object(x)), Value::Object(y)) if deep => {
                let merged = merge(std::mem::take(x), y, true);
                *x = merged;
            }
            _ => {
                a.insert(k.clone(), v.clone());
            }
        }
    }
    a
}

fn format(raw: &str, args: &[Value]) -> Result<Value, StatesError> {
    let name = "States.Format";
    let mut out = String::new();
    let mut it = raw.chars().peekable();
    let mut next = 0;
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    out.push(n);
                }
            }
            '{' if it.peek() == Some(&'}') => {
                it.next();
                let Some(a) = args.get(next) else {
                    return fail(name, "more placeholders than arguments");
                };
                next += 1;
                match a {
                    Value::String(s) => out.push_str(s),
                    Value::Object(_) | Value::Array(_) => {
                        return fail(name, "arguments must be strings, numbers, booleans or null");
                    }
                    other => out.push_str(&other.to_string()),
                }
            }
            c => out.push(c),
        }
    }
    if next != args.len() {
        return fail(name, "more arguments than placeholders");
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(s: &str, input: Value) -> Result<Value, StatesError> {
        evaluate(s, &input, &json!({"Execution": {"Name": "ex"}}))
    }

    #[test]
    fn format_and_escapes() {
        assert_eq!(
            ev(
                "States.Format('Hello {}, {} \\{x\\} it\\'s', $.n, 3)",
                json!({"n": "Bob"})
            )
            .unwrap(),
            json!("Hello Bob, 3 {x} it's")
        );
        assert_eq!(
            ev("States.Format('{}', $$.Execution.Name)", json!({})).unwrap(),
            json!("ex")
        );
        assert_eq!(
            ev("States.Format('{} {}', 'a')", json!({}))
                .unwrap_err()
                .error,
            "States.IntrinsicFailure"
        );
    }

    #[test]
    fn json_string_roundtrip_and_arrays() {
        assert_eq!(
            ev("States.StringToJson($.s)", json!({"s": "{\"a\":1}"})).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            ev("States.JsonToString($.o)", json!({"o": {"a": [1]}})).unwrap(),
            json!("{\"a\":[1]}")
        );
        assert_eq!(
            ev("States.Array(1, 'x', $.b, null)", json!({"b": true})).unwrap(),
            json!([1, "x", true, null])
        );
        assert_eq!(
            ev("States.ArrayLength($.a)", json!({"a": [1, 2, 3]})).unwrap(),
            json!(3)
        );
        assert_eq!(
            ev("States.ArrayContains($.a, 2)", json!({"a": [1, 2]})).unwrap(),
            json!(true)
        );
        assert_eq!(
            ev("States.ArrayContains($.a, 5)", json!({"a": [1, 2]})).unwrap(),
            json!(false)
        );
        assert_eq!(
            ev("States.ArrayGetItem($.a, 1)", json!({"a": [7, 8]})).unwrap(),
            json!(8)
        );
        assert_eq!(
            ev("States.ArrayGetItem($.a, 5)", json!({"a": [7]}))
                .unwrap_err()
                .error,
            "States.IntrinsicFailure"
        );
        assert_eq!(
            ev("States.ArrayPartition($.a, 2)", json!({"a": [1, 2, 3]})).unwrap(),
            json!([[1, 2], [3]])
        );
        assert_eq!(
            ev("States.ArrayRange(1, 9, 3)", json!({})).unwrap(),
            json!([1, 4, 7])
        );
        assert_eq!(
            ev("States.ArrayUnique($.a)", json!({"a": [1, 1, 2]})).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            ev("States.MathAdd($.a, -3)", json!({"a": 10})).unwrap(),
            json!(7)
        );
        assert_eq!(
            ev("States.StringSplit('a,b;c', ',;')", json!({})).unwrap(),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            ev("States.UUID()", json!({}))
                .unwrap()
                .as_str()
                .map(str::len),
            Some(36)
        );
    }

    #[test]
    fn nested_json_merge() {
        let input = json!([{"a": 1, "n": {"x": 1}}, {"b": 2, "n": {"y": 2}}, {"c": 3, "a": 9}]);
        let out = ev(
            "States.JsonMerge(States.JsonMerge($[0], $[1], false), $[2], false)",
            input.clone(),
        )
        .unwrap();
        assert_eq!(out, json!({"a": 9, "n": {"y": 2}, "b": 2, "c": 3}));
        let deep = ev("States.JsonMerge($[0], $[1], true)", input).unwrap();
        assert_eq!(deep, json!({"a": 1, "n": {"x": 1, "y": 2}, "b": 2}));
    }

    #[test]
    fn parse_errors() {
        assert!(parse("States.Format('x'").is_err());
        assert!(parse("Nope.Format()").is_err());
        assert!(parse("States.Array(1) trailing").is_err());
        assert_eq!(
            ev("States.Hash('a', 'SHA-256')", json!({}))
                .unwrap_err()
                .error,
            "States.IntrinsicFailure"
        );
    }
}
