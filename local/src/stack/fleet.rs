//! The fleet port in local mode: every "instance" is a process of the real `worker` binary.
//!
//! A launch parses the userdata stub start-workers wrote (the same text EC2 would run), keeps its
//! exported configuration, overrides what only makes sense locally (endpoint, instance id, log and
//! tag files, time scale), and starts the worker after a simulated boot time. Tags are kept here
//! and merged with the tags file each worker rewrites.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use boa_aws::ports::{Fleet, Instance, InstanceState, LaunchSpec, PortError, tags};
use boa_core::worker_env::vars;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::faults::{Dice, Faults};

/// How local workers are started.
#[derive(Debug, Clone)]
pub struct LocalFleetConfig {
    /// The run's endpoint secret, every worker's access key id.
    pub access_key: String,
    /// The `worker` binary.
    pub worker_bin: PathBuf,
    /// The activity endpoint (`http://127.0.0.1:PORT`).
    pub endpoint_url: String,
    /// The folder `pipeline.toml` lives in: scripts are relative to it.
    pub scripts_dir: PathBuf,
    /// The run's own folder: logs (`logs/<Step>/w_<id>.log`), tag files and work folders go below it.
    pub run_dir: PathBuf,
    /// Simulated boot time (real time, already scaled).
    pub boot_time: Duration,
    /// Real seconds = configured seconds / time_scale for the worker's idle timeout and heartbeat.
    pub time_scale: f64,
    /// Extra environment for every worker (and so every script).
    pub extra_env: Vec<(String, String)>,
}

/// How often each fleet call was made: the benchmark reports EC2 API requests per worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FleetCounters {
    pub run_instances_calls: u64,
    pub instances_launched: u64,
    pub describe_calls: u64,
    pub tag_calls: u64,
    pub terminate_calls: u64,
    pub throttled: u64,
    pub no_capacity: u64,
    pub killed_by_chaos: u64,
    /// Launch requests refused for good (injected bad AMI).
    pub bad_launches: u64,
    /// Instances that booted dead (no worker), and how many of them were terminated.
    pub dead_boots: u64,
    /// Most workers alive at once per activity.
    pub peak_alive_per_activity: BTreeMap<String, u64>,
}

/// One instance's life, for the run report's timeline: launched, its worker running (after the
/// simulated boot), gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpan {
    pub id: String,
    /// The step it serves (its activity's name, or the step of a hand-started worker).
    pub step: String,
    pub launched: chrono::DateTime<Utc>,
    pub running: Option<chrono::DateTime<Utc>>,
    pub ended: Option<chrono::DateTime<Utc>>,
}

struct Inst {
    id: String,
    state: InstanceState,
    instance_type: String,
    launch_time: chrono::DateTime<Utc>,
    running_since: Option<chrono::DateTime<Utc>>,
    ended_at: Option<chrono::DateTime<Utc>>,
    tags: BTreeMap<String, String>,
    tags_file: PathBuf,
    pid: Option<u32>,
    /// The task name (`wa-N-…`) the chaos monkey already rolled for.
    chaos_rolled: Option<String>,
    /// Started by hand (fake-ec2) for this step, not launched through the fleet port.
    hand: Option<String>,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, Inst>,
    tokens: BTreeMap<String, Vec<String>>,
    counters: FleetCounters,
    shut_down: bool,
    /// Every worker process ever started (the tests check none outlives the stack).
    started_pids: Vec<u32>,
}

/// Local processes standing in for EC2 instances.
pub struct LocalFleet {
    cfg: LocalFleetConfig,
    state: Mutex<State>,
    next: AtomicU64,
    faults: Faults,
    dice: Dice,
    /// Itself, for the tasks a launch spawns.
    me: std::sync::Weak<LocalFleet>,
    /// The benchmark's serial-launch baseline (see [`LocalFleet::set_serial_launches`]).
    serial_launches: std::sync::atomic::AtomicBool,
    launch_gate: tokio::sync::Mutex<()>,
}

/// The `export K='V'` lines of a userdata stub, unquoted.
pub fn parse_user_data(user_data: &str) -> Vec<(String, String)> {
    user_data
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), unquote(v)))
        .collect()
}

fn unquote(v: &str) -> String {
    // Inverse of boa_core::worker_env::shell_quote: '…' with ' written as '\''.
    let inner = v
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(v);
    inner.replace("'\\''", "'")
}

fn scale_secs(v: &str, scale: f64) -> String {
    v.parse::<f64>()
        .map(|x| format!("{}", (x / scale).max(0.05)))
        .unwrap_or_else(|_| v.to_string())
}

impl LocalFleet {
    pub fn new(cfg: LocalFleetConfig, faults: Faults) -> Arc<LocalFleet> {
        let dice = Dice::new(faults.seed ^ 0x00f1_ee70);
        Arc::new_cyclic(|me| LocalFleet {
            cfg,
            state: Mutex::new(State::default()),
            next: AtomicU64::new(1),
            faults,
            dice,
            me: me.clone(),
            serial_launches: Default::default(),
            launch_gate: tokio::sync::Mutex::new(()),
        })
    }

    pub fn counters(&self) -> FleetCounters {
        self.lock().counters.clone()
    }

    /// The benchmark's baseline: launches one at a time, each starting only once every earlier
    /// instance runs, like a script that waits for each instance before launching the next.
    pub fn set_serial_launches(&self, on: bool) {
        self.serial_launches.store(on, Ordering::Relaxed);
    }

    fn any_pending(&self) -> bool {
        let s = self.lock();
        !s.shut_down
            && s.instances
                .values()
                .any(|i| i.state == InstanceState::Pending)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fleet lock")
    }

    /// Instances still live (the tests assert none is left behind).
    pub fn alive(&self) -> Vec<String> {
        let s = self.lock();
        s.instances
            .values()
            .filter(|i| i.state.is_live() || i.pid.is_some())
            .map(|i| i.id.clone())
            .collect()
    }

    /// Process ids of every worker process started so far that has not been seen exiting.
    pub fn pids(&self) -> Vec<u32> {
        self.lock()
            .instances
            .values()
            .filter_map(|i| i.pid)
            .collect()
    }

    /// Every worker process started so far, exited or not. Each leads its own process group
    /// (its scripts included).
    pub fn started_pids(&self) -> Vec<u32> {
        self.lock().started_pids.clone()
    }

    pub fn is_shut_down(&self) -> bool {
        self.lock().shut_down
    }

    /// Whether the hand-started worker of `step` is still running.
    pub fn hand_worker_alive(&self, step: &str) -> bool {
        self.lock()
            .instances
            .values()
            .any(|i| i.hand.as_deref() == Some(step) && i.state.is_live())
    }

    /// Starts a worker the way a person would (fake-ec2): not a launch, no stack tags.
    pub fn start_by_hand(self: &Arc<Self>, step: &str, env: Vec<(String, String)>) -> String {
        let id = format!("i-hand-{:06}", self.next.fetch_add(1, Ordering::Relaxed));
        self.lock().instances.insert(
            id.clone(),
            Inst {
                id: id.clone(),
                state: InstanceState::Pending,
                instance_type: "by-hand".into(),
                launch_time: Utc::now(),
                running_since: None,
                ended_at: None,
                tags: BTreeMap::new(),
                tags_file: PathBuf::new(),
                pid: None,
                chaos_rolled: None,
                hand: Some(step.to_string()),
            },
        );
        self.spawn_worker(id.clone(), env);
        id
    }

    /// Live workers per activity right now.
    pub fn alive_per_activity(&self) -> BTreeMap<String, u64> {
        let s = self.lock();
        let mut m = BTreeMap::new();
        for i in s.instances.values().filter(|i| i.state.is_live()) {
            let a = i.tags.get(tags::ACTIVITY).cloned().unwrap_or_default();
            *m.entry(a).or_insert(0) += 1;
        }
        m
    }

    fn note_peak(s: &mut State) {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for i in s.instances.values().filter(|i| i.state.is_live()) {
            let a = i.tags.get(tags::ACTIVITY).cloned().unwrap_or_default();
            *m.entry(a).or_insert(0) += 1;
        }
        for (a, n) in m {
            let e = s.counters.peak_alive_per_activity.entry(a).or_insert(0);
            *e = (*e).max(n);
        }
    }

    fn spawn_worker(self: &Arc<Self>, id: String, spec_env: Vec<(String, String)>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(me.cfg.boot_time).await;
            let tags_file = me.cfg.run_dir.join("tags").join(format!("{id}.json"));
            let mut cmd = tokio::process::Command::new(&me.cfg.worker_bin);
            cmd.env_clear();
            for k in ["PATH", "HOME", "TMPDIR", "LANG"] {
                if let Ok(v) = std::env::var(k) {
                    cmd.env(k, v);
                }
            }
            for (k, v) in &spec_env {
                let v = match k.as_str() {
                    vars::IDLE_TIMEOUT_S | vars::HEARTBEAT_S | vars::LEASE_MARGIN_S => {
                        scale_secs(v, me.cfg.time_scale)
                    }
                    _ => v.clone(),
                };
                cmd.env(k, v);
            }
            cmd.env(vars::ENDPOINT_URL, &me.cfg.endpoint_url)
                .env(vars::INSTANCE_ID, &id)
                .env(vars::SHUTDOWN, "exit")
                .env(vars::SCRIPTS, &me.cfg.scripts_dir)
                .env(vars::LOG_DIR, me.cfg.run_dir.join("logs"))
                .env_remove(vars::LOG_GROUP)
                .env(vars::WORK_DIR, me.cfg.run_dir.join("work").join(&id))
                .env(boa_core::names::local::TAGS_FILE, &tags_file)
                .env("AWS_ACCESS_KEY_ID", &me.cfg.access_key)
                .env("AWS_SECRET_ACCESS_KEY", "local")
                .env("AWS_EC2_METADATA_DISABLED", "true");
            for (k, v) in &me.cfg.extra_env {
                cmd.env(k, v);
            }
            cmd.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(me.cfg.run_dir.join("logs").join(format!("{id}.stderr")))
                        .unwrap_or_else(|_| tempfile_null()),
                ))
                .process_group(0)
                .kill_on_drop(true);
            die_with_this_process(&mut cmd);
            {
                let s = me.lock();
                if s.shut_down
                    || s.instances
                        .get(&id)
                        .is_none_or(|i| i.state != InstanceState::Pending)
                {
                    return;
                }
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(instance = %id, error = %e, "cannot start worker process");
                    if let Some(i) = me.lock().instances.get_mut(&id) {
                        i.state = InstanceState::Terminated;
                        i.ended_at = Some(Utc::now());
                    }
                    return;
                }
            };
            {
                let mut s = me.lock();
                if let Some(i) = s.instances.get_mut(&id) {
                    i.state = InstanceState::Running;
                    i.running_since = Some(Utc::now());
                    i.pid = child.id();
                    i.tags_file = tags_file;
                }
                s.started_pids.extend(child.id());
            }
            let status = child.wait().await;
            tracing::debug!(instance = %id, ?status, "worker exited");
            let mut s = me.lock();
            if let Some(i) = s.instances.get_mut(&id) {
                i.state = InstanceState::Terminated;
                i.ended_at.get_or_insert_with(Utc::now);
                i.pid = None;
            }
        });
    }

    /// An instance whose worker never starts: it runs, untagged by any worker, until terminated.
    fn spawn_dead_boot(self: &Arc<Self>, id: String) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(me.cfg.boot_time).await;
            let mut s = me.lock();
            if let Some(i) = s.instances.get_mut(&id)
                && i.state == InstanceState::Pending
            {
                tracing::info!(instance = %id, "fault: booted without a worker");
                i.state = InstanceState::Running;
                i.running_since = Some(Utc::now());
            }
        });
    }

    fn refresh_tags(i: &mut Inst) {
        if let Ok(text) = std::fs::read_to_string(&i.tags_file)
            && let Ok(t) = serde_json::from_str::<BTreeMap<String, String>>(&text)
        {
            i.tags.extend(t);
        }
    }

    fn signal(pid: u32, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
    }

    /// Chaos: kill busy workers mid-task at the configured rate, once per task.
    pub fn spawn_chaos(self: &Arc<Self>, every: Duration) {
        if self.faults.kill_worker <= 0.0 {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let mut s = me.lock();
                if s.shut_down {
                    return;
                }
                let mut kills = vec![];
                for i in s.instances.values_mut() {
                    if i.state != InstanceState::Running {
                        continue;
                    }
                    Self::refresh_tags(i);
                    let busy = i.tags.get(tags::WORK).is_some_and(|w| w == "busy");
                    let name = i.tags.get(tags::NAME).cloned();
                    if busy && name.is_some() && i.chaos_rolled != name {
                        i.chaos_rolled = name;
                        if me.dice.roll(me.faults.kill_worker)
                            && let Some(pid) = i.pid
                        {
                            kills.push((i.id.clone(), pid));
                        }
                    }
                }
                for (id, pid) in kills {
                    tracing::info!(instance = %id, "chaos: killing worker mid-task");
                    s.counters.killed_by_chaos += 1;
                    Self::signal(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
        });
    }

    /// Stops every worker still running: SIGTERM, then SIGKILL after `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let pids: Vec<u32> = {
            let mut s = self.lock();
            s.shut_down = true;
            s.instances.values().filter_map(|i| i.pid).collect()
        };
        for p in &pids {
            Self::signal(*p, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && !self.alive().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut s = self.lock();
        for i in s.instances.values_mut() {
            if let Some(p) = i.pid.take() {
                Self::signal(p, nix::sys::signal::Signal::SIGKILL);
            }
            if i.state.is_live() {
                i.state = InstanceState::Terminated;
            }
            i.ended_at.get_or_insert_with(Utc::now);
        }
    }

    /// Every instance's life so far, in launch order.
    pub fn spans(&self) -> Vec<InstanceSpan> {
        let s = self.lock();
        let mut v: Vec<InstanceSpan> = s
            .instances
            .values()
            .map(|i| InstanceSpan {
                id: i.id.clone(),
                step: i.hand.clone().unwrap_or_else(|| {
                    let a = i.tags.get(tags::ACTIVITY).cloned().unwrap_or_default();
                    a.rsplit(':').next().unwrap_or_default().to_string()
                }),
                launched: i.launch_time,
                running: i.running_since,
                ended: i.ended_at,
            })
            .collect();
        v.sort_by(|a, b| (a.launched, &a.id).cmp(&(b.launched, &b.id)));
        v
    }
}

/// The worker gets SIGKILL when the process that started it dies, however it dies (SIGKILL of
/// the CLI included): a local "instance" never outlives its run, and its scripts follow it through
/// their guards (see the worker's `script` module). The kernel sends the signal when the *thread*
/// that forked the worker exits; workers are started from the async runtime's worker threads,
/// which live as long as the runtime, that is the run.
fn die_with_this_process(cmd: &mut tokio::process::Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // system calls (prctl, getppid); it allocates nothing on success.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The parent may have died between fork and prctl: then nobody would send the signal.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other(
                    "the run that started this worker is gone",
                ));
            }
            Ok(())
        });
    }
}

fn tempfile_null() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null")
}

#[async_trait]
impl Fleet for LocalFleet {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<String>, PortError> {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| PortError::Other("the local fleet is gone".into()))?;
        let env = parse_user_data(&spec.user_data);
        // Serial baseline: this launch starts only once every earlier instance runs.
        let _serial_gate = if self.serial_launches.load(Ordering::Relaxed) {
            let gate = self.launch_gate.lock().await;
            while self.any_pending() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Some(gate)
        } else {
            None
        };
        let mut s = self.lock();
        s.counters.run_instances_calls += 1;
        if s.shut_down {
            return Err(PortError::Other("the local fleet is shut down".into()));
        }
        if let Some(ids) = s.tokens.get(&spec.client_token) {
            return Ok(ids.clone());
        }
        if self.dice.roll(self.faults.throttle_launch) {
            s.counters.throttled += 1;
            return Err(PortError::Throttled(
                "RequestLimitExceeded: Request limit exceeded (injected)".into(),
            ));
        }
        if self.dice.roll(self.faults.bad_launch) {
            s.counters.bad_launches += 1;
            return Err(PortError::Other(format!(
                "InvalidAMIID.NotFound: The image id '[{}]' does not exist (injected)",
                spec.ami
            )));
        }
        if self.dice.roll(self.faults.no_capacity) {
            s.counters.no_capacity += 1;
            return Err(PortError::NoCapacity(format!(
                "InsufficientInstanceCapacity: no {} capacity (injected)",
                spec.instance_type
            )));
        }
        let mut ids = vec![];
        let mut dead = vec![];
        for _ in 0..spec.count.max(1) {
            let id = format!("i-local-{:06}", self.next.fetch_add(1, Ordering::Relaxed));
            s.instances.insert(
                id.clone(),
                Inst {
                    id: id.clone(),
                    state: InstanceState::Pending,
                    instance_type: spec.instance_type.clone(),
                    launch_time: Utc::now(),
                    running_since: None,
                    ended_at: None,
                    tags: spec.tags.clone(),
                    tags_file: PathBuf::new(),
                    pid: None,
                    chaos_rolled: None,
                    hand: None,
                },
            );
            let launched_so_far = s.counters.instances_launched + ids.len() as u64;
            if launched_so_far < u64::from(self.faults.dead_boot_first)
                || self.dice.roll(self.faults.dead_boot)
            {
                dead.push(id.clone());
            }
            ids.push(id);
        }
        s.counters.instances_launched += ids.len() as u64;
        s.counters.dead_boots += dead.len() as u64;
        s.tokens.insert(spec.client_token.clone(), ids.clone());
        Self::note_peak(&mut s);
        drop(s);
        for id in &ids {
            if dead.contains(id) {
                me.spawn_dead_boot(id.clone());
            } else {
                me.spawn_worker(id.clone(), env.clone());
            }
        }
        Ok(ids)
    }

    async fn instances(&self, filter: &[(String, String)]) -> Result<Vec<Instance>, PortError> {
        let mut s = self.lock();
        s.counters.describe_calls += 1;
        let mut out = vec![];
        for i in s.instances.values_mut() {
            if i.state == InstanceState::Terminated || i.hand.is_some() {
                continue;
            }
            Self::refresh_tags(i);
            if filter
                .iter()
                .all(|(k, v)| i.tags.get(k).is_some_and(|x| x == v))
            {
                out.push(Instance {
                    id: i.id.clone(),
                    state: i.state,
                    instance_type: i.instance_type.clone(),
                    launch_time: Some(i.launch_time),
                    tags: i.tags.clone(),
                });
            }
        }
        Ok(out)
    }

    async fn tag(&self, id: &str, t: &BTreeMap<String, String>) -> Result<(), PortError> {
        let mut s = self.lock();
        s.counters.tag_calls += 1;
        match s.instances.get_mut(id) {
            Some(i) => {
                i.tags.extend(t.clone());
                Ok(())
            }
            None => Err(PortError::NotFound(format!("no instance {id}"))),
        }
    }

    async fn terminate(&self, ids: &[String]) -> Result<(), PortError> {
        let mut s = self.lock();
        s.counters.terminate_calls += 1;
        for id in ids {
            if let Some(i) = s.instances.get_mut(id) {
                match i.pid {
                    Some(p) => Self::signal(p, nix::sys::signal::Signal::SIGTERM),
                    None => {
                        i.state = InstanceState::Terminated;
                        i.ended_at.get_or_insert_with(Utc::now);
                    }
                }
                if i.state == InstanceState::Running {
                    i.state = InstanceState::ShuttingDown;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_exports_round_trip() {
        let env = boa_core::worker_env::WorkerEnv::from_lookup(|k| {
            Some(
                match k {
                    vars::STEP_ENV => "{\"A\":\"it's\"}",
                    vars::SCRIPTS_SHA256 => concat!(
                        "{\"build.sh\":\"",
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                        "\"}"
                    ),
                    vars::IDLE_TIMEOUT_S
                    | vars::HEARTBEAT_S
                    | vars::LEASE_MARGIN_S
                    | vars::MAX_TASKS => "3",
                    vars::SHUTDOWN => "exit",
                    vars::ENDPOINT_URL => "http://127.0.0.1:1",
                    _ => "x",
                }
                .to_string(),
            )
        })
        .unwrap();
        let ud = boa_core::worker_env::user_data(
            &env,
            &boa_core::worker_env::WorkerBinary {
                url: "s3://b/worker",
                sha256: None,
                bucket_owner: None,
            },
        );
        let parsed: BTreeMap<String, String> = parse_user_data(&ud).into_iter().collect();
        let back =
            boa_core::worker_env::WorkerEnv::from_lookup(|k| parsed.get(k).cloned()).unwrap();
        assert_eq!(back, env);
        assert_eq!(scale_secs("600", 100.0), "6");
    }
}
