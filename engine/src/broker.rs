//! In-process activity broker: activity tasks published by executions wait here until a worker
//! claims them (through the HTTP endpoint or directly), and worker answers are routed back to the
//! waiting Task state by task token.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::quotas::{MAX_PAYLOAD_BYTES, valid_name};

/// Errors in the shape of the Step Functions API (`type_name` is the AWS `__type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("Activity does not exist: {0}")]
    ActivityDoesNotExist(String),
    #[error("Invalid Token: {0}")]
    InvalidToken(String),
    #[error("Task Timed Out: {0}")]
    TaskTimedOut(String),
    #[error("Invalid Output: {0}")]
    InvalidOutput(String),
    #[error("Invalid Name: {0}")]
    InvalidName(String),
}

impl BrokerError {
    pub fn type_name(&self) -> &'static str {
        match self {
            BrokerError::ActivityDoesNotExist(_) => "ActivityDoesNotExist",
            BrokerError::InvalidToken(_) => "InvalidToken",
            BrokerError::TaskTimedOut(_) => "TaskTimedOut",
            BrokerError::InvalidOutput(_) => "InvalidOutput",
            BrokerError::InvalidName(_) => "InvalidName",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityInfo {
    pub arn: String,
    pub name: String,
    pub created: DateTime<Utc>,
}

/// A published activity task nobody has claimed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTask {
    pub activity_arn: String,
    pub execution_arn: String,
    pub state_name: String,
    pub scheduled_at: DateTime<Utc>,
}

/// What a worker receives from `GetActivityTask`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub task_token: String,
    /// The task input as a JSON string (as in the SFN API).
    pub input: String,
}

/// Published on [`ActivityBroker::subscribe_claims`] whenever a worker claims a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEvent {
    pub activity_arn: String,
    pub worker_name: String,
    pub execution_arn: String,
    pub state_name: String,
}

/// What the waiting Task state hears about its token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TaskSignal {
    Started { worker_name: String },
    Heartbeat,
    Succeeded(Value),
    Failed { error: String, cause: String },
}

#[derive(Debug)]
struct Pending {
    token: String,
    input: String,
    info: PendingTask,
}

#[derive(Debug)]
enum TokenEntry {
    Open {
        tx: mpsc::UnboundedSender<TaskSignal>,
    },
    /// Timed out, finished or abandoned: answers get `TaskTimedOut` (as AWS does).
    Closed,
}

#[derive(Debug, Default)]
struct State {
    activities: BTreeMap<String, ActivityInfo>,
    pending: BTreeMap<String, VecDeque<Pending>>,
    tokens: HashMap<String, TokenEntry>,
    /// Per activity ARN, where its long polls wait. A published task wakes one of them: with
    /// hundreds of workers polling, waking every poll of every activity for each task would
    /// have them all take the state's lock in turn to find nothing.
    polls: HashMap<String, Arc<Notify>>,
}

#[derive(Debug)]
struct Inner {
    region: String,
    account: String,
    state: Mutex<State>,
    claims: broadcast::Sender<ClaimEvent>,
}

/// The activity broker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ActivityBroker {
    inner: Arc<Inner>,
}

/// Closes its token when dropped (task finished, timed out, or execution stopped).
#[derive(Debug)]
pub(crate) struct TokenGuard {
    broker: ActivityBroker,
    pub(crate) token: String,
}

impl Drop for TokenGuard {
    fn drop(&mut self) {
        self.broker.close(&self.token);
    }
}

impl ActivityBroker {
    pub fn new(region: &str, account: &str) -> Self {
        let (claims, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                region: region.to_string(),
                account: account.to_string(),
                state: Mutex::new(State::default()),
                claims,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ARN of an activity of this name in the engine's region/account.
    pub fn activity_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:activity:{name}",
            self.inner.region, self.inner.account
        )
    }

    /// Creates an activity (idempotent, like AWS `CreateActivity`).
    pub fn create_activity(&self, name: &str) -> Result<ActivityInfo, BrokerError> {
        if !valid_name(name) {
            return Err(BrokerError::InvalidName(name.to_string()));
        }
        let arn = self.activity_arn(name);
        Ok(self.register(&arn, name))
    }

    /// Registers an activity by ARN (done automatically for every activity a started execution
    /// uses).
    pub fn ensure_activity(&self, arn: &str) -> ActivityInfo {
        let name = arn.rsplit(':').next().unwrap_or(arn).to_string();
        self.register(arn, &name)
    }

    fn register(&self, arn: &str, name: &str) -> ActivityInfo {
        self.lock()
            .activities
            .entry(arn.to_string())
            .or_insert_with(|| ActivityInfo {
                arn: arn.to_string(),
                name: name.to_string(),
                created: Utc::now(),
            })
            .clone()
    }

    pub fn describe_activity(&self, arn: &str) -> Result<ActivityInfo, BrokerError> {
        self.lock()
            .activities
            .get(arn)
            .cloned()
            .ok_or_else(|| BrokerError::ActivityDoesNotExist(arn.to_string()))
    }

    /// Every activity, by ARN (like AWS `ListActivities`).
    pub fn list_activities(&self) -> Vec<ActivityInfo> {
        self.lock().activities.values().cloned().collect()
    }

    /// Deletes an activity (like AWS `DeleteActivity`: no error when it does not exist).
    /// Tasks already published for it stay pending until their execution ends.
    pub fn delete_activity(&self, arn: &str) {
        self.lock().activities.remove(arn);
    }

    /// Tasks waiting unclaimed, per activity ARN (activities with none are omitted).
    pub fn pending_tasks(&self) -> BTreeMap<String, Vec<PendingTask>> {
        self.lock()
            .pending
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, q)| (k.clone(), q.iter().map(|p| p.info.clone()).collect()))
            .collect()
    }

    /// A channel of "task claimed by worker NAME" events.
    pub fn subscribe_claims(&self) -> broadcast::Receiver<ClaimEvent> {
        self.inner.claims.subscribe()
    }

    /// Claims the oldest pending task of an activity, if any.
    pub fn try_claim(
        &self,
        activity_arn: &str,
        worker_name: &str,
    ) -> Result<Option<ClaimedTask>, BrokerError> {
        let mut st = self.lock();
        if !st.activities.contains_key(activity_arn) {
            return Err(BrokerError::ActivityDoesNotExist(activity_arn.to_string()));
        }
        loop {
            let Some(p) = st
                .pending
                .get_mut(activity_arn)
                .and_then(VecDeque::pop_front)
            else {
                return Ok(None);
            };
            let Some(TokenEntry::Open { tx }) = st.tokens.get(&p.token) else {
                continue;
            };
            if tx
                .send(TaskSignal::Started {
                    worker_name: worker_name.to_string(),
                })
                .is_err()
            {
                continue;
            }
            let _ = self.inner.claims.send(ClaimEvent {
                activity_arn: activity_arn.to_string(),
                worker_name: worker_name.to_string(),
                execution_arn: p.info.execution_arn.clone(),
                state_name: p.info.state_name.clone(),
            });
            return Ok(Some(ClaimedTask {
                task_token: p.token,
                input: p.input,
            }));
        }
    }

    /// Long poll: waits up to `wait` for a task (AWS `GetActivityTask`). `Ok(None)` = no task.
    pub async fn get_activity_task(
        &self,
        activity_arn: &str,
        worker_name: &str,
        wait: Duration,
    ) -> Result<Option<ClaimedTask>, BrokerError> {
        let deadline = tokio::time::Instant::now() + wait;
        let polls = Arc::clone(
            self.lock()
                .polls
                .entry(activity_arn.to_string())
                .or_default(),
        );
        loop {
            // A wake-up this poll does not use (its call was dropped) passes to another poll.
            let notified = polls.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = self.try_claim(activity_arn, worker_name)? {
                return Ok(Some(t));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    fn signal(&self, token: &str, sig: TaskSignal) -> Result<(), BrokerError> {
        let st = self.lock();
        match st.tokens.get(token) {
            None => Err(BrokerError::InvalidToken(
                "the task token is not valid".into(),
            )),
            Some(TokenEntry::Closed) => Err(BrokerError::TaskTimedOut(
                "the task has timed out or already been closed".into(),
            )),
            Some(TokenEntry::Open { tx }) => tx.send(sig).map_err(|_| {
                BrokerError::TaskTimedOut("the task has timed out or already been closed".into())
            }),
        }
    }

    /// `SendTaskSuccess`: `output` must be a JSON document.
    pub fn send_task_success(&self, token: &str, output: &str) -> Result<(), BrokerError> {
        let v: Value = serde_json::from_str(output)
            .map_err(|e| BrokerError::InvalidOutput(format!("output is not valid JSON: {e}")))?;
        if output.len() > MAX_PAYLOAD_BYTES {
            return Err(BrokerError::InvalidOutput(format!(
                "output is {} bytes, more than {MAX_PAYLOAD_BYTES}",
                output.len()
            )));
        }
        self.signal(token, TaskSignal::Succeeded(v))?;
        self.close(token);
        Ok(())
    }

    /// `SendTaskFailure`.
    pub fn send_task_failure(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), BrokerError> {
        self.signal(
            token,
            TaskSignal::Failed {
                error: error.to_string(),
                cause: cause.to_string(),
            },
        )?;
        self.close(token);
        Ok(())
    }

    /// `SendTaskHeartbeat`.
    pub fn send_task_heartbeat(&self, token: &str) -> Result<(), BrokerError> {
        self.signal(token, TaskSignal::Heartbeat)
    }

    /// Publishes a task; the returned guard closes the token when dropped.
    pub(crate) fn publish(
        &self,
        token: String,
        input: String,
        info: PendingTask,
    ) -> (TokenGuard, mpsc::UnboundedReceiver<TaskSignal>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let arn = info.activity_arn.clone();
        let polls = {
            let mut st = self.lock();
            self.register_locked(&mut st, &arn);
            st.tokens.insert(token.clone(), TokenEntry::Open { tx });
            st.pending
                .entry(arn.clone())
                .or_default()
                .push_back(Pending {
                    token: token.clone(),
                    input,
                    info,
                });
            Arc::clone(st.polls.entry(arn).or_default())
        };
        polls.notify_one();
        (
            TokenGuard {
                broker: self.clone(),
                token,
            },
            rx,
        )
    }

    fn register_locked(&self, st: &mut State, arn: &str) {
        if !st.activities.contains_key(arn) {
            let name = arn.rsplit(':').next().unwrap_or(arn).to_string();
            st.activities.insert(
                arn.to_string(),
                ActivityInfo {
                    arn: arn.to_string(),
                    name,
                    created: Utc::now(),
                },
            );
        }
    }

    /// Closes a token: later answers get `TaskTimedOut`; an unclaimed task is withdrawn.
    pub(crate) fn close(&self, token: &str) {
        let mut st = self.lock();
        if let Some(e) = st.tokens.get_mut(token) {
            *e = TokenEntry::Closed;
        }
        for q in st.pending.values_mut() {
            q.retain(|p| p.token != token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(
        b: &ActivityBroker,
        arn: &str,
        n: usize,
    ) -> (TokenGuard, mpsc::UnboundedReceiver<TaskSignal>) {
        b.publish(
            format!("token-{n}"),
            format!("{{\"n\":{n}}}"),
            PendingTask {
                activity_arn: arn.to_string(),
                execution_arn: "arn:aws:states:r:1:execution:m:e".into(),
                state_name: "Build".into(),
                scheduled_at: Utc::now(),
            },
        )
    }

    type Poll = tokio::task::JoinHandle<Result<Option<ClaimedTask>, BrokerError>>;

    /// A worker's long poll of `arn` (60 s), on a task of its own.
    fn poll(b: &ActivityBroker, arn: &str, worker: &str) -> Poll {
        let (b, arn, worker) = (b.clone(), arn.to_string(), worker.to_string());
        tokio::spawn(async move {
            b.get_activity_task(&arn, &worker, Duration::from_secs(60))
                .await
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_tasks_reaches_as_many_waiting_polls_and_no_poll_of_another_activity() {
        let b = ActivityBroker::new("r", "1");
        let build = b.create_activity("Build").unwrap().arn;
        let test = b.create_activity("Test").unwrap().arn;
        let builds: Vec<_> = (0..20)
            .map(|i| poll(&b, &build, &format!("b{i}")))
            .collect();
        let other = poll(&b, &test, "t");
        // Every poll is waiting before the tasks come.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let guards: Vec<_> = (0..20).map(|n| task(&b, &build, n)).collect();
        let mut got = vec![];
        for p in builds {
            let t = tokio::time::timeout(Duration::from_secs(5), p)
                .await
                .expect("every waiting poll gets a task of the burst, none waits out its 60 s")
                .unwrap()
                .unwrap()
                .expect("a task");
            got.push(t.task_token);
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 20, "each task to one poll");
        assert!(
            !other.is_finished(),
            "a Test poll is not answered by Build tasks"
        );
        other.abort();
        drop(guards);
    }

    #[tokio::test]
    async fn a_poll_dropped_after_its_wake_up_passes_the_task_to_another() {
        let b = ActivityBroker::new("r", "1");
        let build = b.create_activity("Build").unwrap().arn;
        let first = poll(&b, &build, "first");
        tokio::task::yield_now().await;
        let second = poll(&b, &build, "second");
        tokio::task::yield_now().await;
        // The first poll's caller goes away (a worker's connection drops) as the task comes: on
        // this one-thread runtime it is woken but never runs again.
        let _g = task(&b, &build, 1);
        first.abort();
        let t = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the wake-up passed on")
            .unwrap()
            .unwrap()
            .expect("a task");
        assert_eq!(t.input, "{\"n\":1}");
    }
}
