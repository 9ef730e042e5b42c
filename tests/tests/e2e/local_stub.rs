//! Local mode runs each launch's userdata stub, the one EC2 runs: a worker binary that is not the
//! deployed one never starts (the instance ends, its console log says why), and a step script
//! whose content differs from the SHA-256 its launch carries never runs.

use std::path::Path;
use std::time::Duration;

use boa_core::results::Status;
use boa_core::{BuildInput, Pipeline};
use e2e_tests::local_cli::{task, wait_for, worker_bin, write_script};
use engine::ExecutionStatus;
use local::stack::{LocalOptions, LocalStack};

const PIPELINE: &str = r#"
name = "stubcheck"

[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'

[defaults.worker]
ami = "ami-0123456789abcdef0"
instance_types = ["c7i.large"]
idle_timeout = "10m"
max_workers = 2

[[step]]
name = "Build"
for_each = ["version"]
script = "build.sh"
retries = 0
"#;

const BUILD_SH: &str = "#!/bin/sh\necho \"built $BOA_VERSION\"\n";

/// A pipeline folder with the STUBCHECK pipeline; the stack started on it with `worker`.
async fn start(dir: &Path, worker: &Path) -> LocalStack {
    let pipeline_path = dir.join("pipeline.toml");
    std::fs::write(&pipeline_path, PIPELINE).unwrap();
    write_script(&dir.join("build.sh"), BUILD_SH);
    let mut opts = LocalOptions::new(&pipeline_path, worker, dir.join("run"));
    opts.time_scale = 100.0;
    opts.boot_time = Duration::from_secs(10);
    LocalStack::start(opts).await.unwrap()
}

fn input(stack: &LocalStack) -> BuildInput {
    let p: &Pipeline = stack.pipeline();
    BuildInput::from_tokens(p, &["1.0.0"], chrono::Local::now().date_naive()).unwrap()
}

/// Every file of the run's logs folder (and below), with its text.
fn logs(stack: &LocalStack) -> Vec<(String, String)> {
    fn walk(d: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap_or_default(),
                ));
            }
        }
    }
    let mut out = vec![];
    walk(&stack.own_dir().join("logs"), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_worker_binary_never_starts_and_the_console_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // The "deployed" binary: the stack hashes it when it starts, as deploy does when it uploads.
    let worker = dir.path().join("worker");
    std::fs::copy(worker_bin(), &worker).unwrap();
    let stack = start(dir.path(), &worker).await;
    let expected = stack
        .config()
        .worker_sha256
        .clone()
        .expect("launches carry the worker binary's SHA-256");
    // Then someone changes the binary that instances fetch.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&worker)
            .unwrap();
        f.write_all(b"\0tampered").unwrap();
    }
    let handle = stack.run(&input(&stack), "tampered-binary").unwrap();
    let arn = handle.arn().to_string();
    let refused = wait_for(Duration::from_secs(60), || {
        logs(&stack)
            .into_iter()
            .find(|(path, text)| path.ends_with(".console.log") && text.contains("poweroff"))
    });
    let (console, text) =
        refused.unwrap_or_else(|| panic!("no instance ended: {:?}", logs(&stack)));
    assert!(
        text.contains("is not the deployed one") && text.contains(&format!("expected {expected}")),
        "{console}: {text}"
    );
    // The instance ended, and no worker ever ran: no worker process, no worker log, no output.
    let id = Path::new(&console)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".console.log"))
        .unwrap()
        .to_string();
    assert!(
        wait_for(Duration::from_secs(10), || (!stack
            .fleet()
            .alive()
            .contains(&id))
        .then_some(()))
        .is_some(),
        "{id} still live"
    );
    let worker_output: Vec<_> = logs(&stack)
        .into_iter()
        .filter(|(p, _)| !p.ends_with(".console.log"))
        .collect();
    assert!(worker_output.is_empty(), "a worker ran: {worker_output:?}");
    stack
        .stop(&arn, "Test.Stopped", "the test is done")
        .unwrap();
    stack.shutdown().await;
    assert!(stack.fleet().alive().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_does_not_match_its_sha256_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start(dir.path(), &worker_bin()).await;
    let expected = stack.pipeline().steps[0].script_sha256["build.sh"].clone();
    // After the pipeline was loaded (its scripts hashed, as deploy bundles them), the script
    // changes: the worker, started by the stub, refuses it.
    let marker = dir.path().join("tampered-script-ran");
    write_script(
        &dir.path().join("build.sh"),
        &format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    );
    let handle = stack.run(&input(&stack), "tampered-script").unwrap();
    let arn = handle.arn().to_string();
    let result = tokio::time::timeout(Duration::from_secs(120), handle.wait())
        .await
        .expect("the run ends within its bound");
    assert_eq!(result.status, ExecutionStatus::Failed, "{result:?}");
    let r = stack.results(&arn).expect("results written");
    stack.shutdown().await;
    let t = task(&r, "Build", &[("version", "1.0.0")]);
    assert_eq!(t.status, Status::Failed, "{t:?}");
    assert_eq!(t.error.as_deref(), Some("Worker.ScriptFailed"), "{t:?}");
    let cause = t.cause.as_deref().unwrap_or_default();
    assert!(
        cause.contains("does not match its SHA-256") && cause.contains(&expected),
        "{t:?}"
    );
    assert!(!marker.exists(), "the tampered script ran");
    // The worker was started through the stub, which checked the binary first.
    let id = t
        .instance_id
        .clone()
        .expect("the failed task names its worker");
    let stub = std::fs::read_to_string(stack.own_dir().join("work").join(&id).join("user-data.sh"))
        .unwrap();
    assert!(stub.contains("sha256sum -c --status -"), "{stub}");
}
