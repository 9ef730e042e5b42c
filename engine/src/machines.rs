//! The state machines an engine knows: created through the API (`CreateStateMachine`) or
//! registered by an embedder's [`crate::Engine::start_execution`], with the definition each
//! execution started from (for `DescribeStateMachineForExecution`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A state machine, like AWS `DescribeStateMachine`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachineInfo {
    pub arn: String,
    pub name: String,
    /// The definition as given (JSON text).
    pub definition: Arc<str>,
    pub role_arn: String,
    /// `STANDARD` (the engine runs every machine as a Standard workflow).
    pub kind: String,
    pub creation_date: DateTime<Utc>,
    /// Set by each `UpdateStateMachine`.
    pub update_date: Option<DateTime<Utc>>,
    /// Changes with each definition update.
    pub revision_id: String,
}

/// What `DescribeStateMachineForExecution` answers: the machine as the execution started it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionMachine {
    pub machine: StateMachineInfo,
    pub definition: Arc<str>,
    pub revision_id: String,
}

#[derive(Default)]
pub(crate) struct Machines {
    by_arn: Mutex<BTreeMap<String, StateMachineInfo>>,
    /// Execution ARN → (definition, revision) it started with.
    started_with: Mutex<HashMap<String, (Arc<str>, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Outcome of [`Machines::create`].
pub(crate) enum Created {
    New(StateMachineInfo),
    /// Same name and definition: the existing machine (CreateStateMachine is idempotent).
    Same(StateMachineInfo),
    /// Same name, other definition.
    Conflict,
}

impl Machines {
    pub(crate) fn create(&self, info: StateMachineInfo) -> Created {
        let mut g = lock(&self.by_arn);
        match g.get(&info.arn) {
            Some(old) if old.definition == info.definition && old.kind == info.kind => {
                Created::Same(old.clone())
            }
            Some(_) => Created::Conflict,
            None => {
                g.insert(info.arn.clone(), info.clone());
                Created::New(info)
            }
        }
    }

    /// Creates the machine, or gives it this definition (an embedder starting an execution of
    /// a definition it passes in). Returns the revision.
    pub(crate) fn upsert(&self, arn: &str, name: &str, definition: Arc<str>) -> String {
        let mut g = lock(&self.by_arn);
        match g.get_mut(arn) {
            Some(m) if m.definition == definition => m.revision_id.clone(),
            Some(m) => {
                m.definition = definition;
                m.update_date = Some(Utc::now());
                m.revision_id = uuid::Uuid::new_v4().to_string();
                m.revision_id.clone()
            }
            None => {
                let info = StateMachineInfo {
                    arn: arn.to_string(),
                    name: name.to_string(),
                    definition,
                    role_arn: String::new(),
                    kind: "STANDARD".into(),
                    creation_date: Utc::now(),
                    update_date: None,
                    revision_id: uuid::Uuid::new_v4().to_string(),
                };
                let rev = info.revision_id.clone();
                g.insert(arn.to_string(), info);
                rev
            }
        }
    }

    pub(crate) fn get(&self, arn: &str) -> Option<StateMachineInfo> {
        lock(&self.by_arn).get(arn).cloned()
    }

    pub(crate) fn list(&self) -> Vec<StateMachineInfo> {
        lock(&self.by_arn).values().cloned().collect()
    }

    /// Applies `f` to the machine; None if it does not exist.
    pub(crate) fn update(
        &self,
        arn: &str,
        f: impl FnOnce(&mut StateMachineInfo),
    ) -> Option<StateMachineInfo> {
        let mut g = lock(&self.by_arn);
        let m = g.get_mut(arn)?;
        f(m);
        Some(m.clone())
    }

    pub(crate) fn delete(&self, arn: &str) {
        lock(&self.by_arn).remove(arn);
    }

    pub(crate) fn started(&self, execution_arn: &str, definition: Arc<str>, revision: String) {
        lock(&self.started_with).insert(execution_arn.to_string(), (definition, revision));
    }

    pub(crate) fn started_with(&self, execution_arn: &str) -> Option<(Arc<str>, String)> {
        lock(&self.started_with).get(execution_arn).cloned()
    }
}
