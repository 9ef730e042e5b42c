//! The fleet port in local mode: every "instance" is a process running the launch's userdata stub.
//!
//! A launch reads back the userdata stub start-workers wrote (the same text EC2 would run, see
//! [`StubInputs::parse`]) and, after a simulated boot time, runs that stub with `bash` for this
//! machine ([`StubInputs::render`] with the local [`StubMachine`]): the only substitutions are
//! the machine's parts of the stub:
//!
//! - the download is a copy (a hard link where it can) of the configured `worker_bin`, so the
//!   stub's SHA-256 check runs against the hash the launch carries;
//! - the power-off is the end of the stub's process ("build-on-aws: poweroff" in the console):
//!   the instance is terminated, and whatever is left of its process group is killed;
//! - the install folder is `work/<id>/opt` and the worker's output goes to `logs/<id>.stderr`;
//! - the exported values that only make sense locally (endpoint, folders, instance id, time
//!   scale) are replaced in the stub's own `export` lines.
//!
//! The stub is kept as `work/<id>/user-data.sh`; its stdout and stderr, the instance's console
//! output, go to `logs/<id>.console.log`. Tags are kept here and merged with the tags file each
//! worker rewrites.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use boa_aws::ports::{Fleet, Instance, InstanceState, LaunchSpec, PortError, tags};
use boa_core::worker_env::{StubInputs, StubMachine, shell_quote, vars};
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
    /// The worker binary's SHA-256, as hashed once when the stack started, with the identity of
    /// the file it was computed from: instances answer the stub's check from it (see
    /// [`VerifiedBinary`]).
    pub verified_worker: Option<VerifiedBinary>,
    /// Each launched instance runs its userdata stub (`bash`, then `mkdir`, `ln`, `sha256sum`,
    /// `chmod` and the worker: about 15 ms of CPU). Off, the fleet makes the stub's checks
    /// itself (the userdata is the stub start-workers renders, its worker binary the verified
    /// one with the SHA-256 the launch expects) and starts the worker directly, with the
    /// environment the stub would have exported; an instance whose checks fail runs its stub,
    /// which refuses as on EC2. On EC2 each instance spends that CPU on its own during its
    /// boot; here hundreds of instances launched at once would share two cores.
    pub run_stubs: bool,
}

/// A file's SHA-256 and its identity when it was hashed (device, inode, size, modification time
/// to the nanosecond; as `stat -L -c '%d:%i:%s:%.9Y'` prints it).
///
/// EC2 instances each hash the worker binary on their own CPU during boot; local instances share
/// this machine's two cores, and 30 instances hashing a 20 MB binary at once add seconds to every
/// step that starts many workers, which no EC2 run pays. So a local instance's `sha256sum` is a
/// shim (first on its PATH) that answers with this hash for the very file it was computed from,
/// and runs the real `sha256sum` for anything else: a binary changed since (new modification
/// time or size, or another file) is hashed for real and refused as on EC2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBinary {
    pub sha256: String,
    pub identity: String,
}

/// `path`'s identity (see [`VerifiedBinary`]).
pub fn file_identity(path: &std::path::Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(format!(
        "{}:{}:{}:{}.{:09}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

impl VerifiedBinary {
    /// Hashes `path`, with its identity taken before and after: a file that changed meanwhile
    /// gets a hash but no identity (every instance then hashes it for real).
    pub fn hash(path: &std::path::Path) -> Result<(String, Option<VerifiedBinary>), String> {
        let before = file_identity(path).ok();
        let sha256 = file_sha256(path)?;
        let after = file_identity(path).ok();
        let verified = match (before, after) {
            (Some(b), Some(a)) if a == b => Some(VerifiedBinary {
                sha256: sha256.clone(),
                identity: b,
            }),
            _ => None,
        };
        Ok((sha256, verified))
    }

    /// The `sha256sum` shim's text; `real` is the system's `sha256sum`. POSIX `sh`, not bash:
    /// every local instance runs it once, and where `sh` is dash it starts several times faster.
    fn shim(&self, real: &std::path::Path) -> String {
        format!(
            r#"#!/bin/sh
# build-on-aws local fleet: sha256sum for this run's instances. The worker binary was hashed once
# when the stack started; for that very file (same device, inode, size and modification time)
# the hash is answered from here, as if hashed on an instance's own CPU. Anything else goes to the
# real sha256sum.
real={real}
known_id={id}
known_sha={sha}
id_of() {{ stat -L -c '%d:%i:%s:%.9Y' -- "$1" 2>/dev/null; }}
if [ "$#" = 3 ] && [ "$1" = -c ] && [ "$2" = --status ] && [ "$3" = - ]; then
  read -r want file || exit 1
  if [ "$(id_of "$file")" = "$known_id" ]; then
    [ "$want" = "$known_sha" ]
    exit
  fi
  printf '%s  %s\n' "$want" "$file" | exec "$real" -c --status -
elif [ "$#" = 1 ] && [ "$(id_of "$1")" = "$known_id" ]; then
  printf '%s  %s\n' "$known_sha" "$1"
else
  exec "$real" "$@"
fi
"#,
            real = shell_quote(&real.display().to_string()),
            id = shell_quote(&self.identity),
            sha = shell_quote(&self.sha256),
        )
    }
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
    /// `pid` is the userdata stub's shell, and the worker its child (a launched instance).
    stub: bool,
    /// Its tags file may have changed since it was last read (see [`TagWatch`]).
    tags_stale: bool,
}

/// How an instance boots.
enum Boot {
    /// The launch's userdata stub, run for this machine.
    Stub(Box<StubInputs>),
    /// The worker itself, with this environment: a worker started by hand (fake-ec2), or a
    /// launch whose stub's checks the fleet made itself ([`LocalFleetConfig::run_stubs`] off).
    Direct(Vec<(String, String)>),
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, Inst>,
    tokens: BTreeMap<String, Vec<String>>,
    counters: FleetCounters,
    shut_down: bool,
    /// Every worker process ever started (the tests check none outlives the stack).
    started_pids: Vec<u32>,
    /// Tags files read (a test checks that a look reads only those written since the last).
    tag_reads: u64,
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
    /// Where the `sha256sum` shim is (first on a stub's PATH), if there is one.
    shim_dir: Option<PathBuf>,
    tag_watch: TagWatch,
}

/// Which instances' tags files were written since the last look: an inotify watch on the tags
/// folder. A worker rewrites its file (temp file + rename) when it names itself or takes a task;
/// a DescribeInstances then reads only the files written since, instead of every live
/// instance's file (at 270 instances, 270 reads per call held the fleet's lock and a runtime
/// thread for about 15 ms on every Prepare). Without a watch, or when the kernel's queue
/// overflowed, every file is read again.
struct TagWatch(Option<nix::sys::inotify::Inotify>);

impl TagWatch {
    fn new(dir: &std::path::Path) -> TagWatch {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let watch = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
                    .map_err(|e| e.to_string())?;
                fd.add_watch(
                    dir,
                    AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
                )
                .map_err(|e| e.to_string())?;
                Ok(fd)
            });
        match watch {
            Ok(fd) => TagWatch(Some(fd)),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "no inotify watch on the tags folder: every look reads every tags file");
                TagWatch(None)
            }
        }
    }

    /// Marks stale every instance whose tags file was written since the last call (all of
    /// them without a watch or after an overflow).
    fn mark(&self, s: &mut State) {
        use nix::sys::inotify::AddWatchFlags;
        let Some(fd) = &self.0 else {
            s.instances.values_mut().for_each(|i| i.tags_stale = true);
            return;
        };
        loop {
            match fd.read_events() {
                Ok(events) if !events.is_empty() => {
                    for e in events {
                        if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                            s.instances.values_mut().for_each(|i| i.tags_stale = true);
                            continue;
                        }
                        let id = e
                            .name
                            .as_ref()
                            .and_then(|n| n.to_str()?.strip_suffix(".json"));
                        if let Some(i) = id.and_then(|id| s.instances.get_mut(id)) {
                            i.tags_stale = true;
                        }
                    }
                }
                // EAGAIN: nothing more queued.
                _ => return,
            }
        }
    }
}

fn scale_secs(v: &str, scale: f64) -> String {
    v.parse::<f64>()
        .map(|x| format!("{}", (x / scale).max(0.05)))
        .unwrap_or_else(|_| v.to_string())
}

/// Writes the `sha256sum` shim into `<run_dir>/bin` (see [`VerifiedBinary`]); returns that
/// folder, or `None` (instances then hash for real) when there is nothing verified or no system
/// `sha256sum` to fall back to.
fn write_shim(cfg: &LocalFleetConfig) -> Option<PathBuf> {
    let v = cfg.verified_worker.as_ref()?;
    let real = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("sha256sum"))
            .find(|p| p.is_file())
    })?;
    let dir = cfg.run_dir.join("bin");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o700)
            .open(dir.join("sha256sum"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, v.shim(&real).as_bytes()))
    });
    match written {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(error = %e, "cannot write the sha256sum shim: instances hash the worker binary themselves");
            None
        }
    }
}

impl LocalFleet {
    pub fn new(cfg: LocalFleetConfig, faults: Faults) -> Arc<LocalFleet> {
        let dice = Dice::new(faults.seed ^ 0x00f1_ee70);
        let shim_dir = write_shim(&cfg);
        let tag_watch = TagWatch::new(&cfg.run_dir.join("tags"));
        Arc::new_cyclic(|me| LocalFleet {
            cfg,
            state: Mutex::new(State::default()),
            next: AtomicU64::new(1),
            faults,
            dice,
            me: me.clone(),
            serial_launches: Default::default(),
            launch_gate: tokio::sync::Mutex::new(()),
            shim_dir,
            tag_watch,
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

    /// Process ids of every worker process running (of an instance whose stub has not started
    /// its worker yet: the stub's).
    pub fn pids(&self) -> Vec<u32> {
        self.lock()
            .instances
            .values()
            .filter_map(|i| {
                let pid = i.pid?;
                Some(if i.stub {
                    stub_worker(pid).unwrap_or(pid)
                } else {
                    pid
                })
            })
            .collect()
    }

    /// Every instance process started so far (the userdata stub's shell, or a worker started by
    /// hand), exited or not. Each leads its own process group, the stub's worker included (its
    /// scripts have their own groups, with guards).
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
                stub: false,
                tags_stale: true,
            },
        );
        self.spawn_instance(id.clone(), Boot::Direct(env));
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

    /// The values of a launch's configuration that only make sense locally (endpoint, instance
    /// id, folders, how the worker ends), also set in the instance's process environment.
    fn local_overrides(&self, id: &str) -> Vec<(&'static str, String)> {
        vec![
            (vars::ENDPOINT_URL, self.cfg.endpoint_url.clone()),
            (vars::INSTANCE_ID, id.to_string()),
            (vars::SHUTDOWN, "exit".into()),
            (vars::SCRIPTS, self.cfg.scripts_dir.display().to_string()),
            (
                vars::LOG_DIR,
                self.cfg.run_dir.join("logs").display().to_string(),
            ),
            (
                vars::WORK_DIR,
                self.cfg.run_dir.join("work").join(id).display().to_string(),
            ),
        ]
    }

    /// A launch's configuration for this machine: the local overrides, durations divided by the
    /// time scale, no CloudWatch log group (logs go to files). Same order.
    fn local_env(&self, id: &str, env: &[(String, String)]) -> Vec<(String, String)> {
        let overrides = self.local_overrides(id);
        env.iter()
            .filter(|(k, _)| k != vars::LOG_GROUP)
            .map(|(k, v)| {
                let v = match overrides.iter().find(|(o, _)| o == k) {
                    Some((_, local)) => local.clone(),
                    None => match k.as_str() {
                        vars::IDLE_TIMEOUT_S | vars::HEARTBEAT_S | vars::LEASE_MARGIN_S => {
                            scale_secs(v, self.cfg.time_scale)
                        }
                        _ => v.clone(),
                    },
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Without stubs ([`LocalFleetConfig::run_stubs`] off): whether the stub would run the
    /// worker, that is the launch names a SHA-256 and the worker binary is the file the stack
    /// verified, unchanged, with that SHA-256.
    fn stub_checks_pass(&self, stub: &StubInputs) -> bool {
        if self.cfg.run_stubs {
            return false;
        }
        match (&self.cfg.verified_worker, &stub.sha256) {
            (Some(v), Some(want)) => {
                *want == v.sha256
                    && file_identity(&self.cfg.worker_bin).is_ok_and(|id| id == v.identity)
            }
            _ => false,
        }
    }

    /// This machine's parts of the userdata stub (see the module's documentation).
    fn local_machine(&self, id: &str) -> StubMachine {
        let bin = self.cfg.worker_bin.display().to_string();
        let q = shell_quote(&bin);
        StubMachine {
            fetch: format!("ln -fL {q} ./worker 2>/dev/null || cp {q} ./worker"),
            source: bin,
            poweroff: "echo build-on-aws: poweroff".into(),
            install_dir: self.install_dir(id).display().to_string(),
            worker_log: self
                .cfg
                .run_dir
                .join("logs")
                .join(format!("{id}.stderr"))
                .display()
                .to_string(),
        }
    }

    fn install_dir(&self, id: &str) -> PathBuf {
        self.cfg.run_dir.join("work").join(id).join("opt")
    }

    /// The instance's process: `bash` running its userdata stub (written to
    /// `work/<id>/user-data.sh`, console output to `logs/<id>.console.log`), or the worker itself.
    fn instance_command(
        &self,
        id: &str,
        boot: &Boot,
        tags_file: &std::path::Path,
    ) -> std::io::Result<tokio::process::Command> {
        let logs = self.cfg.run_dir.join("logs");
        let log_file = |name: String| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(logs.join(name))
        };
        let mut cmd;
        match boot {
            Boot::Stub(inputs) => {
                let work = self.cfg.run_dir.join("work").join(id);
                std::fs::create_dir_all(&work)?;
                let stub = StubInputs {
                    exports: self.local_env(id, &inputs.exports),
                    ..(**inputs).clone()
                }
                .render(&self.local_machine(id));
                let path = work.join("user-data.sh");
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, stub.as_bytes()))?;
                let console = log_file(format!("{id}.console.log"))?;
                cmd = tokio::process::Command::new("bash");
                cmd.arg(&path)
                    .current_dir(&work)
                    .stdout(console.try_clone()?)
                    .stderr(console);
            }
            Boot::Direct(_) => {
                cmd = tokio::process::Command::new(&self.cfg.worker_bin);
                cmd.stdout(std::process::Stdio::null())
                    .stderr(log_file(format!("{id}.stderr")).unwrap_or_else(|_| tempfile_null()));
            }
        }
        cmd.env_clear();
        for k in ["PATH", "HOME", "TMPDIR", "LANG"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        if let (Boot::Stub(_), Some(dir)) = (boot, &self.shim_dir) {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
        if let Boot::Direct(env) = boot {
            cmd.envs(self.local_env(id, env));
        }
        cmd.envs(self.local_overrides(id))
            .env(boa_core::names::local::TAGS_FILE, tags_file)
            .env("AWS_ACCESS_KEY_ID", &self.cfg.access_key)
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in &self.cfg.extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        match boot {
            Boot::Stub(_) => die_with_this_process(&mut cmd),
            // The worker asks for the same itself: without a `pre_exec` hook the standard
            // library starts it with posix_spawn instead of forking this process, whose page
            // tables (the engine's histories) every fork copies.
            Boot::Direct(_) => {
                cmd.env(
                    boa_core::names::local::PARENT_PID,
                    std::process::id().to_string(),
                );
            }
        }
        Ok(cmd)
    }

    /// Starts the instance's process at once; its worker waits until the boot time has passed
    /// ([`boa_core::names::local::UP_AT`]), when the instance turns `running`.
    fn spawn_instance(self: &Arc<Self>, id: String, boot: Boot) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let up = tokio::time::Instant::now() + me.cfg.boot_time;
            let up_at =
                Utc::now() + chrono::Duration::from_std(me.cfg.boot_time).unwrap_or_default();
            let tags_file = me.cfg.run_dir.join("tags").join(format!("{id}.json"));
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
            let stub = matches!(boot, Boot::Stub(_));
            let spawned = me
                .instance_command(&id, &boot, &tags_file)
                .and_then(|mut cmd| {
                    cmd.env(
                        boa_core::names::local::UP_AT,
                        up_at.timestamp_millis().to_string(),
                    );
                    cmd.spawn()
                });
            let mut child = match spawned {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(instance = %id, error = %e, "cannot start the instance's process");
                    if let Some(i) = me.lock().instances.get_mut(&id) {
                        i.state = InstanceState::Terminated;
                        i.ended_at = Some(Utc::now());
                    }
                    return;
                }
            };
            let pid = child.id();
            // The stub's shell dies with this process (parent-death signal), but its worker, a
            // child of the shell, would not: a guard kills the instance's process group when
            // this process is gone, whatever killed it.
            let guard = match (stub, pid) {
                (true, Some(p)) => match Guard::start(p) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        tracing::error!(instance = %id, error = %e, "cannot start the instance's guard (/bin/sh)");
                        Self::signal(p, nix::sys::signal::Signal::SIGKILL);
                        None
                    }
                },
                _ => None,
            };
            {
                let mut s = me.lock();
                let shut_down = s.shut_down;
                if let Some(i) = s.instances.get_mut(&id) {
                    if i.state != InstanceState::Pending || shut_down {
                        // Terminated (or the fleet shut down) while it was being started.
                        if let Some(p) = pid {
                            Self::signal(p, nix::sys::signal::Signal::SIGKILL);
                        }
                    }
                    i.pid = pid;
                    i.tags_file = tags_file;
                }
                s.started_pids.extend(pid);
            }
            // The boot: the process starts up meanwhile; the instance runs once it has passed
            // (unless it was terminated, or its process ended, before).
            let status = tokio::select! {
                status = child.wait() => status,
                () = tokio::time::sleep_until(up) => {
                    {
                        let mut s = me.lock();
                        let shut_down = s.shut_down;
                        if let Some(i) = s.instances.get_mut(&id)
                            && i.state == InstanceState::Pending
                            && !shut_down
                        {
                            i.state = InstanceState::Running;
                            i.running_since = Some(Utc::now());
                        }
                    }
                    child.wait().await
                }
            };
            tracing::debug!(instance = %id, ?status, "instance process exited");
            if stub {
                // Powered off: nothing of the instance runs on.
                if let Some(p) = pid {
                    Self::signal(p, nix::sys::signal::Signal::SIGKILL);
                }
                if let Some(g) = guard {
                    g.dismiss().await;
                }
                let _ = std::fs::remove_file(me.install_dir(&id).join("worker"));
            }
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

    /// Reads the tags files written since the last look into the instances' tags.
    fn refresh_tags(&self, s: &mut State) {
        self.tag_watch.mark(s);
        for i in s.instances.values_mut() {
            if !i.tags_stale || i.state == InstanceState::Terminated {
                continue;
            }
            i.tags_stale = false;
            s.tag_reads += 1;
            if let Ok(text) = std::fs::read_to_string(&i.tags_file)
                && let Ok(t) = serde_json::from_str::<BTreeMap<String, String>>(&text)
            {
                i.tags.extend(t);
            }
        }
    }

    fn signal(pid: u32, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
    }

    /// Asks an instance to stop, as a shutdown does: SIGTERM to its worker (which reports its
    /// task interrupted, then its stub powers off), or to the whole instance while its stub has
    /// not started the worker yet (or it was started by hand).
    fn stop(i: &Inst) {
        let Some(pid) = i.pid else { return };
        match i.stub.then(|| stub_worker(pid)).flatten() {
            Some(w) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(w as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            None => Self::signal(pid, nix::sys::signal::Signal::SIGTERM),
        }
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
                me.refresh_tags(&mut s);
                for i in s.instances.values_mut() {
                    if i.state != InstanceState::Running {
                        continue;
                    }
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
        {
            let mut s = self.lock();
            s.shut_down = true;
            for i in s.instances.values() {
                Self::stop(i);
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && !self.alive().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = {
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
            s.started_pids.clone()
        };
        // Killed is not yet gone: on a loaded machine a process group takes a moment to empty
        // (its members are reaped, a script's guard ends what the script left). Shutting down
        // returns once every group this fleet started is empty, or after a bounded wait.
        let gone = |p: &u32| {
            nix::sys::signal::killpg(nix::unistd::Pid::from_raw(*p as i32), None).is_err()
        };
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < until && !started.iter().all(gone) {
            tokio::time::sleep(Duration::from_millis(20)).await;
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

/// The guard of an instance's process group, as a worker guards its scripts' (see the worker's
/// `script` module): a tiny `/bin/sh` in a process group of its own whose stdin is a pipe only
/// this process holds. When this process dies, however, or drops the guard, the pipe closes and
/// the guard SIGKILLs the group. Builtins only.
struct Guard {
    child: tokio::process::Child,
    /// The write end of the guard's stdin (close-on-exec: no instance holds it); nothing is
    /// ever written to it.
    pipe: Option<tokio::process::ChildStdin>,
}

impl Guard {
    fn start(pgid: u32) -> std::io::Result<Guard> {
        let mut child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"while read -r _; do :; done; kill -s KILL -- -"$0" 2>/dev/null"#)
            .arg(pgid.to_string())
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Guard { child, pipe })
    }

    /// After the group is gone: kills and reaps the guard rather than waking it, so it never
    /// signals a process group id that could be reused.
    async fn dismiss(mut self) {
        let _ = self.child.start_kill();
        drop(self.pipe.take());
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
    }
}

/// The worker process a stub's shell started (a child named `worker`), if it runs.
fn stub_worker(shell: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "worker")
        })
}

/// The SHA-256 (hex) of a file, by `sha256sum` (the check the stub itself makes).
pub fn file_sha256(path: &std::path::Path) -> Result<String, String> {
    let out = std::process::Command::new("sha256sum")
        .arg("--")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.get(..64) {
        Some(h) if out.status.success() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(h.to_string())
        }
        _ => Err(format!(
            "cannot hash {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
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
        // The stub start-workers wrote, read back exactly (anything else is refused, as it
        // would not be the stub this fleet can run for its machine).
        let stub = StubInputs::parse(&spec.user_data).ok_or_else(|| {
            PortError::Other(
                "InvalidParameterValue: the local fleet runs only the userdata stub start-workers renders (boa_core::worker_env::user_data)".into(),
            )
        })?;
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
                    stub: true,
                    tags_stale: true,
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
            } else if self.stub_checks_pass(&stub) {
                if let Some(i) = me.lock().instances.get_mut(id) {
                    i.stub = false;
                }
                me.spawn_instance(id.clone(), Boot::Direct(stub.exports.clone()));
            } else {
                me.spawn_instance(id.clone(), Boot::Stub(Box::new(stub.clone())));
            }
        }
        Ok(ids)
    }

    async fn instances(&self, filter: &[(String, String)]) -> Result<Vec<Instance>, PortError> {
        let mut s = self.lock();
        s.counters.describe_calls += 1;
        self.refresh_tags(&mut s);
        let mut out = vec![];
        for i in s.instances.values() {
            if i.state == InstanceState::Terminated || i.hand.is_some() {
                continue;
            }
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
                    Some(_) => Self::stop(i),
                    None => {
                        i.state = InstanceState::Terminated;
                        i.ended_at.get_or_insert_with(Utc::now);
                    }
                }
                // A pending instance's process is starting up: it goes as a running one does.
                if i.state == InstanceState::Running
                    || (i.state == InstanceState::Pending && i.pid.is_some())
                {
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
    use boa_core::worker_env::{WorkerBinary, WorkerEnv, user_data};
    use std::os::unix::fs::PermissionsExt;

    fn sample_env() -> WorkerEnv {
        WorkerEnv::from_lookup(|k| {
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
                    | vars::MAX_TASKS => "30",
                    vars::SHUTDOWN => "poweroff",
                    vars::ENDPOINT_URL => "https://states.example.com",
                    vars::LOG_GROUP => "/build-on-aws/workers",
                    _ => "x",
                }
                .to_string(),
            )
        })
        .unwrap()
    }

    #[test]
    fn the_local_stub_is_the_launch_s_with_local_values() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = LocalFleet::new(
            config(dir.path(), dir.path().join("worker")),
            Faults::default(),
        );
        let ud = user_data(
            &sample_env(),
            &WorkerBinary {
                url: "s3://b/worker",
                sha256: None,
                bucket_owner: None,
            },
        );
        let inputs = StubInputs::parse(&ud).expect("start-workers' stub reads back");
        let local: BTreeMap<String, String> = fleet
            .local_env("i-1", &inputs.exports)
            .into_iter()
            .collect();
        let launched = WorkerEnv::from_lookup(|k| local.get(k).cloned()).unwrap();
        let mut expected = sample_env();
        expected.endpoint_url = Some("http://127.0.0.1:1".into());
        expected.instance_id = Some("i-1".into());
        expected.shutdown = boa_core::worker_env::Shutdown::Exit;
        expected.scripts = dir.path().join("scripts").display().to_string();
        expected.log_dir = Some(dir.path().join("run/logs").display().to_string());
        expected.log_group = None;
        expected.work_dir = dir.path().join("run/work/i-1").display().to_string();
        expected.idle_timeout = Duration::from_secs(3);
        expected.heartbeat = Duration::from_secs(3);
        expected.lease_margin = Duration::from_secs(3);
        assert_eq!(launched, expected);
        assert_eq!(scale_secs("600", 100.0), "6");
    }

    fn config(dir: &std::path::Path, worker_bin: PathBuf) -> LocalFleetConfig {
        let run_dir = dir.join("run");
        for d in ["logs", "tags", "work"] {
            std::fs::create_dir_all(run_dir.join(d)).unwrap();
        }
        LocalFleetConfig {
            access_key: "BOALOCALTEST".into(),
            worker_bin,
            endpoint_url: "http://127.0.0.1:1".into(),
            scripts_dir: dir.join("scripts"),
            run_dir,
            boot_time: Duration::ZERO,
            time_scale: 10.0,
            extra_env: vec![("MARKER_DIR".into(), dir.display().to_string())],
            verified_worker: None,
            run_stubs: true,
        }
    }

    fn launch_spec(user_data: String) -> LaunchSpec {
        LaunchSpec {
            count: 1,
            instance_type: "c7i.large".into(),
            purchase: boa_aws::ports::Purchase::OnDemand,
            client_token: format!("t-{}", rand::random::<u64>()),
            ami: "ami-0123456789abcdef0".into(),
            disk_gb: 8,
            imds_hop_limit: 1,
            instance_profile: String::new(),
            subnet: None,
            security_groups: vec![],
            user_data,
            tags: BTreeMap::new(),
        }
    }

    /// A "worker binary" that records that it ran, and with what, then exits.
    const FAKE_WORKER: &str =
        "#!/bin/sh\necho \"$BOA_INSTANCE_ID $BOA_WORK_DIR $BOA_SHUTDOWN\" > \"$MARKER_DIR/ran\"\n";

    /// Launches one instance of the stub start-workers renders for a binary whose expected
    /// SHA-256 is `sha`, served `FAKE_WORKER`, and waits for it to end. Returns (what the worker
    /// recorded if it ran, the instance's console log, its final state).
    async fn launch_and_wait(sha: &str) -> (Option<String>, String, InstanceState, PathBuf) {
        launch_and_wait_with(sha, |_, _| {}, |_| {}).await
    }

    /// The same, with the fleet's configuration changed by `setup(bin, cfg)`, and `then(bin)`
    /// done after the fleet started and before the launch.
    async fn launch_and_wait_with(
        sha: &str,
        setup: impl FnOnce(&std::path::Path, &mut LocalFleetConfig),
        then: impl FnOnce(&std::path::Path),
    ) -> (Option<String>, String, InstanceState, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("worker-bin");
        std::fs::write(&bin, FAKE_WORKER).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cfg = config(dir.path(), bin.clone());
        setup(&bin, &mut cfg);
        let fleet = LocalFleet::new(cfg, Faults::default());
        then(&bin);
        let ud = user_data(
            &sample_env(),
            &WorkerBinary {
                url: "s3://artifacts/worker/worker",
                sha256: Some(sha),
                bucket_owner: Some("123456789012"),
            },
        );
        let ids = fleet.launch(&launch_spec(ud)).await.unwrap();
        assert_eq!(ids.len(), 1);
        let id = &ids[0];
        let end = tokio::time::Instant::now() + Duration::from_secs(30);
        while !fleet.alive().is_empty() {
            assert!(
                tokio::time::Instant::now() < end,
                "the instance never ended; console:\n{}",
                std::fs::read_to_string(
                    dir.path()
                        .join("run/logs")
                        .join(format!("{id}.console.log"))
                )
                .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let state = fleet.lock().instances[id].state;
        assert_eq!(
            fleet.started_pids().len(),
            1,
            "one stub process per instance"
        );
        let console = std::fs::read_to_string(
            dir.path()
                .join("run/logs")
                .join(format!("{id}.console.log")),
        )
        .unwrap_or_default();
        let ran = std::fs::read_to_string(dir.path().join("ran")).ok();
        // Once the instance ended, its fetched binary is gone.
        assert!(
            !dir.path()
                .join("run/work")
                .join(id)
                .join("opt/worker")
                .exists()
        );
        (ran, console, state, dir.keep())
    }

    /// A worker that names itself twice through its tags file (temp file + rename, as the
    /// worker's own tagger does), waiting for `go` between, and ends on `stop`.
    const TAGGING_WORKER: &str = "#!/bin/sh\n\
        tag() { printf '{\"Name\":\"%s\"}' \"$1\" > \"$BOA_TAGS_FILE.tmp\" && mv \"$BOA_TAGS_FILE.tmp\" \"$BOA_TAGS_FILE\"; }\n\
        tag one\n\
        while [ ! -e \"$MARKER_DIR/go\" ]; do sleep 0.02; done\n\
        tag two\n\
        while [ ! -e \"$MARKER_DIR/stop\" ]; do sleep 0.02; done\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_describe_sees_each_tags_file_write_and_reads_no_file_that_did_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("worker-bin");
        std::fs::write(&bin, TAGGING_WORKER).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fleet = LocalFleet::new(config(dir.path(), bin), Faults::default());
        let ud = user_data(
            &sample_env(),
            &WorkerBinary {
                url: "s3://artifacts/worker/worker",
                sha256: None,
                bucket_owner: None,
            },
        );
        let id = fleet.launch(&launch_spec(ud)).await.unwrap().remove(0);
        let name_becomes = |want: &'static str| {
            let fleet = Arc::clone(&fleet);
            async move {
                let end = tokio::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let all = fleet.instances(&[]).await.unwrap();
                    if all[0].tags.get(tags::NAME).map(String::as_str) == Some(want) {
                        return all.into_iter().next().unwrap();
                    }
                    assert!(
                        tokio::time::Instant::now() < end,
                        "the instance's Name never became {want}: {:?}",
                        all[0].tags
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        name_becomes("one").await;
        let reads = fleet.lock().tag_reads;
        for _ in 0..5 {
            fleet.instances(&[]).await.unwrap();
        }
        assert_eq!(
            fleet.lock().tag_reads,
            reads,
            "a file that was not written since is not read again"
        );
        // A tag set through the port stays beside the worker's own.
        let lease = BTreeMap::from([("boa:lease".to_string(), "x".to_string())]);
        fleet.tag(&id, &lease).await.unwrap();
        std::fs::write(dir.path().join("go"), "").unwrap();
        let i = name_becomes("two").await;
        assert_eq!(i.tags.get("boa:lease").map(String::as_str), Some("x"));
        std::fs::write(dir.path().join("stop"), "").unwrap();
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        while !fleet.alive().is_empty() {
            assert!(
                tokio::time::Instant::now() < end,
                "the instance never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_launch_runs_the_stub_which_runs_the_deployed_worker() {
        let good = boa_core::pipeline::sha256_hex(FAKE_WORKER.as_bytes());
        let (ran, console, state, dir) = launch_and_wait(&good).await;
        let ran = ran.unwrap_or_else(|| panic!("the worker never ran; console:\n{console}"));
        let work = dir.join("run/work/i-local-000001");
        assert_eq!(
            ran.trim(),
            format!("i-local-000001 {} exit", work.display()),
            "the worker runs with the local values"
        );
        assert_eq!(state, InstanceState::Terminated);
        // The stub that ran is kept, and is start-workers' with only the machine's parts
        // substituted; its end is the instance's power-off, in the console.
        let stub = std::fs::read_to_string(work.join("user-data.sh")).unwrap();
        assert!(stub.contains("sha256sum -c --status -"), "{stub}");
        assert!(stub.contains(&format!("'{good}''  ./worker'")), "{stub}");
        assert!(console.contains("build-on-aws: poweroff"), "{console}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_launch_whose_binary_does_not_match_its_sha256_never_starts_the_worker() {
        let expected = boa_core::pipeline::sha256_hex(b"the deployed worker");
        let (ran, console, state, dir) = launch_and_wait(&expected).await;
        assert_eq!(
            ran, None,
            "the tampered worker must not run; console:\n{console}"
        );
        assert_eq!(state, InstanceState::Terminated, "the instance ends");
        let served = boa_core::pipeline::sha256_hex(FAKE_WORKER.as_bytes());
        assert!(
            console.contains("is not the deployed one")
                && console.contains(&format!("expected {expected}"))
                && console.contains(&format!("SHA-256 {served}")),
            "the console names the mismatch and both hashes:\n{console}"
        );
        assert!(console.contains("build-on-aws: poweroff"), "{console}");
        assert!(
            !dir.join("run/logs/i-local-000001.stderr").exists(),
            "no worker output at all"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The identity is the one coreutils' `stat` prints, which the shim compares with.
    #[test]
    fn a_hashed_file_has_its_sha256_and_the_identity_stat_prints() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("w");
        std::fs::write(&f, FAKE_WORKER).unwrap();
        let (sha, v) = VerifiedBinary::hash(&f).unwrap();
        assert_eq!(sha, boa_core::pipeline::sha256_hex(FAKE_WORKER.as_bytes()));
        let out = std::process::Command::new("stat")
            .args(["-L", "-c", "%d:%i:%s:%.9Y", "--"])
            .arg(&f)
            .output()
            .unwrap();
        let stat = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(v.map(|v| v.identity), Some(stat));
    }

    /// A record that claims a hash the file does not have: only the shim can accept it, so the
    /// worker running proves the stub's check was answered from the record.
    fn claimed(bin: &std::path::Path) -> Option<VerifiedBinary> {
        Some(VerifiedBinary {
            sha256: boa_core::pipeline::sha256_hex(b"what the stack hashed"),
            identity: file_identity(bin).unwrap(),
        })
    }

    fn claim(bin: &std::path::Path, cfg: &mut LocalFleetConfig) {
        cfg.verified_worker = claimed(bin);
    }

    /// Without stubs: the fleet verified the binary and the launch expects that SHA-256.
    fn direct(bin: &std::path::Path, cfg: &mut LocalFleetConfig) {
        cfg.verified_worker = VerifiedBinary::hash(bin).unwrap().1;
        cfg.run_stubs = false;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_stubs_a_verified_launch_starts_its_worker_directly() {
        let good = boa_core::pipeline::sha256_hex(FAKE_WORKER.as_bytes());
        let (ran, console, state, dir) = launch_and_wait_with(&good, direct, |_| {}).await;
        let work = dir.join("run/work/i-local-000001");
        assert_eq!(
            ran.as_deref().map(str::trim),
            Some(format!("i-local-000001 {} exit", work.display()).as_str()),
            "the worker runs with the environment the stub would export"
        );
        assert_eq!(state, InstanceState::Terminated);
        assert_eq!(console, "", "no stub ran");
        assert!(!work.join("user-data.sh").exists(), "no stub was written");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The stub ran and refused: the worker never ran, and the console says why.
    fn assert_refused(ran: Option<String>, console: &str, dir: PathBuf) {
        assert_eq!(ran, None, "console:\n{console}");
        assert!(console.contains("is not the deployed one"), "{console}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_stubs_a_launch_that_fails_the_checks_runs_its_stub_which_refuses() {
        // Another SHA-256 than the binary's.
        let other = boa_core::pipeline::sha256_hex(b"another worker");
        let (ran, console, _, dir) = launch_and_wait_with(&other, direct, |_| {}).await;
        assert_refused(ran, &console, dir);
        // The binary changed after the fleet verified it.
        let good = boa_core::pipeline::sha256_hex(FAKE_WORKER.as_bytes());
        let (ran, console, _, dir) = launch_and_wait_with(&good, direct, |bin| {
            std::fs::write(bin, format!("{FAKE_WORKER}# changed\n")).unwrap()
        })
        .await;
        assert_refused(ran, &console, dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stubs_check_is_answered_from_the_stacks_hash_for_that_very_file() {
        let claimed_sha = boa_core::pipeline::sha256_hex(b"what the stack hashed");
        let (ran, console, _, dir) = launch_and_wait_with(&claimed_sha, claim, |_| {}).await;
        assert!(ran.is_some(), "the shim answered; console:\n{console}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_binary_changed_after_the_stack_hashed_it_is_hashed_for_real_and_refused() {
        let claimed_sha = boa_core::pipeline::sha256_hex(b"what the stack hashed");
        let changed = format!("{FAKE_WORKER}# changed after the stack started\n");
        let (ran, console, state, dir) = launch_and_wait_with(&claimed_sha, claim, |bin| {
            std::fs::write(bin, &changed).unwrap()
        })
        .await;
        assert_eq!(ran, None, "console:\n{console}");
        assert_eq!(state, InstanceState::Terminated);
        let real = boa_core::pipeline::sha256_hex(changed.as_bytes());
        assert!(
            console.contains(&format!("SHA-256 {real}")),
            "the console names the file's real hash:\n{console}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_launch_with_other_userdata_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = LocalFleet::new(config(dir.path(), dir.path().join("w")), Faults::default());
        let err = fleet
            .launch(&launch_spec(
                "#!/bin/bash\nexport BOA_STEP='Build'\nexec ./worker\n".into(),
            ))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("userdata stub"), "{err}");
        assert!(fleet.started_pids().is_empty());
    }
}
