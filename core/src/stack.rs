//! The deployed stack as its Lambdas see it: where its pieces are ([`StackConfig`], read from the
//! `BOA_*` environment the deploy template sets), how steps map to activities, the worker
//! configuration of a step, and how a Lambda finds its pipeline. No AWS calls here.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::stack as env;
use crate::pipeline::{Pipeline, Step};
use crate::worker_env::{Shutdown, WorkerEnv};

/// Where the stack's pieces are, read once by each Lambda from its environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackConfig {
    /// `BOA_STACK`: the stack name, tagged on every instance (`build-on-aws:stack`).
    pub stack: String,
    /// AWS region the workers poll in (`AWS_REGION`).
    pub region: String,
    /// `BOA_STATE_MACHINE_ARN`: the state machine whose executions the health check watches.
    pub state_machine_arn: String,
    /// `arn:aws:states:<region>:<account>:activity:` — an activity ARN is this plus
    /// [`activity_name`].
    pub activity_arn_prefix: String,
    /// `BOA_ARTIFACTS`: `s3://bucket/prefix` holding `scripts/` and the worker binary.
    pub artifacts: String,
    /// Where workers fetch the step scripts; default `<artifacts>/scripts`.
    pub scripts: String,
    /// The worker binary's URL; default `<artifacts>/worker/worker`.
    pub worker_binary: String,
    /// `BOA_LOG_GROUP`: CloudWatch Logs group of the workers.
    pub log_group: Option<String>,
    /// Instance profile used when a step names none (`BOA_WORKER_PROFILE`); `{step}` in it
    /// stands for the step's name (the template sets `<stack>-{step}`: a profile per step).
    pub default_instance_profile: String,
    /// Subnets used when a step names none (`BOA_SUBNETS`, comma-separated).
    pub default_subnets: Vec<String>,
    /// Security groups used when a step names none (`BOA_SECURITY_GROUPS`, comma-separated).
    pub default_security_groups: Vec<String>,
    /// Step Functions endpoint the workers use (local mode and tests only).
    pub endpoint_url: Option<String>,
    /// How workers end: `poweroff` on EC2.
    pub shutdown: Shutdown,
    /// Worker log folder (local mode).
    pub log_dir: Option<String>,
    /// Worker work folder; default `/var/lib/build-on-aws`.
    pub work_dir: String,
    /// `BOA_WORKER_SHA256`: the worker binary's SHA-256; the userdata stub runs nothing else.
    #[serde(default)]
    pub worker_sha256: Option<String>,
    /// The account of the state machine, which owns the artifact bucket (S3's bucket owner
    /// condition on every fetch).
    #[serde(default)]
    pub account: String,
    /// `BOA_WORKER_AMI`: replaces every step's AMI (the deploy's `WorkerAmi` parameter).
    pub worker_ami: Option<String>,
    /// Lifecycle durations read from the pipeline (boot timeout) are divided by it: 1 on AWS,
    /// the local stack's time scale in local mode.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// `BOA_LOOKAHEAD_MACHINE_ARN`: the lookahead state machine (a Wait, then start-workers),
    /// through which `Prepare<Step>` starts its dependents' workers ahead of time; `None` turns
    /// lookahead provisioning off (workers start when their task is prepared).
    #[serde(default)]
    pub lookahead_machine_arn: Option<String>,
    /// Replaces every step's `boot_time` (pipeline time): a local fleet knows its simulated boot.
    #[serde(default)]
    pub boot_time: Option<Duration>,
}

fn one() -> f64 {
    1.0
}

/// Errors reading a [`StackConfig`] from the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Lambda configuration is incomplete:\n  {}\n(set them in the function's environment; the deploy template does)", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl StackConfig {
    /// A configuration for `stack` in `region`, account `account`, artifacts at `artifacts`.
    pub fn new(stack: &str, region: &str, account: &str, artifacts: &str) -> StackConfig {
        let artifacts = artifacts.trim_end_matches('/').to_string();
        StackConfig {
            stack: stack.to_string(),
            region: region.to_string(),
            state_machine_arn: format!("arn:aws:states:{region}:{account}:stateMachine:{stack}"),
            activity_arn_prefix: format!("arn:aws:states:{region}:{account}:activity:"),
            scripts: format!("{artifacts}/scripts"),
            worker_binary: format!("{artifacts}/worker/worker"),
            artifacts,
            log_group: None,
            default_instance_profile: String::new(),
            default_subnets: vec![],
            default_security_groups: vec![],
            endpoint_url: None,
            shutdown: Shutdown::Poweroff,
            log_dir: None,
            work_dir: "/var/lib/build-on-aws".into(),
            worker_ami: None,
            worker_sha256: None,
            account: account.to_string(),
            time_scale: 1.0,
            lookahead_machine_arn: None,
            boot_time: None,
        }
    }

    /// Reads `BOA_STACK`, `BOA_STATE_MACHINE_ARN` (region and account come from it),
    /// `BOA_ARTIFACTS`, and the optional `BOA_LOG_GROUP`, `BOA_WORKER_PROFILE`, `BOA_SUBNETS`,
    /// `BOA_SECURITY_GROUPS`, `BOA_SCRIPTS`, `BOA_WORKER_BINARY`, `BOA_WORKER_AMI`. Every missing or bad variable
    /// is reported at once.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<StackConfig, ConfigError> {
        let mut problems = vec![];
        let mut req = |k: &str| match get(k).filter(|v| !v.trim().is_empty()) {
            Some(v) => v.trim().to_string(),
            None => {
                problems.push(format!("{k} is not set"));
                String::new()
            }
        };
        let stack = req(env::STACK);
        let sm = req(env::STATE_MACHINE_ARN);
        let artifacts = req(env::ARTIFACTS);
        // arn:aws:states:<region>:<account>:stateMachine:<name>
        let parts: Vec<&str> = sm.split(':').collect();
        let (region, account) = if parts.len() >= 7 && parts[2] == "states" {
            (parts[3].to_string(), parts[4].to_string())
        } else {
            if !sm.is_empty() {
                problems.push(format!(
                    "BOA_STATE_MACHINE_ARN='{sm}' is not a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)"
                ));
            }
            (String::new(), String::new())
        };
        if !artifacts.is_empty() && !artifacts.starts_with("s3://") {
            problems.push(format!(
                "BOA_ARTIFACTS='{artifacts}' must be an s3://bucket/prefix URL"
            ));
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        let list = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut c = StackConfig::new(&stack, &region, &account, &artifacts);
        c.state_machine_arn = sm;
        c.log_group = get(env::LOG_GROUP).filter(|v| !v.is_empty());
        c.default_instance_profile = get(env::WORKER_PROFILE).unwrap_or_default();
        c.default_subnets = list(env::SUBNETS);
        c.default_security_groups = list(env::SECURITY_GROUPS);
        if let Some(s) = get(env::SCRIPTS).filter(|v| !v.is_empty()) {
            c.scripts = s;
        }
        if let Some(s) = get(env::WORKER_BINARY).filter(|v| !v.is_empty()) {
            c.worker_binary = s;
        }
        c.worker_ami = get(env::WORKER_AMI).filter(|v| !v.trim().is_empty());
        c.lookahead_machine_arn = get(env::LOOKAHEAD_MACHINE_ARN).filter(|v| !v.trim().is_empty());
        c.worker_sha256 = get(env::WORKER_SHA256).filter(|v| !v.trim().is_empty());
        if let Some(h) = &c.worker_sha256
            && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ConfigError(vec![format!(
                "{}='{h}' is not a SHA-256 (64 hex digits; deploy.sh sets it)",
                env::WORKER_SHA256
            )]));
        }
        Ok(c)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<StackConfig, ConfigError> {
        StackConfig::from_lookup(|k| std::env::var(k).ok())
    }

    /// `(bucket, key prefix)` of one folder of the stack's own records in the artifact bucket,
    /// `<artifacts>/<folder>/` (e.g. `runs/`, `locks/<activity>/`); `None` when `artifacts` is
    /// not an `s3://` URL.
    pub fn records(&self, folder: &str) -> Option<(String, String)> {
        let rest = self.artifacts.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let sep = if prefix.is_empty() { "" } else { "/" };
        let folder = folder.trim_matches('/');
        Some((bucket.to_string(), format!("{prefix}{sep}{folder}/")))
    }

    /// Where one of the stack's records is: `key` (e.g. [`crate::results::results_key`]) under the
    /// artifact bucket's prefix; `None` when `artifacts` is not an `s3://` URL.
    pub fn record_object(&self, key: &str) -> Option<crate::results::ObjectRef> {
        let (bucket, folder) = self.records("")?;
        let folder = folder.trim_matches('/');
        let sep = if folder.is_empty() { "" } else { "/" };
        Some(crate::results::ObjectRef {
            bucket,
            key: format!("{folder}{sep}{}", key.trim_start_matches('/')),
        })
    }

    /// How long a worker of `step` is expected to take to boot, in pipeline time.
    pub fn boot_time(&self, step: &crate::pipeline::Step) -> Duration {
        self.boot_time.unwrap_or(step.worker.boot_time)
    }

    /// A pipeline duration in this stack's time (divided by the time scale).
    pub fn scaled(&self, d: Duration) -> Duration {
        crate::duration::scaled(d, self.time_scale)
    }

    /// The worker binary the userdata stub fetches and checks.
    pub fn worker_download(&self) -> crate::worker_env::WorkerBinary<'_> {
        crate::worker_env::WorkerBinary {
            url: &self.worker_binary,
            sha256: self.worker_sha256.as_deref(),
            bucket_owner: (!self.account.is_empty()).then_some(self.account.as_str()),
        }
    }

    /// The ARN of a step's activity.
    pub fn activity_arn(&self, p: &Pipeline, step: &str) -> String {
        format!("{}{}", self.activity_arn_prefix, activity_name(p, step))
    }
}

/// In `BOA_WORKER_PROFILE`, stands for the step's name: the deploy template gives every step its
/// own instance profile, `<stack>-<Step>`.
pub const STEP_PLACEHOLDER: &str = "{step}";

/// The instance profile of a step's workers: its own `instance_profile`, else the stack's
/// default with [`STEP_PLACEHOLDER`] replaced by the step's name.
pub fn instance_profile(cfg: &StackConfig, step: &Step) -> String {
    if step.worker.instance_profile.is_empty() {
        cfg.default_instance_profile
            .replace(STEP_PLACEHOLDER, &step.name)
    } else {
        step.worker.instance_profile.clone()
    }
}

/// The activity name of a step: `build-on-aws-<pipeline>-<Step>`.
pub fn activity_name(p: &Pipeline, step: &str) -> String {
    format!("build-on-aws-{}-{step}", p.name)
}

/// The step an activity ARN (or name) belongs to, if it is one of this pipeline's.
pub fn step_of_activity<'p>(p: &'p Pipeline, arn: &str) -> Option<&'p Step> {
    let name = arn.rsplit(':').next().unwrap_or(arn);
    let step = name.strip_prefix(&format!("build-on-aws-{}-", p.name))?;
    p.step(step)
}

/// The worker configuration of a step's workers.
pub fn worker_env(cfg: &StackConfig, p: &Pipeline, step: &Step) -> WorkerEnv {
    WorkerEnv {
        activity_arn: cfg.activity_arn(p, &step.name),
        region: cfg.region.clone(),
        endpoint_url: cfg.endpoint_url.clone(),
        instance_id: None,
        step: step.name.clone(),
        scripts: cfg.scripts.clone(),
        script: step.script.clone(),
        init_script: step.init_script.clone(),
        after_script: step.after_script.clone(),
        cleanup_script: step.cleanup_script.clone(),
        scripts_sha256: step.script_sha256.clone(),
        step_env: step.env.clone(),
        idle_timeout: step.worker.idle_timeout,
        max_tasks: step.worker.max_tasks_per_worker,
        heartbeat: (step.heartbeat / 3).max(Duration::from_secs(1)),
        lease_margin: crate::worker_env::DEFAULT_LEASE_MARGIN,
        log_dir: cfg.log_dir.clone(),
        log_group: cfg.log_group.clone(),
        work_dir: cfg.work_dir.clone(),
        shutdown: cfg.shutdown,
        stack: cfg.stack.clone(),
    }
}

/// Counts of an activity's live workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerCounts {
    /// Pending or running.
    pub live: u32,
    /// Live and not tagged `build-on-aws:work=busy` (idle, or still booting).
    pub idle: u32,
    /// Live and not yet tagged `build-on-aws:work` at all: still booting.
    pub booting: u32,
}

impl WorkerCounts {
    /// The first half of a Prepare record's reason: what was wanted and what was there.
    pub fn describe(&self, activity: &str, wanted: u32, cap: u32) -> String {
        format!(
            "{activity}: wanted {wanted}, {} live ({} idle, {} booting), cap {cap}",
            self.live,
            self.idle - self.booting,
            self.booting
        )
    }
}

/// A Prepare record's reason when every instance it asked for was launched. The static report
/// sizes payloads with it, so keep the two in one place.
pub fn launched_reason(counted: &str, launched: &[String]) -> String {
    format!(
        "{counted}: launched {} ({})",
        launched.len(),
        launched.join(", ")
    )
}

/// Where a Lambda finds the pipeline: `BOA_PIPELINE_FILE`, else `pipeline.toml` next to the
/// bootstrap binary (`/var/task/pipeline.toml` in a deployed function).
pub fn pipeline_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(env::PIPELINE_FILE).filter(|p| !p.is_empty()) {
        return p.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("pipeline.toml")))
        .unwrap_or_else(|| "pipeline.toml".into())
}

/// Reads and validates the pipeline for a Lambda, with the step scripts deploy bundled beside it
/// (`/var/task/<path>`): their SHA-256 go into every launch ([`worker_env`]), so a worker runs only
/// the scripts that were deployed with the functions, whatever the artifact bucket holds later.
pub fn load_pipeline(path: &std::path::Path) -> Result<Pipeline, String> {
    if !path.is_file() {
        return Err(format!(
            "cannot read the pipeline {}: no such file (set BOA_PIPELINE_FILE or package pipeline.toml and its scripts with the function; deploy.sh does)",
            path.display()
        ));
    }
    Pipeline::load(path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = r#"
name = "demo"
[[axis]]
name = "version"
pattern = '^\d+$'
[defaults.worker]
instance_types = ["a.large", "b.large"]
[[step]]
name = "Build"
script = "build.sh"
[[step]]
name = "Publish"
script = "publish.sh"
exclusive = true
[step.worker]
market = "spot"
"#;

    #[test]
    fn config_from_env_derives_region_and_account_and_reports_every_problem() {
        let vars = |k: &str| match k {
            "BOA_STACK" => Some("build-on-aws-demo".to_string()),
            "BOA_STATE_MACHINE_ARN" => {
                Some("arn:aws:states:eu-west-1:111122223333:stateMachine:build-on-aws-demo".into())
            }
            "BOA_ARTIFACTS" => Some("s3://art/demo/".into()),
            "BOA_SUBNETS" => Some("subnet-1, subnet-2".into()),
            "BOA_WORKER_AMI" => Some("ami-0fedcba9876543210".into()),
            _ => None,
        };
        let c = StackConfig::from_lookup(vars).unwrap();
        assert_eq!(c.worker_ami.as_deref(), Some("ami-0fedcba9876543210"));
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(
            c.activity_arn(&Pipeline::parse(P).unwrap(), "Build"),
            "arn:aws:states:eu-west-1:111122223333:activity:build-on-aws-demo-Build"
        );
        assert_eq!(c.scripts, "s3://art/demo/scripts");
        let r = c.record_object("runs/x/results.json").unwrap();
        assert_eq!(
            (r.bucket.as_str(), r.key.as_str()),
            ("art", "demo/runs/x/results.json")
        );
        let bare = StackConfig::new("s", "us-east-1", "1", "s3://bucket");
        assert_eq!(bare.record_object("runs/x").unwrap().key, "runs/x");
        assert_eq!(c.default_subnets, ["subnet-1", "subnet-2"]);
        let e = StackConfig::from_lookup(|k| (k == "BOA_ARTIFACTS").then(|| "/tmp/x".into()))
            .unwrap_err()
            .to_string();
        for k in [
            "BOA_STACK is not set",
            "BOA_STATE_MACHINE_ARN is not set",
            "'/tmp/x'",
        ] {
            assert!(e.contains(k), "{k} missing from {e}");
        }
    }

    #[test]
    fn activities_map_back_to_steps() {
        let p = Pipeline::parse(P).unwrap();
        let arn = "arn:aws:states:us-east-1:1:activity:build-on-aws-demo-Publish";
        assert_eq!(step_of_activity(&p, arn).unwrap().name, "Publish");
        assert!(
            step_of_activity(&p, "arn:aws:states:us-east-1:1:activity:other-Publish").is_none()
        );
    }

    #[test]
    fn each_step_without_a_profile_gets_its_own() {
        let p = Pipeline::parse(P).unwrap();
        let mut c = StackConfig::new("s", "us-east-1", "1", "s3://a");
        c.default_instance_profile = format!("build-on-aws-demo-{STEP_PLACEHOLDER}");
        let build = p.step("Build").unwrap();
        assert_eq!(instance_profile(&c, build), "build-on-aws-demo-Build");
        let mut named = build.clone();
        named.worker.instance_profile = "publisher".into();
        assert_eq!(instance_profile(&c, &named), "publisher");
        // A plain default (no placeholder) still serves every step.
        c.default_instance_profile = "shared".into();
        assert_eq!(instance_profile(&c, build), "shared");
    }
}

#[cfg(test)]
mod script_hashes {
    use super::*;

    #[test]
    fn the_loaded_pipeline_fixes_each_scripts_sha256_and_the_launch_carries_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("scripts")).unwrap();
        std::fs::write(d.join("scripts/build.sh"), "echo build\n").unwrap();
        std::fs::write(d.join("scripts/init.sh"), "echo init\n").unwrap();
        std::fs::write(
            d.join("pipeline.toml"),
            "name = \"demo\"\n[[axis]]\nname = \"version\"\npattern = '^\\d+$'\n[[step]]\nname = \"Build\"\nscript = \"scripts/build.sh\"\ninit_script = \"scripts/init.sh\"\n",
        )
        .unwrap();
        let p = load_pipeline(&d.join("pipeline.toml")).unwrap();
        // Changing a script after the load changes nothing the launch carries.
        std::fs::write(d.join("scripts/build.sh"), "echo tampered\n").unwrap();
        let cfg = StackConfig::new("demo", "us-east-1", "123456789012", "s3://a/b");
        let env = worker_env(&cfg, &p, p.step("Build").unwrap());
        assert_eq!(
            env.scripts_sha256,
            [
                (
                    "scripts/build.sh".to_string(),
                    crate::pipeline::sha256_hex(b"echo build\n")
                ),
                (
                    "scripts/init.sh".to_string(),
                    crate::pipeline::sha256_hex(b"echo init\n")
                ),
            ]
            .into()
        );
        // The well-known digest of "abc".
        assert_eq!(
            crate::pipeline::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Without the scripts beside it, a Lambda refuses to start.
        std::fs::remove_file(d.join("scripts/init.sh")).unwrap();
        assert!(load_pipeline(&d.join("pipeline.toml")).is_err());
    }
}
