//! Checks a generated template must pass before anyone deploys it: IAM least privilege and
//! "every resource the state machine names exists". `deploy template` runs them and refuses to
//! write a template that fails; the tests run them on the example and on broken templates.

use std::collections::BTreeSet;

use boa_core::Pipeline;
use boa_core::names::tags;
use regex::Regex;
use serde_json::Value;

use crate::template::{ALLOWED_WILDCARD_ACTIONS, activity_id, own_profile_name};

/// One statement of an inline or managed IAM policy in the template.
#[derive(Debug, Clone)]
pub struct IamStatement<'t> {
    /// `<logical id>/<policy name>/<Sid or index>`, for messages.
    pub at: String,
    pub actions: Vec<String>,
    pub resources: Vec<&'t Value>,
    pub condition: Option<&'t Value>,
}

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
        None => vec![],
    }
}

/// Every permission statement of every role/policy in the template (trust policies excluded).
pub fn iam_statements(t: &Value) -> Vec<IamStatement<'_>> {
    let mut out = vec![];
    let Some(res) = t.get("Resources").and_then(Value::as_object) else {
        return out;
    };
    for (id, r) in res {
        let props = &r["Properties"];
        let docs: Vec<(String, &Value)> = match r["Type"].as_str() {
            Some("AWS::IAM::Role") => as_list(props.get("Policies"))
                .into_iter()
                .map(|p| {
                    (
                        p["PolicyName"].as_str().unwrap_or("?").to_string(),
                        &p["PolicyDocument"],
                    )
                })
                .collect(),
            Some("AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy") => {
                vec![("policy".into(), &props["PolicyDocument"])]
            }
            _ => vec![],
        };
        for (name, doc) in docs {
            for (i, s) in as_list(doc.get("Statement")).into_iter().enumerate() {
                let sid = s["Sid"]
                    .as_str()
                    .map_or_else(|| i.to_string(), str::to_string);
                out.push(IamStatement {
                    at: format!("{id}/{name}/{sid}"),
                    actions: as_list(s.get("Action"))
                        .into_iter()
                        .map(|a| a.as_str().unwrap_or("?").to_string())
                        .collect(),
                    resources: as_list(s.get("Resource")),
                    condition: s.get("Condition"),
                });
            }
        }
    }
    out
}

fn has_condition(cond: Option<&Value>, key: &str, expect: impl Fn(&Value) -> bool) -> bool {
    cond.and_then(Value::as_object).is_some_and(|ops| {
        ops.iter()
            .filter(|(op, _)| op.starts_with("StringEquals") || op.starts_with("ArnEquals"))
            .any(|(_, kv)| kv.get(key).is_some_and(&expect))
    })
}

/// The value of `key` under a condition operator whose name starts with `op`.
fn condition_value<'v>(cond: Option<&'v Value>, op: &str, key: &str) -> Option<&'v Value> {
    cond.and_then(Value::as_object).and_then(|ops| {
        ops.iter()
            .filter(|(o, _)| o.starts_with(op))
            .find_map(|(_, kv)| kv.get(key))
    })
}

fn is_stack_name(v: &Value) -> bool {
    v == &serde_json::json!({ "Ref": "AWS::StackName" })
}

/// Every least-privilege rule a statement breaks, each naming the statement:
/// no wildcard actions; `"Resource": "*"` only for [`ALLOWED_WILDCARD_ACTIONS`];
/// `ec2:TerminateInstances` / `ec2:CreateTags` only on instances tagged with this stack (or tagged
/// with it in the same RunInstances call); `iam:PassRole` only on named roles and only to EC2;
/// `ec2:RunInstances` on instances only with IMDSv2 required and a hop limit of at most 2, and on
/// volumes only encrypted ones.
pub fn iam_problems(t: &Value) -> Vec<String> {
    let stack_tag_keys = [
        format!("ec2:ResourceTag/{}", tags::STACK),
        format!("aws:RequestTag/{}", tags::STACK),
    ];
    let mut out = vec![];
    for s in iam_statements(t) {
        for a in &s.actions {
            if a.contains('*') {
                out.push(format!(
                    "{}: action '{a}' is a wildcard; name the actions",
                    s.at
                ));
            }
        }
        if s.resources.is_empty() {
            out.push(format!("{}: no Resource", s.at));
        }
        if s.resources.iter().any(|r| r.as_str() == Some("*")) {
            let bad: Vec<&String> = s
                .actions
                .iter()
                .filter(|a| !ALLOWED_WILDCARD_ACTIONS.contains(&a.as_str()))
                .collect();
            if !bad.is_empty() {
                out.push(format!(
                    "{}: \"Resource\": \"*\" for {bad:?}, which are not in ALLOWED_WILDCARD_ACTIONS; scope them to ARNs",
                    s.at
                ));
            }
        }
        for a in ["ec2:TerminateInstances", "ec2:CreateTags"] {
            if s.actions.iter().any(|x| x == a)
                && !stack_tag_keys
                    .iter()
                    .any(|k| has_condition(s.condition, k, is_stack_name))
            {
                out.push(format!(
                    "{}: {a} without a condition that the instance carries {}={{stack}}",
                    s.at,
                    tags::STACK
                ));
            }
        }
        if s.actions.iter().any(|x| x == "ec2:RunInstances") {
            let on = |kind: &str| {
                s.resources.iter().any(|r| {
                    r.as_str() == Some("*") || r.to_string().contains(&format!(":{kind}/"))
                })
            };
            if on("instance") {
                if condition_value(s.condition, "StringEquals", "ec2:MetadataHttpTokens")
                    != Some(&Value::from("required"))
                {
                    out.push(format!(
                        "{}: ec2:RunInstances on instances without ec2:MetadataHttpTokens = required (IMDSv2)",
                        s.at
                    ));
                }
                let hop = condition_value(
                    s.condition,
                    "NumericLessThanEquals",
                    "ec2:MetadataHttpPutResponseHopLimit",
                )
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
                if hop.is_none_or(|h| h > 2) {
                    out.push(format!(
                        "{}: ec2:RunInstances on instances without ec2:MetadataHttpPutResponseHopLimit <= 2",
                        s.at
                    ));
                }
            }
            if on("volume")
                && condition_value(s.condition, "Bool", "ec2:Encrypted")
                    .is_none_or(|v| v != "true" && v != &Value::Bool(true))
            {
                out.push(format!(
                    "{}: ec2:RunInstances on volumes without ec2:Encrypted = true",
                    s.at
                ));
            }
        }
        if s.actions.iter().any(|x| x == "iam:PassRole") {
            if s.resources
                .iter()
                .any(|r| r.as_str().is_some_and(|r| r.contains('*')))
            {
                out.push(format!("{}: iam:PassRole on a wildcard resource", s.at));
            }
            if !has_condition(s.condition, "iam:PassedToService", |v| {
                v == "ec2.amazonaws.com"
            }) {
                out.push(format!(
                    "{}: iam:PassRole without iam:PassedToService = ec2.amazonaws.com",
                    s.at
                ));
            }
        }
    }
    out
}

/// The resource a `Ref`/`Fn::GetAtt` value points at, if it is one.
fn target_of(v: &Value) -> Option<&str> {
    v.get("Ref").and_then(Value::as_str).or_else(|| {
        v.get("Fn::GetAtt")
            .and_then(|g| g.get(0))
            .and_then(Value::as_str)
    })
}

/// Every `${Key}` of the state machine's `DefinitionString` without a substitution, every
/// substitution that points at no resource of the template, and every unused substitution.
pub fn substitution_problems(t: &Value) -> Vec<String> {
    let mut out = vec![];
    let empty = serde_json::Map::new();
    let res = t
        .get("Resources")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let machines: Vec<(&String, &Value)> = res
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::StepFunctions::StateMachine")
        .collect();
    if machines.is_empty() {
        out.push("no AWS::StepFunctions::StateMachine in the template".into());
    }
    let re = Regex::new(r"\$\{([A-Za-z0-9_]+)\}").expect("static regex");
    for (id, m) in machines {
        let def = m["Properties"]["DefinitionString"].as_str().unwrap_or("");
        let subs = m["Properties"]["DefinitionSubstitutions"]
            .as_object()
            .unwrap_or(&empty);
        let used: BTreeSet<&str> = re
            .captures_iter(def)
            .map(|c| c.get(1).expect("group 1").as_str())
            .collect();
        for k in &used {
            match subs.get(*k) {
                None => out.push(format!(
                    "{id}: the definition uses ${{{k}}} but DefinitionSubstitutions has no {k}"
                )),
                Some(v) => match target_of(v) {
                    Some(target) if res.contains_key(target) => {}
                    Some(target) => out.push(format!(
                        "{id}: substitution {k} points at '{target}', which is not a resource of the template"
                    )),
                    None => out.push(format!(
                        "{id}: substitution {k} is {v}, not a Ref or Fn::GetAtt of a resource"
                    )),
                },
            }
        }
        for k in subs.keys() {
            if !used.contains(k.as_str()) {
                out.push(format!(
                    "{id}: substitution {k} is not used by the definition"
                ));
            }
        }
    }
    out
}

/// The activities (logical ids) a role's statements allow `states:GetActivityTask` on; `*` for a
/// wildcard resource.
pub fn activities_polled_by(t: &Value, role_id: &str) -> BTreeSet<String> {
    iam_statements(t)
        .into_iter()
        .filter(|s| s.at.starts_with(&format!("{role_id}/")))
        .filter(|s| {
            s.actions
                .iter()
                .any(|a| a == "states:GetActivityTask" || a == "states:*" || a == "*")
        })
        .flat_map(|s| s.resources)
        .map(|r| match r {
            Value::String(x) => x.clone(),
            other => other["Ref"].as_str().unwrap_or("?").to_string(),
        })
        .collect()
}

/// The role the workers of `step` run with: the role of the instance profile start-workers
/// launches them with (the step's own `instance_profile`, or `<stack>-<Step>`).
pub fn worker_role_of(t: &Value, step: &boa_core::Step) -> Option<String> {
    let want = if step.worker.instance_profile.is_empty() {
        own_profile_name(&step.name)
    } else {
        Value::from(step.worker.instance_profile.clone())
    };
    t["Resources"].as_object()?.values().find_map(|r| {
        (r["Type"] == "AWS::IAM::InstanceProfile" && r["Properties"]["InstanceProfileName"] == want)
            .then(|| {
                r["Properties"]["Roles"][0]["Ref"]
                    .as_str()
                    .map(str::to_string)
            })
            .flatten()
    })
}

/// Per-step isolation: the workers of every step run with a role that polls (and so receives,
/// heartbeats and completes) only the activities of the steps sharing its instance profile —
/// one, unless the pipeline names one profile for several steps.
pub fn isolation_problems(t: &Value, p: &Pipeline) -> Vec<String> {
    let mut out = vec![];
    for step in &p.steps {
        let Some(role) = worker_role_of(t, step) else {
            out.push(format!(
                "step {}: no instance profile for its workers in the template",
                step.name
            ));
            continue;
        };
        let sharing: BTreeSet<String> = p
            .steps
            .iter()
            .filter(|o| {
                o.name == step.name
                    || (!step.worker.instance_profile.is_empty()
                        && o.worker.instance_profile == step.worker.instance_profile)
            })
            .map(|o| activity_id(&o.name))
            .collect();
        let polled = activities_polled_by(t, &role);
        if polled != sharing {
            out.push(format!(
                "step {}: its workers' role {role} may poll {polled:?}, not only {sharing:?}",
                step.name
            ));
        }
    }
    out
}
