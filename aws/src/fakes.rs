//! In-memory fakes of the ports, for tests (this crate's, and other crates' with the `fakes`
//! feature). They keep state behind a mutex and record every call, so a test can script
//! failures and then assert what was asked.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use boa_core::history_event::EventType;
use chrono::{DateTime, Utc};

use crate::backoff::Sleeper;
use crate::ports::{
    Activities, ActivityTask, ExecutionSummary, Executions, Fleet, HistoryEvent, Instance,
    InstanceState, LaunchSpec, ObjectInfo, Objects, PortError, Purchase,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Fleet

#[derive(Debug, Default)]
struct FleetState {
    instances: BTreeMap<String, Instance>,
    tokens: BTreeMap<String, Vec<String>>,
    calls: Vec<LaunchSpec>,
    next_errors: VecDeque<PortError>,
    refuse: Vec<(String, Purchase, PortError)>,
    instances_error: Option<PortError>,
    terminated: Vec<String>,
    next_id: u64,
    lagging: bool,
    hidden: BTreeSet<String>,
}

/// A fake EC2: launches honour `ClientToken` idempotency like EC2 (same token → same ids, no new
/// instance). `instances()` yields to the scheduler after taking its snapshot, so concurrent
/// callers really race between counting and launching.
#[derive(Debug, Default)]
pub struct FakeFleet {
    state: Mutex<FleetState>,
}

impl FakeFleet {
    pub fn new() -> FakeFleet {
        FakeFleet::default()
    }

    /// The next launch calls fail with these errors, in order (one per call).
    pub fn fail_next(&self, errors: impl IntoIterator<Item = PortError>) {
        lock(&self.state).next_errors.extend(errors);
    }

    /// Every launch of this type and purchase fails with `error`.
    pub fn refuse(&self, instance_type: &str, purchase: Purchase, error: PortError) {
        lock(&self.state)
            .refuse
            .push((instance_type.to_string(), purchase, error));
    }

    /// `instances()` fails with `error` from now on.
    pub fn fail_instances(&self, error: PortError) {
        lock(&self.state).instances_error = Some(error);
    }

    /// Adds an instance as if launched earlier.
    pub fn add(&self, id: &str, state: InstanceState, tags: &[(&str, &str)]) {
        self.add_at(id, state, tags, None);
    }

    /// Adds an instance with a launch time.
    pub fn add_at(
        &self,
        id: &str,
        state: InstanceState,
        tags: &[(&str, &str)],
        launch_time: Option<DateTime<Utc>>,
    ) {
        lock(&self.state).instances.insert(
            id.to_string(),
            Instance {
                id: id.to_string(),
                state,
                instance_type: "c7i.large".into(),
                launch_time,
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
    }

    /// Simulates EC2's eventual consistency: instances launched from now on are not listed by
    /// `instances()` until [`FakeFleet::settle`].
    pub fn lag_describe(&self) {
        lock(&self.state).lagging = true;
    }

    /// Lists every instance again and stops lagging.
    pub fn settle(&self) {
        let mut st = lock(&self.state);
        st.lagging = false;
        st.hidden.clear();
    }

    /// Every launch call made, in order, including refused ones.
    pub fn launch_calls(&self) -> Vec<LaunchSpec> {
        lock(&self.state).calls.clone()
    }

    /// Every instance, any state.
    pub fn all(&self) -> Vec<Instance> {
        lock(&self.state).instances.values().cloned().collect()
    }

    /// Ids of pending/running instances.
    pub fn live_ids(&self) -> Vec<String> {
        lock(&self.state)
            .instances
            .values()
            .filter(|i| i.state.is_live())
            .map(|i| i.id.clone())
            .collect()
    }

    /// Ids passed to `terminate`, in order.
    pub fn terminated(&self) -> Vec<String> {
        lock(&self.state).terminated.clone()
    }
}

#[async_trait]
impl Fleet for FakeFleet {
    async fn launch(&self, spec: &LaunchSpec) -> Result<Vec<String>, PortError> {
        let mut st = lock(&self.state);
        st.calls.push(spec.clone());
        if let Some(ids) = st.tokens.get(&spec.client_token) {
            return Ok(ids.clone());
        }
        if let Some(e) = st.next_errors.pop_front() {
            return Err(e);
        }
        if let Some((_, _, e)) = st
            .refuse
            .iter()
            .find(|(t, p, _)| *t == spec.instance_type && *p == spec.purchase)
        {
            return Err(e.clone());
        }
        let mut ids = vec![];
        for _ in 0..spec.count {
            st.next_id += 1;
            let id = format!("i-{:017x}", st.next_id);
            st.instances.insert(
                id.clone(),
                Instance {
                    id: id.clone(),
                    state: InstanceState::Pending,
                    instance_type: spec.instance_type.clone(),
                    launch_time: Some(Utc::now()),
                    tags: spec.tags.clone(),
                },
            );
            if st.lagging {
                st.hidden.insert(id.clone());
            }
            ids.push(id);
        }
        st.tokens.insert(spec.client_token.clone(), ids.clone());
        Ok(ids)
    }

    async fn instances(&self, tags: &[(String, String)]) -> Result<Vec<Instance>, PortError> {
        let snapshot = {
            let st = lock(&self.state);
            if let Some(e) = &st.instances_error {
                return Err(e.clone());
            }
            st.instances
                .values()
                .filter(|i| i.state != InstanceState::Terminated)
                .filter(|i| !st.hidden.contains(&i.id))
                .filter(|i| tags.iter().all(|(k, v)| i.tags.get(k) == Some(v)))
                .cloned()
                .collect()
        };
        tokio::task::yield_now().await;
        Ok(snapshot)
    }

    async fn tag(
        &self,
        instance_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), PortError> {
        let mut st = lock(&self.state);
        let i = st
            .instances
            .get_mut(instance_id)
            .ok_or_else(|| PortError::NotFound(instance_id.to_string()))?;
        i.tags.extend(tags.clone());
        Ok(())
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), PortError> {
        let mut st = lock(&self.state);
        for id in instance_ids {
            if let Some(i) = st.instances.get_mut(id) {
                i.state = InstanceState::Terminated;
            }
            st.terminated.push(id.clone());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Executions

#[derive(Debug, Default)]
struct ExecState {
    running: BTreeMap<String, Vec<ExecutionSummary>>,
    /// Running child executions (of Distributed Maps) per parent execution.
    children: BTreeMap<String, Vec<ExecutionSummary>>,
    histories: BTreeMap<String, Vec<HistoryEvent>>,
    /// Executions started through the port: (state machine, name, input), in order.
    started: Vec<(String, String, String)>,
    /// Executions ended with [`FakeExecutions::end`].
    ended: Vec<String>,
    error: Option<PortError>,
}

/// A fake Step Functions execution API.
#[derive(Debug, Default)]
pub struct FakeExecutions {
    state: Mutex<ExecState>,
}

impl FakeExecutions {
    pub fn new() -> FakeExecutions {
        FakeExecutions::default()
    }

    /// Adds a RUNNING execution of `state_machine` with its history.
    pub fn add_running(
        &self,
        state_machine: &str,
        execution_arn: &str,
        history: Vec<HistoryEvent>,
    ) {
        let mut st = lock(&self.state);
        st.running
            .entry(state_machine.to_string())
            .or_default()
            .push(ExecutionSummary {
                arn: execution_arn.to_string(),
                name: execution_arn
                    .rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                start: None,
            });
        st.histories.insert(execution_arn.to_string(), history);
    }

    /// Adds a RUNNING child execution (of a Distributed Map) of `parent`, with its history.
    pub fn add_running_child(&self, parent: &str, child: &str, history: Vec<HistoryEvent>) {
        let mut st = lock(&self.state);
        st.children
            .entry(parent.to_string())
            .or_default()
            .push(ExecutionSummary {
                arn: child.to_string(),
                name: child.rsplit(':').next().unwrap_or_default().to_string(),
                start: None,
            });
        st.histories.insert(child.to_string(), history);
    }

    /// Every call fails with `error` from now on.
    pub fn fail(&self, error: PortError) {
        lock(&self.state).error = Some(error);
    }

    /// The execution has ended: [`Executions::is_running`] says so from now on. Any other
    /// execution, known or not, runs.
    pub fn end(&self, execution_arn: &str) {
        lock(&self.state).ended.push(execution_arn.to_string());
    }

    /// The executions started through the port: (state machine, name, input), in order.
    pub fn started(&self) -> Vec<(String, String, String)> {
        lock(&self.state).started.clone()
    }
}

#[async_trait]
impl Executions for FakeExecutions {
    async fn is_running(&self, execution_arn: &str) -> Result<bool, PortError> {
        let st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        Ok(!st.ended.iter().any(|a| a == execution_arn))
    }

    async fn running(&self, state_machine_arn: &str) -> Result<Vec<ExecutionSummary>, PortError> {
        let st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        Ok(st
            .running
            .get(state_machine_arn)
            .cloned()
            .unwrap_or_default())
    }

    async fn running_children(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<ExecutionSummary>, PortError> {
        let st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        Ok(st.children.get(execution_arn).cloned().unwrap_or_default())
    }

    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<Option<String>, PortError> {
        let mut st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        if st
            .started
            .iter()
            .any(|(m, n, _)| m == state_machine_arn && n == name)
        {
            return Ok(None);
        }
        st.started
            .push((state_machine_arn.into(), name.into(), input.into()));
        Ok(Some(format!(
            "{}:{name}",
            state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
        )))
    }

    async fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, PortError> {
        let st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        st.histories
            .get(execution_arn)
            .cloned()
            .ok_or_else(|| PortError::NotFound(execution_arn.to_string()))
    }
}

/// A history event with only its type and links set.
pub fn event(id: i64, previous_event_id: i64, kind: EventType) -> HistoryEvent {
    HistoryEvent {
        id,
        previous_event_id,
        kind,
        timestamp: None,
        resource: None,
        state_name: None,
        payload: None,
        error: None,
        cause: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

#[derive(Debug, Default)]
struct ObjState {
    objects: BTreeSet<(String, String)>,
    /// Last-modified times set by [`FakeObjects::set_modified`] (none otherwise).
    modified: BTreeMap<String, DateTime<Utc>>,
    heads: Vec<(String, String)>,
    /// Bodies of objects written through the port (`put`/`create`); objects added with
    /// [`FakeObjects::put`] read as empty.
    bodies: BTreeMap<(String, String), Vec<u8>>,
    error: Option<PortError>,
    /// [`FakeObjects::deny_missing_reads`], [`FakeObjects::deny_reads`].
    deny_missing: bool,
    deny_all: bool,
    /// [`FakeObjects::slow_reads`].
    read_delay: Option<std::time::Duration>,
    gets: usize,
    lists: usize,
    reading: usize,
    most_reading: usize,
}

/// A fake S3: a set of (bucket, key); records every `exists` asked, and counts reads and
/// listings.
#[derive(Debug, Default)]
pub struct FakeObjects {
    state: Mutex<ObjState>,
}

impl FakeObjects {
    pub fn new() -> FakeObjects {
        FakeObjects::default()
    }
    pub fn put(&self, bucket: &str, key: &str) {
        lock(&self.state)
            .objects
            .insert((bucket.to_string(), key.to_string()));
    }
    pub fn fail(&self, error: PortError) {
        lock(&self.state).error = Some(error);
    }
    /// Sets the last-modified time `list` reports for a key.
    pub fn set_modified(&self, key: &str, t: DateTime<Utc>) {
        lock(&self.state).modified.insert(key.to_string(), t);
    }
    /// The body written at a key through the port, if any.
    pub fn body(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        lock(&self.state)
            .bodies
            .get(&(bucket.to_string(), key.to_string()))
            .cloned()
    }
    /// Every key of a bucket, in order.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        lock(&self.state)
            .objects
            .iter()
            .filter(|(b, _)| b == bucket)
            .map(|(_, k)| k.clone())
            .collect()
    }
    /// Every (bucket, key) asked about, in order.
    pub fn asked(&self) -> Vec<(String, String)> {
        lock(&self.state).heads.clone()
    }
    /// GetObject of a missing key is refused (403 AccessDenied), as S3 answers a caller without
    /// s3:ListBucket on the whole bucket.
    pub fn deny_missing_reads(&self) {
        lock(&self.state).deny_missing = true;
    }
    /// Every GetObject is refused (403 AccessDenied); listings still answer.
    pub fn deny_reads(&self) {
        lock(&self.state).deny_all = true;
    }
    /// Each GetObject takes `d`, so that reads made side by side overlap
    /// ([`FakeObjects::most_reads_at_once`]).
    pub fn slow_reads(&self, d: std::time::Duration) {
        lock(&self.state).read_delay = Some(d);
    }
    /// How many GetObject and ListObjects calls were made.
    pub fn reads_and_lists(&self) -> (usize, usize) {
        let st = lock(&self.state);
        (st.gets, st.lists)
    }
    /// The most GetObject calls in flight at once.
    pub fn most_reads_at_once(&self) -> usize {
        lock(&self.state).most_reading
    }
}

#[async_trait]
impl Objects for FakeObjects {
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, PortError> {
        let mut st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        let k = (bucket.to_string(), key.to_string());
        st.heads.push(k.clone());
        Ok(st.objects.contains(&k))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let delay = {
            let mut st = lock(&self.state);
            st.gets += 1;
            st.reading += 1;
            st.most_reading = st.most_reading.max(st.reading);
            st.read_delay
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let mut st = lock(&self.state);
        st.reading -= 1;
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        let k = (bucket.to_string(), key.to_string());
        let present = st.objects.contains(&k);
        if st.deny_all || (st.deny_missing && !present) {
            return Err(PortError::call(
                "S3",
                "GetObject",
                "AccessDenied",
                "Access Denied",
            ));
        }
        if !present {
            return Ok(None);
        }
        Ok(Some(st.bodies.get(&k).cloned().unwrap_or_default()))
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), PortError> {
        let mut st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        let k = (bucket.to_string(), key.to_string());
        st.objects.insert(k.clone());
        st.bodies.insert(k, body.to_vec());
        Ok(())
    }

    async fn create(&self, bucket: &str, key: &str, body: &[u8]) -> Result<bool, PortError> {
        let mut st = lock(&self.state);
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        let k = (bucket.to_string(), key.to_string());
        let created = st.objects.insert(k.clone());
        if created {
            st.bodies.insert(k, body.to_vec());
        }
        Ok(created)
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let mut st = lock(&self.state);
        st.lists += 1;
        if let Some(e) = &st.error {
            return Err(e.clone());
        }
        Ok(st
            .objects
            .iter()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| ObjectInfo {
                key: k.clone(),
                last_modified: st.modified.get(k).copied(),
            })
            .collect())
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_s: u64,
    ) -> Result<String, PortError> {
        Ok(format!(
            "https://{bucket}.s3.fake/{key}?X-Amz-Expires={expires_s}"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Activities

/// What a worker did with a task, as recorded by [`FakeActivities`].
#[derive(Debug, Clone, PartialEq)]
pub enum ActivityCall {
    Heartbeat(String),
    Succeed {
        token: String,
        output: String,
    },
    Fail {
        token: String,
        error: String,
        cause: String,
    },
}

#[derive(Debug, Default)]
struct ActState {
    tasks: BTreeMap<String, VecDeque<ActivityTask>>,
    calls: Vec<ActivityCall>,
    gone: BTreeSet<String>,
}

/// A fake activity API: tasks queued per activity ARN; `get_task` returns `None` at once when the
/// queue is empty.
#[derive(Debug, Default)]
pub struct FakeActivities {
    state: Mutex<ActState>,
}

impl FakeActivities {
    pub fn new() -> FakeActivities {
        FakeActivities::default()
    }
    pub fn publish(&self, activity_arn: &str, token: &str, input: &str) {
        lock(&self.state)
            .tasks
            .entry(activity_arn.to_string())
            .or_default()
            .push_back(ActivityTask {
                token: token.to_string(),
                input: input.to_string(),
            });
    }
    /// Calls with this token fail with `TaskGone` from now on (the task timed out).
    pub fn expire(&self, token: &str) {
        lock(&self.state).gone.insert(token.to_string());
    }
    pub fn calls(&self) -> Vec<ActivityCall> {
        lock(&self.state).calls.clone()
    }
    fn record(&self, token: &str, call: ActivityCall) -> Result<(), PortError> {
        let mut st = lock(&self.state);
        if st.gone.contains(token) {
            return Err(PortError::TaskGone("Task Timed Out".into()));
        }
        st.calls.push(call);
        Ok(())
    }
}

#[async_trait]
impl Activities for FakeActivities {
    async fn get_task(
        &self,
        activity_arn: &str,
        _worker_name: &str,
    ) -> Result<Option<ActivityTask>, PortError> {
        Ok(lock(&self.state)
            .tasks
            .get_mut(activity_arn)
            .and_then(VecDeque::pop_front))
    }
    async fn heartbeat(&self, token: &str) -> Result<(), PortError> {
        self.record(token, ActivityCall::Heartbeat(token.to_string()))
    }
    async fn succeed(&self, token: &str, output: &str) -> Result<(), PortError> {
        self.record(
            token,
            ActivityCall::Succeed {
                token: token.to_string(),
                output: output.to_string(),
            },
        )
    }
    async fn fail(&self, token: &str, error: &str, cause: &str) -> Result<(), PortError> {
        self.record(
            token,
            ActivityCall::Fail {
                token: token.to_string(),
                error: error.to_string(),
                cause: cause.to_string(),
            },
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Sleeper

/// Records every delay and returns at once.
#[derive(Debug, Default)]
pub struct RecordingSleeper {
    slept: Mutex<Vec<Duration>>,
}

impl RecordingSleeper {
    pub fn new() -> RecordingSleeper {
        RecordingSleeper::default()
    }
    pub fn slept(&self) -> Vec<Duration> {
        lock(&self.slept).clone()
    }
}

#[async_trait]
impl Sleeper for RecordingSleeper {
    async fn sleep(&self, d: Duration) {
        lock(&self.slept).push(d);
    }
}
