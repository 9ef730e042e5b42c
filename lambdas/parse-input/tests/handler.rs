//! parse-input against the example pipeline.

use std::path::Path;

use boa_core::{Mode, Pipeline};
use lambda_runtime::{Context, LambdaEvent, Service, service_fn};
use parse_input::{ParseInputEvent, handle, lambda_handler};
use serde_json::{Value, json};

fn example() -> Pipeline {
    Pipeline::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2025, 3, 4).unwrap()
}

fn ev(input: Value) -> ParseInputEvent {
    ParseInputEvent {
        input,
        execution: "arn:aws:states:us-east-1:1:execution:sm:x".into(),
    }
}

#[test]
fn structured_input_gives_the_plan_with_per_version_overrides() {
    let p = example();
    let m = handle(
        ev(json!({"versions": ["4.28.2", "5.1.0"], "distros": ["ubuntu-24.04-noble", "debian-12-bookworm"],
                  "steps": ["MakeBinaryPackage"], "mode": "test"})),
        &p,
        today(),
    )
    .unwrap();
    assert_eq!(m.input.steps, ["MakeBinaryPackage"]);
    assert_eq!(m.input.mode, Mode::Test);
    // What every iteration carries: the steps and the mode, not the axes' values.
    assert_eq!(m.run, m.input.scope());
    assert_eq!(
        serde_json::to_value(&m.run).unwrap(),
        json!({"steps": ["MakeBinaryPackage"], "mode": "test"})
    );
    assert_eq!(m.plan.len(), 2);
    // 4.28 is never built for noble (the pipeline's override); 5.1 is.
    assert_eq!(m.plan[0]["distro"], json!(["debian-12-bookworm"]));
    assert_eq!(
        m.plan[1]["distro"],
        json!(["ubuntu-24.04-noble", "debian-12-bookworm"])
    );
}

#[test]
fn a_token_string_and_null_are_accepted() {
    let p = example();
    let m = handle(
        ev(json!("4.28.2 MakeSourceTarball --skip-ec2")),
        &p,
        today(),
    )
    .unwrap();
    assert_eq!(m.input.axes["version"], ["4.28.2"]);
    assert_eq!(m.input.steps, ["MakeSourceTarball"]);
    assert_eq!(m.input.mode, Mode::SkipEc2);
    let m = handle(ev(Value::Null), &p, today()).unwrap();
    assert_eq!(
        m.input.axes["version"],
        ["2025.03.04"],
        "nightly from the injected date"
    );
    assert_eq!(m.input.steps.len(), p.steps.len());
    let missing: ParseInputEvent = serde_json::from_value(json!({"execution": "e"})).unwrap();
    assert_eq!(
        handle(missing, &p, today()).unwrap().input.axes["version"],
        ["2025.03.04"]
    );
}

#[test]
fn bad_values_are_input_invalid_and_named() {
    let p = example();
    for (input, needle) in [
        (json!("4.28.2 MakeSourceTarbal"), "'MakeSourceTarbal'"),
        (json!({"steps": ["Publish"]}), "unknown step 'Publish'"),
        (json!({"versions": ["4.28"]}), "'4.28'"),
        (json!({"mode": "fast"}), "\"fast\""),
        (
            json!({"distro": ["debian-12-bookworm"]}),
            "'distro' (did you mean 'distros'?)",
        ),
        (json!(42), "not 42"),
        (json!("x".repeat(20_000)), "at most 16384"),
    ] {
        let e = handle(ev(input.clone()), &p, today()).unwrap_err();
        assert_eq!(e.name.as_str(), "Input.Invalid", "{input}");
        assert!(
            e.message.contains(needle),
            "{needle:?} not in: {}",
            e.message
        );
    }
}

#[tokio::test]
async fn the_runtime_sees_input_invalid_as_the_error_type() {
    let p = example();
    let mut svc = service_fn(|e: LambdaEvent<ParseInputEvent>| lambda_handler(e, &p, today()));
    let d = svc
        .call(LambdaEvent::new(ev(json!("bogus")), Context::default()))
        .await
        .unwrap_err();
    assert_eq!(d.error_type, "Input.Invalid");
    assert!(
        d.error_message.contains("unknown token 'bogus'"),
        "{}",
        d.error_message
    );
    let ok = svc
        .call(LambdaEvent::new(ev(json!("4.28.2")), Context::default()))
        .await
        .unwrap();
    assert_eq!(ok.plan.len(), 1);
}

#[test]
fn an_input_that_could_break_a_quota_is_refused_before_the_run_starts() {
    let p = example();
    // Results no longer travel in the payload: what 150 versions of the example break is the
    // history of one execution.
    let versions: Vec<String> = (1..=150).map(|i| format!("5.{i}.0")).collect();
    let e = handle(ev(json!({ "versions": versions })), &p, today()).unwrap_err();
    assert_eq!(e.name.as_str(), "Input.Invalid");
    for needle in [
        "EXCEEDS the history quota",
        "25000",
        "the largest request of this shape that fits",
        "distributed = true",
    ] {
        assert!(
            e.message.contains(needle),
            "{needle:?} not in: {}",
            e.message
        );
    }
}
