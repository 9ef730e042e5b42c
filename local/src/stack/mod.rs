//! The local stack: the generated state machine of a `pipeline.toml` in the embedded [`Engine`],
//! the Lambda handlers in-process, workers as local processes of the real `worker` binary, S3
//! done-checks against a folder, and the health check on its (scaled) schedule against the
//! engine's own history. This is what `build-on-aws --local` and the end-to-end, chaos and
//! benchmark tests run.

pub mod faults;
pub mod fleet;
pub mod objects;
pub mod record;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use boa_aws::adapters::SfnExecutions;
use boa_aws::backoff::Sleeper;
use boa_aws::fleet_cache::CachedFleet;
use boa_core::stack::StackConfig;
use boa_core::worker_env::{Shutdown, vars};
use boa_core::{BuildInput, Mode, NamedError, Pipeline};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde_json::Value;
use statemachine_gen::Arns;

pub use faults::{Dice, Faults};
pub use fleet::{FleetCounters, InstanceSpan, LocalFleet, LocalFleetConfig};
pub use objects::LocalObjects;
pub use record::RunRecord;

use engine::{Engine, EngineConfig, ExecutionHandle, LambdaInvoker, TaskFailure};

/// The account and region local ARNs are written with.
pub const LOCAL_REGION: &str = "us-east-1";
pub const LOCAL_ACCOUNT: &str = "000000000000";
/// The health check's period on AWS (EventBridge `rate(5 minutes)`), divided by the time scale.
pub const HEALTH_CHECK_PERIOD: Duration = Duration::from_secs(300);
/// Workers see the local object folder here, so scripts can "upload" what `done_when` checks.
pub const LOCAL_OBJECTS_VAR: &str = boa_core::names::local::OBJECTS;

/// The key of [`LocalStack::lambda_invocations`] counting injected Lambda failures.
pub const INJECTED_FAILURES: &str = "injected-failures";

/// How to run the local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// `pipeline.toml`; its scripts are relative to its folder.
    pub pipeline_path: PathBuf,
    /// The `worker` binary.
    pub worker_bin: PathBuf,
    /// The run folder: run records and the `done_when` object folder (`objects/`, shared by the
    /// runs of the folder as a bucket is) live below it, and each run's own folder (see
    /// [`LocalOptions::own_dir`]).
    pub run_dir: PathBuf,
    /// The execution's name. With one, everything a run changes (logs, tag files, work folders,
    /// the stack's artifact bucket) lives in `<run_dir>/runs/<name>/`, so runs started in one
    /// folder at once share no mutable state; without one, directly in `run_dir`.
    pub run_name: Option<String>,
    /// Every wait (retries, boot, idle timeout, heartbeats, health-check period) is divided by it.
    pub time_scale: f64,
    /// Simulated boot time of a worker, before the time scale.
    pub boot_time: Duration,
    pub faults: Faults,
    /// Seed of the engine's retry jitter.
    pub seed: u64,
    /// Extra environment for every worker (and so every script).
    pub extra_env: Vec<(String, String)>,
    /// The engine evaluates a retried Parallel's Parameters only once (see
    /// [`EngineConfig::parallel_parameters_once`]).
    pub parallel_parameters_once: bool,
    /// Start a step's workers ahead, through the stack's lookahead machine (the default, as
    /// on AWS); off, workers start when their task is prepared.
    pub lookahead: bool,
    /// Each launched instance runs its userdata stub (the default). Off, the fleet makes the
    /// stub's checks itself and starts the worker directly (see
    /// [`fleet::LocalFleetConfig::run_stubs`]): the benchmark's wide runs, where the stub's CPU
    /// (an EC2 instance's own) would be shared by hundreds of instances on this machine.
    pub run_stubs: bool,
}

impl LocalOptions {
    /// Defaults for a pipeline: ×100 time, 30 s boot, no faults.
    pub fn new(
        pipeline_path: impl Into<PathBuf>,
        worker_bin: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
    ) -> Self {
        LocalOptions {
            pipeline_path: pipeline_path.into(),
            worker_bin: worker_bin.into(),
            run_dir: run_dir.into(),
            run_name: None,
            time_scale: 100.0,
            boot_time: Duration::from_secs(30),
            faults: Faults::none(),
            seed: 1,
            extra_env: vec![],
            parallel_parameters_once: false,
            lookahead: true,
            run_stubs: true,
        }
    }

    fn scaled(&self, d: Duration) -> Duration {
        boa_core::duration::scaled(d, self.time_scale)
    }

    /// The run's own folder: `<run_dir>/runs/<run_name>`, or `run_dir` without a name. Its
    /// `logs/` hold the workers' logs (`<Step>/w_<instance>.log`), `tags/` their tag files, `work/` their
    /// work folders and `objects/` the stack's artifact bucket (attempts, locks).
    pub fn own_dir(&self) -> PathBuf {
        match &self.run_name {
            Some(n) => record::run_folder(&self.run_dir, n),
            None => self.run_dir.clone(),
        }
    }

    /// The objects "S3" holds for this run: `done_when` buckets in `<run_dir>/objects/<bucket>`
    /// (shared, so a later run skips what is done), the stack's own bucket in the run's folder.
    pub fn objects(&self) -> LocalObjects {
        run_objects(&self.run_dir, self.run_name.as_deref())
    }
}

/// The objects "S3" holds for the run named `run_name` of `run_dir` (see
/// [`LocalOptions::objects`]): what the run read and wrote, also once it has ended.
pub fn run_objects(run_dir: &std::path::Path, run_name: Option<&str>) -> LocalObjects {
    let own = match run_name {
        Some(n) => record::run_folder(run_dir, n),
        None => run_dir.to_path_buf(),
    };
    LocalObjects::new(run_dir.join("objects"))
        .with_bucket(LOCAL_ARTIFACT_BUCKET, own.join("objects"))
        .sharing(DURATIONS_PREFIX)
}

/// The duration history's keys in the artifact bucket: shared by every run of a folder, as it
/// is by every execution of a stack on AWS.
const DURATIONS_PREFIX: &str = "durations/";

/// The local stack's artifact bucket (`s3://build-on-aws-local`).
pub const LOCAL_ARTIFACT_BUCKET: &str = "build-on-aws-local";

/// Sleeps for a duration divided by the time scale (start-workers' launch backoff).
struct ScaledSleeper(f64);

#[async_trait]
impl Sleeper for ScaledSleeper {
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(boa_core::duration::scaled(d, self.0)).await;
    }
}

/// The Lambda functions of the stack, in-process, dispatched by function name.
struct LocalLambdas {
    pipeline: Arc<Pipeline>,
    cfg: Arc<StackConfig>,
    /// start-workers' view of the fleet, as in the Lambda: one DescribeInstances per activity
    /// per few seconds of pipeline time, with its own launches in it at once.
    start_fleet: CachedFleet,
    /// start-workers starts lookahead executions through it: the engine's endpoint through the
    /// SFN adapter, as the Lambda calls Step Functions.
    executions: SfnExecutions,
    objects: LocalObjects,
    sleeper: ScaledSleeper,
    prefix: String,
    fail_rate: f64,
    dice: Dice,
    invocations: Mutex<std::collections::BTreeMap<String, u64>>,
}

fn decode<T: DeserializeOwned>(function: &str, payload: Value) -> Result<T, TaskFailure> {
    serde_json::from_value(payload).map_err(|e| TaskFailure {
        error: boa_core::ErrorName::InputInvalid.as_str().into(),
        cause: format!("{function}: the event does not fit its type: {e}"),
    })
}

fn encode<T: serde::Serialize>(r: Result<T, NamedError>) -> Result<Value, TaskFailure> {
    match r {
        Ok(v) => serde_json::to_value(v).map_err(|e| TaskFailure {
            error: "Lambda.Unknown".into(),
            cause: format!("cannot serialize the result: {e}"),
        }),
        Err(e) => Err(TaskFailure {
            error: e.name.as_str().into(),
            cause: e.message,
        }),
    }
}

#[async_trait]
impl LambdaInvoker for LocalLambdas {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        let short = function.strip_prefix(&self.prefix).unwrap_or(function);
        *self
            .invocations
            .lock()
            .expect("invocations lock")
            .entry(short.to_string())
            .or_insert(0) += 1;
        if self.dice.roll(self.fail_rate) {
            *self
                .invocations
                .lock()
                .expect("invocations lock")
                .entry(INJECTED_FAILURES.to_string())
                .or_insert(0) += 1;
            return Err(TaskFailure {
                error: "Lambda.ServiceException".into(),
                cause: format!("{function}: service exception (injected)"),
            });
        }
        let p = &*self.pipeline;
        match short {
            "parse-input" => {
                let today = chrono::Local::now().date_naive();
                encode(parse_input::handle(decode(function, payload)?, p, today))
            }
            "start-workers" => {
                let ports = start_workers::Ports {
                    fleet: &self.start_fleet,
                    objects: &self.objects,
                    sleeper: &self.sleeper,
                    executions: Some(&self.executions),
                };
                encode(
                    start_workers::handle_event(decode(function, payload)?, &ports, &self.cfg, p)
                        .await,
                )
            }
            "record-result" => encode(
                normalize_results::record::handle(
                    decode(function, payload)?,
                    p,
                    &self.objects,
                    &self.cfg,
                )
                .await,
            ),
            "normalize-results" => encode(
                normalize_results::handle(decode(function, payload)?, p, &self.objects, &self.cfg)
                    .await,
            ),
            "check-for-failures" => encode(check_for_failures::handle(decode(function, payload)?)),
            other => Err(TaskFailure {
                error: "Lambda.ResourceNotFoundException".into(),
                cause: format!(
                    "no local function '{other}' (known: {})",
                    statemachine_gen::LAMBDAS.join(", ")
                ),
            }),
        }
    }
}

/// The role the local state machines are created with (the engine does not assume roles).
const LOCAL_ROLE: &str = "arn:aws:iam::000000000000:role/build-on-aws-local";

/// Everything a local run needs, started.
pub struct LocalStack {
    engine: Engine,
    pipeline: Arc<Pipeline>,
    definition: Value,
    cfg: Arc<StackConfig>,
    fleet: Arc<LocalFleet>,
    lambdas: Arc<LocalLambdas>,
    /// The engine's endpoint through the SFN adapter, as the health check and the CLI read it.
    executions: SfnExecutions,
    /// The SDK configuration of a client of the engine's endpoint (its URL, the run's key).
    sdk: boa_aws::adapters::SdkConfig,
    opts: LocalOptions,
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    health_runs: Arc<Mutex<Vec<Result<health_check::HealthReport, String>>>>,
}

impl LocalStack {
    /// Loads the pipeline, generates its state machine, starts the engine, its activity endpoint,
    /// the fleet and the health-check loop.
    pub async fn start(opts: LocalOptions) -> Result<LocalStack, String> {
        if !(opts.time_scale.is_finite() && opts.time_scale > 0.0) {
            return Err(format!(
                "time scale {} must be a positive number",
                opts.time_scale
            ));
        }
        let pipeline = Pipeline::load(&opts.pipeline_path).map_err(|e| e.to_string())?;
        let pipeline = Arc::new(pipeline);
        let own = opts.own_dir();
        for d in [
            own.join("logs"),
            own.join("tags"),
            own.join("work"),
            own.join("objects"),
            opts.run_dir.join("objects"),
        ] {
            std::fs::create_dir_all(&d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let definition = statemachine_gen::generate(
            &pipeline,
            &Arns::Concrete {
                region: LOCAL_REGION.into(),
                account: LOCAL_ACCOUNT.into(),
            },
        );
        let prefix = format!("build-on-aws-{}-", pipeline.name);
        let stack_name = format!("build-on-aws-{}", pipeline.name);
        let scripts_dir = opts
            .pipeline_path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        let mut extra_env = opts.extra_env.clone();
        extra_env.push((
            LOCAL_OBJECTS_VAR.into(),
            opts.run_dir.join("objects").display().to_string(),
        ));
        // A per-run secret: the endpoint answers only requests signed with it, and only this
        // run's workers get it (as their access key id), so no other process on the machine can
        // take or complete the run's tasks.
        let access_key = format!("BOALOCAL{:032X}", rand::random::<u128>());
        // Every launch carries the worker binary's SHA-256 (see below); hashed once, here.
        let (worker_sha256, verified_worker) = match fleet::VerifiedBinary::hash(&opts.worker_bin) {
            Ok((h, v)) => (Some(h), v),
            Err(e) => {
                tracing::warn!(error = %e, "the worker binary cannot be hashed: launches carry no SHA-256 for it");
                (None, None)
            }
        };
        let fleet_cfg = LocalFleetConfig {
            access_key: access_key.clone(),
            worker_bin: opts.worker_bin.clone(),
            endpoint_url: String::new(),
            scripts_dir,
            run_dir: own.clone(),
            boot_time: opts.scaled(opts.boot_time),
            time_scale: opts.time_scale,
            extra_env,
            verified_worker,
            run_stubs: opts.run_stubs,
        };
        let engine_cfg = EngineConfig {
            time_scale: opts.time_scale,
            seed: opts.seed,
            region: LOCAL_REGION.into(),
            account_id: LOCAL_ACCOUNT.into(),
            // Step Functions holds an empty GetActivityTask for 60 s: in proportion here, as
            // every wait (an idle worker's polls, hence its requests, are as many per pipeline
            // minute as on AWS).
            poll_wait: opts
                .scaled(Duration::from_secs(60))
                .clamp(Duration::from_millis(50), Duration::from_secs(60)),
            parallel_parameters_once: opts.parallel_parameters_once,
            endpoint_access_key: Some(access_key.clone()),
            // A Distributed Map's ResultWriter writes into the run's artifact bucket.
            objects: Some(Arc::new(objects::EngineObjects(opts.objects()))),
            ..EngineConfig::default()
        };
        // The engine needs the functions, the functions need the fleet, and the fleet needs the
        // engine's endpoint address: the engine gets a late-bound invoker.
        let late: Arc<LateInvoker> = Arc::new(LateInvoker(std::sync::OnceLock::new()));
        let engine = Engine::new(engine_cfg, late.clone());
        let addr = engine
            .activity_endpoint()
            .await
            .map_err(|e| format!("cannot start the local activity endpoint: {e}"))?;
        let endpoint_url = format!("http://{addr}");
        // Everything (start-workers, the health check, the CLI) reads and drives executions through
        // the SDK pointed at the endpoint, with the run's key: the code paths of AWS mode.
        let sdk =
            boa_aws::adapters::local_endpoint_config(&endpoint_url, LOCAL_REGION, &access_key)
                .await;
        let executions = SfnExecutions::new(&sdk);
        let fleet = LocalFleet::new(
            LocalFleetConfig {
                endpoint_url: endpoint_url.clone(),
                ..fleet_cfg
            },
            opts.faults.clone(),
        );
        let mut cfg = StackConfig::new(
            &stack_name,
            LOCAL_REGION,
            LOCAL_ACCOUNT,
            &format!("s3://{LOCAL_ARTIFACT_BUCKET}"),
        );
        // The stack's state machine, as deploying creates it: runs start through StartExecution.
        cfg.state_machine_arn = engine
            .create_state_machine(&stack_name, &definition.to_string(), LOCAL_ROLE)
            .map_err(|e| format!("cannot create the state machine: {e}"))?
            .arn;
        cfg.endpoint_url = Some(endpoint_url);
        cfg.shutdown = Shutdown::Exit;
        cfg.log_dir = Some(own.join("logs").display().to_string());
        cfg.work_dir = own.join("work").display().to_string();
        cfg.time_scale = opts.time_scale;
        // Every launch carries the worker binary's SHA-256, as on AWS: each instance's userdata
        // stub refuses any other binary (see the fleet).
        cfg.worker_sha256 = worker_sha256;
        // The simulated boot is known exactly: lookahead starts workers that long ahead.
        cfg.boot_time = Some(opts.boot_time);
        if opts.lookahead {
            let name = format!("{stack_name}-lookahead");
            let definition = statemachine_gen::lookahead(
                &pipeline,
                &Arns::Concrete {
                    region: LOCAL_REGION.into(),
                    account: LOCAL_ACCOUNT.into(),
                },
            );
            let m = engine
                .create_state_machine(&name, &definition.to_string(), LOCAL_ROLE)
                .map_err(|e| format!("cannot create the lookahead state machine: {e}"))?;
            cfg.lookahead_machine_arn = Some(m.arn);
        }
        let cfg = Arc::new(cfg);
        let lambdas = Arc::new(LocalLambdas {
            pipeline: Arc::clone(&pipeline),
            cfg: Arc::clone(&cfg),
            start_fleet: CachedFleet::for_time_scale(fleet.clone(), opts.time_scale),
            executions: executions.clone(),
            objects: opts.objects(),
            sleeper: ScaledSleeper(opts.time_scale),
            prefix,
            fail_rate: opts.faults.fail_lambda,
            dice: Dice::new(opts.faults.seed ^ 0x1a3b_da00),
            invocations: Mutex::new(Default::default()),
        });
        let _ = late.0.set(lambdas.clone());
        fleet.spawn_chaos(Duration::from_millis(50));
        let stack = LocalStack {
            engine,
            pipeline,
            definition,
            cfg,
            fleet,
            lambdas,
            executions,
            sdk,
            opts,
            background: Mutex::new(vec![]),
            health_runs: Arc::new(Mutex::new(vec![])),
        };
        stack.spawn_health_check();
        Ok(stack)
    }

    fn spawn_health_check(&self) {
        let period = self.opts.scaled(HEALTH_CHECK_PERIOD);
        let ex = self.executions.clone();
        let fleet = Arc::clone(&self.fleet);
        let cfg = Arc::clone(&self.cfg);
        let p = Arc::clone(&self.pipeline);
        let runs = Arc::clone(&self.health_runs);
        let scale = self.opts.time_scale;
        let objects = self.opts.objects();
        let h = tokio::spawn(async move {
            let sleeper = ScaledSleeper(scale);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate; the schedule's first run is not
            let mut round: u64 = 0;
            loop {
                tick.tick().await;
                round += 1;
                let round_id = format!("local-round-{round}");
                let r = health_check::handle(
                    &ex,
                    &*fleet,
                    &objects,
                    &sleeper,
                    &cfg,
                    &p,
                    Utc::now(),
                    &round_id,
                )
                .await
                .map_err(|e| e.to_string());
                match &r {
                    Ok(rep) => tracing::debug!(report = ?rep, "local health check"),
                    Err(e) => tracing::warn!(error = %e, "local health check failed"),
                }
                runs.lock().expect("health lock").push(r);
            }
        });
        self.background.lock().expect("background lock").push(h);
    }

    /// In fake-ec2 mode nothing is launched: tasks wait for workers started by hand. Locally,
    /// the stack plays that person: it keeps one hand-started worker per requested step alive
    /// (untagged, so neither start-workers nor the health check counts it as the stack's).
    fn spawn_hand_workers(&self, input: &BuildInput) {
        let mut envs = vec![];
        for s in self
            .pipeline
            .steps
            .iter()
            .filter(|s| input.steps.contains(&s.name))
        {
            let env = boa_core::stack::worker_env(&self.cfg, &self.pipeline, s);
            let mut vars: Vec<(String, String)> = env
                .to_vars()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            // A person's worker waits for the whole run.
            for (k, v) in &mut vars {
                if k == vars::IDLE_TIMEOUT_S {
                    *v = "86400".into();
                }
            }
            envs.push((s.name.clone(), vars));
        }
        let fleet = Arc::clone(&self.fleet);
        let h = tokio::spawn(async move {
            loop {
                if fleet.is_shut_down() {
                    return;
                }
                for (step, env) in &envs {
                    if !fleet.hand_worker_alive(step) {
                        fleet.start_by_hand(step, env.clone());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        self.background.lock().expect("background lock").push(h);
    }

    /// What a run of `input` needs besides its execution: in fake-ec2 mode, the person who
    /// starts workers by hand. Call it before starting the execution (through the API, as the
    /// CLI does, or with [`LocalStack::run`]).
    pub fn prepare(&self, input: &BuildInput) {
        if input.mode == Mode::FakeEc2 {
            self.spawn_hand_workers(input);
        }
    }

    /// Starts an execution of the pipeline's state machine for `input`, named `name`, in the
    /// engine directly (tests and benchmarks wait on its handle; the CLI starts it through the
    /// API, see [`LocalStack::sdk_config`]).
    pub fn run(&self, input: &BuildInput, name: &str) -> Result<ExecutionHandle, String> {
        self.prepare(input);
        self.engine
            .start_execution(
                &self.cfg.state_machine_arn,
                &self.definition,
                Some(name),
                input.execution_input(&self.pipeline),
            )
            .map_err(|e| e.to_string())
    }

    /// The engine's endpoint through the SFN adapter: an execution's history (and its Distributed
    /// Maps' children's) as the health check and the CLI read it, on AWS as locally.
    pub fn executions(&self) -> &SfnExecutions {
        &self.executions
    }

    /// The SDK configuration of a client of the engine's endpoint: its URL and the run's access
    /// key (the endpoint refuses any other), for `aws_sdk_sfn::Client::new`.
    pub fn sdk_config(&self) -> &boa_aws::adapters::SdkConfig {
        &self.sdk
    }

    /// The results NormalizeResults wrote for an execution (`runs/<name>/results.json` in the
    /// run's artifact bucket); `None` when it never ran or they cannot be read.
    pub fn results(&self, execution_arn: &str) -> Option<boa_core::NormalizedResults> {
        let at = self
            .cfg
            .record_object(&boa_core::results::results_key(execution_arn))?;
        let path = self.opts.objects().path(&at.bucket, &at.key);
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// The run's "S3": its own artifact bucket and the shared `done_when` buckets.
    pub fn objects(&self) -> LocalObjects {
        self.opts.objects()
    }

    /// Stops a running execution as Step Functions' `StopExecution` does (status ABORTED, with
    /// `error` and `cause`); its activity tasks are closed. The workers keep running until
    /// [`LocalStack::shutdown`].
    pub fn stop(&self, execution_arn: &str, error: &str, cause: &str) -> Result<(), String> {
        self.engine
            .stop_execution(execution_arn, Some(error), Some(cause))
            .map_err(|e| e.to_string())
    }

    /// The run's own folder (see [`LocalOptions::own_dir`]).
    pub fn own_dir(&self) -> PathBuf {
        self.opts.own_dir()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn definition(&self) -> &Value {
        &self.definition
    }

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    pub fn fleet(&self) -> &Arc<LocalFleet> {
        &self.fleet
    }

    /// Worker processes alive now.
    pub fn workers_alive(&self) -> usize {
        self.fleet.alive().len()
    }

    /// Lambda invocations so far, by function (`parse-input`, `start-workers`…), and the
    /// injected failures among them under [`INJECTED_FAILURES`].
    pub fn lambda_invocations(&self) -> std::collections::BTreeMap<String, u64> {
        self.lambdas
            .invocations
            .lock()
            .expect("invocations lock")
            .clone()
    }

    /// Results of the health-check runs so far.
    pub fn health_runs(&self) -> Vec<Result<health_check::HealthReport, String>> {
        self.health_runs.lock().expect("health lock").clone()
    }

    /// Stops the background loops and every worker process (SIGTERM, then SIGKILL).
    pub async fn shutdown(&self) {
        for h in self.background.lock().expect("background lock").drain(..) {
            h.abort();
        }
        let grace = self
            .opts
            .scaled(Duration::from_secs(60))
            .max(Duration::from_millis(500));
        self.fleet.shutdown(grace).await;
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The engine is built before the functions it calls (they need its endpoint address).
struct LateInvoker(std::sync::OnceLock<Arc<LocalLambdas>>);

#[async_trait]
impl LambdaInvoker for LateInvoker {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        match self.0.get() {
            // Each invocation on a task of its own, as each runs in its own container on AWS:
            // the engine polls a Map's iterations on one task, where the functions' work (file
            // reads and writes, the fleet view) ran one invocation after another on one core.
            // Dropped (the execution stopped), the invocation is cancelled as before.
            Some(l) => {
                let (l, function) = (Arc::clone(l), function.to_string());
                let mut task =
                    AbortOnDrop(tokio::spawn(
                        async move { l.invoke(&function, payload).await },
                    ));
                match (&mut task.0).await {
                    Ok(r) => r,
                    Err(e) => Err(TaskFailure {
                        error: "Lambda.Unknown".into(),
                        cause: format!("the function did not complete: {e}"),
                    }),
                }
            }
            None => Err(TaskFailure {
                error: "Lambda.ServiceException".into(),
                cause: "the local stack is still starting".into(),
            }),
        }
    }
}
