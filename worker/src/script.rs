//! Running one script: in its own process group, in a given folder, with a given environment,
//! its stdout and stderr streamed line by line (timestamped) to the worker log and kept as a tail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

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
    tail: Arc<Mutex<Tail>>,
    output: tokio::task::JoinHandle<()>,
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
/// group. Output lines go to `sink` prefixed with nothing (they are the log), and to the tail.
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
    /// group, waits (at most 2 s) for the last output lines, and returns the tail.
    pub async fn finish(mut self) -> String {
        kill_group(self.pgid);
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
}
