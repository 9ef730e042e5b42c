//! Helpers shared by the worker's tests: script files, process-group checks.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes a script (not executable unless `exec`).
pub fn script(dir: &Path, name: &str, body: &str, exec: bool) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, body).unwrap();
    if exec {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Whether any live (non-zombie) process is in process group `pgid`, from /proc.
pub fn group_alive(pgid: i32) -> bool {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            return true;
        }
    }
    false
}

/// Waits up to `limit` for `cond`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Waits for a file holding a pid (written by a script) and returns it.
pub async fn read_pid(path: &Path, limit: Duration) -> i32 {
    let t = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && let Ok(p) = s.trim().parse()
        {
            return p;
        }
        assert!(t.elapsed() < limit, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A task input for the worker, as the state machine would send it.
pub fn input(step: &str, item: &[(&str, &str)], mode: &str, attempt: u32) -> String {
    let item: serde_json::Map<String, serde_json::Value> = item
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!({
        "step": step,
        "item": item,
        "mode": mode,
        "attempt": attempt,
        "execution": "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-hhvm:run-1",
    })
    .to_string()
}
