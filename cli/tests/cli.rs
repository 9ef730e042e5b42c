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
    ] {
        assert!(help.contains(s), "{s} missing from --help:\n{help}");
    }
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
