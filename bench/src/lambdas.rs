//! Section 2, Lambda start-up: each release binary driven through the loopback Runtime API, beside an
//! equivalent Python handler.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde::Serialize;

use crate::cost::CapturedEvents;
use crate::runtime_api::RuntimeApi;
use crate::sys::{median, proc_status_kib};
use crate::{Ctx, table};

/// The six Lambda binaries, in the order a run invokes them (health-check on its schedule).
pub const FUNCTIONS: [&str; 6] = [
    "parse-input",
    "start-workers",
    "health-check",
    "record-result",
    "normalize-results",
    "check-for-failures",
];

/// The packages that build them: record-result is a second binary of normalize-results.
pub const PACKAGES: [&str; 5] = [
    "parse-input",
    "start-workers",
    "health-check",
    "normalize-results",
    "check-for-failures",
];

/// The package a function binary is built from.
pub fn package_of(function: &str) -> &str {
    match function {
        "record-result" => "normalize-results",
        other => other,
    }
}

/// What the Python handler is measured against.
pub const PYTHON_PEER: &str = "start-workers";

const PYTHON_HANDLER: &str = r#"# build-on-aws bench: start-workers' start-up in Python. Imports boto3 and builds the EC2,
# Step Functions and S3 clients once (like the Rust Lambdas' main), then answers each event with
# start-workers' two EC2 requests (DescribeInstances, RunInstances). A minimal Runtime API loop
# stands in for awslambdaric (which would add its own start-up).
import json
import os
import urllib.request

import boto3

ec2 = boto3.client("ec2")
sfn = boto3.client("stepfunctions")
s3 = boto3.client("s3")


def handler(event, context):
    stack = [{"Name": "tag:build-on-aws:stack", "Values": [os.environ["BOA_STACK"]]}]
    ec2.describe_instances(Filters=stack)
    r = ec2.run_instances(ImageId="ami-00000000000000000", InstanceType="c7i.large",
                          MinCount=1, MaxCount=1, ClientToken="bench")
    return {"status": "pending", "launched": [i["InstanceId"] for i in r["Instances"]]}


api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    body = json.dumps(handler(event, None)).encode()
    req = urllib.request.Request(api + request_id + "/response", data=body, method="POST")
    urllib.request.urlopen(req).read()
"#;

#[derive(Debug, Clone, Serialize)]
pub struct StartupRow {
    pub name: String,
    pub binary: String,
    pub runs: usize,
    /// Medians.
    pub ready_ms: f64,
    pub first_response_ms: f64,
    pub peak_rss_kib: u64,
    pub ready_all_ms: Vec<f64>,
    pub first_response_all_ms: Vec<f64>,
    /// Requests it made to the fake AWS endpoint on its first invocation.
    pub aws_calls: Vec<String>,
    /// The start of its first response, or the error it posted.
    pub response: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lambdas {
    pub rows: Vec<StartupRow>,
    pub python: Option<StartupRow>,
    /// Why there is no Python row.
    pub python_skipped: Option<String>,
    pub python_peer: String,
    /// Python ÷ the peer: ready, first response, peak RSS.
    pub python_ratio: Option<[f64; 3]>,
}

fn binary_for(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(name).join("bootstrap")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Finds a python that imports boto3: `--python`, the project's venv, then `python3`.
pub fn find_python(ctx: &Ctx) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match &ctx.python {
        Some(p) => vec![p.clone()],
        None => vec![
            ctx.root.join(".tools/venv/bin/python"),
            PathBuf::from("python3"),
        ],
    };
    for c in &candidates {
        let ok = std::process::Command::new(c)
            .args(["-c", "import boto3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "no python with boto3 ({}); run tools/setup",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

struct Subject<'a> {
    name: &'a str,
    program: PathBuf,
    args: Vec<String>,
    event: String,
}

async fn measure(
    ctx: &Ctx,
    api: &RuntimeApi,
    s: &Subject<'_>,
    pipeline: &Path,
) -> Result<StartupRow> {
    let home = ctx.tmp.join("lambda-home");
    std::fs::create_dir_all(&home)?;
    let log_path = ctx.tmp.join(format!("lambda-{}.log", s.name));
    let (mut ready, mut first, mut rss) = (vec![], vec![], vec![]);
    let mut first_seen = None;
    for _ in 0..ctx.lambda_runs.max(1) {
        api.arm(&s.event);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = tokio::process::Command::new(&s.program);
        cmd.args(&s.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env(
                "AWS_LAMBDA_FUNCTION_NAME",
                format!("build-on-aws-bench-{}", s.name),
            )
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "bench")
            .env("AWS_SECRET_ACCESS_KEY", "bench")
            .env("AWS_SESSION_TOKEN", "bench")
            .env("AWS_ENDPOINT_URL", format!("http://{}", api.addr))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("BOA_STACK", "build-on-aws-bench")
            .env(
                "BOA_STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:123456789012:stateMachine:x",
            )
            .env("BOA_ARTIFACTS", "s3://b/p")
            .env("BOA_PIPELINE_FILE", pipeline)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow!("cannot start {}: {e}", s.program.display()))?;
        let pid = child.id().unwrap_or(0);
        let seen = tokio::select! {
            seen = api.wait_done() => seen,
            status = child.wait() => {
                return Err(anyhow!(
                    "{} exited ({}) before answering; see {}",
                    s.name,
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    log_path.display()
                ));
            }
            _ = tokio::time::sleep(Duration::from_secs(30)) => {
                let _ = child.kill().await;
                return Err(anyhow!("{} did not answer within 30 s; saw {:?}", s.name, api.observed()));
            }
        };
        // The peak so far: the process is alive and idle in its next poll.
        rss.push(proc_status_kib(pid, "VmHWM").unwrap_or(0) as f64);
        let _ = child.kill().await;
        let at = |t: Option<Instant>| t.map_or(f64::NAN, |t| (t - t0).as_secs_f64() * 1000.0);
        ready.push(at(seen.ready));
        first.push(at(seen.responded));
        first_seen.get_or_insert(seen);
    }
    let seen = first_seen.unwrap_or_default();
    let ok = seen.error.is_none();
    let response = seen
        .error
        .clone()
        .or(seen.response.clone())
        .unwrap_or_default();
    Ok(StartupRow {
        name: s.name.to_string(),
        binary: s.program.display().to_string(),
        runs: ready.len(),
        ready_ms: median(&ready),
        first_response_ms: median(&first),
        peak_rss_kib: median(&rss) as u64,
        ready_all_ms: ready,
        first_response_all_ms: first,
        aws_calls: seen.aws_calls,
        response: response.chars().take(160).collect(),
        ok,
    })
}

pub async fn run(ctx: &Ctx, events: &CapturedEvents) -> Result<Lambdas> {
    let api = RuntimeApi::start().await?;
    let mut rows = vec![];
    for name in FUNCTIONS {
        let program = binary_for(&ctx.lambda_dir, name).ok_or_else(|| {
            anyhow!(
                "no {name} binary in {} (build with `cargo build --release -p {}`)",
                ctx.lambda_dir.display(),
                package_of(name)
            )
        })?;
        let event = match name {
            // The EventBridge Scheduler payload is ignored.
            "health-check" => "{}".to_string(),
            _ => events
                .events
                .get(name)
                .cloned()
                .ok_or_else(|| anyhow!("no {name} event was captured from the local run"))?,
        };
        eprintln!("bench: lambdas: {name} ×{}…", ctx.lambda_runs);
        let s = Subject {
            name,
            program,
            args: vec![],
            event,
        };
        rows.push(measure(ctx, &api, &s, &events.pipeline).await?);
    }
    let (python, python_skipped) = match find_python(ctx) {
        Ok(py) => {
            let script = ctx.tmp.join("python_handler.py");
            std::fs::write(&script, PYTHON_HANDLER)?;
            eprintln!("bench: lambdas: python + boto3 ×{}…", ctx.lambda_runs);
            let s = Subject {
                name: "python-boto3",
                program: py,
                args: vec![script.display().to_string()],
                event: events
                    .events
                    .get(PYTHON_PEER)
                    .cloned()
                    .unwrap_or_else(|| "{}".into()),
            };
            (Some(measure(ctx, &api, &s, &events.pipeline).await?), None)
        }
        Err(why) => (None, Some(why)),
    };
    let python_ratio = python.as_ref().and_then(|py| {
        let peer = rows.iter().find(|r| r.name == PYTHON_PEER)?;
        Some([
            py.ready_ms / peer.ready_ms,
            py.first_response_ms / peer.first_response_ms,
            py.peak_rss_kib as f64 / peer.peak_rss_kib.max(1) as f64,
        ])
    });
    Ok(Lambdas {
        rows,
        python,
        python_skipped,
        python_peer: PYTHON_PEER.into(),
        python_ratio,
    })
}

pub fn render(l: &Lambdas, runs: usize) -> String {
    let mut out = format!(
        "2. Lambda start-up: release binaries through a loopback Runtime API, median of {runs} runs (process start → first GET next = ready; → first response)\n"
    );
    let row = |r: &StartupRow| {
        vec![
            r.name.clone(),
            table::ms(r.ready_ms),
            table::ms(r.first_response_ms),
            table::mib(r.peak_rss_kib),
            if r.aws_calls.is_empty() {
                "—".into()
            } else {
                r.aws_calls.join(", ")
            },
            if r.ok { "ok" } else { "ERROR" }.into(),
        ]
    };
    let mut rows: Vec<Vec<String>> = l.rows.iter().map(row).collect();
    if let Some(py) = &l.python {
        rows.push(row(py));
    }
    out.push_str(&table::render(
        &[
            "function",
            "ready",
            "first response",
            "peak RSS",
            "AWS requests (fake, loopback)",
            "",
        ],
        &rows,
    ));
    match (&l.python_ratio, &l.python_skipped) {
        (Some([r, f, m]), _) => out.push_str(&format!(
            "  python-boto3 ÷ {}: ready {}, first response {}, peak RSS {}\n",
            l.python_peer,
            table::ratio(*r),
            table::ratio(*f),
            table::ratio(*m)
        )),
        (None, Some(why)) => out.push_str(&format!("  python comparison skipped: {why}\n")),
        _ => {}
    }
    for r in l.rows.iter().chain(&l.python).filter(|r| !r.ok) {
        out.push_str(&format!(
            "  {} answered with an error: {}\n",
            r.name, r.response
        ));
    }
    out
}
