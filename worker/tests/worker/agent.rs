//! The agent loop over fake ports and real shell scripts.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{group_alive, input, read_pid, script};
use async_trait::async_trait;
use boa_aws::ports::{Activities, ActivityTask, PortError};
use boa_core::retry::Backoff;
use boa_core::task::{WorkerFailureCause, WorkerOutput};
use chrono::{DateTime, Utc};
use worker::agent::{Agent, AgentConfig, Ending, interrupt_channel};
use worker::log::LogSink;
use worker::tags::Tagger;

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Poll,
    Heartbeat(String),
    Succeed(String, String),
    Fail(String, String, String),
}

/// In-memory activity: a queue of tasks; records every call with its time.
#[derive(Default)]
struct FakeActivities {
    queue: Mutex<VecDeque<ActivityTask>>,
    calls: Mutex<Vec<(Instant, Call)>>,
    /// Heartbeats answered before the task counts as gone (None = never gone).
    gone_after: Option<usize>,
    /// Polls that fail with a retryable error first.
    flaky_polls: Mutex<usize>,
}

impl FakeActivities {
    fn with(tasks: Vec<(&str, String)>) -> FakeActivities {
        FakeActivities {
            queue: Mutex::new(
                tasks
                    .into_iter()
                    .map(|(t, i)| ActivityTask {
                        token: t.into(),
                        input: i,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }
    fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, c)| c.clone())
            .collect()
    }
    fn timed(&self) -> Vec<(Instant, Call)> {
        self.calls.lock().unwrap().clone()
    }
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push((Instant::now(), c));
    }
    fn left(&self) -> usize {
        self.queue.lock().unwrap().len()
    }
}

#[async_trait]
impl Activities for FakeActivities {
    async fn get_task(&self, _arn: &str, worker: &str) -> Result<Option<ActivityTask>, PortError> {
        assert!(worker.contains("i-test"), "worker name {worker}");
        self.record(Call::Poll);
        {
            let mut f = self.flaky_polls.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(PortError::Throttled("ThrottlingException".into()));
            }
        }
        let t = self.queue.lock().unwrap().pop_front();
        if t.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(t)
    }
    async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
        self.record(Call::Heartbeat(token.into()));
        let n = self
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Heartbeat(_)))
            .count();
        match self.gone_after {
            Some(k) if n > k => Err(PortError::TaskGone("TaskTimedOut".into())),
            _ => Ok(()),
        }
    }
    async fn succeed(&self, token: &str, output: &str) -> Result<(), PortError> {
        self.record(Call::Succeed(token.into(), output.into()));
        Ok(())
    }
    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError> {
        self.record(Call::Fail(token.into(), error.into(), cause.into()));
        Ok(())
    }
}

#[derive(Default)]
struct RecordingTagger(Mutex<Vec<BTreeMap<String, String>>>);

#[async_trait]
impl Tagger for RecordingTagger {
    async fn tag(&self, tags: &BTreeMap<String, String>) -> Result<(), PortError> {
        self.0.lock().unwrap().push(tags.clone());
        Ok(())
    }
}

#[derive(Default)]
struct MemLog(Mutex<Vec<String>>);

#[async_trait]
impl LogSink for MemLog {
    fn line(&self, _at: DateTime<Utc>, text: &str) {
        self.0.lock().unwrap().push(text.to_string());
    }
    async fn flush(&self) {}
}

struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cfg: AgentConfig,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("scripts")).unwrap();
    let cfg = AgentConfig {
        activity_arn: "arn:aws:states:us-east-1:123456789012:activity:build-on-aws-hhvm-Build"
            .into(),
        instance_id: "i-test".into(),
        step: "MakeBinaryPackage".into(),
        scripts_dir: root.join("scripts"),
        script: "task.sh".into(),
        init_script: None,
        after_script: None,
        cleanup_script: None,
        scripts_sha256: BTreeMap::new(),
        step_env: [("CC".to_string(), "clang".to_string())].into(),
        idle_timeout: Duration::from_millis(300),
        max_tasks: 0,
        heartbeat: Duration::from_millis(100),
        work_dir: root.join("work"),
        retry: Backoff {
            tries: 4,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        },
        lease_margin: Duration::from_secs(120),
    };
    Rig {
        _dir: dir,
        root,
        cfg,
    }
}

impl Rig {
    fn scripts(&self) -> PathBuf {
        self.root.join("scripts")
    }
    fn write(&self, name: &str, body: &str) {
        script(&self.scripts(), name, body, false);
    }
}

async fn run(
    cfg: AgentConfig,
    acts: &Arc<FakeActivities>,
) -> (Ending, Arc<RecordingTagger>, Arc<MemLog>) {
    let tagger = Arc::new(RecordingTagger::default());
    let log = Arc::new(MemLog::default());
    let (_tx, rx) = interrupt_channel();
    let mut agent = Agent::new(cfg, acts.clone(), tagger.clone(), log.clone(), rx);
    let ending = tokio::time::timeout(Duration::from_secs(20), agent.run())
        .await
        .expect("agent ends")
        .expect("no agent error");
    (ending, tagger, log)
}

fn item() -> Vec<(&'static str, &'static str)> {
    vec![("version", "4.28.2"), ("distro", "ubuntu-22.04-jammy")]
}

fn env_file(p: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn success_path_reports_output_with_task_env_fresh_dirs_and_one_init() {
    let r = rig();
    let out = r.root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    r.write(
        "init.sh",
        &format!("echo init >> {}/init-runs\n", out.display()),
    );
    r.write(
        "task.sh",
        &format!(
            "set -e\nenv > {o}/env-$BOA_ATTEMPT\nls -A | wc -l | tr -d ' ' > {o}/files-$BOA_ATTEMPT\npwd -P > {o}/pwd-$BOA_ATTEMPT\ntouch leftover\necho building $BOA_VERSION\n",
            o = out.display()
        ),
    );
    let mut cfg = r.cfg.clone();
    cfg.init_script = Some("init.sh".into());
    cfg.max_tasks = 2;
    let acts = Arc::new(FakeActivities::with(vec![
        ("tok-1", input("MakeBinaryPackage", &item(), "normal", 0)),
        ("tok-2", input("MakeBinaryPackage", &item(), "normal", 1)),
    ]));
    let (ending, tagger, log) = run(cfg, &acts).await;
    assert_eq!(ending, Ending::MaxTasks);

    let successes: Vec<(String, WorkerOutput)> = acts
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Succeed(t, o) => Some((t, serde_json::from_str(&o).unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(successes.len(), 2, "{:?}", acts.calls());
    for (i, (tok, o)) in successes.iter().enumerate() {
        assert_eq!(tok, &format!("tok-{}", i + 1));
        assert_eq!(o.instance_id, "i-test");
        assert_eq!(o.log_stream, "MakeBinaryPackage/w_i-test");
        assert_eq!(o.attempt, i as u32);
        assert!(o.elapsed_s > 0.0 && o.elapsed_s < 10.0, "{}", o.elapsed_s);
    }
    assert!(!acts.calls().iter().any(|c| matches!(c, Call::Fail(..))));

    // init ran once for the two tasks
    assert_eq!(
        std::fs::read_to_string(out.join("init-runs")).unwrap(),
        "init\n"
    );
    // the task env: axis values, step, mode, attempt, execution, step env, work dir
    let e1 = env_file(&out.join("env-1"));
    assert_eq!(e1["BOA_VERSION"], "4.28.2");
    assert_eq!(e1["BOA_DISTRO"], "ubuntu-22.04-jammy");
    assert_eq!(e1["BOA_STEP"], "MakeBinaryPackage");
    assert_eq!(e1["BOA_MODE"], "normal");
    assert!(e1["BOA_EXECUTION"].ends_with(":run-1"));
    assert_eq!(e1["CC"], "clang");
    assert!(!e1.values().any(|v| v.contains("tok-1")), "token leaked");
    let e2 = env_file(&out.join("env-2"));
    assert_eq!(e2["BOA_ATTEMPT"], "2");
    // fresh, distinct working directories, each the script's cwd and BOA_WORK_DIR
    let pwd1 = std::fs::read_to_string(out.join("pwd-1")).unwrap();
    let pwd2 = std::fs::read_to_string(out.join("pwd-2")).unwrap();
    assert_ne!(pwd1, pwd2);
    assert_eq!(
        PathBuf::from(pwd1.trim()),
        PathBuf::from(&e1["BOA_WORK_DIR"]).canonicalize().unwrap()
    );
    assert_eq!(std::fs::read_to_string(out.join("files-2")).unwrap(), "0\n");

    // tags: wa-1 busy, ww-1 idle, wa-2, ww-2, with a lease in the future on each
    let names: Vec<String> = tagger
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|t| t.get("Name").cloned())
        .collect();
    let task = "MakeBinaryPackage-ubuntu-22.04-jammy-4.28.2";
    assert_eq!(
        names,
        [
            format!("wa-1-{task}"),
            format!("ww-1-{task}"),
            format!("wa-2-{task}"),
            format!("ww-2-{task}")
        ]
    );
    for t in tagger.0.lock().unwrap().iter() {
        let lease = DateTime::parse_from_rfc3339(&t["build-on-aws:lease"]).unwrap();
        assert!(lease > Utc::now() + chrono::Duration::seconds(60));
        if let Some(n) = t.get("Name") {
            let work = if n.starts_with("wa-") { "busy" } else { "idle" };
            assert_eq!(t["build-on-aws:work"], work);
        }
    }
    // the script's output is in the log, the token is not
    let log = log.0.lock().unwrap().join("\n");
    assert!(log.contains("building 4.28.2"), "{log}");
    assert!(!log.contains("tok-1"), "{log}");
}

fn failures(acts: &FakeActivities) -> Vec<(String, String, WorkerFailureCause, usize)> {
    acts.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Fail(t, e, c) => Some((
                t,
                e,
                serde_json::from_str(&c).expect("cause is valid JSON"),
                c.chars().count(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn script_failure_sends_status_and_bounded_tail_then_takes_no_more_tasks() {
    let r = rig();
    let out = r.root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // 400 long lines: far more than the tail keeps, with quotes and control chars to escape.
    r.write(
        "task.sh",
        "i=0; while [ $i -lt 400 ]; do printf 'line %d \"q\" \\001 %0300d\\n' $i 0; i=$((i+1)); done; echo last words >&2; exit 3\n",
    );
    r.write(
        "after.sh",
        &format!("echo $SUCCESS > {}/after\n", out.display()),
    );
    r.write("cleanup.sh", &format!("touch {}/cleaned\n", out.display()));
    let mut cfg = r.cfg.clone();
    cfg.after_script = Some("after.sh".into());
    cfg.cleanup_script = Some("cleanup.sh".into());
    let acts = Arc::new(FakeActivities::with(vec![
        ("tok-1", input("MakeBinaryPackage", &item(), "normal", 2)),
        ("tok-2", input("MakeBinaryPackage", &item(), "normal", 0)),
    ]));
    let (ending, tagger, _) = run(cfg, &acts).await;
    assert_eq!(ending, Ending::Failed);
    let f = failures(&acts);
    assert_eq!(f.len(), 1);
    let (tok, error, cause, len) = &f[0];
    assert_eq!(tok, "tok-1");
    assert_eq!(error, "Worker.ScriptFailed");
    assert_eq!(cause.status, "exit status 3");
    assert_eq!(cause.attempt, 2);
    assert_eq!(cause.instance_id, "i-test");
    assert!(cause.log_tail.contains("last words"), "{}", cause.log_tail);
    assert!(cause.log_tail.contains("line 399"));
    assert!(!cause.log_tail.contains("line 0 "), "tail not bounded");
    assert!(cause.log_tail.len() <= 16 * 1024);
    assert!(*len <= 32_768);
    // no reuse after a failure: the second task was never taken
    assert_eq!(acts.left(), 1);
    assert_eq!(acts.calls().iter().filter(|c| **c == Call::Poll).count(), 1);
    assert_eq!(
        std::fs::read_to_string(out.join("after")).unwrap(),
        "false\n"
    );
    assert!(out.join("cleaned").exists(), "cleanup did not run");
    // no ww- tag after a failure
    assert!(
        !tagger
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|t| t.get("Name").is_some_and(|n| n.starts_with("ww-")))
    );
}

#[tokio::test]
async fn exit_99_in_test_mode_is_test_no_retry_and_only_in_test_mode() {
    for (mode, want) in [("test", "Test.NoRetry"), ("normal", "Worker.ScriptFailed")] {
        let r = rig();
        r.write("task.sh", "exit 99\n");
        let acts = Arc::new(FakeActivities::with(vec![(
            "tok-1",
            input("MakeBinaryPackage", &item(), mode, 0),
        )]));
        run(r.cfg.clone(), &acts).await;
        let f = failures(&acts);
        assert_eq!(f[0].1, want, "mode {mode}");
        assert_eq!(f[0].2.status, "exit status 99");
    }
}

#[tokio::test]
async fn heartbeats_every_interval_while_the_script_runs() {
    let r = rig();
    r.write("task.sh", "sleep 1\n");
    let mut cfg = r.cfg.clone();
    cfg.max_tasks = 1;
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    run(cfg, &acts).await;
    let timed = acts.timed();
    let beats: Vec<Instant> = timed
        .iter()
        .filter(|(_, c)| *c == Call::Heartbeat("tok-1".into()))
        .map(|(t, _)| *t)
        .collect();
    assert!(
        (7..=12).contains(&beats.len()),
        "{} heartbeats over a 1 s script at 0.1 s",
        beats.len()
    );
    let done = timed
        .iter()
        .find(|(_, c)| matches!(c, Call::Succeed(..)))
        .unwrap()
        .0;
    assert!(
        beats.iter().all(|b| *b < done),
        "heartbeat after the result"
    );
    for w in beats.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(60),
            "heartbeats too close: {gap:?}"
        );
    }
}

#[tokio::test]
async fn a_gone_task_kills_the_script_and_ends_the_worker() {
    let r = rig();
    let pidfile = r.root.join("pid");
    r.write(
        "task.sh",
        &format!("echo $$ > {}\nsleep 30 &\nwait\n", pidfile.display()),
    );
    let acts = Arc::new(FakeActivities {
        gone_after: Some(2),
        ..FakeActivities::with(vec![
            ("tok-1", input("MakeBinaryPackage", &item(), "normal", 0)),
            ("tok-2", input("MakeBinaryPackage", &item(), "normal", 0)),
        ])
    });
    let t = Instant::now();
    let (ending, _, _) = run(r.cfg.clone(), &acts).await;
    assert_eq!(ending, Ending::TaskGone);
    assert!(t.elapsed() < Duration::from_secs(5));
    let pgid = read_pid(&pidfile, Duration::from_secs(1)).await;
    assert!(!group_alive(pgid), "script's process group survived");
    assert!(
        !acts
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Succeed(..) | Call::Fail(..)))
    );
    assert_eq!(acts.left(), 1);
}

#[tokio::test]
async fn shuts_down_after_idle_timeout_and_runs_cleanup() {
    let r = rig();
    let out = r.root.join("cleaned");
    r.write(
        "cleanup.sh",
        &format!("echo $BOA_STEP > {}\n", out.display()),
    );
    let mut cfg = r.cfg.clone();
    cfg.cleanup_script = Some("cleanup.sh".into());
    cfg.idle_timeout = Duration::from_millis(400);
    let acts = Arc::new(FakeActivities::default());
    let t = Instant::now();
    let (ending, _, _) = run(cfg, &acts).await;
    let took = t.elapsed();
    assert_eq!(ending, Ending::Idle);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(acts.calls().iter().filter(|c| **c == Call::Poll).count() >= 2);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "MakeBinaryPackage\n");
}

#[tokio::test]
async fn idle_clock_restarts_after_each_task() {
    let r = rig();
    r.write("task.sh", "sleep 0.5\n");
    let mut cfg = r.cfg.clone();
    cfg.idle_timeout = Duration::from_millis(300);
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    let t = Instant::now();
    let (ending, _, _) = run(cfg, &acts).await;
    assert_eq!(ending, Ending::Idle);
    // 0.5 s of work then a full idle period
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn stops_after_max_tasks() {
    let r = rig();
    r.write("task.sh", "true\n");
    let mut cfg = r.cfg.clone();
    cfg.max_tasks = 1;
    cfg.idle_timeout = Duration::from_secs(10);
    let acts = Arc::new(FakeActivities::with(vec![
        ("tok-1", input("MakeBinaryPackage", &item(), "normal", 0)),
        ("tok-2", input("MakeBinaryPackage", &item(), "normal", 0)),
    ]));
    let t = Instant::now();
    let (ending, _, _) = run(cfg, &acts).await;
    assert_eq!(ending, Ending::MaxTasks);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(acts.left(), 1);
}

#[tokio::test]
async fn retryable_poll_errors_are_retried() {
    let r = rig();
    r.write("task.sh", "true\n");
    let mut cfg = r.cfg.clone();
    cfg.max_tasks = 1;
    let acts = Arc::new(FakeActivities {
        flaky_polls: Mutex::new(2),
        ..FakeActivities::with(vec![(
            "tok-1",
            input("MakeBinaryPackage", &item(), "normal", 0),
        )])
    });
    let (ending, _, _) = run(cfg, &acts).await;
    assert_eq!(ending, Ending::MaxTasks);
    let calls = acts.calls();
    assert_eq!(calls.iter().filter(|c| **c == Call::Poll).count(), 3);
    assert!(calls.iter().any(|c| matches!(c, Call::Succeed(..))));
}

#[tokio::test]
async fn interruption_mid_task_kills_the_group_and_reports_interrupted() {
    let r = rig();
    let pidfile = r.root.join("pid");
    let cleaned = r.root.join("cleaned");
    r.write(
        "task.sh",
        &format!(
            "echo started\necho $$ > {}\nsleep 30 &\nwait\n",
            pidfile.display()
        ),
    );
    r.write("cleanup.sh", &format!("touch {}\n", cleaned.display()));
    let mut cfg = r.cfg.clone();
    cfg.cleanup_script = Some("cleanup.sh".into());
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    let (tx, rx) = interrupt_channel();
    let tagger = Arc::new(RecordingTagger::default());
    let log = Arc::new(MemLog::default());
    let mut agent = Agent::new(cfg, acts.clone(), tagger, log, rx);
    let handle = tokio::spawn(async move { agent.run().await });
    let pgid = read_pid(&pidfile, Duration::from_secs(5)).await;
    assert!(group_alive(pgid));
    tx.send(Some("SIGTERM".into())).unwrap();
    let ending = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops at once")
        .unwrap()
        .unwrap();
    assert_eq!(
        ending,
        Ending::Interrupted {
            reason: "SIGTERM".into(),
            mid_task: true
        }
    );
    assert!(!group_alive(pgid), "script's process group survived");
    let f = failures(&acts);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].1, "Worker.Interrupted");
    assert_eq!(f[0].2.status, "interrupted: SIGTERM");
    assert!(f[0].2.log_tail.contains("started"));
    assert!(!cleaned.exists(), "no cleanup when interrupted mid-task");
}

#[tokio::test]
async fn interruption_while_idle_cleans_up_and_ends() {
    let r = rig();
    let cleaned = r.root.join("cleaned");
    r.write("cleanup.sh", &format!("touch {}\n", cleaned.display()));
    let mut cfg = r.cfg.clone();
    cfg.cleanup_script = Some("cleanup.sh".into());
    cfg.idle_timeout = Duration::from_secs(30);
    let acts = Arc::new(FakeActivities::default());
    let (tx, rx) = interrupt_channel();
    let mut agent = Agent::new(
        cfg,
        acts.clone(),
        Arc::new(RecordingTagger::default()),
        Arc::new(MemLog::default()),
        rx,
    );
    let handle = tokio::spawn(async move { agent.run().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(Some("SIGTERM".into())).unwrap();
    let ending = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("stops at once")
        .unwrap()
        .unwrap();
    assert_eq!(
        ending,
        Ending::Interrupted {
            reason: "SIGTERM".into(),
            mid_task: false
        }
    );
    assert!(cleaned.exists());
    assert!(!acts.calls().iter().any(|c| matches!(c, Call::Fail(..))));
}

#[tokio::test]
async fn a_missing_script_is_a_script_failure_naming_it() {
    let r = rig();
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    let (ending, _, _) = run(r.cfg.clone(), &acts).await;
    assert_eq!(ending, Ending::Failed);
    let f = failures(&acts);
    assert_eq!(f[0].1, "Worker.ScriptFailed");
    assert!(f[0].2.status.contains("task.sh"), "{}", f[0].2.status);
}

/// One tag call: when it was made, and the tags.
type TagCall = (DateTime<Utc>, BTreeMap<String, String>);

/// Records every tag call with the wall-clock time it was made.
#[derive(Default)]
struct TimedTagger(Mutex<Vec<TagCall>>);

#[async_trait]
impl Tagger for TimedTagger {
    async fn tag(&self, tags: &BTreeMap<String, String>) -> Result<(), PortError> {
        self.0.lock().unwrap().push((Utc::now(), tags.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn a_busy_worker_keeps_its_lease_fresh_at_every_heartbeat() {
    let r = rig();
    // The script runs far longer than one lease span (max(0.3, 2 × 0.1) + 0.3 = 0.6 s).
    r.write("task.sh", "sleep 2\n");
    let mut cfg = r.cfg.clone();
    cfg.max_tasks = 1;
    cfg.idle_timeout = Duration::from_millis(300);
    cfg.heartbeat = Duration::from_millis(100);
    cfg.lease_margin = Duration::from_millis(300);
    let span = chrono::Duration::milliseconds(600);
    assert_eq!(cfg.lease_span(), Duration::from_millis(600));
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    let tagger = Arc::new(TimedTagger::default());
    let (_tx, rx) = interrupt_channel();
    let mut agent = Agent::new(
        cfg,
        acts.clone(),
        tagger.clone(),
        Arc::new(MemLog::default()),
        rx,
    );
    let (t0, u0) = (Instant::now(), Utc::now());
    let ending = tokio::time::timeout(Duration::from_secs(20), agent.run())
        .await
        .expect("agent ends")
        .expect("no agent error");
    assert_eq!(ending, Ending::MaxTasks);
    let timed = acts.timed();
    let done = timed
        .iter()
        .find(|(_, c)| matches!(c, Call::Succeed(..)))
        .expect("the task succeeded")
        .0;
    // The script ended before SendTaskSuccess, in wall-clock time.
    let done = u0 + chrono::Duration::from_std(done - t0).unwrap();

    let writes: Vec<(DateTime<Utc>, DateTime<Utc>)> = tagger
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(at, t)| {
            let lease = DateTime::parse_from_rfc3339(&t["build-on-aws:lease"])
                .unwrap()
                .with_timezone(&Utc);
            (*at, lease)
        })
        .collect();
    // Heartbeat refreshes carry the lease and nothing else.
    let refreshes = tagger
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, t)| t.len() == 1 && *at < done)
        .count();
    assert!(
        refreshes >= 10,
        "{refreshes} lease refreshes over a 2 s script"
    );
    for (at, lease) in &writes {
        // now + span, give or take the time between computing the value and the tag call.
        assert!(
            *lease <= *at + span && *lease > *at + span - chrono::Duration::milliseconds(250),
            "lease {lease} written at {at}"
        );
    }
    // No gap: each lease is still valid when the next one is written...
    for w in writes.windows(2) {
        assert!(
            w[0].1 > w[1].0,
            "lease {} expired before the next write at {}",
            w[0].1,
            w[1].0
        );
    }
    // ...and the last one written while the script ran outlives the script.
    let last = writes.iter().rfind(|(at, _)| *at < done).unwrap();
    assert!(last.1 > done, "lease {} < script end {done}", last.1);
}

#[tokio::test]
async fn a_script_that_is_not_the_deployed_one_is_refused_and_the_task_fails_naming_it() {
    let r = rig();
    let deployed = "touch \"$BOA_WORK_DIR/../ran\"\n";
    let mut cfg = r.cfg.clone();
    cfg.scripts_sha256 = [(
        "task.sh".to_string(),
        boa_core::pipeline::sha256_hex(deployed.as_bytes()),
    )]
    .into();
    cfg.max_tasks = 1;
    // The deployed script runs.
    r.write("task.sh", deployed);
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    let (ending, _, _) = run(cfg.clone(), &acts).await;
    assert_ne!(ending, Ending::Failed);
    assert!(failures(&acts).is_empty());
    assert!(cfg.work_dir.join("ran").exists(), "the deployed script ran");
    std::fs::remove_file(cfg.work_dir.join("ran")).unwrap();

    // One byte more and it is refused: not started, the task fails naming the script.
    r.write("task.sh", &format!("{deployed}#"));
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    let (ending, _, _) = run(cfg.clone(), &acts).await;
    assert_eq!(ending, Ending::Failed);
    let f = failures(&acts);
    assert_eq!(f[0].1, "Worker.ScriptFailed");
    assert!(
        f[0].2
            .status
            .contains("script task.sh does not match its SHA-256"),
        "{}",
        f[0].2.status
    );
    assert!(!cfg.work_dir.join("ran").exists(), "a tampered script ran");

    // A script the launch carries no SHA-256 for is refused too.
    cfg.scripts_sha256 = [("other.sh".to_string(), "0".repeat(64))].into();
    r.write("task.sh", deployed);
    let acts = Arc::new(FakeActivities::with(vec![(
        "tok-1",
        input("MakeBinaryPackage", &item(), "normal", 0),
    )]));
    run(cfg.clone(), &acts).await;
    let f = failures(&acts);
    assert!(
        f[0].2.status.contains("has no SHA-256"),
        "{}",
        f[0].2.status
    );
    assert!(!cfg.work_dir.join("ran").exists());
}
