//! `bin/build-on-aws --aws` against moto_server: the execution is started on the configured
//! state machine with a readable name and the structured input, and its ARN and console URL are
//! printed. (moto does not run state machines, so following a run is covered in local mode.)

use std::process::Command;

use e2e_tests::local_cli::root;
use e2e_tests::moto::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_mode_starts_a_named_execution_with_the_structured_input() {
    let moto = Moto::start();
    let sfn = moto.sfn().await;
    let def = serde_json::json!({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}});
    let sm = sfn
        .create_state_machine()
        .name("build-on-aws-hhvm")
        .definition(def.to_string())
        .role_arn("arn:aws:iam::123456789012:role/build-on-aws-states")
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_string();

    let run_dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("bin/build-on-aws"))
        .args(["--aws", "4.28.2", "ubuntu-22.04-jammy", "MakeBinaryPackage"])
        .current_dir(root())
        .env("BOA_PIPELINE", root().join("pipeline.toml"))
        .env("BOA_RUN_DIR", run_dir.path())
        .env("BOA_STATE_MACHINE_ARN", &sm)
        .env("AWS_ENDPOINT_URL", moto.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("USER", "releng")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");

    let arn = stdout
        .lines()
        .find_map(|l| l.strip_prefix("execution: "))
        .unwrap_or_else(|| panic!("no execution line in {stdout}"))
        .trim()
        .to_string();
    let name = arn.rsplit(':').next().unwrap();
    assert!(
        name.starts_with("4_28_2-ubuntu-22_04-jammy-MakeBinaryPackage-releng-"),
        "{name}"
    );
    assert!(
        stdout.contains(&format!(
            "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{arn}"
        )),
        "{stdout}"
    );

    let d = sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.state_machine_arn(), sm);
    let input: serde_json::Value = serde_json::from_str(d.input().unwrap()).unwrap();
    assert_eq!(
        input,
        serde_json::json!({
            "versions": ["4.28.2"],
            "distros": ["ubuntu-22.04-jammy"],
            "steps": ["MakeBinaryPackage"],
            "mode": "normal"
        })
    );
}
