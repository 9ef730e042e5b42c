//! The `build-on-aws` binary's argument handling: what a user sees before anything runs.
//! (Building this test also builds the binary itself, which the workspace's end-to-end tests run
//! through `bin/build-on-aws`.)

use std::path::Path;
use std::process::{Command, Output};

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml")
}

fn run(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_build-on-aws"))
        .args(args)
        .env("BOA_PIPELINE", example())
        .env("BOA_RUN_DIR", dir.path())
        .env_remove("BOA_STATE_MACHINE_ARN")
        .env_remove("BOA_TIME_SCALE")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_teaches_the_pipelines_steps_axes_and_examples() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    for s in [
        "MakeBinaryPackage",
        "debian-12-bookworm",
        "--fake-ec2",
        "--skip-ec2",
        "Examples",
        "status",
        "--env",
        "--html <FILE>",
        "self-contained HTML page",
        "status --list",
        "Ctrl-C stops a local run",
        "130/143",
    ] {
        assert!(help.contains(s), "{s} missing from --help:\n{help}");
    }
}

#[test]
fn help_lists_the_option_groups_and_how_the_place_is_chosen() {
    let help = text(&run(&["--help"]).stdout);
    for s in [
        "--where <WHERE>",
        "--mode <MODE>",
        "fake-ec2:",
        "Same as --mode test",
        "Same as --where local",
        "AWS mode:",
        "--state-machine-arn",
        "Local mode:",
        "--time-scale",
        "Fault injection (local mode):",
        "--kill-workers",
        "on AWS when a state machine ARN is configured",
        "BOA_STATE_MACHINE_ARN",
        "Exit codes",
    ] {
        assert!(help.contains(s), "{s} missing from --help:\n{help}");
    }
    let short = text(&run(&["-h"]).stdout);
    for s in ["AWS mode:", "Local mode:", "Fault injection (local mode):"] {
        assert!(short.contains(s), "{s} missing from -h:\n{short}");
    }
}

#[test]
fn mode_test_and_the_test_flag_make_the_same_input() {
    let long = run(&[
        "--dry-run",
        "--mode",
        "test",
        "4.28.2",
        "ubuntu-22.04-jammy",
    ]);
    let flag = run(&["--dry-run", "--test", "4.28.2", "ubuntu-22.04-jammy"]);
    let token = run(&["--dry-run", "4.28.2", "ubuntu-22.04-jammy", "--", "--test"]);
    assert_eq!(long.status.code(), Some(0), "{long:?}");
    let input: serde_json::Value = serde_json::from_slice(&long.stdout).unwrap();
    assert_eq!(input["mode"], "test", "{input}");
    assert_eq!(input["versions"], serde_json::json!(["4.28.2"]), "{input}");
    assert_eq!(text(&flag.stdout), text(&long.stdout), "{flag:?}");
    assert_eq!(text(&token.stdout), text(&long.stdout), "{token:?}");
    for (flag, mode) in [("--fake-ec2", "fake-ec2"), ("--skip-ec2", "skip-ec2")] {
        let a = run(&["--dry-run", flag, "4.28.2"]);
        let b = run(&["--dry-run", "--mode", mode, "4.28.2"]);
        assert_eq!(a.status.code(), Some(0), "{a:?}");
        assert_eq!(text(&a.stdout), text(&b.stdout), "{flag}");
    }
    let normal = run(&["--dry-run", "4.28.2"]);
    let input: serde_json::Value = serde_json::from_slice(&normal.stdout).unwrap();
    assert_eq!(input["mode"], "normal", "{input}");
}

#[test]
fn two_modes_exit_2_naming_both() {
    for (args, a, b) in [
        (
            &["--test", "--fake-ec2", "4.28.2"][..],
            "--test",
            "--fake-ec2",
        ),
        (&["--mode", "test", "--skip-ec2"], "--mode", "--skip-ec2"),
        (
            &["--dry-run", "--mode", "test", "--", "--fake-ec2"],
            "--mode test",
            "--fake-ec2",
        ),
        (&["--local", "--aws"], "--local", "--aws"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains(a) && err.contains(b), "{args:?}: {err}");
    }
}

#[test]
fn a_bad_time_scale_exits_2_naming_the_value() {
    // 1e-300 once made every wait overflow a Duration and panicked (exit 101).
    for bad in ["0", "-1", "NaN", "inf", "fast", "1e-300", "1e9"] {
        let out = run(&["--local", "4.28.2", "--time-scale", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("'{bad}'")) && err.contains("--time-scale"),
            "{bad}: {err}"
        );
        assert!(
            err.contains("from 0.01 to 10000") || err.contains("not a number"),
            "{err}"
        );
    }
    let out = run(&["--local", "4.28.2", "--boot-time", "-5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("'-5'"), "{out:?}");
}

#[test]
fn status_takes_the_global_options_on_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("elsewhere");
    let runs = runs.to_str().unwrap();
    let p = example();
    let p = p.to_str().unwrap();
    for args in [
        &["status", "--json", "--pipeline", p, "--run-dir", runs][..],
        &["--json", "--pipeline", p, "--run-dir", runs, "status"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            text(&out.stderr).contains(&format!("no local runs in {runs}")),
            "{args:?} reads the given run folder: {out:?}"
        );
    }
    let out = run(&["--local", "status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("--local starts a run and cannot be used with `status`"),
        "{out:?}"
    );
}

#[test]
fn aws_mode_without_a_state_machine_exits_2_with_the_fix() {
    let out = run(&["--aws", "4.28.2"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("BOA_STATE_MACHINE_ARN"),
        "{out:?}"
    );
}

#[test]
fn an_unknown_token_exits_2_naming_it_and_what_fits() {
    let out = run(&["--local", "4.28.2", "ubuntu-99.04-nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("ubuntu-99.04-nope"), "{err}");
    assert!(
        err.contains("debian-12-bookworm"),
        "lists what would fit: {err}"
    );
}

#[test]
fn bad_option_values_exit_2_with_the_fix() {
    let out = run(&["--local", "4.28.2", "--kill-workers", "3"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("give a number from 0 to 1"),
        "{out:?}"
    );
    let out = run(&["--local", "4.28.2", "--env", "NOEQUALS"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("is not KEY=VALUE"), "{out:?}");
}

#[test]
fn a_broken_pipeline_file_exits_2_with_its_problems() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pipeline.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[step]]\nname = \"A\"\nscrpt = \"a.sh\"\n",
    )
    .unwrap();
    let out = run(&["--local", "--pipeline", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("scrpt"),
        "names the bad key: {out:?}"
    );
}

#[test]
fn status_without_runs_says_how_to_start_one() {
    let out = run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("build-on-aws --local"),
        "{out:?}"
    );
}

#[test]
fn a_request_past_a_quota_exits_2_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let versions: Vec<String> = (1..=150).map(|i| format!("5.{i}.0")).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_build-on-aws"))
        .arg("--local")
        .args(&versions)
        .env("BOA_PIPELINE", example())
        .env("BOA_RUN_DIR", dir.path())
        .env_remove("BOA_STATE_MACHINE_ARN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("EXCEEDS") && err.contains("largest request"),
        "{err}"
    );
    // Nothing ran: no worker log, no run record.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the refused run left {left:?}");
}

#[test]
fn an_input_past_the_parse_input_size_cap_exits_2() {
    // 10,000 distinct versions: over ParseInput's input cap, refused by the CLI first.
    let versions: Vec<String> = (1..=10_000).map(|i| format!("5.{i}.0")).collect();
    let mut args = vec!["--local"];
    args.extend(versions.iter().map(String::as_str));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("bytes") && err.contains("at most 16384"),
        "{err}"
    );
}

#[test]
fn env_cannot_override_what_build_on_aws_sets_itself() {
    for (kv, name) in [
        ("BOA_SHUTDOWN=exit", "BOA_SHUTDOWN"),
        ("BOA_ACTIVITY_ARN=arn:x", "BOA_ACTIVITY_ARN"),
        ("BOA_ATTEMPT=9", "BOA_ATTEMPT"),
        ("AWS_ACCESS_KEY_ID=x", "AWS_ACCESS_KEY_ID"),
        ("BOA_VERSION=1.2.3", "BOA_VERSION"),
    ] {
        let out = run(&["--local", "--env", kv, "4.28.2", "MakeSourceTarball"]);
        assert_eq!(out.status.code(), Some(2), "{kv}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(name) && err.contains("pick another name"),
            "{kv}: {err}"
        );
    }
}

#[test]
fn status_list_and_html_need_a_run_and_say_how_to_start_one() {
    let out = run(&["status", "--list"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("build-on-aws --local"),
        "{out:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    let out = run(&["status", "--html", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!page.exists(), "no page without a run");
    let out = run(&["status", "--list", "some-run"]);
    assert_eq!(out.status.code(), Some(2), "--list takes no run: {out:?}");
}
