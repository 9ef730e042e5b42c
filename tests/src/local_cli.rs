//! Runs `bin/build-on-aws` (the README's first command) in a throwaway run folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use boa_core::results::{NormalizedResults, Status, TaskRecord};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// What one CLI run printed and returned.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The `--json` output.
    pub fn results(&self) -> NormalizedResults {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not the results JSON ({e}):\n{self:?}"))
    }
}

/// A run folder of its own (logs, run records, local objects).
pub struct LocalCli {
    pub run_dir: tempfile::TempDir,
}

impl Default for LocalCli {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalCli {
    pub fn new() -> LocalCli {
        LocalCli {
            run_dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// `bin/build-on-aws ARGS` with the example pipeline, from the repository root.
    pub fn run(&self, args: &[&str]) -> Outcome {
        let out = Command::new(root().join("bin/build-on-aws"))
            .args(args)
            .current_dir(root())
            .env("BOA_RUN_DIR", self.run_dir.path())
            .env("BOA_PIPELINE", root().join("pipeline.toml"))
            .env_remove("BOA_STATE_MACHINE_ARN")
            .env_remove("BOA_TIME_SCALE")
            .output()
            .expect("bin/build-on-aws runs");
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `bin/build-on-aws ARGS` started in the background (stdout and stderr piped), with extra
    /// environment.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        Command::new(root().join("bin/build-on-aws"))
            .args(args)
            .current_dir(root())
            .env("BOA_RUN_DIR", self.run_dir.path())
            .env("BOA_PIPELINE", root().join("pipeline.toml"))
            .env_remove("BOA_STATE_MACHINE_ARN")
            .env_remove("BOA_TIME_SCALE")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bin/build-on-aws starts")
    }

    /// The saved run records (`runs/*.json`), as JSON.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let dir = self.run_dir.path().join("runs");
        let mut out = vec![];
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if !p.is_file() || p.extension().is_none_or(|x| x != "json") {
                continue; // a run's own folder
            }
            let text = std::fs::read_to_string(&p).expect("record readable");
            out.push(serde_json::from_str(&text).expect("record is JSON"));
        }
        out
    }

    /// The own folder of the run named `name` (`runs/<name>`: logs, tags, work, objects).
    pub fn run_folder(&self, name: &str) -> PathBuf {
        self.run_dir.path().join("runs").join(name)
    }

    /// The own folder of the only run of the folder.
    pub fn only_run_folder(&self) -> PathBuf {
        let records = self.records();
        assert_eq!(records.len(), 1, "one run expected: {records:?}");
        self.run_folder(records[0]["name"].as_str().expect("a run name"))
    }

    pub fn path(&self) -> &Path {
        self.run_dir.path()
    }
}

/// The task of `step` for the given axis values.
pub fn task<'a>(r: &'a NormalizedResults, step: &str, item: &[(&str, &str)]) -> &'a TaskRecord {
    r.tasks
        .iter()
        .find(|t| {
            t.step == step
                && item
                    .iter()
                    .all(|(k, v)| t.item.get(*k).map(String::as_str) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no task {step} {item:?} in {r:#?}"))
}

/// Statuses by (step, item values joined).
pub fn statuses(r: &NormalizedResults) -> Vec<(String, String, Status)> {
    let mut v: Vec<_> = r
        .tasks
        .iter()
        .map(|t| {
            let item: Vec<&str> = t.item.values().map(String::as_str).collect();
            (t.step.clone(), item.join(" "), t.status)
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

/// Builds the CLI and the worker if needed (through the shim, as a user would) and returns the
/// worker binary.
pub fn worker_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(root().join("bin/build-on-aws"))
            .arg("--version")
            .output()
            .expect("bin/build-on-aws runs");
        assert!(out.status.success(), "{out:?}");
    });
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("debug").join("worker")
}

/// Live processes (pid, command line) whose environment mentions `marker` (e.g. a run folder:
/// the CLI, every worker it starts and every script they run carry it).
pub fn processes_with(marker: &Path) -> Vec<(u32, String)> {
    let needle = marker.as_os_str().as_encoded_bytes();
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| {
                let close = s.rfind(')')?;
                s[close + 1..].split_whitespace().next().map(|st| st == "Z")
            })
            .unwrap_or(true);
        if zombie || pid == std::process::id() {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.windows(needle.len()).any(|w| w == needle) {
            let cmd = std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            out.push((pid, cmd));
        }
    }
    out
}

/// Waits (polling, at most `bound`) until `f` returns something; the last value otherwise.
pub fn wait_for<T>(bound: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + bound;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= end {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether any process of the process group led by `pid` is still alive.
pub fn group_alive(pid: u32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

/// Writes an executable script (mode 0755).
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
