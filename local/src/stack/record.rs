//! A finished local run, saved so `build-on-aws status` can show it again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fleet::FleetCounters;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub name: String,
    pub execution_arn: String,
    /// SUCCEEDED, FAILED, TIMEDOUT, ABORTED.
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub normalized: Option<boa_core::NormalizedResults>,
    #[serde(with = "counts")]
    pub counts: engine::Counts,
    #[serde(skip_deserializing)]
    pub fleet: FleetCounters,
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
    pub fn save(&self, run_dir: &Path) -> std::io::Result<PathBuf> {
        let dir = runs_dir(run_dir);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.name));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
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
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
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
