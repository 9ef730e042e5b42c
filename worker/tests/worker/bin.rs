//! The real `worker` binary, with its real `aws-sdk-sfn` client, against a fake Step Functions
//! endpoint (awsJson1_0 over HTTP on 127.0.0.1).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{group_alive, input, read_pid, script};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boa_core::task::{WorkerFailureCause, WorkerOutput};
use serde_json::{Value, json};

/// A token that must never show up in a log.
const TOKEN: &str = "AAAAKgAAAAIAAAAAAAAAAsecret-task-token-ZmFrZXRva2Vu";

#[derive(Default)]
struct Sfn {
    tasks: Mutex<VecDeque<(String, String)>>,
    calls: Mutex<Vec<(Instant, String, Value)>>,
    /// GetActivityTask calls that are never answered.
    hang: Mutex<usize>,
    /// GetActivityTask calls answered with 500, then ThrottlingException, alternately.
    errors: Mutex<usize>,
}

impl Sfn {
    fn calls(&self, op: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, o, _)| o == op)
            .map(|(_, _, b)| b.clone())
            .collect()
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(s): State<Arc<Sfn>>, headers: HeaderMap, body: String) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(op) = target.strip_prefix("AWSStepFunctions.") else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"__type": "UnknownOperationException", "message": target}),
        );
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    s.calls
        .lock()
        .unwrap()
        .push((Instant::now(), op.to_string(), body));
    if op != "GetActivityTask" {
        return json_response(StatusCode::OK, json!({}));
    }
    let hang = {
        let mut h = s.hang.lock().unwrap();
        let hang = *h > 0;
        *h = h.saturating_sub(1);
        hang
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let error = {
        let mut e = s.errors.lock().unwrap();
        let n = *e;
        *e = n.saturating_sub(1);
        n
    };
    if error > 0 {
        return if error % 2 == 0 {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({}))
        } else {
            json_response(
                StatusCode::BAD_REQUEST,
                json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
            )
        };
    }
    let task = s.tasks.lock().unwrap().pop_front();
    match task {
        Some((token, input)) => {
            json_response(StatusCode::OK, json!({"taskToken": token, "input": input}))
        }
        None => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            json_response(StatusCode::OK, json!({}))
        }
    }
}

async fn serve(sfn: Arc<Sfn>) -> String {
    let app = axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(sfn);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

struct Run {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sfn: Arc<Sfn>,
    cmd: tokio::process::Command,
}

async fn setup(tasks: Vec<String>, task_script: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    script(&root.join("scripts"), "task.sh", task_script, false);
    let sfn = Arc::new(Sfn {
        tasks: Mutex::new(tasks.into_iter().map(|i| (TOKEN.to_string(), i)).collect()),
        ..Default::default()
    });
    let url = serve(sfn.clone()).await;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &root)
        .env("AWS_CONFIG_FILE", root.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            root.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "BOA_ACTIVITY_ARN",
            "arn:aws:states:us-east-1:123456789012:activity:build-on-aws-hhvm-MakeBinaryPackage",
        )
        .env("BOA_REGION", "us-east-1")
        .env("BOA_ENDPOINT_URL", url)
        .env("BOA_INSTANCE_ID", "i-local1")
        .env("BOA_STEP", "MakeBinaryPackage")
        .env("BOA_SCRIPTS", root.join("scripts"))
        .env("BOA_SCRIPT", "task.sh")
        .env("BOA_IDLE_TIMEOUT_S", "0.5")
        .env("BOA_HEARTBEAT_S", "0.1")
        .env("BOA_LOG_DIR", root.join("logs"))
        .env("BOA_WORK_DIR", root.join("work"))
        .env("BOA_TAGS_FILE", root.join("tags.json"))
        .env("BOA_SHUTDOWN", "exit")
        // The most a user can ask for, the SDK's signer and HTTP layers named explicitly: no
        // setting may let a task token into a log.
        .env(
            "RUST_LOG",
            "trace,aws_sigv4=trace,aws_smithy_runtime=trace,aws_smithy_http_client=trace,hyper=trace",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    Run {
        _dir: dir,
        root,
        sfn,
        cmd,
    }
}

fn task() -> String {
    input(
        "MakeBinaryPackage",
        &[("version", "4.28.2"), ("distro", "debian-12-bookworm")],
        "normal",
        0,
    )
}

/// Waits for the worker to exit; returns (exit code, stderr).
async fn finish(child: tokio::process::Child, limit: Duration) -> (i32, String) {
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("worker exits in time")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[tokio::test]
async fn success_through_the_real_client_with_tags_and_no_token_in_logs() {
    let mut r = setup(vec![task()], "echo building $BOA_VERSION for $BOA_DISTRO\n").await;
    let child = r.cmd.spawn().unwrap();
    let (code, stderr) = finish(child, Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{stderr}");
    let ok = r.sfn.calls("SendTaskSuccess");
    assert_eq!(ok.len(), 1, "{stderr}");
    assert_eq!(ok[0]["taskToken"], TOKEN);
    let out: WorkerOutput = serde_json::from_str(ok[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(out.instance_id, "i-local1");
    assert_eq!(out.log_stream, "MakeBinaryPackage/w_i-local1");
    let polls = r.sfn.calls("GetActivityTask");
    assert!(
        polls[0]["workerName"]
            .as_str()
            .unwrap()
            .contains("i-local1")
    );
    assert!(
        polls[0]["activityArn"]
            .as_str()
            .unwrap()
            .ends_with("MakeBinaryPackage")
    );

    let tags: BTreeMap<String, String> =
        serde_json::from_str(&read(&r.root.join("tags.json"))).unwrap();
    assert_eq!(
        tags["Name"],
        "ww-1-MakeBinaryPackage-debian-12-bookworm-4.28.2"
    );
    assert_eq!(tags["build-on-aws:work"], "idle");
    assert!(chrono::DateTime::parse_from_rfc3339(&tags["build-on-aws:lease"]).is_ok());

    let log = read(&r.root.join("logs/MakeBinaryPackage/w_i-local1.log"));
    assert!(
        log.contains("building 4.28.2 for debian-12-bookworm"),
        "{log}"
    );
    assert!(log.contains("wa-1") || log.contains("task 1"), "{log}");
    assert!(!log.contains(TOKEN), "token in the log file");
    assert!(!stderr.contains(TOKEN), "token on stderr");
    assert!(!stderr.contains("secret-task-token"), "token on stderr");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(r.root.join("logs/MakeBinaryPackage/w_i-local1.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the worker log is its owner's only");
}

#[tokio::test]
async fn sigterm_mid_task_reports_interrupted_and_kills_the_process_group() {
    let mut r = setup(vec![], "").await;
    let pidfile = r.root.join("pid");
    script(
        &r.root.join("scripts"),
        "task.sh",
        &format!(
            "echo working\necho $$ > {}\nsleep 60 &\nwait\n",
            pidfile.display()
        ),
        false,
    );
    r.sfn
        .tasks
        .lock()
        .unwrap()
        .push_back((TOKEN.into(), task()));
    r.cmd.env("BOA_IDLE_TIMEOUT_S", "30");
    let child = r.cmd.spawn().unwrap();
    let pgid = read_pid(&pidfile, Duration::from_secs(15)).await;
    assert!(group_alive(pgid));
    let sent = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, stderr) = finish(child, Duration::from_secs(10)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(sent.elapsed() < Duration::from_secs(5), "slow to react");
    let f = r.sfn.calls("SendTaskFailure");
    assert_eq!(f.len(), 1, "{stderr}");
    assert_eq!(f[0]["error"], "Worker.Interrupted");
    let cause: WorkerFailureCause = serde_json::from_str(f[0]["cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause.status, "interrupted: SIGTERM");
    assert!(cause.log_tail.contains("working"));
    assert!(!group_alive(pgid), "the script's process group survived");
    assert!(r.sfn.calls("SendTaskSuccess").is_empty());
    let log = read(&r.root.join("logs/MakeBinaryPackage/w_i-local1.log"));
    assert!(!log.contains(TOKEN) && !stderr.contains(TOKEN));
}

/// Whether `pid` is gone: no such process, or a zombie (it is not the test's child, so whoever
/// reaps it is not the test's business).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|c| stat[c + 1..].split_whitespace().next())
            .is_none_or(|state| state == "Z"),
    }
}

#[tokio::test]
async fn a_sigkilled_worker_takes_its_script_and_the_script_s_children_with_it() {
    let mut r = setup(vec![task()], "").await;
    let pids = r.root.join("pids");
    // The script and its child, both in the script's process group; the file is complete once
    // it exists (written then renamed).
    script(
        &r.root.join("scripts"),
        "task.sh",
        &format!(
            "sleep 120 &\necho \"$$ $!\" > {0}.tmp && mv {0}.tmp {0}\nwait\n",
            pids.display()
        ),
        false,
    );
    r.cmd.env("BOA_IDLE_TIMEOUT_S", "30");
    let mut child = r.cmd.spawn().unwrap();
    let t = Instant::now();
    let (script_pid, sleep_pid) = loop {
        if let Ok(s) = std::fs::read_to_string(&pids) {
            let v: Vec<i32> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
            break (v[0], v[1]);
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the script never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!gone(script_pid) && !gone(sleep_pid));
    // The worker alone, not its process group: nothing it could catch or clean up after.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the worker dies")
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let killed = Instant::now();
    let both_gone = loop {
        if gone(script_pid) && gone(sleep_pid) {
            break true;
        }
        if killed.elapsed() > Duration::from_secs(5) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if !both_gone {
        // Do not leave them behind.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(script_pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        both_gone,
        "the script ({script_pid}) or its child ({sleep_pid}) outlived the worker"
    );
    // The task was never reported: the worker died mid-task.
    assert!(r.sfn.calls("SendTaskSuccess").is_empty());
}

#[tokio::test]
async fn a_hung_poll_times_out_and_is_retried() {
    let mut r = setup(vec![task()], "true\n").await;
    *r.sfn.hang.lock().unwrap() = 1;
    r.cmd
        .env("BOA_POLL_TIMEOUT_S", "0.5")
        .env("BOA_MAX_TASKS", "1");
    let t = Instant::now();
    let child = r.cmd.spawn().unwrap();
    let (code, stderr) = finish(child, Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(r.sfn.calls("GetActivityTask").len() >= 2);
    assert_eq!(r.sfn.calls("SendTaskSuccess").len(), 1, "{stderr}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("timed out"), "{stderr}");
}

#[tokio::test]
async fn transient_api_errors_are_retried() {
    let mut r = setup(vec![task()], "true\n").await;
    *r.sfn.errors.lock().unwrap() = 2;
    r.cmd.env("BOA_MAX_TASKS", "1");
    let child = r.cmd.spawn().unwrap();
    let (code, stderr) = finish(child, Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(r.sfn.calls("GetActivityTask").len(), 3, "{stderr}");
    assert_eq!(r.sfn.calls("SendTaskSuccess").len(), 1);
    assert!(stderr.contains("ThrottlingException"), "{stderr}");
}

#[tokio::test]
async fn bad_configuration_exits_2_naming_the_variables() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("BOA_HEARTBEAT_S", "often")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for v in [
        "BOA_ACTIVITY_ARN",
        "BOA_REGION",
        "BOA_SCRIPT",
        "BOA_HEARTBEAT_S='often'",
    ] {
        assert!(err.contains(v), "{v} missing from: {err}");
    }
}

#[tokio::test]
async fn instance_id_comes_from_imdsv2_when_not_given() {
    // A fake IMDS: PUT token, then GET instance-id with it; the spot notice is 404.
    async fn token() -> &'static str {
        "imds-token"
    }
    async fn id(headers: HeaderMap) -> Response {
        if headers
            .get("x-aws-ec2-metadata-token")
            .and_then(|v| v.to_str().ok())
            == Some("imds-token")
        {
            "i-0imds".into_response()
        } else {
            StatusCode::UNAUTHORIZED.into_response()
        }
    }
    let app = axum::Router::new()
        .route("/latest/api/token", axum::routing::put(token))
        .route("/latest/meta-data/instance-id", axum::routing::get(id));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let imds = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let mut r = setup(vec![task()], "true\n").await;
    r.cmd
        .env_remove("BOA_INSTANCE_ID")
        .env("BOA_IMDS_ENDPOINT", imds)
        .env("BOA_MAX_TASKS", "1");
    let child = r.cmd.spawn().unwrap();
    let (code, stderr) = finish(child, Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{stderr}");
    let ok = r.sfn.calls("SendTaskSuccess");
    let out: WorkerOutput = serde_json::from_str(ok[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(out.instance_id, "i-0imds");
    assert!(r.root.join("logs/MakeBinaryPackage/w_i-0imds.log").exists());
}
