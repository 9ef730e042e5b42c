//! The worker's configuration, as environment variables: ONE definition shared by start-workers
//! (which writes it into the userdata stub), the local fleet (which sets it on worker processes)
//! and the worker (which reads and validates it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Environment variable names (defined in [`crate::names::worker`]).
pub use crate::names::worker as vars;

/// Default of [`vars::LEASE_MARGIN_S`].
pub const DEFAULT_LEASE_MARGIN: Duration = Duration::from_secs(120);

/// How the worker ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shutdown {
    /// Power the instance off (its shutdown behaviour is terminate).
    Poweroff,
    /// Just exit the process (local mode).
    Exit,
}

/// A worker's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerEnv {
    pub activity_arn: String,
    pub region: String,
    pub endpoint_url: Option<String>,
    pub instance_id: Option<String>,
    pub step: String,
    pub scripts: String,
    pub script: String,
    pub init_script: Option<String>,
    pub after_script: Option<String>,
    pub cleanup_script: Option<String>,
    /// The SHA-256 of each script, by path ([`vars::SCRIPTS_SHA256`]); empty = not checked.
    pub scripts_sha256: BTreeMap<String, String>,
    pub step_env: BTreeMap<String, String>,
    pub idle_timeout: Duration,
    pub max_tasks: u32,
    pub heartbeat: Duration,
    pub lease_margin: Duration,
    pub log_dir: Option<String>,
    pub log_group: Option<String>,
    pub work_dir: String,
    pub shutdown: Shutdown,
    pub stack: String,
}

impl WorkerEnv {
    /// The variables to set, in a stable order.
    pub fn to_vars(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (vars::ACTIVITY_ARN, self.activity_arn.clone()),
            (vars::REGION, self.region.clone()),
            (vars::STEP, self.step.clone()),
            (vars::SCRIPTS, self.scripts.clone()),
            (vars::SCRIPT, self.script.clone()),
            (
                vars::STEP_ENV,
                serde_json::to_string(&self.step_env).expect("strings serialise"),
            ),
            (
                vars::SCRIPTS_SHA256,
                serde_json::to_string(&self.scripts_sha256).expect("strings serialise"),
            ),
            (vars::IDLE_TIMEOUT_S, fmt_secs(self.idle_timeout)),
            (vars::MAX_TASKS, self.max_tasks.to_string()),
            (vars::HEARTBEAT_S, fmt_secs(self.heartbeat)),
            (vars::LEASE_MARGIN_S, fmt_secs(self.lease_margin)),
            (vars::WORK_DIR, self.work_dir.clone()),
            (
                vars::SHUTDOWN,
                match self.shutdown {
                    Shutdown::Poweroff => "poweroff",
                    Shutdown::Exit => "exit",
                }
                .into(),
            ),
            (vars::STACK, self.stack.clone()),
        ];
        for (k, o) in [
            (vars::ENDPOINT_URL, &self.endpoint_url),
            (vars::INSTANCE_ID, &self.instance_id),
            (vars::INIT_SCRIPT, &self.init_script),
            (vars::AFTER_SCRIPT, &self.after_script),
            (vars::CLEANUP_SCRIPT, &self.cleanup_script),
            (vars::LOG_DIR, &self.log_dir),
            (vars::LOG_GROUP, &self.log_group),
        ] {
            if let Some(x) = o {
                v.push((k, x.clone()));
            }
        }
        v
    }

    /// Reads and validates the configuration; the error lists every missing or bad variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<WorkerEnv, String> {
        let mut problems = vec![];
        let mut req = |k: &str| {
            get(k).filter(|v| !v.is_empty()).unwrap_or_else(|| {
                problems.push(format!("{k} is not set"));
                String::new()
            })
        };
        let activity_arn = req(vars::ACTIVITY_ARN);
        let region = req(vars::REGION);
        let step = req(vars::STEP);
        let scripts = req(vars::SCRIPTS);
        let script = req(vars::SCRIPT);
        let mut secs = |k: &str, default: f64| -> Duration {
            match get(k) {
                None => Duration::from_secs_f64(default),
                Some(v) => match v.parse::<f64>() {
                    Ok(x) if x > 0.0 && x.is_finite() => Duration::from_secs_f64(x),
                    _ => {
                        problems.push(format!("{k}='{v}' is not a positive number of seconds"));
                        Duration::from_secs_f64(default)
                    }
                },
            }
        };
        let idle_timeout = secs(vars::IDLE_TIMEOUT_S, 600.0);
        let heartbeat = secs(vars::HEARTBEAT_S, 60.0);
        let lease_margin = secs(vars::LEASE_MARGIN_S, DEFAULT_LEASE_MARGIN.as_secs_f64());
        let max_tasks = match get(vars::MAX_TASKS) {
            None => 0,
            Some(v) => v.parse().unwrap_or_else(|_| {
                problems.push(format!("{}='{v}' is not a whole number", vars::MAX_TASKS));
                0
            }),
        };
        let step_env = match get(vars::STEP_ENV) {
            None => BTreeMap::new(),
            Some(v) => serde_json::from_str(&v).unwrap_or_else(|e| {
                problems.push(format!(
                    "{} is not a JSON object of strings: {e}",
                    vars::STEP_ENV
                ));
                BTreeMap::new()
            }),
        };
        let scripts_sha256: BTreeMap<String, String> = match get(vars::SCRIPTS_SHA256) {
            None => BTreeMap::new(),
            Some(v) => serde_json::from_str(&v).unwrap_or_else(|e| {
                problems.push(format!(
                    "{} is not a JSON object of strings: {e}",
                    vars::SCRIPTS_SHA256
                ));
                BTreeMap::new()
            }),
        };
        for (path, h) in &scripts_sha256 {
            if !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())) {
                problems.push(format!(
                    "{}: '{h}' for {path} is not a SHA-256 (64 hex digits)",
                    vars::SCRIPTS_SHA256
                ));
            }
        }
        let shutdown = match get(vars::SHUTDOWN).as_deref() {
            None | Some("poweroff") => Shutdown::Poweroff,
            Some("exit") => Shutdown::Exit,
            Some(x) => {
                problems.push(format!("{}='{x}' must be poweroff or exit", vars::SHUTDOWN));
                Shutdown::Exit
            }
        };
        if let Some(u) = get(vars::ENDPOINT_URL)
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            problems.push(format!(
                "{}='{u}' must be an http(s) URL",
                vars::ENDPOINT_URL
            ));
        }
        if !problems.is_empty() {
            return Err(format!(
                "worker configuration is incomplete:\n  {}\n(see the worker section of the README for every variable)",
                problems.join("\n  ")
            ));
        }
        Ok(WorkerEnv {
            activity_arn,
            region,
            endpoint_url: get(vars::ENDPOINT_URL),
            instance_id: get(vars::INSTANCE_ID),
            step,
            scripts,
            script,
            init_script: get(vars::INIT_SCRIPT),
            after_script: get(vars::AFTER_SCRIPT),
            cleanup_script: get(vars::CLEANUP_SCRIPT),
            scripts_sha256,
            step_env,
            idle_timeout,
            max_tasks,
            heartbeat,
            lease_margin,
            log_dir: get(vars::LOG_DIR),
            log_group: get(vars::LOG_GROUP),
            work_dir: get(vars::WORK_DIR).unwrap_or_else(|| "/var/lib/build-on-aws".into()),
            shutdown,
            stack: get(vars::STACK).unwrap_or_default(),
        })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<WorkerEnv, String> {
        WorkerEnv::from_lookup(|k| std::env::var(k).ok())
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// Single-quotes a value for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Where a worker fetches its binary from, and what proves it is the one deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerBinary<'a> {
    /// `s3://bucket/key` (or any URL the AWS CLI copies from).
    pub url: &'a str,
    /// The binary's SHA-256 (hex): the stub refuses to run anything else.
    pub sha256: Option<&'a str>,
    /// The account that must own the bucket (S3's bucket owner condition).
    pub bucket_owner: Option<&'a str>,
}

/// The userdata stub: exports the configuration, fetches the worker binary from the artifact
/// bucket with the instance profile (checking the bucket's owner), refuses it unless its SHA-256
/// is the deployed one, and runs it. No secrets, no task tokens. Whatever ends the stub powers the
/// instance off, with the reason in the console output.
pub fn user_data(env: &WorkerEnv, binary: &WorkerBinary<'_>) -> String {
    let mut s = String::from(
        "#!/bin/bash\n# build-on-aws worker bootstrap (generated)\nset -euo pipefail\n",
    );
    for (k, v) in env.to_vars() {
        s.push_str(&format!("export {k}={}\n", shell_quote(&v)));
    }
    s.push_str(
        "# Whatever ends this stub (a failed download, a binary that is not the deployed one, a\n# worker that cannot start or exits) powers the instance off: an instance without a running\n# worker must not linger.\ntrap 'poweroff' EXIT\nmkdir -p /opt/build-on-aws && cd /opt/build-on-aws\n",
    );
    let owner = binary
        .bucket_owner
        .map(|o| format!(" --expected-bucket-owner {}", shell_quote(o)))
        .unwrap_or_default();
    match binary
        .url
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
    {
        Some((bucket, key)) => s.push_str(&format!(
            "aws s3api get-object --bucket {} --key {}{owner} ./worker >/dev/null\n",
            shell_quote(bucket),
            shell_quote(key)
        )),
        None => s.push_str(&format!(
            "aws s3 cp {} ./worker --only-show-errors\n",
            shell_quote(binary.url)
        )),
    }
    if let Some(sha) = binary.sha256 {
        s.push_str(&format!(
            "if ! echo {}'  ./worker' | sha256sum -c --status -; then\n  echo \"build-on-aws: the worker binary from {} is not the deployed one (SHA-256 $(sha256sum ./worker | cut -c1-64), expected {sha}): refusing to run it\" >&2\n  exit 1\nfi\n",
            shell_quote(sha),
            binary.url.replace('"', "")
        ));
    }
    s.push_str("chmod +x ./worker\n./worker >>/var/log/build-on-aws-worker.log 2>&1\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WorkerEnv {
        WorkerEnv {
            activity_arn:
                "arn:aws:states:us-east-1:123456789012:activity:build-on-aws-hhvm-MakeSourceTarball"
                    .into(),
            region: "us-east-1".into(),
            endpoint_url: None,
            instance_id: None,
            step: "MakeSourceTarball".into(),
            scripts: "s3://artifacts/scripts".into(),
            script: "scripts/make-source-tarball.sh".into(),
            init_script: Some("scripts/init.sh".into()),
            after_script: None,
            cleanup_script: None,
            scripts_sha256: [("scripts/init.sh".to_string(), "ab".repeat(32))].into(),
            step_env: [("CC".to_string(), "clang it's".to_string())].into(),
            idle_timeout: Duration::from_secs(300),
            max_tasks: 0,
            heartbeat: Duration::from_millis(1500),
            lease_margin: Duration::from_secs(90),
            log_dir: None,
            log_group: Some("/build-on-aws/workers".into()),
            work_dir: "/mnt/work".into(),
            shutdown: Shutdown::Poweroff,
            stack: "build-on-aws-hhvm".into(),
        }
    }

    #[test]
    fn round_trips_through_variables() {
        let e = sample();
        let vars: BTreeMap<&str, String> = e.to_vars().into_iter().collect();
        let back = WorkerEnv::from_lookup(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn reports_every_missing_or_bad_variable() {
        let err = WorkerEnv::from_lookup(|k| (k == vars::IDLE_TIMEOUT_S).then(|| "soon".into()))
            .unwrap_err();
        for k in [
            vars::ACTIVITY_ARN,
            vars::REGION,
            vars::STEP,
            vars::SCRIPT,
            vars::IDLE_TIMEOUT_S,
        ] {
            assert!(err.contains(k), "{k} missing from: {err}");
        }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn binary(sha: Option<&str>) -> WorkerBinary<'_> {
        WorkerBinary {
            url: "s3://artifacts/worker/worker",
            sha256: sha,
            bucket_owner: Some("123456789012"),
        }
    }

    #[test]
    fn user_data_quotes_values_and_has_no_token() {
        let u = user_data(&sample(), &binary(Some(SHA)));
        assert!(u.starts_with("#!/bin/bash"));
        assert!(
            u.contains(r#"export BOA_STEP_ENV='{"CC":"clang it'\''s"}'"#),
            "{u}"
        );
        assert!(!u.to_lowercase().contains("token"));
        assert!(u.contains("\n./worker "), "{u}");
        // The power-off trap is set before anything that can fail.
        let trap = u.find("trap 'poweroff' EXIT").expect("poweroff trap");
        let fetch = u.find("aws s3api get-object").expect("fetch");
        assert!(trap < fetch);
        assert!(
            u.contains(
                "--bucket 'artifacts' --key 'worker/worker' --expected-bucket-owner '123456789012'"
            ),
            "{u}"
        );
        // The check comes between the download and the run.
        let check = u.find("sha256sum -c").expect("checksum");
        assert!(
            fetch < check && check < u.find("\n./worker ").unwrap(),
            "{u}"
        );
    }

    /// Runs the stub in bash with `aws`, `poweroff` and the install folder faked: `aws` "downloads"
    /// `served` as the worker. Returns (the worker ran, poweroff ran, stderr).
    fn run_stub(served: &str, sha: &str) -> (bool, bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let src = d.join("served");
        std::fs::write(&src, served).unwrap();
        let fake = |name: &str, body: String| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        // `aws s3api get-object … OUTFILE`: the last argument is where the object goes.
        fake("aws", format!("cp {} \"${{@: -1}}\"", src.display()));
        fake("poweroff", format!("touch {}/powered-off", d.display()));
        let stub = user_data(&sample(), &binary(Some(sha)))
            .replace("/opt/build-on-aws", &d.join("opt").display().to_string())
            .replace(
                "/var/log/build-on-aws-worker.log",
                &d.join("worker.log").display().to_string(),
            );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&stub)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        (
            d.join("ran").exists(),
            d.join("powered-off").exists(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn sha256_hex(text: &str) -> String {
        let out = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(text.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        String::from_utf8_lossy(&out.stdout)[..64].to_string()
    }

    #[test]
    fn the_stub_runs_the_deployed_worker_and_refuses_a_tampered_one() {
        // The served "worker" marks `ran` in the folder above the stub's install folder.
        let good = "#!/bin/bash\ntouch \"$(dirname \"$PWD\")/ran\"\n";
        let (ran, off, err) = run_stub(good, &sha256_hex(good));
        assert!(
            ran && off,
            "the deployed worker runs, then the instance powers off: {err}"
        );
        let tampered = "#!/bin/bash\ntouch \"$(dirname \"$PWD\")/ran\" # and more\n";
        let (ran, off, err) = run_stub(tampered, &sha256_hex(good));
        assert!(!ran, "a tampered worker must not run: {err}");
        assert!(off, "the instance powers off");
        assert!(
            err.contains("is not the deployed one") && err.contains(&sha256_hex(good)),
            "{err}"
        );
    }
}
