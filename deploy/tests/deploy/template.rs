//! The generated CloudFormation template: cfn-lint, substitutions, IAM least privilege, schedule.

use std::path::{Path, PathBuf};
use std::process::Command;

use boa_core::Pipeline;
use deploy::template::{
    ALLOWED_WILDCARD_ACTIONS, CFN_LINT_IGNORED_ON_STATE_MACHINE, HEALTH_CHECK_SCHEDULE, function_id,
};
use deploy::{TemplateOptions, iam_problems, substitution_problems, template};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example() -> Pipeline {
    Pipeline::load(&root().join("pipeline.toml")).unwrap_or_else(|e| panic!("{e}"))
}

const MINIMAL: &str = r#"
name = "tiny"

[[axis]]
name = "version"
pattern = '^\d+$'

[[step]]
name = "Build"
script = "build.sh"
"#;

fn minimal() -> Pipeline {
    Pipeline::parse(MINIMAL).unwrap_or_else(|e| panic!("{e}"))
}

/// Two steps with their own instance profiles and one with the default.
const PROFILES: &str = r#"
name = "profiles"

[[axis]]
name = "version"
pattern = '^\d+$'

[[step]]
name = "Build"
script = "build.sh"
done_when = ["s3://releases/{version}/out.tar.gz"]

[[step]]
name = "Publish"
after = ["Build"]
script = "publish.sh"
[step.worker]
instance_profile = "publisher-profile"
ami = "ami-0123456789abcdef0"

[[step]]
name = "Sign"
after = ["Build"]
script = "sign.sh"
[step.worker]
instance_profile = "signer-profile"
"#;

/// The example with its version Map distributed.
fn distributed() -> Pipeline {
    let text = std::fs::read_to_string(root().join("pipeline.toml")).unwrap();
    let text = text.replacen("nightly = true", "nightly = true\ndistributed = true", 1);
    Pipeline::parse(&text).unwrap()
}

#[test]
fn a_distributed_map_may_start_only_its_own_children_and_write_only_run_records() {
    let t = tpl(&distributed());
    let subs = &t["Resources"]["StateMachine"]["Properties"]["DefinitionSubstitutions"];
    assert_eq!(subs["ArtifactBucket"], json!({"Ref": "ArtifactBucket"}));
    assert_eq!(subs["ArtifactPrefix"], json!({"Ref": "ArtifactPrefix"}));
    let machine: Vec<Value> = all_statements(&t)
        .into_iter()
        .filter(|(id, _)| id == "StateMachineRole")
        .map(|(_, s)| s)
        .collect();
    let with = |a: &str| {
        machine
            .iter()
            .find(|s| actions(s).iter().any(|x| x == a))
            .unwrap_or_else(|| panic!("no {a} for the state machine"))
            .clone()
    };
    assert_eq!(
        with("states:StartExecution")["Resource"][0]["Fn::Sub"],
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:build-on-aws-hhvm"
    );
    assert_eq!(
        with("s3:PutObject")["Resource"][0]["Fn::Sub"],
        "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/runs/*"
    );
    // The health check finds the children's waiting tasks.
    let hc: Vec<String> = all_statements(&t)
        .into_iter()
        .filter(|(id, _)| id.starts_with("LambdaHealthCheck"))
        .flat_map(|(_, s)| actions(&s))
        .collect();
    assert!(hc.iter().any(|a| a == "states:ListMapRuns"), "{hc:?}");
    // The inline example's state machine grants none of it; the only StartExecution left is
    // start-workers', on the lookahead machine alone.
    let inline = tpl(&example());
    let starts: Vec<(String, Value)> = all_statements(&inline)
        .into_iter()
        .filter(|(_, s)| actions(s).iter().any(|a| a == "states:StartExecution"))
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(starts[0].0.starts_with("LambdaStartWorkers"), "{starts:?}");
    // It may ask whether a run still runs (a lookahead after the run's end starts nothing), on
    // the pipeline machine's executions only.
    let describe: Vec<(String, Value)> = all_statements(&inline)
        .into_iter()
        .filter(|(id, s)| {
            id.starts_with("LambdaStartWorkers")
                && actions(s).iter().any(|a| a == "states:DescribeExecution")
        })
        .collect();
    assert_eq!(describe.len(), 1, "{describe:?}");
    assert_eq!(
        describe[0].1["Resource"],
        json!([{"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:build-on-aws-hhvm:*"}])
    );
    assert_eq!(
        starts[0].1["Resource"],
        json!([{"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:build-on-aws-hhvm-lookahead"}])
    );
}

#[test]
fn the_lookahead_machine_waits_then_calls_start_workers_which_alone_may_start_it() {
    let t = tpl(&example());
    let m = &t["Resources"]["LookaheadStateMachine"]["Properties"];
    assert_eq!(m["StateMachineName"], "build-on-aws-hhvm-lookahead");
    let def: Value = serde_json::from_str(m["DefinitionString"].as_str().unwrap()).unwrap();
    assert_eq!(def["States"]["WaitUntilBootTime"]["TimestampPath"], "$.at");
    assert_eq!(
        def["States"]["StartWorkersAhead"]["Resource"],
        "${LambdaStartWorkers}"
    );
    assert_eq!(
        m["DefinitionSubstitutions"]["LambdaStartWorkers"],
        json!({"Fn::GetAtt": ["LambdaStartWorkers", "Arn"]})
    );
    // Its role invokes start-workers and nothing else.
    let role: Vec<String> = all_statements(&t)
        .into_iter()
        .filter(|(id, _)| id == "LookaheadStateMachineRole")
        .flat_map(|(_, s)| actions(&s))
        .collect();
    assert_eq!(role, ["lambda:InvokeFunction"]);
    // start-workers finds it by its ARN (no circular Ref).
    let env = &t["Resources"]["LambdaStartWorkers"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["BOA_LOOKAHEAD_MACHINE_ARN"]["Fn::Sub"],
        "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:build-on-aws-hhvm-lookahead"
    );
}

fn tpl(p: &Pipeline) -> Value {
    template(p, &TemplateOptions::default())
}

fn cfn_lint() -> PathBuf {
    let p = root().join(".tools/venv/bin/cfn-lint");
    assert!(
        p.exists(),
        "{} is missing: run tools/setup (it installs the pinned cfn-lint)",
        p.display()
    );
    p
}

/// Runs cfn-lint on `t`; returns (exit code, output).
fn lint(t: &Value) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("template.json");
    std::fs::write(&f, serde_json::to_string_pretty(t).unwrap()).unwrap();
    let out = Command::new(cfn_lint())
        .arg("--format")
        .arg("parseable")
        .arg(&f)
        .output()
        .expect("cfn-lint runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn resources(t: &Value) -> &serde_json::Map<String, Value> {
    t["Resources"].as_object().unwrap()
}

fn of_type<'t>(t: &'t Value, ty: &str) -> Vec<(&'t String, &'t Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .collect()
}

fn all_statements(t: &Value) -> Vec<(String, Value)> {
    let mut out = vec![];
    for (id, r) in of_type(t, "AWS::IAM::Role") {
        for p in r["Properties"]["Policies"].as_array().unwrap() {
            for s in p["PolicyDocument"]["Statement"].as_array().unwrap() {
                out.push((id.clone(), s.clone()));
            }
        }
    }
    assert!(!out.is_empty());
    out
}

fn actions(s: &Value) -> Vec<String> {
    match &s["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        _ => panic!("statement without Action: {s}"),
    }
}

#[test]
fn cfn_lint_passes_on_the_example_minimal_and_multi_profile_templates() {
    for (name, p) in [
        ("example", example()),
        ("minimal", minimal()),
        ("profiles", Pipeline::parse(PROFILES).unwrap()),
        ("distributed", distributed()),
    ] {
        let (code, out) = lint(&tpl(&p));
        assert_eq!(code, 0, "cfn-lint on the {name} template:\n{out}");
    }
}

/// The state machine ignores known cfn-lint false positives; without the ignore, those must be
/// the only findings, so the ignore hides nothing else.
#[test]
fn cfn_lint_ignore_on_the_state_machine_hides_only_the_known_false_positives() {
    let mut t = tpl(&example());
    let sm = t["Resources"]["StateMachine"].as_object_mut().unwrap();
    assert_eq!(
        sm["Metadata"]["cfn-lint"]["config"]["ignore_checks"],
        json!(CFN_LINT_IGNORED_ON_STATE_MACHINE)
    );
    sm.remove("Metadata");
    let (_, out) = lint(&t);
    let findings: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    for f in &findings {
        let known = (f.contains(":E3601:") && f.contains("'Parameters' was unexpected"))
            || (f.contains(":E1101:") && f.contains("expected str instance, int found"));
        assert!(
            known,
            "unexpected cfn-lint finding on the state machine: {f}"
        );
    }
    // If cfn-lint fixes its schema this test tells us to drop the ignore.
    assert!(
        !findings.is_empty(),
        "cfn-lint no longer reports the false positives: remove CFN_LINT_IGNORED_ON_STATE_MACHINE"
    );
}

#[test]
fn every_definition_placeholder_has_a_substitution_pointing_at_a_template_resource() {
    for p in [example(), minimal(), Pipeline::parse(PROFILES).unwrap()] {
        let t = tpl(&p);
        assert_eq!(substitution_problems(&t), Vec::<String>::new());
        let sm = &t["Resources"]["StateMachine"]["Properties"];
        let def = sm["DefinitionString"].as_str().unwrap();
        let subs = sm["DefinitionSubstitutions"].as_object().unwrap();
        // One activity per step, each a Ref to an AWS::StepFunctions::Activity with its name.
        for s in &p.steps {
            let key = format!("Activity{}", s.name);
            assert!(def.contains(&format!("${{{key}}}")), "{key} unused");
            let id = subs[&key]["Ref"].as_str().unwrap();
            let r = &t["Resources"][id];
            assert_eq!(r["Type"], "AWS::StepFunctions::Activity");
            assert_eq!(
                r["Properties"]["Name"],
                format!("build-on-aws-{}-{}", p.name, s.name)
            );
        }
        for l in [
            "parse-input",
            "start-workers",
            "record-result",
            "normalize-results",
            "check-for-failures",
        ] {
            let key = function_id(l);
            let id = subs[&key]["Fn::GetAtt"][0].as_str().unwrap();
            assert_eq!(t["Resources"][id]["Type"], "AWS::Lambda::Function");
            assert_eq!(
                t["Resources"][id]["Properties"]["FunctionName"],
                format!("build-on-aws-{}-{l}", p.name)
            );
        }
        assert_eq!(of_type(&t, "AWS::Lambda::Function").len(), 6);
        assert_eq!(
            of_type(&t, "AWS::StepFunctions::Activity").len(),
            p.steps.len()
        );
    }
}

#[test]
fn substitution_check_catches_a_missing_or_dangling_substitution() {
    let mut t = tpl(&minimal());
    let subs = t["Resources"]["StateMachine"]["Properties"]["DefinitionSubstitutions"]
        .as_object_mut()
        .unwrap();
    subs.remove("ActivityBuild");
    subs.insert(
        "LambdaParseInput".into(),
        json!({"Fn::GetAtt": ["Nowhere", "Arn"]}),
    );
    let problems = substitution_problems(&t);
    assert!(
        problems.iter().any(|p| p.contains("${ActivityBuild}")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("'Nowhere'")),
        "{problems:?}"
    );
}

#[test]
fn no_iam_statement_has_a_wildcard_action() {
    for p in [example(), Pipeline::parse(PROFILES).unwrap()] {
        for (id, s) in all_statements(&tpl(&p)) {
            for a in actions(&s) {
                assert!(!a.contains('*'), "{id}: wildcard action {a}");
            }
        }
    }
}

#[test]
fn resource_star_only_where_every_action_is_an_allowed_wildcard() {
    let t = tpl(&example());
    let mut seen = 0;
    for (id, s) in all_statements(&t) {
        let res = match &s["Resource"] {
            Value::Array(a) => a.clone(),
            v => vec![v.clone()],
        };
        if res.iter().any(|r| r == "*") {
            seen += 1;
            for a in actions(&s) {
                assert!(
                    ALLOWED_WILDCARD_ACTIONS.contains(&a.as_str()),
                    "{id}: {a} on Resource *"
                );
            }
        }
    }
    assert!(
        seen > 0,
        "DescribeInstances needs Resource *; the test saw none"
    );
    assert_eq!(iam_problems(&t), Vec::<String>::new());
}

#[test]
fn terminate_and_create_tags_need_the_stack_tag() {
    let t = tpl(&example());
    let stack = json!({"Ref": "AWS::StackName"});
    let mut checked = 0;
    for (id, s) in all_statements(&t) {
        let a = actions(&s);
        if a.iter()
            .any(|a| a == "ec2:TerminateInstances" || a == "ec2:CreateTags")
        {
            checked += 1;
            let c = &s["Condition"]["StringEquals"];
            assert!(
                c["ec2:ResourceTag/build-on-aws:stack"] == stack
                    || c["aws:RequestTag/build-on-aws:stack"] == stack,
                "{id}: {s}"
            );
        }
    }
    // health check terminates; launchers tag at launch; workers tag themselves.
    assert!(checked >= 4, "only {checked} statements checked");
}

#[test]
fn workers_tag_only_themselves_and_only_their_own_keys() {
    let t = tpl(&example());
    let (_, s) = all_statements(&t)
        .into_iter()
        .find(|(id, s)| id == "WorkerRoleMakeBinaryPackage" && actions(s) == ["ec2:CreateTags"])
        .expect("the worker may tag itself");
    assert_eq!(
        s["Condition"]["StringEquals"]["aws:ARN"],
        "${ec2:SourceInstanceARN}"
    );
    let keys = &s["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"];
    assert!(
        !keys
            .as_array()
            .unwrap()
            .contains(&json!("build-on-aws:stack"))
    );
    assert!(
        keys.as_array()
            .unwrap()
            .contains(&json!("build-on-aws:lease"))
    );
}

#[test]
fn pass_role_is_limited_to_worker_roles_and_ec2() {
    let t = tpl(&Pipeline::parse(PROFILES).unwrap());
    let mut seen = 0;
    for (id, s) in all_statements(&t) {
        if actions(&s).iter().any(|a| a == "iam:PassRole") {
            seen += 1;
            assert_eq!(
                s["Condition"]["StringEquals"]["iam:PassedToService"], "ec2.amazonaws.com",
                "{id}"
            );
            let roles: Vec<&str> = s["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Fn::GetAtt"][0].as_str().expect("a GetAtt of a role"))
                .collect();
            assert_eq!(
                roles,
                [
                    "WorkerRoleBuild",
                    "WorkerRolePublisherProfile",
                    "WorkerRoleSignerProfile"
                ]
            );
            for r in roles {
                assert_eq!(t["Resources"][r]["Type"], "AWS::IAM::Role");
            }
        }
    }
    assert_eq!(seen, 2, "start-workers and health-check pass worker roles");
}

#[test]
fn iam_checker_flags_wildcards_untagged_terminate_and_open_pass_role() {
    let mut t = tpl(&minimal());
    let policies = t["Resources"]["LambdaHealthCheckRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    policies.push(json!({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::x/*"}));
    policies.push(json!({"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"}));
    policies.push(json!({"Effect": "Allow", "Action": "ec2:TerminateInstances", "Resource": "*"}));
    policies.push(json!({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}));
    // A launch permission that would let anything start an instance with IMDSv1 or a reachable
    // hop limit, or with an unencrypted volume.
    policies.push(json!({"Effect": "Allow", "Action": "ec2:RunInstances",
        "Resource": ["arn:aws:ec2:us-east-1:1:instance/*", "arn:aws:ec2:us-east-1:1:volume/*"],
        "Condition": {"NumericLessThanEquals": {"ec2:MetadataHttpPutResponseHopLimit": 5}}}));
    let problems = iam_problems(&t).join("\n");
    for expect in [
        "ec2:RunInstances on instances without ec2:MetadataHttpTokens = required",
        "ec2:RunInstances on instances without ec2:MetadataHttpPutResponseHopLimit <= 2",
        "ec2:RunInstances on volumes without ec2:Encrypted = true",
        "'s3:*' is a wildcard",
        "[\"sqs:SendMessage\"]",
        "ec2:TerminateInstances without a condition",
        "iam:PassRole on a wildcard resource",
        "iam:PassRole without iam:PassedToService",
    ] {
        assert!(
            problems.contains(expect),
            "missing {expect:?} in:\n{problems}"
        );
    }
}

#[test]
fn workers_poll_only_their_profile_activities() {
    let t = tpl(&Pipeline::parse(PROFILES).unwrap());
    let poll = |role: &str| -> Vec<String> {
        let s = all_statements(&t)
            .into_iter()
            .find(|(id, s)| id == role && actions(s).contains(&"states:GetActivityTask".into()))
            .unwrap()
            .1;
        s["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Ref"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(poll("WorkerRoleBuild"), ["ActivityBuild"]);
    assert_eq!(poll("WorkerRolePublisherProfile"), ["ActivityPublish"]);
    assert_eq!(poll("WorkerRoleSignerProfile"), ["ActivitySign"]);
    assert_eq!(
        t["Resources"]["WorkerInstanceProfileSignerProfile"]["Properties"]["InstanceProfileName"],
        "signer-profile"
    );
    // A step naming no profile gets its own, `<stack>-<Step>`, which start-workers derives
    // from BOA_WORKER_PROFILE.
    assert_eq!(
        t["Resources"]["WorkerInstanceProfileBuild"]["Properties"]["InstanceProfileName"],
        json!({"Fn::Sub": "${AWS::StackName}-Build"})
    );
    assert_eq!(
        t["Resources"]["LambdaStartWorkers"]["Properties"]["Environment"]["Variables"]["BOA_WORKER_PROFILE"],
        json!({"Fn::Sub": "${AWS::StackName}-{step}"})
    );
    // Done-checks may read the done_when objects and nothing else of that bucket.
    let done = all_statements(&t)
        .into_iter()
        .find(|(id, s)| id == "LambdaStartWorkersRole" && s["Sid"] == "DoneChecks")
        .unwrap()
        .1;
    assert_eq!(
        done["Resource"],
        json!([{"Fn::Sub": "arn:${AWS::Partition}:s3:::releases/*/out.tar.gz"}])
    );
}

#[test]
fn state_machine_invokes_only_the_functions_it_calls() {
    let t = tpl(&example());
    let s = all_statements(&t)
        .into_iter()
        .find(|(id, s)| id == "StateMachineRole" && actions(s) == ["lambda:InvokeFunction"])
        .unwrap()
        .1;
    let fns: Vec<&str> = s["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Fn::GetAtt"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        fns,
        [
            "LambdaParseInput",
            "LambdaStartWorkers",
            "LambdaRecordResult",
            "LambdaNormalizeResults",
            "LambdaCheckForFailures"
        ]
    );
}

#[test]
fn the_schedule_runs_the_health_check_every_five_minutes() {
    let t = tpl(&example());
    let sched = of_type(&t, "AWS::Scheduler::Schedule");
    assert_eq!(sched.len(), 1);
    let props = &sched[0].1["Properties"];
    assert_eq!(props["ScheduleExpression"], "rate(5 minutes)");
    assert_eq!(HEALTH_CHECK_SCHEDULE, "rate(5 minutes)");
    assert_eq!(
        props["Target"]["Arn"],
        json!({"Fn::GetAtt": ["LambdaHealthCheck", "Arn"]})
    );
    let role = props["Target"]["RoleArn"]["Fn::GetAtt"][0]
        .as_str()
        .unwrap();
    let stmts: Vec<Value> = all_statements(&t)
        .into_iter()
        .filter(|(id, _)| id == role)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(stmts.len(), 1);
    assert_eq!(actions(&stmts[0]), ["lambda:InvokeFunction"]);
    assert_eq!(
        stmts[0]["Resource"],
        json!([{"Fn::GetAtt": ["LambdaHealthCheck", "Arn"]}])
    );
}

#[test]
fn lambdas_get_the_state_machine_arn_without_a_circular_ref() {
    let t = tpl(&example());
    for (id, f) in of_type(&t, "AWS::Lambda::Function") {
        let p = &f["Properties"];
        assert_eq!(p["Runtime"], "provided.al2023");
        assert_eq!(p["Handler"], "bootstrap");
        assert_eq!(p["Architectures"], json!([{"Ref": "Architecture"}]));
        let env = &p["Environment"]["Variables"];
        assert_eq!(
            env["BOA_STATE_MACHINE_ARN"],
            json!({"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:build-on-aws-hhvm"}),
            "{id}"
        );
        for k in [
            "BOA_STACK",
            "BOA_ARTIFACTS",
            "BOA_LOG_GROUP",
            "BOA_PIPELINE_FILE",
        ] {
            assert!(!env[k].is_null(), "{id} lacks {k}");
        }
        assert!(
            !serde_json::to_string(f)
                .unwrap()
                .contains("\"StateMachine\"")
        );
    }
    assert_eq!(
        t["Resources"]["StateMachine"]["Properties"]["StateMachineName"],
        "build-on-aws-hhvm"
    );
    let timeout = |id: &str| {
        t["Resources"][id]["Properties"]["Timeout"]
            .as_u64()
            .unwrap()
    };
    assert!(timeout("LambdaHealthCheck") > timeout("LambdaParseInput"));
    assert!(timeout("LambdaStartWorkers") > timeout("LambdaParseInput"));
}

#[test]
fn generation_is_deterministic() {
    let a = serde_json::to_string(&tpl(&example())).unwrap();
    let b = serde_json::to_string(&tpl(&example())).unwrap();
    assert_eq!(a, b);
}

#[test]
fn every_step_has_a_role_of_its_own_that_can_poll_only_its_activity() {
    for p in [example(), Pipeline::parse(PROFILES).unwrap()] {
        let t = tpl(&p);
        assert_eq!(
            deploy::isolation_problems(&t, &p),
            Vec::<String>::new(),
            "{}",
            p.name
        );
        // Policy evaluation over the template: a worker of one step is denied every other
        // step's activity and log streams, and allowed its own.
        for a in &p.steps {
            let role = deploy::audit::worker_role_of(&t, a).unwrap();
            let polled = deploy::audit::activities_polled_by(&t, &role);
            for b in &p.steps {
                let may = polled.contains(&format!("Activity{}", b.name));
                assert_eq!(may, a.name == b.name, "{} polling {}", a.name, b.name);
                let activity = deploy::audit::activity_arn_of(&t, &b.name).unwrap();
                let stream = deploy::audit::log_stream_arn_of(&t, &b.name).unwrap();
                assert!(
                    stream.ends_with(&format!(":log-stream:{}/w_i-0123456789abcdef0", b.name)),
                    "{stream}"
                );
                for action in deploy::audit::WORKER_ACTIVITY_ACTIONS {
                    let allowed = deploy::audit::role_allows(&t, &role, action, &activity);
                    assert_eq!(
                        allowed,
                        a.name == b.name,
                        "{} {action} on {activity}",
                        a.name
                    );
                }
                for action in deploy::audit::WORKER_LOG_ACTIONS {
                    let allowed = deploy::audit::role_allows(&t, &role, action, &stream);
                    assert_eq!(allowed, a.name == b.name, "{} {action} on {stream}", a.name);
                }
            }
        }
    }
    // The example's five steps: five roles, five instance profiles.
    let t = tpl(&example());
    let roles = t["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("WorkerRole"))
        .count();
    assert_eq!(roles, example().steps.len());
}

#[test]
fn the_isolation_audit_catches_a_role_that_polls_another_steps_activity() {
    let p = example();
    let mut t = tpl(&p);
    let stmts = t["Resources"]["WorkerRoleMakeBinaryPackage"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    stmts.push(
        json!({"Effect": "Allow", "Action": "states:GetActivityTask",
        "Resource": {"Ref": "ActivityPublishBinaryPackages"}}),
    );
    let problems = deploy::isolation_problems(&t, &p).join("\n");
    assert!(
        problems.contains("step MakeBinaryPackage")
            && problems.contains("ActivityPublishBinaryPackages"),
        "{problems}"
    );
}

#[test]
fn the_isolation_audit_catches_a_role_that_writes_another_steps_log_streams() {
    let p = example();
    let mut t = tpl(&p);
    let stmts = t["Resources"]["WorkerRoleMakeBinaryPackage"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    let logs = stmts
        .iter_mut()
        .find(|s| s["Sid"] == "WriteOwnLogStreams")
        .expect("the log statement");
    // What the template granted before streams were per step: the whole worker log group.
    logs["Resource"] = json!([{"Fn::GetAtt": ["WorkerLogGroup", "Arn"]}]);
    let problems = deploy::isolation_problems(&t, &p).join("\n");
    assert!(
        problems.contains("step MakeBinaryPackage: its workers' role WorkerRoleMakeBinaryPackage is allowed logs:PutLogEvents on step PublishBinaryPackages's log streams"),
        "{problems}"
    );
    // Nothing else is reported: the other roles are still scoped.
    assert!(
        problems
            .lines()
            .all(|l| l.starts_with("step MakeBinaryPackage:")),
        "{problems}"
    );
}

#[test]
fn the_isolation_audit_catches_a_role_denied_its_own_log_streams() {
    let p = example();
    let mut t = tpl(&p);
    let stmts = t["Resources"]["WorkerRoleMakeSourceTarball"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_array_mut()
        .unwrap();
    stmts.retain(|s| s["Sid"] != "WriteOwnLogStreams");
    let problems = deploy::isolation_problems(&t, &p).join("\n");
    assert!(
        problems.contains("role WorkerRoleMakeSourceTarball is not allowed logs:CreateLogStream on its own log streams"),
        "{problems}"
    );
}

#[test]
fn record_result_keeps_the_duration_history_beside_the_runs_and_nothing_more() {
    let t = tpl(&example());
    let stmts = lambda_statements(&t, "record-result");
    let on = |resource: &str| actions_on(&stmts, resource);
    let durations = "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/durations/*";
    assert_eq!(on(durations), ["s3:GetObject", "s3:PutObject"]);
    // Task records stay write-only.
    assert_eq!(
        on("arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}/runs/*"),
        ["s3:PutObject"]
    );
    // Listing (so a missing entry is a 404, not a 403) is limited to the history's prefix.
    let list = stmts
        .iter()
        .find(|s| actions(s) == ["s3:ListBucket"])
        .expect("a ListBucket statement");
    assert_eq!(
        list["Condition"]["StringLike"]["s3:prefix"][0]["Fn::Sub"],
        "${ArtifactPrefix}/durations/*"
    );
}

#[test]
fn start_workers_writes_the_hand_over_history_and_only_reads_the_durations() {
    let t = tpl(&example());
    let stmts = lambda_statements(&t, "start-workers");
    let on = |resource: &str| actions_on(&stmts, resource);
    let object = |f: &str| {
        format!("arn:${{AWS::Partition}}:s3:::${{ArtifactBucket}}/${{ArtifactPrefix}}/{f}/*")
    };
    assert_eq!(on(&object("durations")), ["s3:GetObject"]);
    assert_eq!(on(&object("durations/hand-over")), ["s3:PutObject"]);
}

/// Every statement of a Lambda's role.
fn lambda_statements(t: &Value, lambda: &str) -> Vec<Value> {
    let role = format!("{}Role", function_id(lambda));
    let stmts: Vec<Value> = all_statements(t)
        .into_iter()
        .filter(|(id, _)| *id == role)
        .map(|(_, s)| s)
        .collect();
    assert!(!stmts.is_empty(), "no statements for {role}");
    stmts
}

/// The actions `stmts` allow on `resource` (an `Fn::Sub` ARN), sorted.
fn actions_on(stmts: &[Value], resource: &str) -> Vec<String> {
    let mut v: Vec<String> = stmts
        .iter()
        .filter(|s| {
            s["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["Fn::Sub"] == resource)
        })
        .flat_map(actions)
        .collect();
    v.sort();
    v
}
