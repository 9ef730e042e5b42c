//! The generated definition: snapshots, the outside validator, and the contract properties.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::*;
use boa_core::input::MachineInput;
use boa_core::task::{ActivityInput, PrepareRequest};
use boa_core::{BuildInput, Pipeline};
use proptest::prelude::*;
use serde_json::{Value, json};
use statemachine_gen::{Arns, Target, generate, mermaid};

#[test]
fn snapshot_of_the_example_definition() {
    insta::assert_json_snapshot!("example_definition", generate(&example(), &concrete()));
}

#[test]
fn snapshot_of_the_example_diagram() {
    insta::assert_snapshot!("example_mermaid", mermaid(&example()));
}

#[test]
fn asl_validator_accepts_every_generated_machine() {
    for (name, p) in all() {
        let def = generate(&p, &concrete());
        if let Err(e) = asl_validate(&def) {
            panic!("asl-validator rejects the {name} machine:\n{e}");
        }
    }
    // And the stack's second machine, the lookahead.
    let look = statemachine_gen::lookahead(&example(), &concrete());
    if let Err(e) = asl_validate(&look) {
        panic!("asl-validator rejects the lookahead machine:\n{e}");
    }
}

#[test]
fn asl_validator_rejects_a_broken_machine() {
    // The validator run is live: a dangling Next is caught.
    let mut def = generate(&one_step_one_axis(), &concrete());
    def["States"]["NormalizeResults"]["Next"] = json!("Nowhere");
    assert!(asl_validate(&def).is_err());
}

#[test]
fn generation_is_deterministic() {
    let p = example();
    let a = serde_json::to_string(&generate(&p, &concrete())).unwrap();
    let b = serde_json::to_string(&generate(&p, &concrete())).unwrap();
    assert_eq!(a, b);
}

/// The contract properties, checked on one definition.
fn check_properties(label: &str, p: &Pipeline, def: &Value) {
    let visits = visit(def);

    // Names unique across the machine and at most 80 characters.
    let mut seen = BTreeSet::new();
    for v in &visits {
        assert!(
            v.name.len() <= 80,
            "{label}: state name too long: {}",
            v.name
        );
        assert!(
            seen.insert(v.name.clone()),
            "{label}: duplicate state {}",
            v.name
        );
    }

    for v in &visits {
        let st = &v.state;
        let ty = st["Type"].as_str().unwrap();
        // Every Next (and Choice target, Catch target) exists in the same scope.
        let mut targets: Vec<&str> = vec![];
        targets.extend(st["Next"].as_str());
        targets.extend(st["Default"].as_str());
        for c in st["Choices"].as_array().into_iter().flatten() {
            targets.extend(c["Next"].as_str());
        }
        for c in st["Catch"].as_array().into_iter().flatten() {
            targets.extend(c["Next"].as_str());
        }
        for t in targets {
            assert!(
                v.scope.contains_key(t),
                "{label}: {} goes to missing {t}",
                v.name
            );
        }
        if !matches!(ty, "Choice" | "Succeed" | "Fail") {
            assert!(
                st.get("Next").is_some() != st.get("End").is_some(),
                "{label}: {} needs exactly one of Next/End",
                v.name
            );
        }

        // Retry lists: States.ALL alone and last.
        if let Some(rs) = st["Retry"].as_array() {
            let mut all_seen = false;
            for r in rs {
                let eq: Vec<&str> = r["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap())
                    .collect();
                assert!(
                    !all_seen,
                    "{label}: a retrier follows States.ALL in {}",
                    v.name
                );
                if eq.contains(&"States.ALL") {
                    assert_eq!(eq, ["States.ALL"], "{label}: {}", v.name);
                    all_seen = true;
                }
            }
        }

        if ty == "Task" {
            let has = |s: &Value, k: &str| s[k].as_array().is_some_and(|a| !a.is_empty());
            let parent = v.ancestors.last().map(|(_, s)| s);
            if v.name == "ParseInput" || v.name == "CheckForFailures" {
                assert!(
                    st.get("Catch").is_none(),
                    "{label}: {} must fail the execution",
                    v.name
                );
                assert!(has(st, "Retry"));
                assert!(v.ancestors.is_empty());
            } else {
                // Covered by itself or its immediately enclosing Run<Step>.
                let retried = has(st, "Retry") || parent.is_some_and(|s| has(s, "Retry"));
                let caught = has(st, "Catch") || parent.is_some_and(|s| has(s, "Catch"));
                assert!(retried && caught, "{label}: Task {} is not covered", v.name);
                for c in st["Catch"].as_array().into_iter().flatten().chain(
                    parent
                        .and_then(|s| s["Catch"].as_array())
                        .into_iter()
                        .flatten(),
                ) {
                    assert_eq!(c["ErrorEquals"], json!(["States.ALL"]));
                }
            }
            // Activity Tasks: heartbeat shorter than timeout, and the values of the step.
            if let Some(step) = p.step(&v.name) {
                let t = st["TimeoutSeconds"].as_u64().unwrap();
                let h = st["HeartbeatSeconds"].as_u64().unwrap();
                assert!(h < t, "{label}: {}: heartbeat {h} ≥ timeout {t}", v.name);
                assert_eq!(t, step.timeout.as_secs());
                let run = &v.ancestors.last().unwrap().1;
                let want = serde_json::to_value(boa_core::retry::retriers(
                    boa_core::retry::TaskKind::Activity {
                        build_retries: step.retries,
                    },
                ))
                .unwrap();
                assert_eq!(run["Retry"], want, "{label}: Run{}'s Retry", v.name);
            }
        }
        if matches!(ty, "Map" | "Parallel") {
            assert!(
                st["Catch"].as_array().is_some_and(|a| !a.is_empty()),
                "{label}: {} has no Catch",
                v.name
            );
        }
    }

    // Every step has its activity Task, its Prepare and its Run.
    for s in &p.steps {
        for n in [
            s.name.clone(),
            format!("Prepare{}", s.name),
            format!("Run{}", s.name),
        ] {
            assert!(seen.contains(&n), "{label}: no state {n}");
        }
    }
}

#[test]
fn every_machine_keeps_the_contract() {
    for (name, p) in all() {
        check_properties(name, &p, &generate(&p, &concrete()));
        check_properties(name, &p, &generate(&p, &Arns::Placeholders));
    }
}

/// Builds a task's payloads the way Step Functions would, from the generated templates, and reads
/// them as the Lambdas and the worker do. Returns the biggest size (compact JSON bytes) of each
/// payload of an iteration: the outer iteration, an inner one, `Run<Step>`'s branch input, the
/// `Prepare<Step>` request and the activity input.
fn payload_chain(p: &Pipeline, tokens: &[&str]) -> BTreeMap<&'static str, usize> {
    let mut sizes: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut seen = |what: &'static str, v: &Value| {
        let n = v.to_string().len();
        let e = sizes.entry(what).or_default();
        *e = (*e).max(n);
    };
    let def = generate(p, &concrete());
    let today = chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
    let input = BuildInput::from_tokens(p, tokens, today).unwrap();
    let mi: MachineInput = input.clone().machine_input(p).unwrap();
    let state0 = serde_json::to_value(&mi).unwrap();
    // Every state by name, looked up once (a run of 1,000 versions visits them all per task).
    let states: BTreeMap<String, Value> =
        visit(&def).into_iter().map(|v| (v.name, v.state)).collect();
    let find = |_: &Value, name: &str| -> Value {
        states
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no state {name}"))
    };
    let outer = find(&def, &statemachine_gen::asl::names::outer_map(p));
    let exec = "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-t:run-1";
    for (i, plan_item) in mi.plan.iter().enumerate() {
        let ctx =
            json!({"Execution": {"Id": exec}, "Map": {"Item": {"Index": i, "Value": plan_item}}});
        let iteration = template(&outer["ItemSelector"], &state0, &ctx);
        seen("iteration", &iteration);
        for s in &p.steps {
            let mut step_input = iteration.clone();
            let mut item_ctx = ctx.clone();
            if s.fans_out() && p.inner_axis().is_some() {
                let map = find(&def, &statemachine_gen::asl::names::fan_out_map(p, &s.name));
                assert_eq!(map["ItemsPath"], "$.inner");
                let n = iteration["inner"].as_array().unwrap().len();
                let last = iteration["inner"][n - 1].clone();
                item_ctx["Map"] = json!({"Item": {"Index": n - 1, "Value": last}});
                step_input = template(&map["ItemSelector"], &iteration, &item_ctx);
                seen("inner iteration", &step_input);
            }
            // The engine's RetryCount is not relied on: Prepare's entered time names the attempt,
            // and Prepare's record (the counted attempt) feeds the activity and the results.
            item_ctx["State"] = json!({"RetryCount": 7, "EnteredTime": "2025-01-02T10:00:00.123Z"});
            let run = find(&def, &format!("Run{}", s.name));
            let branch_input = template(&run["Parameters"], &step_input, &item_ctx);
            seen("Run<Step> branch input", &branch_input);
            let prepare = find(&def, &format!("Prepare{}", s.name));
            let req_json = template(&prepare["Parameters"], &branch_input, &item_ctx);
            seen("Prepare<Step> request", &req_json);
            let req: PrepareRequest = serde_json::from_value(req_json.clone())
                .unwrap_or_else(|e| panic!("PrepareRequest from {req_json}: {e}"));
            assert_eq!(req.step, s.name);
            assert_eq!(req.run, input.scope());
            // An inner task carries its position, where its entry of a fanned-out dependency is.
            let fanned = s.fans_out() && p.inner_axis().is_some();
            let n = iteration["inner"].as_array().map_or(0, Vec::len);
            assert_eq!(req.index, fanned.then(|| n - 1), "{req_json}");
            assert_eq!(req.entered, "2025-01-02T10:00:00.123Z");
            assert_eq!(req.execution, exec);
            assert_eq!(req.item.len(), s.for_each.len(), "{:?}", req.item);
            let record = boa_core::task::PrepareRecord {
                status: boa_core::task::PrepareStatus::Pending,
                skip: None,
                reason: "launched".into(),
                launched: vec!["i-1".into()],
                attempt: 1,
            };
            let mut branch_out = branch_input.clone();
            branch_out["prepare"] = serde_json::to_value(&record).unwrap();
            let activity = find(&def, &s.name);
            let act_json = template(&activity["Parameters"], &branch_out, &item_ctx);
            seen("activity input", &act_json);
            let act: ActivityInput = serde_json::from_value(act_json.clone())
                .unwrap_or_else(|e| panic!("ActivityInput from {act_json}: {e}"));
            assert_eq!(act.item, req.item);
            assert_eq!(act.mode, input.mode);
            assert_eq!(act.attempt, 1);
            // The worker's answer, through the activity's ResultSelector, then Run's.
            let worker = json!({"instance_id": "i-1", "log_stream": "w_i-1", "elapsed_s": 2.5, "attempt": 1});
            let outcome = template(&activity["ResultSelector"], &worker, &item_ctx);
            branch_out["outcome"] = outcome;
            let stored = template(&run["ResultSelector"], &json!([branch_out]), &item_ctx);
            let o = boa_core::results::read_outcome(&stored);
            assert_eq!(o.status, boa_core::Status::Succeeded, "{stored}");
            assert_eq!(o.instance_id.as_deref(), Some("i-1"));
            assert_eq!(o.attempts, Some(2));
        }
    }
    sizes
}

#[test]
fn payloads_built_from_the_templates_read_as_the_lambdas_expect() {
    payload_chain(
        &example(),
        &[
            "4.28.2",
            "4.30.0",
            "ubuntu-24.04-noble",
            "debian-12-bookworm",
            "--test",
        ],
    );
    payload_chain(&diamond(), &["1.0.0", "d3", "d7"]);
    payload_chain(&no_inner_axis(), &["stable"]);
    payload_chain(&exclusive_fan_out(), &["2.0.0"]);
}

/// The payloads of an iteration are the same size for 10 versions as for 1,000 (all of the same
/// width): an iteration carries its item and the run's steps and mode, not every version.
#[test]
fn an_iterations_payloads_do_not_grow_with_the_number_of_values() {
    let versions = |n: usize| -> Vec<String> { (1..=n).map(|i| format!("5.{i:04}.0")).collect() };
    for (name, p, distros) in [
        ("diamond", diamond(), &["d3", "d7"][..]),
        ("distributed", distributed(2), &["d3", "d7"][..]),
        ("example", example(), &["debian-12-bookworm"][..]),
    ] {
        let chain = |n: usize| {
            let mut t = versions(n);
            t.extend(distros.iter().map(|d| d.to_string()));
            let tokens: Vec<&str> = t.iter().map(String::as_str).collect();
            payload_chain(&p, &tokens)
        };
        let (few, many) = (chain(10), chain(1000));
        for what in [
            "iteration",
            "inner iteration",
            "Prepare<Step> request",
            "activity input",
        ] {
            assert!(few.contains_key(what), "{name}: no {what} in {few:?}");
        }
        assert_eq!(few, many, "{name}: 10 versions vs 1,000");
        // And small: nothing like the 1,000 versions' 9 KB.
        for (what, n) in &many {
            assert!(*n < 2048, "{name}: {what} is {n} bytes");
        }
    }
}

#[test]
fn shape_details_of_the_contract() {
    let p = example();
    let def = generate(&p, &Arns::Placeholders);
    assert_eq!(def["StartAt"], "ParseInput");
    let parse = &def["States"]["ParseInput"];
    assert_eq!(parse["Resource"], "${LambdaParseInput}");
    assert_eq!(parse["Next"], "ForEachVersion");
    let map = find(&def, "MakeBinaryPackageForEachDistro");
    assert_eq!(map["MaxConcurrency"], 25);
    assert_eq!(map["ResultPath"], "$.results.MakeBinaryPackage");
    let inner_run = &map["ItemProcessor"]["States"]["RunMakeBinaryPackage"];
    assert_eq!(inner_run["ResultPath"], "$.result");
    assert_eq!(inner_run["Next"], "RecordMakeBinaryPackage");
    assert_eq!(inner_run["Catch"][0]["Next"], "RecordMakeBinaryPackage");
    let inner_record = &map["ItemProcessor"]["States"]["RecordMakeBinaryPackage"];
    assert_eq!(inner_record["Resource"], "${LambdaRecordResult}");
    assert_eq!(inner_record["Parameters"]["result.$"], "$.result");
    assert_eq!(inner_record["Parameters"]["execution.$"], "$.execution");
    assert_eq!(inner_record["ResultPath"], "$");
    assert_eq!(inner_record["End"], true);
    assert_eq!(inner_record["Catch"][0]["Next"], "CaughtMakeBinaryPackage");
    // A step that does not fan out: Run<Step> → Record<Step>, whose compact form replaces the
    // raw result; the iteration's last states output `{}`.
    let run = find(&def, "RunMakeSourceTarball");
    assert_eq!(run["Next"], "RecordMakeSourceTarball");
    let rec = find(&def, "RecordMakeSourceTarball");
    assert_eq!(rec["ResultPath"], "$.results.MakeSourceTarball");
    assert_eq!(rec["Parameters"]["result.$"], "$.results.MakeSourceTarball");
    let outer = &def["States"]["ForEachVersion"];
    assert_eq!(outer["ItemSelector"]["execution.$"], "$$.Execution.Id");
    let ends: Vec<&String> = outer["ItemProcessor"]["States"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| s["End"] == true || s["Type"] == "Succeed")
        .map(|(n, _)| n)
        .collect();
    assert!(!ends.is_empty());
    for n in ends {
        assert!(
            outer["ItemProcessor"]["States"][n]
                .as_object()
                .unwrap()
                .get("OutputPath")
                == Some(&serde_json::Value::Null),
            "{n} ends an iteration without OutputPath null"
        );
    }
    assert_eq!(
        map["ItemProcessor"]["States"]["CaughtMakeBinaryPackage"]["Type"],
        "Succeed"
    );
    let stage = find(&def, "PublishSourceTarballAndPublishDockerImages");
    assert_eq!(
        stage["ResultSelector"]["results.$"],
        "States.JsonMerge($[0].results, $[1].results, false)"
    );
    assert_eq!(
        stage["Catch"][0]["ResultPath"],
        "$.stageErrors.PublishSourceTarballAndPublishDockerImages"
    );
    let act = find(&def, "MakeBinaryPackage");
    assert_eq!(act["Resource"], "${ActivityMakeBinaryPackage}");
    assert_eq!(act["TimeoutSeconds"], 6 * 3600);
    assert_eq!(act["HeartbeatSeconds"], 600);
    // Key order as promised.
    let keys: Vec<&str> = act
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys[..3], ["Type", "Comment", "Resource"]);
    assert_eq!(*keys.last().unwrap(), "End");
    let run = find(&def, "RunPublishBinaryPackages");
    let keys: Vec<&str> = run
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys[keys.len() - 3..], ["Retry", "Catch", "Next"]);
    // Exclusive fan-out: one at a time.
    let x = generate(&exclusive_fan_out(), &Arns::Placeholders);
    assert_eq!(find(&x, "UploadForEachDistro")["MaxConcurrency"], 1);
    // No inner axis: no inner.$ anywhere, no inner Map.
    let flat = generate(&no_inner_axis(), &Arns::Placeholders);
    let text = flat.to_string();
    assert!(!text.contains("inner"), "{text}");
    assert_eq!(flat["States"]["ForEachRelease"]["MaxConcurrency"], 1);
}

#[test]
fn placeholder_keys_cover_every_placeholder_in_the_definition() {
    for (name, p) in all() {
        let text = generate(&p, &Arns::Placeholders).to_string();
        let used: BTreeSet<String> = placeholders_in(&text);
        let keys = Arns::placeholder_keys(&p);
        let declared: BTreeSet<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(used, declared, "{name}");
        for (k, t) in keys {
            let want = match t {
                Target::Lambda(l) => Arns::Placeholders.lambda(&p, &l),
                Target::Activity(s) => Arns::Placeholders.activity(&p, &s),
                Target::Parameter(k) => format!("${{{k}}}"),
            };
            assert_eq!(want, format!("${{{k}}}"));
        }
    }
    let c = concrete();
    let p = example();
    assert_eq!(
        c.lambda(&p, "start-workers"),
        "arn:aws:lambda:us-east-1:123456789012:function:build-on-aws-hhvm-start-workers"
    );
    assert_eq!(
        c.activity(&p, "MakeSourceTarball"),
        "arn:aws:states:us-east-1:123456789012:activity:build-on-aws-hhvm-MakeSourceTarball"
    );
}

/// `${Key}` occurrences.
fn placeholders_in(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(k, _)| k.to_string()))
        .collect()
}

#[test]
fn long_stage_names_are_shortened_and_stay_unique() {
    let mut src =
        String::from("name = \"wide\"\n[[axis]]\nname = \"version\"\npattern = '^\\d+$'\n");
    for i in 0..6 {
        src.push_str(&format!(
            "[[step]]\nname = \"PublishTheArtifactsToMirror{i}\"\nscript = \"x.sh\"\n"
        ));
    }
    let p = parse(&src);
    let def = generate(&p, &concrete());
    let outer = &def["States"]["ForEachVersion"]["ItemProcessor"];
    assert_eq!(
        outer["StartAt"],
        "ParallelPublishTheArtifactsToMirror0And5More"
    );
    check_properties("wide", &p, &def);
    asl_validate(&def).unwrap();
}

#[test]
fn mermaid_names_every_step_and_notes_fan_out_and_exclusive() {
    let m = mermaid(&diamond());
    assert!(m.starts_with("flowchart TD\n"));
    assert!(m.contains("B × distro"));
    assert!(m.contains("needs any succeeded"));
    assert!(m.contains("step_A --> step_B") && m.contains("step_C --> step_D"));
    assert!(mermaid(&exclusive_fan_out()).contains("exclusive"));
    // Every label is quoted and balanced.
    for line in m.lines().filter(|l| l.contains('[')) {
        assert_eq!(line.matches('"').count(), 2, "{line}");
    }
}

/// Random acyclic pipelines: steps after any earlier ones, some fanning out, some exclusive.
fn random_pipeline() -> impl Strategy<Value = Pipeline> {
    (
        any::<bool>(),
        prop::collection::vec((any::<u8>(), any::<bool>(), any::<bool>(), 0u32..4), 1..8),
    )
        .prop_map(|(inner, steps)| {
            let mut src = String::from(
                "name = \"rand\"\n[[axis]]\nname = \"version\"\npattern = '^\\d+\\.\\d+$'\n",
            );
            if inner {
                src.push_str("[[axis]]\nname = \"target\"\nvalues = [\"x\", \"y\", \"z\"]\n");
            }
            for (i, (mask, fan, excl, retries)) in steps.iter().enumerate() {
                let after: Vec<String> = (0..i)
                    .filter(|j| mask & (1 << (j % 8)) != 0)
                    .map(|j| format!("\"S{j}\""))
                    .collect();
                src.push_str(&format!(
                    "[[step]]\nname = \"S{i}\"\nscript = \"s.sh\"\nafter = [{}]\nexclusive = {excl}\nretries = {retries}\n",
                    after.join(", ")
                ));
                if inner && *fan {
                    src.push_str("for_each = [\"version\", \"target\"]\n");
                }
            }
            Pipeline::parse(&src).unwrap_or_else(|e| panic!("{e}\n{src}"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_pipelines_keep_the_contract(p in random_pipeline()) {
        check_properties("random", &p, &generate(&p, &concrete()));
    }
}

#[test]
fn a_distributed_outer_map_runs_children_and_writes_their_results_to_the_bucket() {
    let p = distributed(2);
    let def = generate(&p, &Arns::Placeholders);
    let map = &def["States"]["ForEachVersion"];
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"],
        serde_json::json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"})
    );
    assert_eq!(map["ToleratedFailurePercentage"], 100);
    assert_eq!(
        map["ResultWriter"]["Parameters"]["Bucket"],
        "${ArtifactBucket}"
    );
    assert_eq!(
        map["ResultWriter"]["Parameters"]["Prefix.$"],
        "States.Format('${ArtifactPrefix}/runs/{}/map', $$.Execution.Name)"
    );
    // Children record under the top-level execution, which the item selector hands them.
    assert_eq!(map["ItemSelector"]["execution.$"], "$$.Execution.Id");
    let local = generate(&p, &concrete());
    assert_eq!(
        local["States"]["ForEachVersion"]["ResultWriter"]["Parameters"]["Prefix.$"],
        "States.Format('runs/{}/map', $$.Execution.Name)"
    );
    // Without `distributed`, the Map stays inline.
    let inline = generate(&many_fan_out_steps(2), &Arns::Placeholders);
    assert_eq!(
        inline["States"]["ForEachVersion"]["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "INLINE"
    );
    assert!(
        inline["States"]["ForEachVersion"]
            .get("ResultWriter")
            .is_none()
    );
}
