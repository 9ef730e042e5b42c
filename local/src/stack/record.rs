//! A local run's record, saved so `build-on-aws status` can show it again: `runs/<name>.json`
//! (written when the run starts, as RUNNING, and again when it ends) next to the run's own
//! folder `runs/<name>/` (logs, tags, work, objects, and `history.json`, the execution history).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fleet::{FleetCounters, InstanceSpan};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The execution's name (also the name of the run's folder).
    pub name: String,
    pub execution_arn: String,
    /// SUCCEEDED, FAILED, TIMEDOUT, ABORTED.
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub normalized: Option<boa_core::NormalizedResults>,
    #[serde(with = "counts")]
    pub counts: engine::Counts,
    #[serde(default)]
    pub fleet: FleetCounters,
    /// When the run started and ended.
    #[serde(default)]
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub ended: Option<chrono::DateTime<chrono::Utc>>,
    /// The run's time scale (pipeline time = real time × this).
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Lambda invocations by function.
    #[serde(default)]
    pub lambda_invocations: std::collections::BTreeMap<String, u64>,
    /// The process that runs it (to tell a RUNNING record whose process is gone).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Each worker instance's life (launch, worker running, gone).
    #[serde(default)]
    pub instances: Vec<InstanceSpan>,
    /// The Step Functions API requests the run's engine answered, by operation (see
    /// `engine::Engine::api_calls`): the CLI starts and follows a local run through the API.
    #[serde(default)]
    pub api_calls: std::collections::BTreeMap<String, u64>,
}

fn one() -> f64 {
    1.0
}

/// A run's own folder: `<run_dir>/runs/<name>`.
pub fn run_folder(run_dir: &Path, name: &str) -> PathBuf {
    runs_dir(run_dir).join(name)
}

mod counts {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    #[derive(Serialize, Deserialize)]
    struct C {
        state_transitions: u64,
        history_events: u64,
        max_payload_bytes: usize,
    }
    pub fn serialize<S: Serializer>(c: &engine::Counts, s: S) -> Result<S::Ok, S::Error> {
        C {
            state_transitions: c.state_transitions,
            history_events: c.history_events,
            max_payload_bytes: c.max_payload_bytes,
        }
        .serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<engine::Counts, D::Error> {
        let c = C::deserialize(d)?;
        Ok(engine::Counts {
            state_transitions: c.state_transitions,
            history_events: c.history_events,
            max_payload_bytes: c.max_payload_bytes,
        })
    }
}

fn runs_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("runs")
}

impl RunRecord {
    /// A record of a run that is starting (status RUNNING).
    pub fn starting(name: &str, execution_arn: &str, time_scale: f64) -> RunRecord {
        RunRecord {
            name: name.to_string(),
            execution_arn: execution_arn.to_string(),
            status: "RUNNING".into(),
            error: None,
            cause: None,
            normalized: None,
            counts: engine::Counts::default(),
            fleet: FleetCounters::default(),
            started: Some(chrono::Utc::now()),
            ended: None,
            time_scale,
            lambda_invocations: Default::default(),
            pid: Some(std::process::id()),
            instances: vec![],
            api_calls: Default::default(),
        }
    }

    /// Writes `runs/<name>.json` (atomically: a reader never sees half a record).
    pub fn save(&self, run_dir: &Path) -> std::io::Result<PathBuf> {
        let dir = runs_dir(run_dir);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.name));
        let tmp = dir.join(format!(".{}.json.tmp", self.name));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// The status to show: a RUNNING record whose process is gone was killed before it could
    /// say how it ended.
    pub fn shown_status(&self) -> String {
        let gone = self.pid.is_some_and(|p| {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p as i32), None).is_err()
        });
        if self.status == "RUNNING" && gone {
            "KILLED".into()
        } else {
            self.status.clone()
        }
    }

    /// Saves the execution history next to the record (`runs/<name>/history.json`).
    pub fn save_history<T: Serialize>(&self, run_dir: &Path, history: &T) -> std::io::Result<()> {
        let dir = run_folder(run_dir, &self.name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("history.json"), serde_json::to_vec(history)?)
    }

    /// The execution history saved with [`RunRecord::save_history`], if any.
    pub fn load_history<T: serde::de::DeserializeOwned>(&self, run_dir: &Path) -> Option<T> {
        let text =
            std::fs::read_to_string(run_folder(run_dir, &self.name).join("history.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Every run record of the folder, oldest first.
    pub fn list(run_dir: &Path) -> Vec<RunRecord> {
        let mut out: Vec<RunRecord> = std::fs::read_dir(runs_dir(run_dir))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .filter_map(|p| serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok())
            .collect();
        out.sort_by(|a: &RunRecord, b: &RunRecord| (a.started, &a.name).cmp(&(b.started, &b.name)));
        out
    }

    /// Loads a run by name, or the latest one.
    pub fn load(run_dir: &Path, name: Option<&str>) -> Result<RunRecord, String> {
        let dir = runs_dir(run_dir);
        let path = match name {
            Some(n) => dir.join(format!("{n}.json")),
            None => std::fs::read_dir(&dir)
                .map_err(|_| {
                    format!(
                        "no local runs in {} yet: start one with `build-on-aws --local`",
                        dir.display()
                    )
                })?
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file() && e.path().extension().is_some_and(|x| x == "json"))
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
                .map(|e| e.path())
                .ok_or_else(|| format!("no local runs in {} yet", dir.display()))?,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "no run record at {} ({e}); list them with `ls {}`",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a run record: {e}", path.display()))
    }
}
