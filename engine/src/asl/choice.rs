//! Choice rules: parsing and evaluation.

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use super::jsonpath::Path;
use crate::error::StatesError;

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    /// `op` is the operator name without a `Path` suffix, e.g. `StringEquals`, `IsPresent`.
    Compare {
        variable: Path,
        op: String,
        operand: Operand,
    },
}

const STRING_OPS: [&str; 6] = [
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "StringLessThanEquals",
    "StringGreaterThanEquals",
    "StringMatches",
];
const NUMERIC_OPS: [&str; 5] = [
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanEquals",
    "NumericGreaterThanEquals",
];
const TIMESTAMP_OPS: [&str; 5] = [
    "TimestampEquals",
    "TimestampLessThan",
    "TimestampGreaterThan",
    "TimestampLessThanEquals",
    "TimestampGreaterThanEquals",
];
const TYPE_OPS: [&str; 6] = [
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

/// Parses one rule. `top` rules carry `Next` (checked by the caller) and may not be nested.
pub fn parse_rule(v: &Value, at: &str) -> Result<Rule, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{at}: a choice rule must be an object"))?;
    if let Some(list) = obj.get("And").or_else(|| obj.get("Or")) {
        let is_and = obj.contains_key("And");
        let arr = list
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("{at}: And/Or must be a non-empty array"))?;
        let rules = arr
            .iter()
            .enumerate()
            .map(|(i, r)| parse_rule(r, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if is_and {
            Rule::And(rules)
        } else {
            Rule::Or(rules)
        });
    }
    if let Some(inner) = obj.get("Not") {
        return Ok(Rule::Not(Box::new(parse_rule(
            inner,
            &format!("{at}.Not"),
        )?)));
    }
    let variable = obj
        .get("Variable")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}: missing string field Variable"))?;
    let variable = Path::parse(variable).map_err(|e| format!("{at}.Variable: {e}"))?;
    let mut found = None;
    for (k, val) in obj {
        if matches!(k.as_str(), "Variable" | "Next" | "Comment") {
            continue;
        }
        let (base, is_path) = match k.strip_suffix("Path") {
            Some(b) if b != "StringMatches" => (b, true),
            _ => (k.as_str(), false),
        };
        let known = STRING_OPS.contains(&base)
            || NUMERIC_OPS.contains(&base)
            || TIMESTAMP_OPS.contains(&base)
            || TYPE_OPS.contains(&base)
            || base == "BooleanEquals";
        if !known || (is_path && TYPE_OPS.contains(&base)) {
            return Err(format!("{at}: unknown field {k}"));
        }
        if found.is_some() {
            return Err(format!("{at}: more than one comparison operator"));
        }
        let operand = if is_path {
            let p = val
                .as_str()
                .ok_or_else(|| format!("{at}.{k}: must be a path string"))?;
            Operand::Path(Path::parse(p).map_err(|e| format!("{at}.{k}: {e}"))?)
        } else {
            let ok = if STRING_OPS.contains(&base) {
                val.is_string()
            } else if NUMERIC_OPS.contains(&base) {
                val.is_number()
            } else if TIMESTAMP_OPS.contains(&base) {
                val.as_str().and_then(parse_ts).is_some()
            } else {
                val.is_boolean()
            };
            if !ok {
                return Err(format!("{at}.{k}: operand has the wrong type: {val}"));
            }
            Operand::Literal(val.clone())
        };
        found = Some(Rule::Compare {
            variable: variable.clone(),
            op: base.to_string(),
            operand,
        });
    }
    found.ok_or_else(|| format!("{at}: no comparison operator"))
}

fn parse_ts(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// `*` matches any run of characters; `\*` is a literal star.
pub fn wildcard_match(pattern: &str, s: &str) -> bool {
    let mut toks: Vec<Option<char>> = Vec::new(); // None = wildcard
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    toks.push(Some(n));
                }
            }
            '*' => toks.push(None),
            c => toks.push(Some(c)),
        }
    }
    let s: Vec<char> = s.chars().collect();
    // Classic DP over (token, char).
    let mut dp = vec![false; s.len() + 1];
    dp[0] = true;
    for t in &toks {
        let mut next = vec![false; s.len() + 1];
        match t {
            None => {
                let mut any = false;
                for j in 0..=s.len() {
                    any |= dp[j];
                    next[j] = any;
                }
            }
            Some(c) => {
                for j in 1..=s.len() {
                    next[j] = dp[j - 1] && s[j - 1] == *c;
                }
            }
        }
        dp = next;
    }
    dp[s.len()]
}

/// Evaluates a rule. A missing Variable is a `States.Runtime` error except under `IsPresent`
/// (AWS behaviour); comparing values of the wrong type is simply `false`.
pub fn evaluate(rule: &Rule, input: &Value, ctx: &Value) -> Result<bool, StatesError> {
    match rule {
        Rule::And(rs) => {
            for r in rs {
                if !evaluate(r, input, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rs) => {
            for r in rs {
                if evaluate(r, input, ctx)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(r) => Ok(!evaluate(r, input, ctx)?),
        Rule::Compare {
            variable,
            op,
            operand,
        } => {
            let value = variable.query_opt(input, ctx);
            let expected = match operand {
                Operand::Literal(v) => v.clone(),
                Operand::Path(p) => p.query(input, ctx)?,
            };
            if op == "IsPresent" {
                return Ok(value.is_some() == expected.as_bool().unwrap_or(false));
            }
            let Some(v) = value else {
                return Err(StatesError::runtime(format!(
                    "Invalid path '{variable}': The choice state's condition path references an invalid value."
                )));
            };
            let want = expected.as_bool().unwrap_or(false);
            Ok(match op.as_str() {
                "IsNull" => v.is_null() == want,
                "IsNumeric" => v.is_number() == want,
                "IsString" => v.is_string() == want,
                "IsBoolean" => v.is_boolean() == want,
                "IsTimestamp" => v.as_str().and_then(parse_ts).is_some() == want,
                "BooleanEquals" => v.is_boolean() && v == expected,
                "StringMatches" => match (v.as_str(), expected.as_str()) {
                    (Some(s), Some(p)) => wildcard_match(p, s),
                    _ => false,
                },
                o if o.starts_with("String") => match (v.as_str(), expected.as_str()) {
                    (Some(a), Some(b)) => compare(o.trim_start_matches("String"), a.cmp(b)),
                    _ => false,
                },
                o if o.starts_with("Numeric") => match (v.as_f64(), expected.as_f64()) {
                    (Some(a), Some(b)) => a
                        .partial_cmp(&b)
                        .is_some_and(|ord| compare(o.trim_start_matches("Numeric"), ord)),
                    _ => false,
                },
                o if o.starts_with("Timestamp") => {
                    match (
                        v.as_str().and_then(parse_ts),
                        expected.as_str().and_then(parse_ts),
                    ) {
                        (Some(a), Some(b)) => compare(o.trim_start_matches("Timestamp"), a.cmp(&b)),
                        _ => false,
                    }
                }
                _ => false,
            })
        }
    }
}

fn compare(suffix: &str, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match suffix {
        "Equals" => ord == Equal,
        "LessThan" => ord == Less,
        "GreaterThan" => ord == Greater,
        "LessThanEquals" => ord != Greater,
        "GreaterThanEquals" => ord != Less,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("log-*.txt", "log-2024.txt"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYc"));
        assert!(!wildcard_match("a*b*c", "aXXbY"));
        assert!(wildcard_match("a\\*", "a*"));
        assert!(!wildcard_match("a\\*", "ab"));
    }

    #[test]
    fn parse_errors_name_the_field() {
        let e =
            parse_rule(&json!({"Variable": "$.x", "StringEquals": 3}), "Choices[0]").unwrap_err();
        assert!(e.contains("Choices[0].StringEquals"), "{e}");
        let e = parse_rule(&json!({"Variable": "$.x", "Bogus": 3}), "Choices[1]").unwrap_err();
        assert!(e.contains("Bogus"), "{e}");
        assert!(parse_rule(&json!({"Variable": "$.x"}), "c").is_err());
    }
}
