//! The `statemachine-gen` binary.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_statemachine-gen"))
}

fn example_path() -> String {
    crate::support::workspace()
        .join("pipeline.toml")
        .display()
        .to_string()
}

#[test]
fn prints_the_definition_with_placeholders_or_concrete_arns() {
    let out = bin().arg(example_path()).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["States"]["ParseInput"]["Resource"], "${LambdaParseInput}");
    let out = bin()
        .args([
            &example_path(),
            "--region",
            "eu-west-1",
            "--account",
            "111122223333",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["States"]["ParseInput"]["Resource"],
        "arn:aws:lambda:eu-west-1:111122223333:function:build-on-aws-hhvm-parse-input"
    );
    let again = bin()
        .args([
            &example_path(),
            "--region",
            "eu-west-1",
            "--account",
            "111122223333",
        ])
        .output()
        .unwrap();
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn prints_mermaid_and_reports() {
    let out = bin()
        .args([&example_path(), "--format", "mermaid"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("flowchart TD"));
    let out = bin()
        .args([&example_path(), "--report", "4.28.2 ubuntu-22.04-jammy"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("history events"), "{text}");
    let out = bin()
        .args([&example_path(), "--report", "4.28.2", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requested_tasks"], 4 + 4);
}

#[test]
fn bad_tokens_and_bad_pipelines_exit_2_with_the_message() {
    let out = bin()
        .args([&example_path(), "--report", "4.28.2 ubuntu-22.04-jamy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ubuntu-22.04-jamy") && err.contains("did you mean"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pipeline.toml");
    std::fs::write(&f, "name = \"x\"\n[[axis]]\nname = \"version\"\npattern = '.'\n[[step]]\nname = \"A\"\nscript = \"a.sh\"\ntimout = \"1h\"\n").unwrap();
    let out = bin().arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 8") && err.contains("timeout"), "{err}");
    assert!(out.stdout.is_empty());
}
