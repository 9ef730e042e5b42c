//! Running one script: in its own process group, in a given folder, with a given environment,
//! its stdout and stderr streamed line by line (timestamped) to the worker log and kept as a tail.
//!
//! Each script has a guard: a tiny `/bin/sh` process in a process group of its own, whose stdin is
//! a pipe only the worker writes to (and never does). When the worker dies, whatever kills it
//! (even SIGKILL), the pipe closes, the guard reads end-of-file and SIGKILLs the script's process
//! group: a script never outlives its worker.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::log::{LogSink, TAIL_BYTES, Tail};

/// The longest line passed on as is; longer lines are cut (the rest is dropped).
pub const MAX_LINE_BYTES: usize = TAIL_BYTES;

/// How a script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// It could not be started (missing file, not runnable…).
    NotStarted(String),
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }

    /// e.g. "exit status 2", "killed by signal 9".
    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exit status {c}"),
            Exit::Signal(s) => format!("killed by signal {s}"),
            Exit::NotStarted(why) => format!("not started: {why}"),
        }
    }

    fn from_status(s: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// A started script.
pub struct Running {
    child: Child,
    pgid: i32,
    guard: Option<Guard>,
    tail: Arc<Mutex<Tail>>,
    output: tokio::task::JoinHandle<()>,
}

/// The guard of a running script: kills the script's process group when `pipe` closes, that is
/// when the worker drops it or dies.
struct Guard {
    child: Child,
    /// The write end of the guard's stdin; nothing is ever written to it.
    pipe: Option<ChildStdin>,
}

/// The guard's program, run by `/bin/sh` with the script's process group id as `$0`. Builtins
/// only (no child process to leak); `kill -s KILL -- -PGID` is the form dash accepts.
const GUARD_SCRIPT: &str = r#"while read -r _; do :; done; kill -s KILL -- -"$0" 2>/dev/null"#;

/// Starts the guard of process group `pgid` (> 1) in a process group of its own, so that
/// whatever signals the worker's group does not reach it.
fn start_guard(pgid: i32) -> std::io::Result<Guard> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(GUARD_SCRIPT)
        .arg(pgid.to_string())
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let pipe = child.stdin.take();
    Ok(Guard { child, pipe })
}

/// The command for a script: run directly when it is executable, else with `sh`.
fn command_for(path: &Path) -> Result<Command, String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "script {} cannot be read: {e} (check BOA_SCRIPTS and the step's script paths)",
            path.display()
        )
    })?;
    if !meta.is_file() {
        return Err(format!("script {} is not a file", path.display()));
    }
    Ok(if meta.permissions().mode() & 0o111 != 0 {
        Command::new(path)
    } else {
        let mut c = Command::new("sh");
        c.arg(path);
        c
    })
}

/// Starts `path` in `dir` with `env` added to the worker's own environment, in a new process
/// group, with its guard. Output lines go to `sink` prefixed with nothing (they are the log), and
/// to the tail.
pub fn start(
    path: &Path,
    dir: &Path,
    env: &[(String, String)],
    sink: Arc<dyn LogSink>,
) -> Result<Running, String> {
    let mut cmd = command_for(path)?;
    cmd.current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start script {}: {e}", path.display()))?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    // The script was spawned first, so it cannot hold the guard's pipe (and the worker's pipes
    // are close-on-exec anyway); the guard's stdout and stderr are null, so it does not hold the
    // script's output pipes open either.
    let guard = if pgid > 1 {
        match start_guard(pgid) {
            Ok(g) => Some(g),
            Err(e) => {
                kill_group(pgid);
                return Err(format!(
                    "cannot start the guard of script {} (/bin/sh): {e}",
                    path.display()
                ));
            }
        }
    } else {
        None
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    tokio::spawn(read_lines(out, tx.clone()));
    tokio::spawn(read_lines(err, tx));
    let t = Arc::clone(&tail);
    let output = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            sink.line(Utc::now(), &line);
            t.lock().expect("tail lock").push(&line);
        }
    });
    Ok(Running {
        child,
        pgid,
        guard,
        tail,
        output,
    })
}

async fn read_lines<R: AsyncRead + Unpin>(r: R, tx: tokio::sync::mpsc::UnboundedSender<String>) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                buf.truncate(MAX_LINE_BYTES);
                if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    return;
                }
            }
        }
    }
}

impl Running {
    /// The script's process group id (= its pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The pid of the script's guard (none when the script has no process group).
    pub fn guard_pid(&self) -> Option<i32> {
        self.guard
            .as_ref()
            .and_then(|g| g.child.id())
            .map(|p| p as i32)
    }

    /// Waits for the script itself to exit. Cancel-safe: may be used in `select!`.
    pub async fn wait(&mut self) -> Exit {
        match self.child.wait().await {
            Ok(s) => Exit::from_status(s),
            Err(e) => Exit::NotStarted(format!("cannot wait for the script: {e}")),
        }
    }

    /// Kills the whole process group with SIGKILL.
    pub fn kill(&self) {
        kill_group(self.pgid);
    }

    /// After the script exited (or was killed): kills whatever it left running in its process
    /// group, stops and reaps the guard, waits (at most 2 s) for the last output lines, and
    /// returns the tail.
    pub async fn finish(mut self) -> String {
        kill_group(self.pgid);
        if let Some(mut g) = self.guard.take() {
            // The group is dead already: the guard is killed rather than woken, so it never
            // signals a process group id that could be reused later.
            let _ = g.child.start_kill();
            drop(g.pipe.take());
            let _ = tokio::time::timeout(Duration::from_secs(2), g.child.wait()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.output).await;
        self.tail.lock().expect("tail lock").text()
    }
}

/// SIGKILL to a process group; an already empty group is fine.
pub fn kill_group(pgid: i32) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Runs a script to its end (no heartbeat, no interruption): init, after and cleanup scripts.
pub async fn run_to_end(
    path: &Path,
    dir: &Path,
    env: &[(String, String)],
    sink: Arc<dyn LogSink>,
) -> (Exit, String) {
    match start(path, dir, env, sink) {
        Err(e) => (Exit::NotStarted(e.clone()), e),
        Ok(mut r) => {
            let exit = r.wait().await;
            (exit, r.finish().await)
        }
    }
}

/// `scripts_dir/rel`, or `rel` itself when absolute.
pub fn resolve(scripts_dir: &Path, rel: &str) -> PathBuf {
    scripts_dir.join(rel)
}

/// The path of script `rel`, once its content is the one deployed: its SHA-256 must be
/// `sha256[rel]` (`BOA_SCRIPTS_SHA256`, from the launch, not from the artifact bucket). With no
/// hashes at all nothing is checked (a worker run by hand); with hashes, a script that has none
/// is refused too. The error says which script and both hashes.
pub fn verified(
    scripts_dir: &Path,
    rel: &str,
    sha256: &std::collections::BTreeMap<String, String>,
) -> Result<PathBuf, String> {
    let path = resolve(scripts_dir, rel);
    if sha256.is_empty() {
        return Ok(path);
    }
    let Some(want) = sha256.get(rel) else {
        return Err(format!(
            "script {rel} has no SHA-256 in BOA_SCRIPTS_SHA256: refusing to run it"
        ));
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        format!(
            "script {} cannot be read: {e} (check BOA_SCRIPTS and the step's script paths)",
            path.display()
        )
    })?;
    let got = boa_core::pipeline::sha256_hex(&bytes);
    if !got.eq_ignore_ascii_case(want) {
        return Err(format!(
            "script {rel} does not match its SHA-256 (SHA-256 {got}, deployed {want}): refusing to run it"
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::NoLog;

    fn write(dir: &Path, name: &str, body: &str, exec: bool) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        if exec {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        p
    }

    #[tokio::test]
    async fn runs_non_executable_scripts_with_sh_and_keeps_the_tail() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "s.sh",
            "echo out-$X; echo err >&2; printf 'no newline'; exit 3\n",
            false,
        );
        let (exit, tail) =
            run_to_end(&p, d.path(), &[("X".into(), "1".into())], Arc::new(NoLog)).await;
        assert_eq!(exit, Exit::Code(3));
        assert_eq!(exit.describe(), "exit status 3");
        let mut lines: Vec<_> = tail.lines().collect();
        lines.sort();
        assert_eq!(lines, ["err", "no newline", "out-1"]);
    }

    #[tokio::test]
    async fn executable_scripts_run_directly_and_signals_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "k", "#!/bin/sh\nkill -9 $$\n", true);
        let (exit, _) = run_to_end(&p, d.path(), &[], Arc::new(NoLog)).await;
        assert_eq!(exit, Exit::Signal(9));
        assert_eq!(exit.describe(), "killed by signal 9");
    }

    #[tokio::test]
    async fn a_missing_script_is_not_started_and_named() {
        let d = tempfile::tempdir().unwrap();
        let (exit, msg) =
            run_to_end(&d.path().join("nope.sh"), d.path(), &[], Arc::new(NoLog)).await;
        assert!(matches!(exit, Exit::NotStarted(_)));
        assert!(msg.contains("nope.sh"), "{msg}");
    }

    /// A live (not zombie) process `pid`, from /proc.
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let close = s.rfind(')')?;
                s[close + 1..].split_whitespace().next().map(|st| st != "Z")
            })
            .unwrap_or(false)
    }

    async fn wait_gone(pid: i32) -> bool {
        for _ in 0..100 {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// A script that starts a long `sleep`, writes "<its pid> <the sleep's pid>" to the returned
    /// file, and waits.
    fn pid_recording_script(dir: &Path) -> (PathBuf, PathBuf) {
        let pids = dir.join("pids");
        let body = format!(
            "sleep 30 & echo \"$$ $!\" > {0}.tmp && mv {0}.tmp {0}\nwait\n",
            pids.display()
        );
        (write(dir, "s.sh", &body, false), pids)
    }

    async fn read_pids(p: &Path) -> Vec<i32> {
        for _ in 0..250 {
            if let Ok(s) = std::fs::read_to_string(p) {
                return s.split_whitespace().map(|x| x.parse().unwrap()).collect();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} never appeared", p.display());
    }

    #[tokio::test]
    async fn finish_kills_the_group_and_reaps_the_guard() {
        let d = tempfile::tempdir().unwrap();
        let (p, pids) = pid_recording_script(d.path());
        let r = start(&p, d.path(), &[], Arc::new(NoLog)).unwrap();
        let guard = r.guard_pid().expect("a guard");
        let got = read_pids(&pids).await;
        assert!(alive(guard) && alive(got[0]) && alive(got[1]));
        r.kill();
        r.finish().await;
        // Reaped, not merely dead: no zombie is left behind.
        assert!(
            !Path::new(&format!("/proc/{guard}")).exists(),
            "guard not reaped"
        );
        assert!(wait_gone(got[0]).await && wait_gone(got[1]).await);
    }

    #[tokio::test]
    async fn a_script_dropped_without_finish_dies_by_its_guard() {
        let d = tempfile::tempdir().unwrap();
        let (p, pids) = pid_recording_script(d.path());
        let r = start(&p, d.path(), &[], Arc::new(NoLog)).unwrap();
        let got = read_pids(&pids).await;
        // The script's own child is not killed by kill_on_drop (that only kills the script): the
        // guard, seeing its pipe close, kills the whole group.
        drop(r);
        assert!(wait_gone(got[1]).await, "the script's child survived");
        assert!(wait_gone(got[0]).await, "the script survived");
    }
}
