//! Payload templates (Parameters / ResultSelector / ItemSelector) and `.$` expressions, compiled
//! once when the definition is parsed: every `.$` value becomes a compiled [`Path`] or an
//! intrinsic call tree, and subtrees without `.$` keys are kept as literal JSON.
//!
//! Keys ending in `.$` take a JSONPath (`$…`), a context path (`$$…`) or an intrinsic function
//! call (`States.…`). Nested objects and objects inside arrays are processed too (chosen: AWS
//! documents nested objects; arrays are handled the same way).

use serde_json::{Map, Value};

use super::intrinsics::{self, Expr};
use super::jsonpath::Path;
use crate::error::StatesError;

/// A `.$` value: a path or an intrinsic function call.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Path(Path),
    Intrinsic(Expr),
}

impl Expression {
    /// Compiles a `.$` value (surrounding whitespace is ignored).
    pub fn compile(src: &str) -> Result<Expression, String> {
        let s = src.trim();
        if s.starts_with('$') {
            Path::parse(s).map(Expression::Path)
        } else if s.starts_with("States.") {
            intrinsics::parse(s).map(Expression::Intrinsic)
        } else {
            Err(format!(
                "must be a JSONPath or an intrinsic function, got {s:?}"
            ))
        }
    }

    /// Evaluates against the effective input and the context object; `field` names the field in
    /// errors (e.g. `"k.$"`, `"ErrorPath"`).
    pub fn evaluate(
        &self,
        input: &Value,
        context: &Value,
        field: &str,
    ) -> Result<Value, StatesError> {
        match self {
            Expression::Path(p) => p.query(input, context).map_err(|e| {
                StatesError::runtime(format!(
                    "The JSONPath '{p}' specified for the field '{field}' could not be found in the input ({})",
                    e.cause
                ))
            }),
            Expression::Intrinsic(e) => intrinsics::eval(e, input, context),
        }
    }
}

/// A compiled payload template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// No `.$` key anywhere below: the value as written.
    Literal(Value),
    /// An object with at least one `.$` key below it, its fields in definition order.
    Object(Vec<(String, Field)>),
    /// An array with at least one `.$` key below it.
    Array(Vec<Template>),
}

/// One field of a template object.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `"key.$": "<expression>"`; `key` is the key as written (with `.$`), for errors.
    Expr {
        key: String,
        expr: Expression,
    },
    Value(Template),
}

impl Template {
    /// Compiles a template; the error names the bad field.
    pub fn compile(template: &Value) -> Result<Template, String> {
        match template {
            Value::Object(m) if has_expressions(template) => {
                let mut fields = Vec::with_capacity(m.len());
                for (k, v) in m {
                    if let Some(name) = k.strip_suffix(".$") {
                        let expr = compile_field(k, v)?;
                        fields.push((
                            name.to_string(),
                            Field::Expr {
                                key: k.clone(),
                                expr,
                            },
                        ));
                    } else {
                        fields.push((k.clone(), Field::Value(Template::compile(v)?)));
                    }
                }
                Ok(Template::Object(fields))
            }
            Value::Array(a) if has_expressions(template) => Ok(Template::Array(
                a.iter().map(Template::compile).collect::<Result<_, _>>()?,
            )),
            other => Ok(Template::Literal(other.clone())),
        }
    }

    /// Evaluates the template against the effective input and the context object.
    pub fn evaluate(&self, input: &Value, context: &Value) -> Result<Value, StatesError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Object(fields) => {
                let mut out = Map::new();
                for (name, f) in fields {
                    let v = match f {
                        Field::Expr { key, expr } => expr.evaluate(input, context, key)?,
                        Field::Value(t) => t.evaluate(input, context)?,
                    };
                    out.insert(name.clone(), v);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|t| t.evaluate(input, context))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }
}

/// Compiles the value of a `.$` field `key`; the error names the field.
pub fn compile_field(key: &str, value: &Value) -> Result<Expression, String> {
    let s = value
        .as_str()
        .ok_or_else(|| format!("field '{key}' must be a string"))?
        .trim();
    if !(s.starts_with('$') || s.starts_with("States.")) {
        return Err(format!(
            "field '{key}' must be a JSONPath or an intrinsic function, got {s:?}"
        ));
    }
    Expression::compile(s).map_err(|e| format!("field '{key}': {e}"))
}

/// Whether a `.$` key occurs anywhere in the value.
fn has_expressions(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.ends_with(".$") || has_expressions(v)),
        Value::Array(a) => a.iter().any(has_expressions),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval_template(t: &Value, input: &Value, ctx: &Value) -> Result<Value, StatesError> {
        Template::compile(t).unwrap().evaluate(input, ctx)
    }

    #[test]
    fn template_nested_and_arrays() {
        let t = json!({"k.$": "$.v", "lit": 1, "n": {"m.$": "$$.C"}, "arr": [{"q.$": "$.v"}]});
        let out = eval_template(&t, &json!({"v": "V"}), &json!({"C": 3})).unwrap();
        assert_eq!(
            out,
            json!({"k": "V", "lit": 1, "n": {"m": 3}, "arr": [{"q": "V"}]})
        );
        assert!(Template::compile(&json!({"k.$": "nope"})).is_err());
        assert!(Template::compile(&json!({"k.$": "$.a[?("})).is_err());
    }

    #[test]
    fn compiled_once_literals_kept_and_order_preserved() {
        let t = json!({"z": {"deep": [1, 2]}, "a.$": "States.Format('{}-{}', $.v, $$.C)", "m": 0});
        let c = Template::compile(&t).unwrap();
        let Template::Object(fields) = &c else {
            panic!("expected an object template: {c:?}")
        };
        assert_eq!(
            fields[0].1,
            Field::Value(Template::Literal(json!({"deep": [1, 2]})))
        );
        assert!(matches!(
            &fields[1].1,
            Field::Expr {
                expr: Expression::Intrinsic(_),
                ..
            }
        ));
        let out = c.evaluate(&json!({"v": "V"}), &json!({"C": 3})).unwrap();
        assert_eq!(out.to_string(), r#"{"z":{"deep":[1,2]},"a":"V-3","m":0}"#);
    }

    #[test]
    fn missing_path_names_the_field() {
        let e = eval_template(&json!({"k.$": "$.nope"}), &json!({}), &json!({})).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(
            e.cause.contains("'$.nope'") && e.cause.contains("'k.$'"),
            "{}",
            e.cause
        );
        assert_eq!(
            Template::compile(&json!({"k.$": 3})).unwrap_err(),
            "field 'k.$' must be a string"
        );
    }
}
