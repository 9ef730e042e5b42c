//! The agent loop: poll, tag, run init/script/after, heartbeat, report, and end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boa_aws::ports::{Activities, ActivityTask, PortError, tags};
use boa_core::errors::ErrorName;
use boa_core::input::Mode;
use boa_core::task::{ActivityInput, WorkerFailureCause, WorkerOutput, log_stream, task_env};
use boa_core::worker_env::WorkerEnv;
use chrono::Utc;
use tokio::sync::watch;

use crate::cause::{MAX_CAUSE_CHARS, bound_error, bounded_cause};
use crate::log::LogSink;
use crate::script::{self, Exit};
use crate::tags::Tagger;
use crate::token_hash;
use boa_aws::backoff::{TokioSleeper, retry};
use boa_core::retry::Backoff;

/// Exit code of a test-mode script that asks for a failure that is never retried.
pub const TEST_NO_RETRY_EXIT: i32 = 99;
/// Default lease margin (`BOA_LEASE_MARGIN_S`); see [`AgentConfig::lease_span`].
pub const LEASE_MARGIN: Duration = boa_core::worker_env::DEFAULT_LEASE_MARGIN;
/// Polls that come back empty sooner than this are spaced out to this (fakes, local engine).
pub const MIN_POLL_SPACING: Duration = Duration::from_millis(50);

/// What the agent needs to know, resolved from [`WorkerEnv`].
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub activity_arn: String,
    pub instance_id: String,
    pub step: String,
    /// The local folder the script paths are relative to.
    pub scripts_dir: PathBuf,
    pub script: String,
    pub init_script: Option<String>,
    pub after_script: Option<String>,
    pub cleanup_script: Option<String>,
    /// The SHA-256 every script must have (`BOA_SCRIPTS_SHA256`); empty = not checked.
    pub scripts_sha256: BTreeMap<String, String>,
    pub step_env: BTreeMap<String, String>,
    pub idle_timeout: Duration,
    /// 0 = unlimited.
    pub max_tasks: u32,
    pub heartbeat: Duration,
    /// Task folders (`task-N`) are created below it.
    pub work_dir: PathBuf,
    pub retry: Backoff,
    /// Added to the lease beyond what the worker itself waits (covers a long poll and slow tagging).
    pub lease_margin: Duration,
}

impl AgentConfig {
    pub fn new(env: &WorkerEnv, instance_id: &str, scripts_dir: &Path) -> AgentConfig {
        AgentConfig {
            activity_arn: env.activity_arn.clone(),
            instance_id: instance_id.to_string(),
            step: env.step.clone(),
            scripts_dir: scripts_dir.to_path_buf(),
            script: env.script.clone(),
            init_script: env.init_script.clone().filter(|s| !s.is_empty()),
            after_script: env.after_script.clone().filter(|s| !s.is_empty()),
            cleanup_script: env.cleanup_script.clone().filter(|s| !s.is_empty()),
            scripts_sha256: env.scripts_sha256.clone(),
            step_env: env.step_env.clone(),
            idle_timeout: env.idle_timeout,
            max_tasks: env.max_tasks,
            heartbeat: env.heartbeat,
            work_dir: PathBuf::from(&env.work_dir),
            retry: Backoff::WORKER,
            lease_margin: env.lease_margin,
        }
    }

    /// How far ahead each lease reaches: `max(idle_timeout, 2 × heartbeat) + lease_margin`. An
    /// idle worker refreshes it at every poll, a busy one at every heartbeat, so a live worker's
    /// lease never runs out.
    pub fn lease_span(&self) -> Duration {
        self.idle_timeout.max(self.heartbeat.saturating_mul(2)) + self.lease_margin
    }

    /// The name the worker gives GetActivityTask (≤ 80 characters).
    pub fn worker_name(&self) -> String {
        format!("w_{}", self.instance_id).chars().take(80).collect()
    }
}

/// Why the agent stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Idle longer than `idle_timeout`.
    Idle,
    /// `max_tasks` tasks done.
    MaxTasks,
    /// A task failed: the worker takes no more.
    Failed,
    /// A heartbeat said the task is gone (timed out): script killed.
    TaskGone,
    /// SIGTERM or spot notice; `mid_task` when a task was running (reported as `Worker.Interrupted`).
    Interrupted { reason: String, mid_task: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot create the working directory {path}: {source} (check BOA_WORK_DIR)")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
    #[error("GetActivityTask failed for good: {0} (check BOA_ACTIVITY_ARN and the credentials)")]
    Poll(PortError),
}

/// Sender side of the interrupt signal: `Some(reason)` interrupts the agent.
pub type InterruptSender = watch::Sender<Option<String>>;

/// A new interrupt channel.
pub fn interrupt_channel() -> (InterruptSender, watch::Receiver<Option<String>>) {
    watch::channel(None)
}

/// The worker agent, over its ports.
pub struct Agent {
    cfg: AgentConfig,
    activities: Arc<dyn Activities>,
    tagger: Arc<dyn Tagger>,
    log: Arc<dyn LogSink>,
    interrupt: watch::Receiver<Option<String>>,
    last_lease: Option<Instant>,
    init_done: bool,
}

enum TaskEnd {
    Succeeded,
    Failed,
    Gone,
    Interrupted(String),
}

enum Supervised {
    Exited(Exit, String),
    Gone,
    Interrupted(String, String),
}

async fn interrupted(rx: &mut watch::Receiver<Option<String>>) -> String {
    let reason = rx
        .wait_for(|v| v.is_some())
        .await
        .map(|v| v.clone().unwrap_or_default());
    match reason {
        Ok(r) => r,
        // The sender is gone: nobody can interrupt any more.
        Err(_) => std::future::pending().await,
    }
}

/// The lease tag's value: now + `span`, RFC 3339 in UTC with milliseconds (local mode runs with
/// sub-second spans; whole seconds would cut up to a second off the lease).
pub fn lease_value(span: Duration) -> String {
    let until = Utc::now() + chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
    until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The task's display name: the step and its axis values joined by '-'.
pub fn task_name(input: &ActivityInput) -> String {
    std::iter::once(input.step.as_str())
        .chain(input.item.values().map(String::as_str))
        .collect::<Vec<_>>()
        .join("-")
}

impl Agent {
    pub fn new(
        cfg: AgentConfig,
        activities: Arc<dyn Activities>,
        tagger: Arc<dyn Tagger>,
        log: Arc<dyn LogSink>,
        interrupt: watch::Receiver<Option<String>>,
    ) -> Agent {
        Agent {
            cfg,
            activities,
            tagger,
            log,
            interrupt,
            last_lease: None,
            init_done: false,
        }
    }

    fn note(&self, text: &str) {
        tracing::info!("{text}");
        self.log.line(Utc::now(), &format!("[worker] {text}"));
    }

    async fn tag(&mut self, mut t: BTreeMap<String, String>) {
        t.insert(tags::LEASE.into(), lease_value(self.cfg.lease_span()));
        self.last_lease = Some(Instant::now());
        let tagger = Arc::clone(&self.tagger);
        if let Err(e) = retry(&self.cfg.retry, &TokioSleeper, "tag", || tagger.tag(&t)).await {
            tracing::warn!(error = %e, "tagging failed (not fatal)");
        }
    }

    async fn refresh_lease(&mut self) {
        if self
            .last_lease
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.tag(BTreeMap::new()).await;
        }
    }

    /// Runs until the worker should shut down.
    pub async fn run(&mut self) -> Result<Ending, AgentError> {
        std::fs::create_dir_all(&self.cfg.work_dir).map_err(|source| AgentError::WorkDir {
            path: self.cfg.work_dir.display().to_string(),
            source,
        })?;
        self.note(&format!(
            "worker {} serving {} (idle timeout {:.1} s, heartbeat {:.1} s, max tasks {})",
            self.cfg.instance_id,
            self.cfg.step,
            self.cfg.idle_timeout.as_secs_f64(),
            self.cfg.heartbeat.as_secs_f64(),
            self.cfg.max_tasks
        ));
        self.tag([(tags::WORK.to_string(), "idle".to_string())].into())
            .await;
        let worker_name = self.cfg.worker_name();
        let mut n: u32 = 0;
        let mut idle_since = Instant::now();
        let mut rx = self.interrupt.clone();
        let ending = loop {
            let current = rx.borrow().clone();
            if let Some(reason) = current {
                break Ending::Interrupted {
                    reason,
                    mid_task: false,
                };
            }
            if self.cfg.max_tasks > 0 && n >= self.cfg.max_tasks {
                break Ending::MaxTasks;
            }
            if idle_since.elapsed() >= self.cfg.idle_timeout {
                break Ending::Idle;
            }
            self.refresh_lease().await;
            let started = Instant::now();
            let acts = Arc::clone(&self.activities);
            let arn = self.cfg.activity_arn.clone();
            let polled = tokio::select! {
                r = retry(&self.cfg.retry, &TokioSleeper, "GetActivityTask", || acts.get_task(&arn, &worker_name)) => r,
                reason = interrupted(&mut rx) => break Ending::Interrupted { reason, mid_task: false },
            };
            match polled {
                Ok(None) => {
                    let spent = started.elapsed();
                    if spent < MIN_POLL_SPACING {
                        tokio::time::sleep(MIN_POLL_SPACING - spent).await;
                    }
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "GetActivityTask keeps failing; polling again");
                    tokio::time::sleep(self.cfg.retry.delay(8)).await;
                }
                Err(e) => return Err(AgentError::Poll(e)),
                Ok(Some(task)) => {
                    n += 1;
                    match self.handle_task(n, task).await {
                        TaskEnd::Succeeded => idle_since = Instant::now(),
                        TaskEnd::Failed => break Ending::Failed,
                        TaskEnd::Gone => break Ending::TaskGone,
                        TaskEnd::Interrupted(reason) => {
                            self.log.flush().await;
                            return Ok(Ending::Interrupted {
                                reason,
                                mid_task: true,
                            });
                        }
                    }
                }
            }
        };
        self.note(&format!("shutting down: {ending:?}"));
        self.cleanup().await;
        self.log.flush().await;
        Ok(ending)
    }

    async fn cleanup(&mut self) {
        let Some(rel) = self.cfg.cleanup_script.clone() else {
            return;
        };
        let mut env: Vec<(String, String)> = self.cfg.step_env.clone().into_iter().collect();
        env.push(("BOA_STEP".into(), self.cfg.step.clone()));
        env.push((
            "BOA_WORK_DIR".into(),
            self.cfg.work_dir.display().to_string(),
        ));
        let path = match script::verified(&self.cfg.scripts_dir, &rel, &self.cfg.scripts_sha256) {
            Ok(p) => p,
            Err(msg) => {
                self.note(&format!("cleanup script: {msg}"));
                return;
            }
        };
        self.note(&format!("cleanup script {rel}"));
        let lease = self.keep_lease();
        let (exit, _) =
            script::run_to_end(&path, &self.cfg.work_dir, &env, Arc::clone(&self.log)).await;
        lease.abort();
        if !exit.success() {
            self.note(&format!("cleanup script {rel}: {}", exit.describe()));
        }
    }

    /// Keeps the lease fresh every heartbeat period while a script with no task to heartbeat runs
    /// (after and cleanup scripts): however long they take, the worker is not taken for dead.
    fn keep_lease(&self) -> tokio::task::JoinHandle<()> {
        let tagger = Arc::clone(&self.tagger);
        let span = self.cfg.lease_span();
        let every = self.cfg.heartbeat;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let lease = [(tags::LEASE.to_string(), lease_value(span))].into();
                if let Err(e) = tagger.tag(&lease).await {
                    tracing::warn!(error = %e, "lease refresh failed (not fatal)");
                }
            }
        })
    }

    /// Runs a script with heartbeats, watching for a dead task and for interruptions. Every
    /// heartbeat that succeeds also refreshes the lease tag (one `tag` call at a time, never
    /// retried, never fatal, never delaying the heartbeats).
    /// [`Self::supervise`] of script `rel` once its SHA-256 is the deployed one; a script that
    /// does not match is not started (its task fails as `Worker.ScriptFailed`, "not started:
    /// script … does not match its SHA-256 …").
    async fn checked_supervise(
        &self,
        rel: &str,
        dir: &Path,
        env: &[(String, String)],
        token: &str,
    ) -> Supervised {
        match script::verified(&self.cfg.scripts_dir, rel, &self.cfg.scripts_sha256) {
            Ok(path) => self.supervise(&path, dir, env, token).await,
            Err(msg) => {
                self.note(&msg);
                Supervised::Exited(Exit::NotStarted(msg.clone()), msg)
            }
        }
    }

    async fn supervise(
        &self,
        path: &Path,
        dir: &Path,
        env: &[(String, String)],
        token: &str,
    ) -> Supervised {
        let mut running = match script::start(path, dir, env, Arc::clone(&self.log)) {
            Ok(r) => r,
            Err(e) => {
                self.note(&e);
                return Supervised::Exited(Exit::NotStarted(e.clone()), e);
            }
        };
        let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<String>();
        let acts = Arc::clone(&self.activities);
        let policy = self.cfg.retry;
        let every = self.cfg.heartbeat;
        let token_owned = token.to_string();
        let lease_due = Arc::new(tokio::sync::Notify::new());
        let leases = {
            let due = Arc::clone(&lease_due);
            let tagger = Arc::clone(&self.tagger);
            let span = self.cfg.lease_span();
            tokio::spawn(async move {
                loop {
                    // A permit left while a tag call was in flight coalesces missed beats.
                    due.notified().await;
                    let lease = [(tags::LEASE.to_string(), lease_value(span))].into();
                    if let Err(e) = tagger.tag(&lease).await {
                        tracing::warn!(error = %e, "lease refresh failed (not fatal)");
                    }
                }
            })
        };
        let beats = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match retry(&policy, &TokioSleeper, "SendTaskHeartbeat", || {
                    acts.heartbeat(&token_owned)
                })
                .await
                {
                    Ok(()) => lease_due.notify_one(),
                    Err(PortError::TaskGone(why)) => {
                        let _ = gone_tx.send(why);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        });
        let mut rx = self.interrupt.clone();
        let out = tokio::select! {
            exit = running.wait() => Supervised::Exited(exit, running.finish().await),
            Ok(why) = gone_rx => {
                running.kill();
                self.note(&format!("the task is gone ({why}): script killed"));
                running.finish().await;
                Supervised::Gone
            }
            reason = interrupted(&mut rx) => {
                running.kill();
                self.note(&format!("interrupted ({reason}): script killed"));
                Supervised::Interrupted(reason, running.finish().await)
            }
        };
        beats.abort();
        leases.abort();
        out
    }

    async fn report<F, Fut>(&self, what: &str, call: F) -> Result<(), PortError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), PortError>>,
    {
        let r = retry(&self.cfg.retry, &TokioSleeper, what, call).await;
        if let Err(e) = &r {
            self.note(&format!("{what} failed: {e}"));
        }
        r
    }

    async fn handle_task(&mut self, n: u32, task: ActivityTask) -> TaskEnd {
        let started = Instant::now();
        let hash = token_hash(&task.token);
        let token = task.token.as_str();
        let stream = log_stream(&self.cfg.step, &self.cfg.instance_id);
        let input: ActivityInput = match serde_json::from_str(&task.input) {
            Ok(i) => i,
            Err(e) => {
                self.note(&format!("task {n} (token #{hash}): unreadable input: {e}"));
                let cause = WorkerFailureCause {
                    instance_id: self.cfg.instance_id.clone(),
                    log_stream: stream,
                    attempt: 0,
                    elapsed_s: 0.0,
                    status: format!("unreadable task input: {e}"),
                    log_tail: String::new(),
                };
                let acts = Arc::clone(&self.activities);
                let cause = bounded_cause(&cause, MAX_CAUSE_CHARS);
                let error = ErrorName::WorkerScriptFailed.as_str();
                let _ = self
                    .report("SendTaskFailure", || acts.fail(token, error, &cause))
                    .await;
                return TaskEnd::Failed;
            }
        };
        let name = task_name(&input);
        self.note(&format!(
            "task {n}: {name} (attempt {}, mode {}, token #{hash})",
            input.attempt + 1,
            input.mode.as_str()
        ));
        self.tag(
            [
                (tags::NAME.to_string(), bound_tag(&format!("wa-{n}-{name}"))),
                (tags::WORK.to_string(), "busy".to_string()),
            ]
            .into(),
        )
        .await;

        let dir = self.cfg.work_dir.join(format!("task-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut env: Vec<(String, String)> = self.cfg.step_env.clone().into_iter().collect();
        env.extend(task_env(&input));
        env.push(("BOA_WORK_DIR".into(), dir.display().to_string()));

        let mut result = match std::fs::create_dir_all(&dir) {
            Err(e) => {
                let msg = format!("cannot create the working directory {}: {e}", dir.display());
                self.note(&msg);
                Supervised::Exited(Exit::NotStarted(msg.clone()), msg)
            }
            Ok(()) => Supervised::Exited(Exit::Code(0), String::new()),
        };
        let mut status_prefix = "";
        if matches!(&result, Supervised::Exited(e, _) if e.success())
            && !self.init_done
            && let Some(rel) = self.cfg.init_script.clone()
        {
            self.note(&format!("init script {rel}"));
            result = self.checked_supervise(&rel, &dir, &env, token).await;
            status_prefix = "init script: ";
        }
        if matches!(&result, Supervised::Exited(e, _) if e.success()) {
            self.init_done = true;
            status_prefix = "";
            let rel = self.cfg.script.clone();
            result = self.checked_supervise(&rel, &dir, &env, token).await;
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        let acts = Arc::clone(&self.activities);
        let failure = |status: String, tail: String| {
            bounded_cause(
                &WorkerFailureCause {
                    instance_id: self.cfg.instance_id.clone(),
                    log_stream: stream.clone(),
                    attempt: input.attempt,
                    elapsed_s,
                    status,
                    log_tail: tail,
                },
                MAX_CAUSE_CHARS,
            )
        };
        match result {
            Supervised::Exited(exit, _) if exit.success() => {
                self.note(&format!("task {n}: {name} succeeded in {elapsed_s:.1} s"));
                let output = serde_json::to_string(&WorkerOutput {
                    instance_id: self.cfg.instance_id.clone(),
                    log_stream: stream.clone(),
                    elapsed_s,
                    attempt: input.attempt,
                })
                .expect("output serialises");
                let sent = self
                    .report("SendTaskSuccess", || acts.succeed(token, &output))
                    .await;
                self.after(&dir, &env, true).await;
                match sent {
                    Ok(()) | Err(PortError::TaskGone(_)) => {
                        self.tag(
                            [
                                (tags::NAME.to_string(), bound_tag(&format!("ww-{n}-{name}"))),
                                (tags::WORK.to_string(), "idle".to_string()),
                            ]
                            .into(),
                        )
                        .await;
                        TaskEnd::Succeeded
                    }
                    Err(_) => TaskEnd::Failed,
                }
            }
            Supervised::Exited(exit, tail) => {
                let error = if input.mode == Mode::Test && exit == Exit::Code(TEST_NO_RETRY_EXIT) {
                    ErrorName::TestNoRetry
                } else {
                    ErrorName::WorkerScriptFailed
                };
                let status = format!("{status_prefix}{}", exit.describe());
                self.note(&format!("task {n}: {name} failed: {status} ({error})"));
                let cause = failure(status, tail);
                let error = bound_error(error.as_str());
                let _ = self
                    .report("SendTaskFailure", || acts.fail(token, &error, &cause))
                    .await;
                self.after(&dir, &env, false).await;
                TaskEnd::Failed
            }
            Supervised::Gone => TaskEnd::Gone,
            Supervised::Interrupted(reason, tail) => {
                let cause = failure(format!("interrupted: {reason}"), tail);
                let error = ErrorName::WorkerInterrupted.as_str();
                let _ = self
                    .report("SendTaskFailure", || acts.fail(token, error, &cause))
                    .await;
                TaskEnd::Interrupted(reason)
            }
        }
    }

    async fn after(&self, dir: &Path, env: &[(String, String)], success: bool) {
        let Some(rel) = &self.cfg.after_script else {
            return;
        };
        let mut env = env.to_vec();
        env.push(("SUCCESS".into(), success.to_string()));
        self.note(&format!("after script {rel} (SUCCESS={success})"));
        let path = match script::verified(&self.cfg.scripts_dir, rel, &self.cfg.scripts_sha256) {
            Ok(p) => p,
            Err(msg) => {
                self.note(&format!("after script: {msg}"));
                return;
            }
        };
        let lease = self.keep_lease();
        let (exit, _) = script::run_to_end(&path, dir, &env, Arc::clone(&self.log)).await;
        lease.abort();
        if !exit.success() {
            self.note(&format!(
                "after script {rel}: {} (ignored)",
                exit.describe()
            ));
        }
    }
}

/// EC2 tag values are at most 256 characters.
fn bound_tag(s: &str) -> String {
    s.chars().take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_join_step_and_axis_values() {
        let input: ActivityInput = serde_json::from_value(serde_json::json!({
            "step": "MakeBinaryPackage",
            "item": {"version": "4.28.2", "distro": "ubuntu-22.04-jammy"},
            "mode": "normal"
        }))
        .unwrap();
        assert_eq!(
            task_name(&input),
            "MakeBinaryPackage-ubuntu-22.04-jammy-4.28.2"
        );
    }
}
