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

// ---------------------------------------------------------------------------------------------
// Policy evaluation over the template

/// The account, region and stack name [`resolve`] gives the pseudo parameters.
pub const SAMPLE_ACCOUNT: &str = "123456789012";
pub const SAMPLE_REGION: &str = "us-east-1";
pub const SAMPLE_STACK: &str = "build-on-aws-audit";

/// The concrete string a template value stands for, as CloudFormation would make it in
/// [`SAMPLE_REGION`] of [`SAMPLE_ACCOUNT`] for stack [`SAMPLE_STACK`]: `Ref` of a pseudo
/// parameter, a parameter (its default, else `<Name>`), an activity (its ARN), a log group (its
/// name) or any other resource (its logical id); `Fn::GetAtt … Arn` of a log group;
/// `Fn::Sub` and `Fn::Join`. `None` for anything else.
pub fn resolve(t: &Value, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) if o.len() == 1 => {
            let (k, a) = o.iter().next()?;
            match k.as_str() {
                "Ref" => resolve_ref(t, a.as_str()?),
                "Fn::GetAtt" => {
                    let (id, attr) = match a {
                        Value::Array(x) => (x.first()?.as_str()?, x.get(1)?.as_str()?),
                        Value::String(x) => x.split_once('.')?,
                        _ => return None,
                    };
                    resolve_get_att(t, id, attr)
                }
                "Fn::Sub" => {
                    let (text, vars) = match a {
                        Value::String(x) => (x.as_str(), None),
                        Value::Array(x) => (x.first()?.as_str()?, x.get(1)),
                        _ => return None,
                    };
                    let re = Regex::new(r"\$\{([^}!]+)\}").expect("static regex");
                    let mut out = String::new();
                    let mut last = 0;
                    for c in re.captures_iter(text) {
                        let m = c.get(0).expect("group 0");
                        let name = c.get(1).expect("group 1").as_str();
                        out.push_str(&text[last..m.start()]);
                        let val = match vars.and_then(|m| m.get(name)) {
                            Some(x) => resolve(t, x)?,
                            None => match name.split_once('.') {
                                Some((id, attr)) => resolve_get_att(t, id, attr)?,
                                None => resolve_ref(t, name)?,
                            },
                        };
                        out.push_str(&val);
                        last = m.end();
                    }
                    out.push_str(&text[last..]);
                    Some(out)
                }
                "Fn::Join" => {
                    let sep = a.get(0)?.as_str()?;
                    let parts = a.get(1)?.as_array()?;
                    let parts: Option<Vec<String>> = parts.iter().map(|x| resolve(t, x)).collect();
                    Some(parts?.join(sep))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn resolve_ref(t: &Value, name: &str) -> Option<String> {
    match name {
        "AWS::Partition" => return Some("aws".into()),
        "AWS::Region" => return Some(SAMPLE_REGION.into()),
        "AWS::AccountId" => return Some(SAMPLE_ACCOUNT.into()),
        "AWS::StackName" => return Some(SAMPLE_STACK.into()),
        "AWS::URLSuffix" => return Some("amazonaws.com".into()),
        _ => {}
    }
    if let Some(p) = t["Parameters"].get(name) {
        return Some(
            p["Default"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map_or_else(|| format!("<{name}>"), str::to_string),
        );
    }
    let r = t["Resources"].get(name)?;
    match r["Type"].as_str()? {
        "AWS::StepFunctions::Activity" => Some(format!(
            "arn:aws:states:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:activity:{}",
            resolve(t, &r["Properties"]["Name"])?
        )),
        "AWS::Logs::LogGroup" => resolve(t, &r["Properties"]["LogGroupName"]),
        _ => Some(name.to_string()),
    }
}

fn resolve_get_att(t: &Value, id: &str, attr: &str) -> Option<String> {
    let r = t["Resources"].get(id)?;
    match (r["Type"].as_str()?, attr) {
        ("AWS::Logs::LogGroup", "Arn") => Some(format!(
            "arn:aws:logs:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:log-group:{}:*",
            resolve_ref(t, id)?
        )),
        _ => None,
    }
}

/// IAM's wildcard match (`*` any run of characters, `?` one), case-sensitive as for ARNs.
pub fn iam_glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether any statement of role `role_id` allows `action` on the resource `arn`. Statements
/// with a condition count as allowing (the answer over-approximates what IAM allows, so "no"
/// is a proof of denial); a resource the evaluator cannot resolve counts as `*`.
pub fn role_allows(t: &Value, role_id: &str, action: &str, arn: &str) -> bool {
    iam_statements(t)
        .into_iter()
        .filter(|s| s.at.starts_with(&format!("{role_id}/")))
        .filter(|s| {
            s.actions
                .iter()
                .any(|a| iam_glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
        })
        .any(|s| {
            s.resources
                .iter()
                .any(|r| resolve(t, r).is_none_or(|pattern| iam_glob(&pattern, arn)))
        })
}

/// The Step Functions calls a worker makes on its activity (and the tasks it receives).
pub const WORKER_ACTIVITY_ACTIONS: [&str; 4] = [
    "states:GetActivityTask",
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
];

/// The CloudWatch Logs calls a worker makes on its log stream.
pub const WORKER_LOG_ACTIONS: [&str; 2] = ["logs:CreateLogStream", "logs:PutLogEvents"];

/// The ARN of `step`'s activity in the template, resolved.
pub fn activity_arn_of(t: &Value, step: &str) -> Option<String> {
    resolve_ref(t, &activity_id(step))
}

/// The ARN of a log stream a worker of `step` (instance `i-0123456789abcdef0`) writes.
pub fn log_stream_arn_of(t: &Value, step: &str) -> Option<String> {
    let group = resolve_ref(t, "WorkerLogGroup")?;
    Some(format!(
        "arn:aws:logs:{SAMPLE_REGION}:{SAMPLE_ACCOUNT}:log-group:{group}:log-stream:{}",
        boa_core::task::log_stream(step, "i-0123456789abcdef0")
    ))
}

/// Per-step isolation by policy evaluation: the role of `step`'s workers is allowed every
/// activity call and every log call on its own activity and log streams, and denied them on
/// every step that does not share its instance profile.
pub fn evaluation_problems(t: &Value, p: &Pipeline) -> Vec<String> {
    let mut out = vec![];
    for a in &p.steps {
        let Some(role) = worker_role_of(t, a) else {
            continue;
        };
        for b in &p.steps {
            let shares = a.name == b.name
                || (!a.worker.instance_profile.is_empty()
                    && a.worker.instance_profile == b.worker.instance_profile);
            let targets = [
                (
                    &WORKER_ACTIVITY_ACTIONS[..],
                    activity_arn_of(t, &b.name),
                    "activity",
                ),
                (
                    &WORKER_LOG_ACTIONS[..],
                    log_stream_arn_of(t, &b.name),
                    "log streams",
                ),
            ];
            for (actions, arn, what) in targets {
                let Some(arn) = arn else {
                    out.push(format!(
                        "step {}: cannot resolve the ARN of its {what} in the template",
                        b.name
                    ));
                    continue;
                };
                for action in actions {
                    let allowed = role_allows(t, &role, action, &arn);
                    if allowed && !shares {
                        out.push(format!(
                            "step {}: its workers' role {role} is allowed {action} on step {}'s {what} ({arn})",
                            a.name, b.name
                        ));
                    } else if !allowed && shares {
                        out.push(format!(
                            "step {}: its workers' role {role} is not allowed {action} on its own {what} ({arn})",
                            a.name
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Per-step isolation: the workers of every step run with a role that polls (and so receives,
/// heartbeats and completes) only the activities of the steps sharing its instance profile —
/// one, unless the pipeline names one profile for several steps — and writes only their log
/// streams ([`evaluation_problems`]).
pub fn isolation_problems(t: &Value, p: &Pipeline) -> Vec<String> {
    let mut out = evaluation_problems(t, p);
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
