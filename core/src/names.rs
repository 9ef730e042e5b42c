//! Every name build-on-aws puts into an environment or onto an instance, defined once: the
//! `BOA_*` variables of the Lambdas, the worker, task scripts, local mode and the CLI, and the
//! EC2 tags of a worker. Docs and tests may spell them out; code uses these constants.

/// The Lambdas' environment, set by the deploy template (read by [`crate::stack::StackConfig`]).
pub mod stack {
    /// The stack name, tagged on every instance.
    pub const STACK: &str = "BOA_STACK";
    /// The state machine whose executions the health check watches (region and account come
    /// from it).
    pub const STATE_MACHINE_ARN: &str = "BOA_STATE_MACHINE_ARN";
    /// `s3://bucket/prefix` of the worker binary, the scripts and the stack's records.
    pub const ARTIFACTS: &str = "BOA_ARTIFACTS";
    /// CloudWatch Logs group of the workers.
    pub const LOG_GROUP: &str = "BOA_LOG_GROUP";
    /// The pipeline file; default `pipeline.toml` next to the Lambda's binary.
    pub const PIPELINE_FILE: &str = "BOA_PIPELINE_FILE";
    /// Where workers fetch the scripts; default `<artifacts>/scripts`.
    pub const SCRIPTS: &str = "BOA_SCRIPTS";
    /// The worker binary's URL; default `<artifacts>/worker/worker`.
    pub const WORKER_BINARY: &str = "BOA_WORKER_BINARY";
    /// Instance profile of steps that name none.
    pub const WORKER_PROFILE: &str = "BOA_WORKER_PROFILE";
    /// Subnets of steps that name none (comma-separated).
    pub const SUBNETS: &str = "BOA_SUBNETS";
    /// Security groups of steps that name none (comma-separated).
    pub const SECURITY_GROUPS: &str = "BOA_SECURITY_GROUPS";
    /// Replaces every step's AMI when set (the deploy's `WorkerAmi` parameter).
    pub const WORKER_AMI: &str = "BOA_WORKER_AMI";
    /// The lookahead state machine's ARN (start-workers starts dependents' workers through it).
    pub const LOOKAHEAD_MACHINE_ARN: &str = "BOA_LOOKAHEAD_MACHINE_ARN";
    /// The worker binary's SHA-256: the userdata stub refuses any other binary.
    pub const WORKER_SHA256: &str = "BOA_WORKER_SHA256";
}

/// The worker's configuration (see [`crate::worker_env`]).
pub mod worker {
    /// ARN of the activity to poll. Required.
    pub const ACTIVITY_ARN: &str = "BOA_ACTIVITY_ARN";
    /// AWS region. Required.
    pub const REGION: &str = "BOA_REGION";
    /// Step Functions endpoint override (local mode, tests).
    pub const ENDPOINT_URL: &str = "BOA_ENDPOINT_URL";
    /// Instance id override (local mode); otherwise read from IMDSv2.
    pub const INSTANCE_ID: &str = "BOA_INSTANCE_ID";
    /// The step this worker runs.
    pub const STEP: &str = "BOA_STEP";
    /// Where the step's scripts are: a local folder, or `s3://bucket/prefix` fetched at start.
    pub const SCRIPTS: &str = "BOA_SCRIPTS";
    /// Script paths relative to BOA_SCRIPTS.
    pub const SCRIPT: &str = "BOA_SCRIPT";
    /// The SHA-256 of each of the step's scripts, a JSON object `{path: hex}`: the worker runs no
    /// script whose content does not match (set from the pipeline the Lambda or the local stack
    /// loaded, never from the artifact bucket).
    pub const SCRIPTS_SHA256: &str = "BOA_SCRIPTS_SHA256";
    pub const INIT_SCRIPT: &str = "BOA_INIT_SCRIPT";
    pub const AFTER_SCRIPT: &str = "BOA_AFTER_SCRIPT";
    pub const CLEANUP_SCRIPT: &str = "BOA_CLEANUP_SCRIPT";
    /// The step's `env`, as a JSON object of strings.
    pub const STEP_ENV: &str = "BOA_STEP_ENV";
    /// Seconds idle before shutting down.
    pub const IDLE_TIMEOUT_S: &str = "BOA_IDLE_TIMEOUT_S";
    /// Tasks before shutting down; 0 = unlimited.
    pub const MAX_TASKS: &str = "BOA_MAX_TASKS";
    /// Seconds between heartbeats (the step's heartbeat / 3).
    pub const HEARTBEAT_S: &str = "BOA_HEARTBEAT_S";
    /// Local log folder (local mode); the log file is `<dir>/w_<instance id>.log`.
    pub const LOG_DIR: &str = "BOA_LOG_DIR";
    /// CloudWatch Logs group (AWS).
    pub const LOG_GROUP: &str = "BOA_LOG_GROUP";
    /// Working directories are created below it.
    pub const WORK_DIR: &str = "BOA_WORK_DIR";
    /// `poweroff` (EC2) or `exit` (local process).
    pub const SHUTDOWN: &str = "BOA_SHUTDOWN";
    /// Seconds added to the lease beyond what the worker itself waits (idle timeout, or two
    /// heartbeat periods while busy): covers a long poll and tagging delays. Default 120.
    pub const LEASE_MARGIN_S: &str = "BOA_LEASE_MARGIN_S";
    /// Stack name, for the lease/work tags.
    pub const STACK: &str = "BOA_STACK";
    /// Every one of them.
    pub const ALL: &[&str] = &[
        ACTIVITY_ARN,
        REGION,
        ENDPOINT_URL,
        INSTANCE_ID,
        STEP,
        SCRIPTS,
        SCRIPT,
        INIT_SCRIPT,
        AFTER_SCRIPT,
        CLEANUP_SCRIPT,
        STEP_ENV,
        IDLE_TIMEOUT_S,
        MAX_TASKS,
        HEARTBEAT_S,
        LOG_DIR,
        LOG_GROUP,
        WORK_DIR,
        SHUTDOWN,
        LEASE_MARGIN_S,
        STACK,
    ];
}

/// What a task's script finds in its environment besides the step's `env` (see
/// [`crate::task::task_env`]); each axis value comes as `BOA_<AXIS>`.
pub mod task {
    pub const STEP: &str = "BOA_STEP";
    pub const MODE: &str = "BOA_MODE";
    /// 1 for the first attempt.
    pub const ATTEMPT: &str = "BOA_ATTEMPT";
    pub const EXECUTION: &str = "BOA_EXECUTION";
    /// The prefix of the axis variables: `BOA_VERSION`, `BOA_DISTRO`…
    pub const AXIS_PREFIX: &str = "BOA_";
}

/// Local mode.
pub mod local {
    /// The worker binary the local fleet starts (default: next to the CLI).
    pub const WORKER_BIN: &str = "BOA_WORKER_BIN";
    /// The file a local worker's EC2 tags are kept in.
    pub const TAGS_FILE: &str = "BOA_TAGS_FILE";
    /// Workers see the local object folder here, so scripts can "upload" what `done_when` checks.
    pub const OBJECTS: &str = "BOA_LOCAL_OBJECTS";
    /// The end of a local instance's simulated boot (Unix time in milliseconds). Its process
    /// starts when it is launched and the worker, once started, waits until then before it
    /// registers and polls: the start-up work runs during the boot, as on EC2, instead of all at
    /// once on the machine's shared cores when many instances come up together.
    pub const UP_AT: &str = "BOA_LOCAL_UP_AT";
    /// The process id of the local stack that started this worker directly (no stub between):
    /// the worker asks the kernel to kill it when that process is gone, and exits at once if
    /// it already is. The stack starts it without a fork of its own (large) address space.
    pub const PARENT_PID: &str = "BOA_LOCAL_PARENT_PID";
}

/// The CLI's options that can come from the environment.
pub mod cli {
    pub const PIPELINE: &str = "BOA_PIPELINE";
    pub const STATE_MACHINE_ARN: &str = "BOA_STATE_MACHINE_ARN";
    pub const TIME_SCALE: &str = "BOA_TIME_SCALE";
    pub const RUN_DIR: &str = "BOA_RUN_DIR";
    pub const LOG: &str = "BOA_LOG";
}

/// The tag names build-on-aws puts on instances.
pub mod tags {
    /// The stack name; every instance of the stack has it (the IAM conditions use it).
    pub const STACK: &str = "build-on-aws:stack";
    /// The activity (= step) name the worker serves.
    pub const ACTIVITY: &str = "build-on-aws:activity";
    /// The execution ARN the worker was launched for.
    pub const EXECUTION: &str = "build-on-aws:execution";
    /// The state that launched it.
    pub const STATE: &str = "build-on-aws:state";
    /// `busy` or `idle`, kept by the worker.
    pub const WORK: &str = "build-on-aws:work";
    /// RFC 3339 time until which the worker counts as alive; refreshed by the worker.
    pub const LEASE: &str = "build-on-aws:lease";
    /// The lock an `exclusive` step's worker holds: `<activity>/<generation>`.
    pub const LOCK: &str = "build-on-aws:lock";
    /// A worker started ahead (lookahead): which tasks it was started for
    /// (`boa_core::lookahead::ahead_tag`); their `Prepare` counts it as theirs while it boots.
    pub const AHEAD: &str = "build-on-aws:ahead";
    pub const NAME: &str = "Name";
}

/// A stable 128-bit hash (two FNV-1a-64 lanes), hex: the same parts give the same token on every
/// machine and Rust version.
pub fn stable_hash(parts: &[&str]) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for p in parts {
        for byte in p.bytes().chain(std::iter::once(0x1f)) {
            a = (a ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            b = (b ^ u64::from(byte.rotate_left(3))).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{a:016x}{b:016x}")
}
