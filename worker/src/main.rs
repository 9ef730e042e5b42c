//! The worker binary: reads its configuration from the environment (see the README), wires the
//! real clients into the agent loop, and shuts down (power off on EC2, exit locally).
//!
//! Exit codes: 0 normal shutdown (idle, max tasks, task failure, interruption), 2 bad
//! configuration, 1 unexpected error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use boa_aws::adapters::sfn::GET_TASK_TIMEOUT as POLL_TIMEOUT;
use boa_aws::adapters::{CloudWatchLogs, Ec2Fleet, SfnActivities, load_worker_sdk_config};
use boa_aws::ports::Activities;
use boa_core::task::log_stream;
use boa_core::worker_env::{Shutdown, WorkerEnv};
use worker::agent::{Agent, AgentConfig, InterruptSender, interrupt_channel};
use worker::imds::{DEFAULT_ENDPOINT, Imds};
use worker::log::{FileLog, LogSink, NoLog};
use worker::shutdown::{self, ShutdownPort};
use worker::tags::{FileTagger, FleetTagger, NoTags, Tagger};
use worker::{IMDS_ENDPOINT_VAR, POLL_TIMEOUT_VAR, TAGS_FILE_VAR};

/// How often the spot interruption notice is polled on EC2.
const SPOT_POLL: Duration = Duration::from_secs(5);

/// One thread: the worker waits on the network and on its scripts' pipes and never computes
/// for long, and a local run starts hundreds of workers on the machine's shared cores, where
/// each thread of a multi-threaded runtime costs a start-up and a share of the scheduler.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if let Err(msg) = die_with_local_stack() {
        eprintln!("{msg}");
        return ExitCode::from(1);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(log_filter())
        .init();
    let env = match WorkerEnv::from_env() {
        Ok(e) => e,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let poll_timeout = match std::env::var(POLL_TIMEOUT_VAR) {
        Err(_) => POLL_TIMEOUT,
        Ok(v) => match v.parse::<f64>() {
            Ok(x) if x > 0.0 && x.is_finite() => Duration::from_secs_f64(x),
            _ => {
                eprintln!("{POLL_TIMEOUT_VAR}='{v}' is not a positive number of seconds");
                return ExitCode::from(2);
            }
        },
    };
    let port: Box<dyn ShutdownPort> = match env.shutdown {
        Shutdown::Poweroff => Box::new(shutdown::Poweroff),
        Shutdown::Exit => Box::new(shutdown::Exit),
    };
    let code = match run(env, poll_timeout).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e:#}");
            1
        }
    };
    ExitCode::from(port.shutdown(code).await as u8)
}

/// `RUST_LOG` (default `info`), with the AWS SDK's HTTP and signing layers capped at `info`: their
/// debug and trace output can carry request bodies and canonical requests (the signer logs the
/// signable body), and a request body can carry a task token.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let mut f = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for d in [
        "aws_smithy_runtime=info",
        "aws_smithy_http_client=info",
        "aws_smithy_runtime_api=info",
        "aws_smithy_http=info",
        "aws_sdk_sfn=info",
        "aws_sdk_ec2=info",
        "aws_sdk_cloudwatchlogs=info",
        "aws_sigv4=info",
        "aws_runtime=info",
        "aws_config=info",
        "hyper=info",
        "hyper_util=info",
        "h2=info",
        "reqwest=info",
    ] {
        f = f.add_directive(d.parse().expect("valid directive"));
    }
    f
}

fn watch_signals(tx: Arc<InterruptSender>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, name) in [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::interrupt(), "SIGINT"),
    ] {
        let mut s = signal(kind).with_context(|| format!("cannot watch {name}"))?;
        let tx = Arc::clone(&tx);
        tokio::spawn(async move {
            if s.recv().await.is_some() {
                tracing::warn!("{name} received");
                let _ = tx.send(Some(name.to_string()));
            }
        });
    }
    Ok(())
}

fn watch_spot(imds: Imds, tx: Arc<InterruptSender>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SPOT_POLL).await;
            match imds.spot_action().await {
                Ok(Some(body)) => {
                    tracing::warn!(notice = %body, "spot interruption notice");
                    let _ = tx.send(Some(format!("spot instance-action {}", body.trim())));
                    return;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "spot notice poll failed"),
            }
        }
    });
}

/// A worker the local stack started directly ([`boa_core::names::local::PARENT_PID`]) dies with
/// it: the kernel sends SIGKILL when the stack's process is gone (its scripts follow through
/// their guards). Not set (on EC2, or under a userdata stub): nothing to do.
fn die_with_local_stack() -> Result<(), String> {
    let Ok(v) = std::env::var(boa_core::names::local::PARENT_PID) else {
        return Ok(());
    };
    let parent: i32 = v.parse().map_err(|_| {
        format!(
            "{}='{v}' is not a process id",
            boa_core::names::local::PARENT_PID
        )
    })?;
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("cannot ask to die with the local stack: {e}"))?;
    // The stack may have died before the request: then no signal would ever come.
    if nix::unistd::getppid().as_raw() != parent {
        return Err(format!(
            "the local stack that started this worker (process {parent}) is gone"
        ));
    }
    Ok(())
}

/// A local instance's process starts at launch; its worker waits here until the simulated boot
/// ends (`BOA_LOCAL_UP_AT`, Unix milliseconds) or it is interrupted. Not set (on EC2): no wait.
async fn wait_for_local_boot(mut interrupt: tokio::sync::watch::Receiver<Option<String>>) {
    let Some(at) = std::env::var(boa_core::names::local::UP_AT)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return;
    };
    let left = at - chrono::Utc::now().timestamp_millis();
    if left <= 0 {
        return;
    }
    let wait = tokio::time::sleep(Duration::from_millis(left as u64));
    tokio::select! {
        () = wait => {}
        _ = interrupt.wait_for(Option::is_some) => {}
    }
}

/// `aws s3 cp --recursive` of an `s3://` scripts location into `<work_dir>/scripts`.
async fn fetch_scripts(url: &str, work_dir: &str) -> anyhow::Result<PathBuf> {
    let dest = PathBuf::from(work_dir).join("scripts");
    std::fs::create_dir_all(&dest)
        .with_context(|| format!("cannot create {} (check BOA_WORK_DIR)", dest.display()))?;
    let status = tokio::process::Command::new("aws")
        .args(["s3", "cp", "--recursive", "--only-show-errors", url])
        .arg(&dest)
        .status()
        .await
        .context("cannot run the aws CLI to fetch BOA_SCRIPTS (is it installed?)")?;
    if !status.success() {
        bail!(
            "aws s3 cp --recursive {url} failed ({status}): check BOA_SCRIPTS and the instance profile"
        );
    }
    Ok(dest)
}

async fn run(env: WorkerEnv, poll_timeout: Duration) -> anyhow::Result<()> {
    let (tx, rx) = interrupt_channel();
    let tx = Arc::new(tx);
    watch_signals(Arc::clone(&tx))?;

    let imds = Imds::new(
        &std::env::var(IMDS_ENDPOINT_VAR).unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string()),
    );
    let on_ec2 = env.instance_id.as_deref().is_none_or(str::is_empty);
    let instance_id = if on_ec2 {
        let id = imds.instance_id().await?;
        watch_spot(imds, Arc::clone(&tx));
        id
    } else {
        env.instance_id.clone().unwrap_or_default()
    };

    let sdk = load_worker_sdk_config(&env.region, env.endpoint_url.as_deref()).await;

    let scripts_dir = if env.scripts.starts_with("s3://") {
        fetch_scripts(&env.scripts, &env.work_dir).await?
    } else {
        PathBuf::from(&env.scripts)
    };

    let stream = log_stream(&env.step, &instance_id);
    let log: Arc<dyn LogSink> =
        if let Some(group) = env.log_group.as_deref().filter(|g| !g.is_empty()) {
            let cw = CloudWatchLogs::create(&sdk, group, &stream)
                .await
                .with_context(|| {
                    format!("cannot create log stream {stream} in {group} (check BOA_LOG_GROUP)")
                })?;
            cw.spawn_flusher(Duration::from_secs(5));
            cw
        } else if let Some(dir) = env.log_dir.as_deref().filter(|d| !d.is_empty()) {
            Arc::new(FileLog::open(dir.as_ref(), &stream).with_context(|| {
                format!("cannot open the worker log in {dir} (check BOA_LOG_DIR)")
            })?)
        } else {
            tracing::warn!(
                "neither BOA_LOG_GROUP nor BOA_LOG_DIR is set: script output is not kept"
            );
            Arc::new(NoLog)
        };

    let tagger: Arc<dyn Tagger> = match std::env::var(TAGS_FILE_VAR) {
        Ok(path) if !path.is_empty() => Arc::new(FileTagger::new(path)),
        _ if on_ec2 => Arc::new(FleetTagger {
            fleet: Ec2Fleet::new(&sdk),
            instance_id: instance_id.clone(),
        }),
        _ => Arc::new(NoTags),
    };

    let activities: Arc<dyn Activities> = Arc::new(SfnActivities::new(
        &sdk,
        env.endpoint_url.as_deref(),
        poll_timeout,
    ));
    let cfg = AgentConfig::new(&env, &instance_id, &scripts_dir);
    wait_for_local_boot(rx.clone()).await;
    let mut agent = Agent::new(cfg, activities, tagger, Arc::clone(&log), rx);
    let ending = agent.run().await?;
    log.flush().await;
    tracing::info!(?ending, "worker done");
    Ok(())
}
