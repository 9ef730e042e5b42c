//! The build input, from tokens and from structured JSON, against the example pipeline.

use std::path::Path;

use boa_core::errors::ErrorName;
use boa_core::input::MAX_INPUT_BYTES;
use boa_core::{BuildInput, Mode, Pipeline};
use serde_json::json;

fn example() -> Pipeline {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml");
    Pipeline::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2025, 3, 4).unwrap()
}

fn tokens(p: &Pipeline, t: &str) -> Result<BuildInput, boa_core::NamedError> {
    let t: Vec<&str> = t.split_whitespace().collect();
    BuildInput::from_tokens(p, &t, day())
}

fn ok(p: &Pipeline, t: &str) -> BuildInput {
    tokens(p, t).unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn err(p: &Pipeline, t: &str) -> String {
    let e = tokens(p, t).expect_err(t);
    assert_eq!(e.name, ErrorName::InputInvalid, "{e}");
    e.message
}

#[test]
fn tokens_in_any_order_give_the_same_input() {
    let p = example();
    let a = ok(&p, "4.28.2 ubuntu-22.04-jammy MakeBinaryPackage --fake-ec2");
    assert_eq!(a.axes["version"], ["4.28.2"]);
    assert_eq!(a.axes["distro"], ["ubuntu-22.04-jammy"]);
    assert_eq!(a.steps, ["MakeBinaryPackage"]);
    assert_eq!(a.mode, Mode::FakeEc2);
    for order in [
        "--fake-ec2 MakeBinaryPackage ubuntu-22.04-jammy 4.28.2",
        "MakeBinaryPackage 4.28.2 --fake-ec2 ubuntu-22.04-jammy",
    ] {
        assert_eq!(ok(&p, order), a, "{order}");
    }
    // Steps come out in pipeline order, whatever order they were typed in.
    let b = ok(&p, "PublishDockerImages MakeSourceTarball 4.28.2");
    assert_eq!(b.steps, ["MakeSourceTarball", "PublishDockerImages"]);
    // Repeats are harmless.
    let c = ok(&p, "4.28.2 4.28.2 --test --test");
    assert_eq!(c.axes["version"], ["4.28.2"]);
    assert_eq!(c.mode, Mode::Test);
}

#[test]
fn no_version_means_todays_nightly_and_defaults_fill_the_rest() {
    let p = example();
    let i = ok(&p, "");
    assert_eq!(i.axes["version"], ["2025.03.04"]);
    assert_eq!(i.axes["distro"].len(), 5);
    assert_eq!(i.steps.len(), p.steps.len());
    assert_eq!(i.mode, Mode::Normal);
    // A nightly date can also be named.
    assert_eq!(ok(&p, "2024.12.31").axes["version"], ["2024.12.31"]);
}

#[test]
fn per_version_distro_override_is_applied_in_the_plan() {
    let p = example();
    let plan = ok(&p, "4.28.2 4.30.0").plan(&p).unwrap();
    let distros = |i: usize| -> Vec<String> {
        plan[i]["distro"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(plan[0]["version"], "4.28.2");
    assert!(!distros(0).contains(&"ubuntu-24.04-noble".to_string()));
    assert_eq!(distros(0).len(), 4);
    assert!(distros(1).contains(&"ubuntu-24.04-noble".to_string()));
    assert_eq!(distros(1).len(), 5);
    // Asking 4.28.x for noble alone builds nothing: an error that says what it builds.
    let e = err(&p, "4.28.2 ubuntu-24.04-noble");
    assert!(
        e.contains("ubuntu-24.04-noble") && e.contains("4.28.2"),
        "{e}"
    );
    assert!(e.contains("ubuntu-22.04-jammy"), "{e}");
}

#[test]
fn unknown_tokens_are_errors_listing_what_fits() {
    let p = example();
    let e = err(&p, "4.28.2 ubuntu-22.04-jamy MakeBinaryPackages --fake");
    assert!(e.contains("unknown token 'ubuntu-22.04-jamy'"), "{e}");
    assert!(e.contains("did you mean 'ubuntu-22.04-jammy'"), "{e}");
    assert!(e.contains("did you mean 'MakeBinaryPackage'"), "{e}");
    assert!(e.contains("unknown token '--fake'"), "{e}");
    // What would fit: every axis, every step, every flag.
    assert!(e.contains("Tokens can be"), "{e}");
    assert!(
        e.contains("debian-11-bullseye") && e.contains("PublishDockerImages"),
        "{e}"
    );
    assert!(e.contains("--skip-ec2") && e.contains("nightly"), "{e}");
    // A wholly unrelated token gets no suggestion but still the list.
    let e = err(&p, "frobnicate");
    assert!(
        !e.contains("did you mean") && e.contains("Tokens can be"),
        "{e}"
    );
}

#[test]
fn two_mode_flags_conflict() {
    let p = example();
    let e = err(&p, "4.28.2 --fake-ec2 --test");
    assert!(e.contains("'--test' conflicts with '--fake-ec2'"), "{e}");
}

#[test]
fn structured_json_input() {
    let p = example();
    let good = json!({"versions": ["4.28.2"], "distros": ["debian-12-bookworm"], "steps": ["MakeBinaryPackage"], "mode": "test"});
    let i = BuildInput::from_json(&p, &good, day()).unwrap();
    assert_eq!(
        i,
        ok(&p, "4.28.2 debian-12-bookworm MakeBinaryPackage --test")
    );
    // What the CLI sends reads back as the same input.
    for t in [
        "4.28.2 debian-12-bookworm MakeBinaryPackage --test",
        "4.28.2 4.27.0 --fake-ec2",
        "",
    ] {
        let i = ok(&p, t);
        let sent = i.execution_input(&p);
        assert_eq!(
            BuildInput::from_json(&p, &sent, day()).unwrap(),
            i,
            "{sent}"
        );
    }
    // A string is a token list; null is the defaults.
    let s = BuildInput::from_json(&p, &json!("4.28.2 --skip-ec2"), day()).unwrap();
    assert_eq!(s, ok(&p, "--skip-ec2 4.28.2"));
    assert_eq!(
        BuildInput::from_json(&p, &serde_json::Value::Null, day()).unwrap(),
        ok(&p, "")
    );

    let bad = |v: serde_json::Value| {
        let e = BuildInput::from_json(&p, &v, day()).expect_err("bad input");
        assert_eq!(e.name, ErrorName::InputInvalid);
        e.message
    };
    let e = bad(json!({"version": ["4.28.2"]}));
    assert!(
        e.contains("unknown input key 'version'") && e.contains("did you mean 'versions'"),
        "{e}"
    );
    let e = bad(json!({"versions": 4}));
    assert!(e.contains("'versions' must be a list of strings"), "{e}");
    let e = bad(json!({"versions": ["4.28.2", 5]}));
    assert!(e.contains("5 is not a string"), "{e}");
    let e = bad(json!({"steps": ["MakeBinaryPackag"]}));
    assert!(
        e.contains("unknown step 'MakeBinaryPackag'")
            && e.contains("did you mean 'MakeBinaryPackage'"),
        "{e}"
    );
    let e = bad(json!({"versions": ["latest"]}));
    assert!(e.contains("version 'latest' is not valid"), "{e}");
    let e = bad(json!({"mode": "fast"}));
    assert!(e.contains("mode \"fast\""), "{e}");
    let e = bad(json!([1, 2]));
    assert!(e.contains("must be an object"), "{e}");
    let huge = json!({"versions": vec!["4.28.2"; MAX_INPUT_BYTES / 4]});
    let e = bad(huge);
    assert!(e.contains(&format!("at most {MAX_INPUT_BYTES}")), "{e}");
}

#[test]
fn requested_tasks_count_steps_times_items() {
    let p = example();
    // 4.28.2: 4 distros; 4.30.0: 5. Per version: 3 single steps + the tarball + the packages.
    let all = ok(&p, "4.28.2 4.30.0").requested_tasks(&p).unwrap();
    assert_eq!(all.len(), (4 + 4) + (4 + 5));
    let pkgs = ok(&p, "4.28.2 4.30.0 MakeBinaryPackage")
        .requested_tasks(&p)
        .unwrap();
    assert_eq!(pkgs.len(), 4 + 5);
    assert!(
        pkgs.iter()
            .all(|(s, item)| s == "MakeBinaryPackage" && item.len() == 2)
    );
    let one = ok(
        &p,
        "4.30.0 ubuntu-24.04-noble MakeBinaryPackage PublishDockerImages",
    )
    .requested_tasks(&p)
    .unwrap();
    assert_eq!(one.len(), 2);
    assert_eq!(one[0].1["distro"], "ubuntu-24.04-noble");
    assert!(!one[1].1.contains_key("distro"));
}

#[test]
fn digits_of_other_scripts_are_not_versions() {
    let p = example();
    // Arabic-Indic digits match `\d` in a Unicode regex; they must not pass as a version (nor
    // slip past a version override matched by an ASCII pattern).
    let e = err(&p, "٤.٢٨.٢ debian-12-bookworm");
    assert!(e.contains("'٤.٢٨.٢' has characters outside ASCII"), "{e}");
    let j = serde_json::json!({"versions": ["٤.٢٨.٢"]});
    let e = BuildInput::from_json(&p, &j, day())
        .unwrap_err()
        .to_string();
    assert!(e.contains("٤.٢٨.٢") && e.contains("is not valid"), "{e}");
}
