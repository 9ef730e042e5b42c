//! The CloudFormation template of a build-on-aws stack, generated from a [`Pipeline`].
//!
//! Everything is named after the pipeline (`build-on-aws-<pipeline>-…`) so the names match what
//! the generator's concrete ARNs and `boa_core::stack` compute. Logical ids of the Lambda functions
//! and activities are the generator's placeholder keys (`LambdaParseInput`,
//! `ActivityMakeSourceTarball`), so `DefinitionSubstitutions` maps each key to the resource of the
//! same name.

use std::collections::BTreeMap;

use boa_core::Pipeline;
use boa_core::names::tags;
use boa_core::pipeline::Step;
use serde_json::{Map, Value, json};
use statemachine_gen::{Arns, LAMBDAS, Target};

/// Actions that are granted on `"Resource": "*"` because AWS offers no resource-level
/// permissions for them. Every other statement of the template names its resources.
///
/// - `ec2:DescribeInstances`: Describe* calls of EC2 support no resource-level permissions.
/// - `logs:*LogDelivery`, `logs:ListLogDeliveries`, `logs:PutResourcePolicy`,
///   `logs:DescribeResourcePolicies`, `logs:DescribeLogGroups`: what Step Functions needs to
///   deliver execution logs to CloudWatch Logs; AWS documents these with `"Resource": "*"`
///   ("IAM policies for logging to CloudWatch Logs", Step Functions developer guide).
pub const ALLOWED_WILDCARD_ACTIONS: &[&str] = &[
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
];

/// The cfn-lint checks ignored on the state machine resource (see the template's Metadata):
/// cfn-lint 1.58's Step Functions schema has no `Parameters` on Parallel states, which ASL allows
/// and the generator uses (E3601), and reporting that error inside a branch crashes its message
/// formatting (E1101 "sequence item N: expected str instance, int found"). deploy's tests lint the
/// template without this ignore and fail on any other finding.
pub const CFN_LINT_IGNORED_ON_STATE_MACHINE: &[&str] = &["E3601", "E1101"];

/// Tag keys a worker may set on itself (lease, busy/idle, `Name`): never the stack tag.
pub const WORKER_SELF_TAG_KEYS: &[&str] = &[tags::NAME, tags::WORK, tags::LEASE];

/// The Lambda environment variables the template sets (read by `boa_core::stack::StackConfig`
/// and the Lambdas' `main`).
pub use boa_core::names::stack as env;

/// Choices that are not in the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateOptions {
    /// `BOA_PIPELINE_FILE` as the Lambdas see it: the pipeline is bundled in each zip, so this is
    /// `/var/task/pipeline.toml` (Lambda unpacks the zip in `/var/task`).
    pub pipeline_file: String,
}

impl Default for TemplateOptions {
    fn default() -> Self {
        TemplateOptions {
            pipeline_file: "/var/task/pipeline.toml".into(),
        }
    }
}

/// Memory (MB) and timeout (s) of each function. start-workers launches with backoff on
/// throttling; the health check reads every running execution's history and launches too.
pub const FUNCTION_SIZES: [(&str, u32, u32); 6] = [
    ("parse-input", 128, 10),
    ("start-workers", 256, 120),
    ("health-check", 256, 300),
    ("record-result", 128, 10),
    // Reads every task record of a run back (32 at a time): 10,000 records in well under a minute.
    ("normalize-results", 512, 300),
    ("check-for-failures", 128, 10),
];

/// `rate(5 minutes)`: how often the health check runs.
pub const HEALTH_CHECK_SCHEDULE: &str = "rate(5 minutes)";

/// The prefix of every resource name: `build-on-aws-<pipeline>`. Also the default stack name and
/// the state machine's name.
pub fn base_name(p: &Pipeline) -> String {
    format!("build-on-aws-{}", p.name)
}

/// `build-on-aws-<pipeline>-<lambda>` (what `Arns::Concrete` computes).
pub fn function_name(p: &Pipeline, lambda: &str) -> String {
    format!("{}-{lambda}", base_name(p))
}

/// The state machine's name; fixed so the Lambdas can get its ARN without a circular `Ref`.
pub fn state_machine_name(p: &Pipeline) -> String {
    base_name(p)
}

/// The lookahead state machine's name (see `boa_core::lookahead`).
pub fn lookahead_machine_name(p: &Pipeline) -> String {
    format!("{}-lookahead", base_name(p))
}

/// The lookahead state machine's ARN, for `Fn::Sub` (not `Ref`: the machine depends on
/// start-workers, which starts it).
fn lookahead_machine_arn(p: &Pipeline) -> String {
    format!(
        "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{}",
        lookahead_machine_name(p)
    )
}

/// The CloudWatch Logs group of the workers.
pub fn worker_log_group_name(p: &Pipeline) -> String {
    format!("/build-on-aws/{}/workers", p.name)
}

/// Logical id of a Lambda function (= its placeholder key, e.g. `LambdaParseInput`).
pub fn function_id(lambda: &str) -> String {
    Arns::lambda_key(lambda)
}

/// Logical id of a step's activity (= its placeholder key, e.g. `ActivityMakeSourceTarball`).
pub fn activity_id(step: &str) -> String {
    Arns::activity_key(step)
}

/// The template parameter holding a function's zip key (relative to `ArtifactPrefix`),
/// e.g. `CodeParseInput`.
pub fn code_parameter(lambda: &str) -> String {
    format!("Code{}", &function_id(lambda)["Lambda".len()..])
}

/// Names the generated template would use that AWS would refuse (too long), each with the fix.
pub fn name_problems(p: &Pipeline) -> Vec<String> {
    let mut out = vec![];
    for l in LAMBDAS {
        let n = function_name(p, l);
        if n.len() > 64 {
            out.push(format!(
                "Lambda function name '{n}' is {} characters; AWS allows 64: shorten the pipeline name '{}'",
                n.len(),
                p.name
            ));
        }
    }
    for s in &p.steps {
        let n = statemachine_gen::Arns::activity_key(&s.name);
        let name = format!("{}-{}", base_name(p), s.name);
        if name.len() > 80 {
            out.push(format!(
                "activity name '{name}' ({n}) is {} characters; AWS allows 80: shorten the pipeline name or the step name",
                name.len()
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Small CloudFormation helpers

fn sub(s: impl Into<String>) -> Value {
    json!({ "Fn::Sub": s.into() })
}

fn r#ref(id: &str) -> Value {
    json!({ "Ref": id })
}

fn get_att(id: &str, attr: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attr] })
}

/// One IAM statement. `condition` is omitted when `Value::Null`.
fn stmt(sid: &str, actions: &[&str], resources: Vec<Value>, condition: Value) -> Value {
    let mut m = Map::new();
    m.insert("Sid".into(), json!(sid));
    m.insert("Effect".into(), json!("Allow"));
    m.insert("Action".into(), json!(actions));
    m.insert("Resource".into(), Value::Array(resources));
    if !condition.is_null() {
        m.insert("Condition".into(), condition);
    }
    Value::Object(m)
}

/// A role assumable by `service`, with one inline policy.
fn role(service: &str, policy_name: &str, statements: Vec<Value>, extra_trust: Value) -> Value {
    let mut trust = json!({
        "Effect": "Allow",
        "Principal": { "Service": service },
        "Action": "sts:AssumeRole",
    });
    if !extra_trust.is_null() {
        trust["Condition"] = extra_trust;
    }
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": { "Version": "2012-10-17", "Statement": [trust] },
            "Policies": [{
                "PolicyName": policy_name,
                "PolicyDocument": { "Version": "2012-10-17", "Statement": statements },
            }],
            "Tags": [{ "Key": tags::STACK, "Value": r#ref("AWS::StackName") }],
        }
    })
}

fn log_group(name: Value) -> Value {
    json!({
        "Type": "AWS::Logs::LogGroup",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "LogGroupName": name,
            "RetentionInDays": r#ref("LogRetentionDays"),
        }
    })
}

fn ec2_arn(kind: &str) -> Value {
    sub(format!(
        "arn:${{AWS::Partition}}:ec2:${{AWS::Region}}:${{AWS::AccountId}}:{kind}/*"
    ))
}

fn camel_id(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `s3://bucket/a/{version}/b` → (`bucket`, `a/*/b`): the objects a done-check may read.
fn done_when_object(raw: &str) -> Option<(String, String)> {
    let rest = raw.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    let mut k = String::new();
    let mut depth = 0;
    for ch in key.chars() {
        match ch {
            '{' => {
                depth += 1;
                if depth == 1 {
                    k.push('*');
                }
            }
            '}' => depth -= 1,
            _ if depth > 0 => {}
            _ => k.push(ch),
        }
    }
    Some((bucket.to_string(), k))
}

// ---------------------------------------------------------------------------------------------
// Worker roles

/// A group of steps that share an instance profile: `""` = the stack's default profile.
struct WorkerGroup<'p> {
    /// The instance profile the steps name, or empty: the step gets one of its own.
    profile: String,
    steps: Vec<&'p Step>,
}

impl WorkerGroup<'_> {
    /// `WorkerRole<Step>` for a step's own role, `WorkerRole<Profile>` for a named profile.
    fn role_id(&self) -> String {
        format!("WorkerRole{}", self.suffix())
    }
    fn profile_id(&self) -> String {
        format!("WorkerInstanceProfile{}", self.suffix())
    }
    fn suffix(&self) -> String {
        if self.profile.is_empty() {
            self.steps[0].name.clone()
        } else {
            camel_id(&self.profile)
        }
    }
    /// The instance profile's name: the named one, or `<stack>-<Step>`, which start-workers
    /// derives from `BOA_WORKER_PROFILE` = `<stack>-{step}`.
    fn profile_name(&self) -> Value {
        if self.profile.is_empty() {
            own_profile_name(&self.steps[0].name)
        } else {
            json!(self.profile)
        }
    }
}

/// The name of a step's own instance profile, `<stack>-<Step>` (with `{step}`: the pattern
/// start-workers fills in from `BOA_WORKER_PROFILE`).
pub fn own_profile_name(step: &str) -> Value {
    sub(format!("${{AWS::StackName}}-{step}"))
}

/// The log streams the workers of `step` may create and write: `<Step>/*` of the worker log group.
pub fn own_log_streams(step: &str) -> Value {
    sub(format!(
        "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{WorkerLogGroup}}:log-stream:{}*",
        boa_core::task::log_stream_prefix(step)
    ))
}

/// One worker role per step: a worker of one step can poll only its own activity, write only its
/// own log streams, and gets only the policies attached to its own role (e.g. only the publisher
/// may write the apt bucket).
/// Steps that name the same `instance_profile` share it, as their pipeline says.
fn worker_groups(p: &Pipeline) -> Vec<WorkerGroup<'_>> {
    let mut named: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    let mut out = vec![];
    for s in &p.steps {
        if s.worker.instance_profile.is_empty() {
            out.push(WorkerGroup {
                profile: String::new(),
                steps: vec![s],
            });
        } else {
            named
                .entry(s.worker.instance_profile.as_str())
                .or_default()
                .push(s);
        }
    }
    out.extend(named.into_iter().map(|(k, steps)| WorkerGroup {
        profile: k.to_string(),
        steps,
    }));
    out
}

fn worker_role(g: &WorkerGroup<'_>) -> Value {
    let activities: Vec<Value> = g
        .steps
        .iter()
        .map(|s| r#ref(&activity_id(&s.name)))
        .collect();
    let statements = vec![
        stmt(
            "PollOwnActivities",
            &[
                "states:GetActivityTask",
                "states:SendTaskSuccess",
                "states:SendTaskFailure",
                "states:SendTaskHeartbeat",
            ],
            activities,
            Value::Null,
        ),
        stmt(
            "ReadArtifacts",
            &["s3:GetObject"],
            vec![sub(
                "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/*",
            )],
            Value::Null,
        ),
        // Only the streams of its own steps: `<Step>/w_<instance-id>` (boa_core::task::log_stream).
        stmt(
            "WriteOwnLogStreams",
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            g.steps.iter().map(|s| own_log_streams(&s.name)).collect(),
            Value::Null,
        ),
        // A worker may tag only itself, only if it belongs to this stack, and only the keys it
        // keeps (never the stack tag). `ec2:SourceInstanceARN` is the documented condition key
        // "ARN of the instance from which the request originated" (Service Authorization
        // Reference, Amazon EC2 condition keys); it is compared with `aws:ARN`, the ARN of the
        // resource the request acts on — the pattern AWS support articles use to let an
        // instance act on itself. The value is written literally (not inside Fn::Sub), so the
        // `${ec2:SourceInstanceARN}` policy variable reaches IAM untouched.
        stmt(
            "TagSelfOnly",
            &["ec2:CreateTags"],
            vec![ec2_arn("instance")],
            json!({
                "StringEquals": {
                    "aws:ARN": "${ec2:SourceInstanceARN}",
                    format!("ec2:ResourceTag/{}", tags::STACK): r#ref("AWS::StackName"),
                },
                "ForAllValues:StringEquals": { "aws:TagKeys": WORKER_SELF_TAG_KEYS },
            }),
        ),
    ];
    role(
        "ec2.amazonaws.com",
        "build-on-aws-worker",
        statements,
        Value::Null,
    )
}

// ---------------------------------------------------------------------------------------------
// Lambda roles

fn lambda_log_statement(lambda: &str) -> Value {
    stmt(
        "OwnLogs",
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        vec![get_att(&format!("{}LogGroup", function_id(lambda)), "Arn")],
        Value::Null,
    )
}

/// What start-workers and the health check need to launch workers.
fn launch_statements(p: &Pipeline, groups: &[WorkerGroup<'_>]) -> Vec<Value> {
    let mut ssm: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| s.worker.ami.strip_prefix("resolve:ssm:"))
        .map(|path| {
            let path = path.trim_start_matches('/');
            if path.starts_with("aws/service/") {
                // Public parameters live in no account.
                format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}::parameter/{path}")
            } else {
                format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/{path}")
            }
        })
        .collect();
    ssm.sort();
    ssm.dedup();
    // Nothing can launch a weaker instance with this role than start-workers does: IMDSv2 only,
    // the pipeline's largest hop limit, encrypted volumes.
    let max_hop = p
        .steps
        .iter()
        .map(|s| s.worker.imds_hop_limit)
        .max()
        .unwrap_or(1);
    let mut out = vec![
        stmt(
            "LaunchTaggedInstances",
            &["ec2:RunInstances"],
            vec![ec2_arn("instance")],
            json!({
                "StringEquals": {
                    format!("aws:RequestTag/{}", tags::STACK): r#ref("AWS::StackName"),
                    "ec2:MetadataHttpTokens": "required",
                },
                "NumericLessThanEquals": { "ec2:MetadataHttpPutResponseHopLimit": max_hop },
            }),
        ),
        stmt(
            "LaunchEncryptedVolumes",
            &["ec2:RunInstances"],
            vec![ec2_arn("volume")],
            json!({ "Bool": { "ec2:Encrypted": "true" } }),
        ),
        stmt(
            "LaunchWithResources",
            &["ec2:RunInstances"],
            vec![
                // AMIs have no account in their ARN.
                sub("arn:${AWS::Partition}:ec2:${AWS::Region}::image/*"),
                ec2_arn("subnet"),
                ec2_arn("security-group"),
                ec2_arn("network-interface"),
                ec2_arn("spot-instances-request"),
            ],
            Value::Null,
        ),
        stmt(
            "TagAtLaunch",
            &["ec2:CreateTags"],
            vec![
                ec2_arn("instance"),
                ec2_arn("volume"),
                ec2_arn("spot-instances-request"),
            ],
            json!({
                "StringEquals": {
                    "ec2:CreateAction": "RunInstances",
                    format!("aws:RequestTag/{}", tags::STACK): r#ref("AWS::StackName"),
                }
            }),
        ),
        stmt(
            // DescribeImages: the AMI's root device, which the encrypted root volume replaces.
            "DescribeInstances",
            &["ec2:DescribeInstances", "ec2:DescribeImages"],
            vec![json!("*")],
            Value::Null,
        ),
        stmt(
            "PassWorkerRoles",
            &["iam:PassRole"],
            groups
                .iter()
                .map(|g| get_att(&g.role_id(), "Arn"))
                .collect(),
            json!({ "StringEquals": { "iam:PassedToService": "ec2.amazonaws.com" } }),
        ),
        stmt(
            "PresignArtifacts",
            &["s3:GetObject"],
            vec![sub(
                "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/*",
            )],
            Value::Null,
        ),
    ];
    if !ssm.is_empty() {
        out.push(stmt(
            "ResolveAmiParameters",
            &["ssm:GetParameters", "ssm:GetParameter"],
            ssm.into_iter().map(sub).collect(),
            Value::Null,
        ));
    }
    out
}

/// The stack's own records in the artifact bucket, each under `<ArtifactPrefix>/<folder>/`:
/// `runs/` (attempt records, one object per Prepare entry) and `locks/` (exclusive steps' lock
/// generations, created with If-None-Match). Written and listed, never deleted.
fn stack_records_statements(folders: &[&str]) -> Vec<Value> {
    let objects: Vec<Value> = folders
        .iter()
        .map(|f| {
            sub(format!(
                "arn:${{AWS::Partition}}:s3:::${{ArtifactBucket}}/${{ArtifactPrefix}}/{f}/*"
            ))
        })
        .collect();
    let prefixes: Vec<Value> = folders
        .iter()
        .map(|f| sub(format!("${{ArtifactPrefix}}/{f}/*")))
        .collect();
    vec![
        stmt("WriteStackRecords", &["s3:PutObject"], objects, Value::Null),
        stmt(
            "ListStackRecords",
            &["s3:ListBucket"],
            vec![sub("arn:${AWS::Partition}:s3:::${ArtifactBucket}")],
            json!({ "StringLike": { "s3:prefix": prefixes } }),
        ),
    ]
}

fn stack_resource_tag() -> Value {
    json!({
        "StringEquals": { format!("ec2:ResourceTag/{}", tags::STACK): r#ref("AWS::StackName") }
    })
}

fn lambda_statements(p: &Pipeline, lambda: &str, groups: &[WorkerGroup<'_>]) -> Vec<Value> {
    let mut out = vec![lambda_log_statement(lambda)];
    let sm_arn = format!(
        "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{}",
        state_machine_name(p)
    );
    let exec_arn = format!(
        "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{}:*",
        state_machine_name(p)
    );
    match lambda {
        "start-workers" => {
            out.extend(launch_statements(p, groups));
            out.push(stmt(
                "RetagOwnInstances",
                &["ec2:CreateTags"],
                vec![ec2_arn("instance")],
                stack_resource_tag(),
            ));
            // Attempt records: one object per Prepare entry under the execution's prefix,
            // counted with ListObjectsV2 (limited to that prefix).
            out.extend(stack_records_statements(&["runs", "locks"]));
            // Lookahead: reads task records and expected ends under runs/, and the duration
            // history; starts executions of the lookahead machine only.
            out.push(stmt(
                "ReadRunsAndDurations",
                &["s3:GetObject"],
                ["runs", "durations"]
                    .iter()
                    .map(|f| {
                        sub(format!(
                            "arn:${{AWS::Partition}}:s3:::${{ArtifactBucket}}/${{ArtifactPrefix}}/{f}/*"
                        ))
                    })
                    .collect(),
                Value::Null,
            ));
            // Hand-over history: one object per step, rewritten by every Prepare.
            out.push(stmt(
                "KeepHandOverHistory",
                &["s3:PutObject"],
                vec![sub(
                    "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/durations/hand-over/*",
                )],
                Value::Null,
            ));
            out.push(stmt(
                "ListDurations",
                &["s3:ListBucket"],
                vec![sub("arn:${AWS::Partition}:s3:::${ArtifactBucket}")],
                json!({ "StringLike": { "s3:prefix": [sub("${ArtifactPrefix}/durations/*")] } }),
            ));
            out.push(stmt(
                "StartLookahead",
                &["states:StartExecution"],
                vec![sub(lookahead_machine_arn(p))],
                Value::Null,
            ));
            // A lookahead that fires after its run ended starts nothing: it asks whether the
            // run's execution still runs.
            out.push(stmt(
                "CheckRunStillRuns",
                &["states:DescribeExecution"],
                vec![sub(exec_arn.clone())],
                Value::Null,
            ));
            // done_when checks: HeadObject needs s3:GetObject; ListBucket turns "missing" into
            // 404 instead of 403.
            let mut objects = vec![];
            let mut buckets = vec![];
            for s in &p.steps {
                for t in &s.done_when {
                    if let Some((b, k)) = done_when_object(&t.raw) {
                        objects.push(format!("arn:${{AWS::Partition}}:s3:::{b}/{k}"));
                        buckets.push(format!("arn:${{AWS::Partition}}:s3:::{b}"));
                    }
                }
            }
            objects.sort();
            objects.dedup();
            buckets.sort();
            buckets.dedup();
            if !objects.is_empty() {
                out.push(stmt(
                    "DoneChecks",
                    &["s3:GetObject"],
                    objects.into_iter().map(sub).collect(),
                    Value::Null,
                ));
                out.push(stmt(
                    "DoneCheckBuckets",
                    &["s3:ListBucket"],
                    buckets.into_iter().map(sub).collect(),
                    Value::Null,
                ));
            }
        }
        "record-result" => {
            // One object per task under runs/<execution>/tasks/: written, never read or listed.
            out.push(stmt(
                "WriteTaskRecords",
                &["s3:PutObject"],
                vec![sub(
                    "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/runs/*",
                )],
                Value::Null,
            ));
            // Duration history: durations/<Step>/<item>.json, read and rewritten per successful
            // task; listed first (limited to that prefix) so a missing entry is not a 403.
            out.push(stmt(
                "KeepDurationHistory",
                &["s3:GetObject", "s3:PutObject"],
                vec![sub(
                    "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/durations/*",
                )],
                Value::Null,
            ));
            out.push(stmt(
                "ListDurationHistory",
                &["s3:ListBucket"],
                vec![sub("arn:${AWS::Partition}:s3:::${ArtifactBucket}")],
                json!({ "StringLike": { "s3:prefix": [sub("${ArtifactPrefix}/durations/*")] } }),
            ));
        }
        "normalize-results" => {
            // Lists and reads the run's task records back and writes runs/<execution>/results.json.
            out.extend(stack_records_statements(&["runs"]));
            out.push(stmt(
                "ReadTaskRecords",
                &["s3:GetObject"],
                vec![sub(
                    "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/runs/*",
                )],
                Value::Null,
            ));
        }
        "health-check" => {
            out.extend(launch_statements(p, groups));
            out.extend(stack_records_statements(&["locks"]));
            out.push(stmt(
                "ManageOwnInstances",
                &["ec2:TerminateInstances", "ec2:CreateTags"],
                vec![ec2_arn("instance")],
                stack_resource_tag(),
            ));
            out.push(stmt(
                "ListRunningExecutions",
                &["states:ListExecutions"],
                vec![sub(sm_arn)],
                Value::Null,
            ));
            out.push(stmt(
                "ReadExecutionHistory",
                &["states:GetExecutionHistory", "states:DescribeExecution"],
                vec![sub(exec_arn)],
                Value::Null,
            ));
            if p.outer_axis().distributed {
                // The Distributed Map's running children: ListMapRuns on the execution,
                // ListExecutions on each Map Run, and each child's history.
                let base = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}";
                let sm = state_machine_name(p);
                out.push(stmt(
                    "ListMapRuns",
                    &["states:ListMapRuns"],
                    vec![sub(format!("{base}:execution:{sm}:*"))],
                    Value::Null,
                ));
                out.push(stmt(
                    "ListChildExecutions",
                    &["states:ListExecutions"],
                    vec![sub(format!("{base}:mapRun:{sm}/*"))],
                    Value::Null,
                ));
                out.push(stmt(
                    "ReadChildHistory",
                    &["states:GetExecutionHistory", "states:DescribeExecution"],
                    vec![sub(format!("{base}:execution:{sm}/*"))],
                    Value::Null,
                ));
            }
        }
        _ => {}
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The template

/// The CloudFormation template (JSON) of the stack for `p`. Deterministic: the same pipeline and
/// options always give the same bytes.
pub fn template(p: &Pipeline, opts: &TemplateOptions) -> Value {
    let base = base_name(p);
    let groups = worker_groups(p);
    let definition = statemachine_gen::generate(p, &Arns::Placeholders);
    let definition_string =
        serde_json::to_string_pretty(&definition).expect("a JSON value serialises");

    let mut params = Map::new();
    params.insert(
        "ArtifactBucket".into(),
        json!({
            "Type": "String",
            "Description": "Existing S3 bucket holding the Lambda zips, the worker binary and the scripts (deploy.sh creates it if missing).",
            "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            "ConstraintDescription": "an S3 bucket name: 3-63 lower-case letters, digits, '.' or '-'",
        }),
    );
    params.insert(
        "ArtifactPrefix".into(),
        json!({
            "Type": "String",
            "Default": format!("build-on-aws/{}", p.name),
            "Description": "Key prefix of this stack's artifacts in ArtifactBucket (no trailing '/'). Workers may read only below it.",
            "AllowedPattern": "^[A-Za-z0-9._/-]*[A-Za-z0-9._-]$",
        }),
    );
    for l in LAMBDAS {
        params.insert(
            code_parameter(l),
            json!({
                "Type": "String",
                "Description": format!("Key of the {l} zip, relative to ArtifactPrefix (deploy.sh uses lambda/{l}-<sha256>.zip)."),
                "AllowedPattern": "^[A-Za-z0-9._/-]+\\.zip$",
            }),
        );
    }
    params.insert(
        "WorkerBinaryKey".into(),
        json!({
            "Type": "String",
            "Default": "worker/worker",
            "Description": "Key of the worker binary, relative to ArtifactPrefix.",
            "AllowedPattern": "^[A-Za-z0-9._/-]+$",
        }),
    );
    params.insert(
        "WorkerBinarySha256".into(),
        json!({
            "Type": "String",
            "Description": "SHA-256 of the worker binary (deploy.sh computes it): the userdata stub runs no other binary.",
            "AllowedPattern": "^[0-9a-f]{64}$",
        }),
    );
    params.insert(
        "ScriptsKey".into(),
        json!({
            "Type": "String",
            "Default": "scripts",
            "Description": "Folder (relative to ArtifactPrefix) holding pipeline.toml and the step scripts at their pipeline-relative paths.",
            "AllowedPattern": "^[A-Za-z0-9._/-]*[A-Za-z0-9._-]$",
        }),
    );
    params.insert(
        "Architecture".into(),
        json!({
            "Type": "String",
            "Default": "x86_64",
            "AllowedValues": ["x86_64", "arm64"],
            "Description": "Instruction set of the Lambda functions (must match how the zips were built: deploy.sh --arch).",
        }),
    );
    params.insert(
        "WorkerAmi".into(),
        json!({
            "Type": "String",
            "Default": "",
            "Description": "Overrides the pipeline's worker AMI for every step (ami-… or resolve:ssm:/path); empty = as in pipeline.toml.",
        }),
    );
    params.insert(
        "Subnets".into(),
        json!({
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "Subnets for workers of steps that name none; empty = the default VPC.",
        }),
    );
    params.insert(
        "SecurityGroups".into(),
        json!({
            "Type": "CommaDelimitedList",
            "Default": "",
            "Description": "Security groups for workers of steps that name none (ignored when CreateWorkerSecurityGroup is true).",
        }),
    );
    params.insert(
        "CreateWorkerSecurityGroup".into(),
        json!({
            "Type": "String",
            "Default": "false",
            "AllowedValues": ["true", "false"],
            "Description": "Create an egress-only security group for workers in VpcId.",
        }),
    );
    params.insert(
        "VpcId".into(),
        json!({
            "Type": "String",
            "Default": "",
            "Description": "VPC of the worker security group (the VPC of Subnets); required when CreateWorkerSecurityGroup is true.",
            "AllowedPattern": "^(vpc-[0-9a-f]+)?$",
        }),
    );
    params.insert(
        "LogRetentionDays".into(),
        json!({
            "Type": "Number",
            "Default": "30",
            "AllowedValues": ["1", "3", "5", "7", "14", "30", "60", "90", "120", "150", "180", "365", "400", "545", "731", "1096", "1827", "2192", "2557", "2922", "3288", "3653"],
            "Description": "Days CloudWatch keeps the logs of the Lambdas, the state machine and the workers.",
        }),
    );

    let mut res = Map::new();

    // Activities.
    for s in &p.steps {
        res.insert(
            activity_id(&s.name),
            json!({
                "Type": "AWS::StepFunctions::Activity",
                "Properties": {
                    "Name": format!("{base}-{}", s.name),
                    "Tags": [{ "Key": tags::STACK, "Value": r#ref("AWS::StackName") }],
                }
            }),
        );
    }

    // Lambda functions, each with its log group and role.
    let common_env = {
        let mut e = Map::new();
        e.insert(env::STACK.into(), r#ref("AWS::StackName"));
        // Not `Ref StateMachine`: the state machine depends on the functions (circular).
        e.insert(
            env::STATE_MACHINE_ARN.into(),
            sub(format!(
                "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{}",
                state_machine_name(p)
            )),
        );
        e.insert(
            env::ARTIFACTS.into(),
            sub("s3://${ArtifactBucket}/${ArtifactPrefix}"),
        );
        e.insert(env::LOG_GROUP.into(), r#ref("WorkerLogGroup"));
        e.insert(env::PIPELINE_FILE.into(), json!(opts.pipeline_file));
        e.insert(
            env::SCRIPTS.into(),
            sub("s3://${ArtifactBucket}/${ArtifactPrefix}/${ScriptsKey}"),
        );
        e.insert(
            env::WORKER_BINARY.into(),
            sub("s3://${ArtifactBucket}/${ArtifactPrefix}/${WorkerBinaryKey}"),
        );
        e.insert(env::WORKER_SHA256.into(), r#ref("WorkerBinarySha256"));
        e.insert(
            env::LOOKAHEAD_MACHINE_ARN.into(),
            sub(lookahead_machine_arn(p)),
        );
        // Each step's own profile is `<stack>-<Step>` (see WorkerGroup::profile_name).
        e.insert(
            env::WORKER_PROFILE.into(),
            own_profile_name(boa_core::stack::STEP_PLACEHOLDER),
        );
        e.insert(
            env::SUBNETS.into(),
            json!({ "Fn::Join": [",", r#ref("Subnets")] }),
        );
        e.insert(
            env::SECURITY_GROUPS.into(),
            json!({ "Fn::If": [
                "CreateWorkerSecurityGroupCondition",
                get_att("WorkerSecurityGroup", "GroupId"),
                { "Fn::Join": [",", r#ref("SecurityGroups")] },
            ]}),
        );
        e.insert(env::WORKER_AMI.into(), r#ref("WorkerAmi"));
        e
    };
    for (l, memory, timeout) in FUNCTION_SIZES {
        let id = function_id(l);
        let name = function_name(p, l);
        res.insert(
            format!("{id}LogGroup"),
            log_group(json!(format!("/aws/lambda/{name}"))),
        );
        res.insert(
            format!("{id}Role"),
            role(
                "lambda.amazonaws.com",
                &format!("build-on-aws-{l}"),
                lambda_statements(p, l, &groups),
                Value::Null,
            ),
        );
        res.insert(
            id.clone(),
            json!({
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": name,
                    "Description": format!("build-on-aws {l} ({})", p.name),
                    "Runtime": "provided.al2023",
                    "Handler": "bootstrap",
                    "Architectures": [r#ref("Architecture")],
                    "MemorySize": memory,
                    "Timeout": timeout,
                    "Role": get_att(&format!("{id}Role"), "Arn"),
                    "Code": {
                        "S3Bucket": r#ref("ArtifactBucket"),
                        "S3Key": sub(format!("${{ArtifactPrefix}}/${{{}}}", code_parameter(l))),
                    },
                    "Environment": { "Variables": common_env.clone() },
                    "LoggingConfig": { "LogGroup": r#ref(&format!("{id}LogGroup")) },
                    "Tags": [{ "Key": tags::STACK, "Value": r#ref("AWS::StackName") }],
                }
            }),
        );
    }

    // The state machine.
    let keys = Arns::placeholder_keys(p);
    let mut substitutions = Map::new();
    let mut invoked = vec![];
    for (key, target) in &keys {
        let v = match target {
            Target::Lambda(l) => {
                let arn = get_att(&function_id(l), "Arn");
                invoked.push(arn.clone());
                arn
            }
            // An activity's Ref is its ARN.
            Target::Activity(s) => r#ref(&activity_id(s)),
            Target::Parameter(k) => r#ref(k),
        };
        substitutions.insert(key.clone(), v);
    }
    let mut machine_statements = vec![];
    if p.outer_axis().distributed {
        // A Distributed Map: its ResultWriter writes under runs/, and it starts, reads and
        // stops its own child executions (`<machine>/<label>:<id>`).
        machine_statements.push(stmt(
            "StartChildExecutions",
            &["states:StartExecution"],
            vec![sub(format!(
                "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{}",
                state_machine_name(p)
            ))],
            Value::Null,
        ));
        machine_statements.push(stmt(
            "ManageChildExecutions",
            &["states:DescribeExecution", "states:StopExecution"],
            vec![sub(format!(
                "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{}/*",
                state_machine_name(p)
            ))],
            Value::Null,
        ));
        machine_statements.push(stmt(
            "WriteMapResults",
            &[
                "s3:PutObject",
                "s3:GetObject",
                "s3:ListMultipartUploadParts",
                "s3:AbortMultipartUpload",
            ],
            vec![sub(
                "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/runs/*",
            )],
            Value::Null,
        ));
    }
    res.insert(
        "StateMachineLogGroup".into(),
        log_group(json!(format!("/aws/vendedlogs/states/{base}"))),
    );
    res.insert(
        "StateMachineRole".into(),
        role(
            "states.amazonaws.com",
            "build-on-aws-state-machine",
            vec![stmt(
                "InvokeOwnFunctions",
                &["lambda:InvokeFunction"],
                invoked,
                Value::Null,
            )]
            .into_iter()
            .chain(machine_statements)
            .chain([stmt(
                "DeliverExecutionLogs",
                &[
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups",
                ],
                vec![json!("*")],
                Value::Null,
            )])
            .collect(),
            json!({ "StringEquals": { "aws:SourceAccount": r#ref("AWS::AccountId") } }),
        ),
    );
    res.insert(
        "StateMachine".into(),
        json!({
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": state_machine_name(p),
                "StateMachineType": "STANDARD",
                "DefinitionString": definition_string,
                "DefinitionSubstitutions": substitutions,
                "RoleArn": get_att("StateMachineRole", "Arn"),
                "LoggingConfiguration": {
                    "Level": "ERROR",
                    "IncludeExecutionData": false,
                    "Destinations": [{
                        "CloudWatchLogsLogGroup": { "LogGroupArn": get_att("StateMachineLogGroup", "Arn") }
                    }],
                },
                "Tags": [{ "Key": tags::STACK, "Value": r#ref("AWS::StackName") }],
            },
            // See CFN_LINT_IGNORED_ON_STATE_MACHINE: known cfn-lint false positives, this resource only.
            "Metadata": { "cfn-lint": { "config": { "ignore_checks": CFN_LINT_IGNORED_ON_STATE_MACHINE } } },
        }),
    );

    // The lookahead machine: a Wait, then start-workers (boa_core::lookahead).
    let lookahead = statemachine_gen::lookahead(p, &Arns::Placeholders);
    let start_workers = get_att(&function_id("start-workers"), "Arn");
    res.insert(
        "LookaheadStateMachineRole".into(),
        role(
            "states.amazonaws.com",
            "build-on-aws-lookahead",
            vec![stmt(
                "InvokeStartWorkers",
                &["lambda:InvokeFunction"],
                vec![start_workers.clone()],
                Value::Null,
            )],
            json!({ "StringEquals": { "aws:SourceAccount": r#ref("AWS::AccountId") } }),
        ),
    );
    res.insert(
        "LookaheadStateMachine".into(),
        json!({
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": lookahead_machine_name(p),
                "StateMachineType": "STANDARD",
                "DefinitionString": serde_json::to_string_pretty(&lookahead).expect("a JSON value serialises"),
                "DefinitionSubstitutions": { Arns::lambda_key("start-workers"): start_workers },
                "RoleArn": get_att("LookaheadStateMachineRole", "Arn"),
                "Tags": [{ "Key": tags::STACK, "Value": r#ref("AWS::StackName") }],
            },
            "Metadata": { "cfn-lint": { "config": { "ignore_checks": CFN_LINT_IGNORED_ON_STATE_MACHINE } } },
        }),
    );

    // The health check schedule.
    let hc = function_id("health-check");
    res.insert(
        "HealthCheckScheduleRole".into(),
        role(
            "scheduler.amazonaws.com",
            "build-on-aws-health-check-schedule",
            vec![stmt(
                "InvokeHealthCheck",
                &["lambda:InvokeFunction"],
                vec![get_att(&hc, "Arn")],
                Value::Null,
            )],
            json!({ "StringEquals": { "aws:SourceAccount": r#ref("AWS::AccountId") } }),
        ),
    );
    res.insert(
        "HealthCheckSchedule".into(),
        json!({
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "Name": format!("{base}-health-check"),
                "Description": "build-on-aws: start workers for tasks nobody takes, reap orphans",
                "ScheduleExpression": HEALTH_CHECK_SCHEDULE,
                "FlexibleTimeWindow": { "Mode": "OFF" },
                "State": "ENABLED",
                "Target": {
                    "Arn": get_att(&hc, "Arn"),
                    "RoleArn": get_att("HealthCheckScheduleRole", "Arn"),
                    // The round's identity: a retried invocation of one round keeps the same
                    // scheduled time (and so the same ClientTokens); the next round has its own.
                    "Input": "{\"round\": \"<aws.scheduler.scheduled-time>\"}",
                    "RetryPolicy": { "MaximumRetryAttempts": 0 },
                },
            }
        }),
    );

    // Workers: log group, roles and instance profiles, optional security group.
    res.insert(
        "WorkerLogGroup".into(),
        log_group(json!(worker_log_group_name(p))),
    );
    for g in &groups {
        res.insert(g.role_id(), worker_role(g));
        let mut props = Map::new();
        props.insert("InstanceProfileName".into(), g.profile_name());
        props.insert("Roles".into(), json!([r#ref(&g.role_id())]));
        res.insert(
            g.profile_id(),
            json!({ "Type": "AWS::IAM::InstanceProfile", "Properties": props }),
        );
    }
    res.insert(
        "WorkerSecurityGroup".into(),
        json!({
            "Type": "AWS::EC2::SecurityGroup",
            "Condition": "CreateWorkerSecurityGroupCondition",
            "Properties": {
                "GroupDescription": format!("{base} workers: no inbound, all outbound"),
                "VpcId": r#ref("VpcId"),
                "SecurityGroupEgress": [{
                    "IpProtocol": "-1",
                    "CidrIp": "0.0.0.0/0",
                    "Description": "workers fetch sources, packages and AWS APIs",
                }],
                "Tags": [{ "Key": tags::STACK, "Value": r#ref("AWS::StackName") }],
            }
        }),
    );

    let mut outputs = Map::new();
    outputs.insert(
        "StateMachineArn".into(),
        json!({ "Description": "Start runs with `build-on-aws run`", "Value": r#ref("StateMachine") }),
    );
    outputs.insert(
        "ArtifactBucket".into(),
        json!({ "Value": sub("s3://${ArtifactBucket}/${ArtifactPrefix}") }),
    );
    outputs.insert(
        "ConsoleUrl".into(),
        json!({
            "Description": "The state machine in the Step Functions console",
            "Value": sub("https://${AWS::Region}.console.aws.amazon.com/states/home?region=${AWS::Region}#/statemachines/view/${StateMachine}"),
        }),
    );
    outputs.insert(
        "WorkerLogGroup".into(),
        json!({ "Value": r#ref("WorkerLogGroup") }),
    );
    for g in &groups {
        outputs.insert(
            g.role_id(),
            json!({
                "Description": format!(
                    "Role of the {} workers{}: attach what those scripts need (e.g. publishing) here, and only here",
                    g.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                    if g.profile.is_empty() { String::new() } else { format!(" (instance profile {})", g.profile) }
                ),
                "Value": r#ref(&g.role_id()),
            }),
        );
    }

    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("build-on-aws: the {} pipeline (generated from pipeline.toml by `deploy template`; do not edit)", p.name),
        "Parameters": params,
        "Rules": {
            "SecurityGroupNeedsVpc": {
                "RuleCondition": { "Fn::Equals": [r#ref("CreateWorkerSecurityGroup"), "true"] },
                "Assertions": [{
                    "Assert": { "Fn::Not": [{ "Fn::Equals": [r#ref("VpcId"), ""] }] },
                    "AssertDescription": "CreateWorkerSecurityGroup=true needs VpcId (the VPC of your Subnets)",
                }],
            }
        },
        "Conditions": {
            // Rules refuse true without a VpcId; the And keeps cfn-lint from resolving VpcId to "".
            "CreateWorkerSecurityGroupCondition": { "Fn::And": [
                { "Fn::Equals": [r#ref("CreateWorkerSecurityGroup"), "true"] },
                { "Fn::Not": [{ "Fn::Equals": [r#ref("VpcId"), ""] }] },
            ]},
        },
        "Resources": res,
        "Outputs": outputs,
    })
}
