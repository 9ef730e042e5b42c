//! Local mode runs each launch's userdata stub, the one EC2 runs: a worker binary that is not the
//! deployed one never starts (the instance ends, its console log says why), and a step script
//! whose content differs from the SHA-256 its launch carries never runs. An instance's stub and
//! worker start up during its boot, and the worker registers only once the boot has passed.

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

/// A pipeline folder with the STUBCHECK pipeline; the stack started on it with `worker`, at
/// ×100 with boots of `boot` (pipeline time).
async fn start(dir: &Path, worker: &Path, boot: Duration) -> LocalStack {
    let pipeline_path = dir.join("pipeline.toml");
    std::fs::write(&pipeline_path, PIPELINE).unwrap();
    write_script(&dir.join("build.sh"), BUILD_SH);
    let mut opts = LocalOptions::new(&pipeline_path, worker, dir.join("run"));
    opts.time_scale = 100.0;
    opts.boot_time = boot;
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
    let stack = start(dir.path(), &worker, Duration::from_secs(10)).await;
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
    let stack = start(dir.path(), &worker_bin(), Duration::from_secs(10)).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starts_up_during_its_boot_and_its_worker_registers_only_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // 300 s of pipeline time: a boot of 3 s here.
    let stack = start(dir.path(), &worker_bin(), Duration::from_secs(300)).await;
    let handle = stack.run(&input(&stack), "boot").unwrap();
    // The stub runs at launch: it installs the worker binary into the instance's folder.
    let work = stack.own_dir().join("work");
    let installed = wait_for(Duration::from_secs(2), || {
        std::fs::read_dir(&work)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("opt").join("worker"))
            .find(|p| p.exists())
    });
    let installed = installed.expect("the stub installed the worker within 2 s of the launch");
    let id = installed
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap()
        .to_string();
    // Give its worker time to start up: it waits, unregistered, while the instance is pending.
    std::thread::sleep(Duration::from_millis(800));
    let span = |stack: &LocalStack| {
        stack
            .fleet()
            .spans()
            .into_iter()
            .find(|s| s.id == id)
            .expect("the instance has a span")
    };
    let early = span(&stack);
    assert_eq!(
        early.running, None,
        "running before its boot ended: {early:?}"
    );
    assert!(
        !stack.fleet().pids().is_empty(),
        "the instance's processes run during the boot"
    );
    let registered = |stack: &LocalStack| {
        logs(stack)
            .into_iter()
            .any(|(p, text)| p.contains(&id) && text.contains("serving Build"))
    };
    assert!(!registered(&stack), "the worker registered during the boot");
    let result = tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .expect("the run ends within its bound");
    assert_eq!(result.status, ExecutionStatus::Succeeded, "{result:?}");
    let done = span(&stack);
    let running = done.running.expect("it ran");
    assert!(
        running - done.launched >= chrono::Duration::milliseconds(2900),
        "running {running} only {} after its launch",
        running - done.launched
    );
    assert!(registered(&stack), "its worker served the task");
    stack.shutdown().await;
    assert!(stack.fleet().alive().is_empty());
}
