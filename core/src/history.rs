//! Duration history: how long each task took, per (step, axis values), so provisioning can start
//! a step's workers before its dependencies finish.
//!
//! One small JSON object per task, `durations/<Step>/<item key>.json` under the stack's records
//! prefix (the artifact bucket; a local run's objects folder) — deliberately NOT under
//! `runs/<execution>/`, since history must outlive runs. Each object keeps the last
//! [`KEPT_SAMPLES`] elapsed times of SUCCEEDED tasks, in pipeline seconds (a local run's wall
//! seconds times its time scale, so history is comparable across time scales). Its expected
//! duration is the median of the kept samples; before any history exists it is the step's
//! `expected_duration` setting, else [`DEFAULT_EXPECTED_DURATION`].
//!
//! Beside it, per step, the hand-over history (`durations/hand-over/<Step>.json`, same form):
//! how long its tasks' `Prepare` took, from the state entered to the task ready to be handed to
//! a worker (the Lambda's start, its reads and its launches). Lookahead starts a step's workers
//! later by a share of its median, so that they come up about when the task is handed out, not
//! when the tasks it waits for end. On AWS it is seconds against a boot of a minute; in local mode it is real
//! time multiplied by the time scale, and under a burst of hundreds of `Prepare` calls on two
//! cores a large share of a boot.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::input::{Item, item_key};
use crate::pipeline::Step;

/// How many elapsed times a history entry keeps (the newest ones).
pub const KEPT_SAMPLES: usize = 5;

/// A step's expected task duration when it has no history and no `expected_duration` setting.
pub const DEFAULT_EXPECTED_DURATION: Duration = Duration::from_secs(10 * 60);

/// The key (under the stack's records prefix) of a task's duration history:
/// `durations/<step>/<item>.json`.
pub fn duration_key(step: &str, item: &Item) -> String {
    format!("durations/{step}/{}.json", item_key(item))
}

/// The key (under the stack's records prefix) of a step's hand-over history:
/// `durations/hand-over/<step>.json` (step names are CamelCase, so no step's folder is called
/// `hand-over`).
pub fn hand_over_key(step: &str) -> String {
    format!("durations/hand-over/{step}.json")
}

/// One (step, axis values)'s history of elapsed times (or one step's hand-over times).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DurationHistory {
    /// Pipeline seconds of the last successful runs, oldest first (at most [`KEPT_SAMPLES`]).
    pub elapsed_s: Vec<f64>,
}

impl DurationHistory {
    /// Adds one run's elapsed time, dropping the oldest beyond [`KEPT_SAMPLES`]. A negative or
    /// non-finite value is ignored.
    pub fn push(&mut self, elapsed_s: f64) {
        if !(elapsed_s.is_finite() && elapsed_s >= 0.0) {
            return;
        }
        self.elapsed_s.push(elapsed_s);
        let extra = self.elapsed_s.len().saturating_sub(KEPT_SAMPLES);
        self.elapsed_s.drain(..extra);
    }

    /// Reads a stored entry.
    pub fn from_json(body: &[u8]) -> Result<DurationHistory, String> {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    }

    /// The stored form of an entry.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a duration history serialises")
    }

    /// The median of the kept samples (the mean of the two middle ones for an even count), or
    /// `None` when there are none (or it is too large to be a duration).
    pub fn median(&self) -> Option<Duration> {
        let mut v: Vec<f64> = self
            .elapsed_s
            .iter()
            .copied()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let m = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        // An entry is written by us, but read back from a bucket: a value too large for a
        // duration (edited by hand, corrupted) is no estimate, not a panic.
        Duration::try_from_secs_f64(m).ok()
    }
}

/// A step's expected task duration before any history: its `expected_duration` setting, else
/// [`DEFAULT_EXPECTED_DURATION`].
pub fn default_expected_duration(step: &Step) -> Duration {
    step.expected_duration.unwrap_or(DEFAULT_EXPECTED_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_samples_and_takes_their_median() {
        let mut h = DurationHistory::default();
        assert_eq!(h.median(), None);
        for x in [100.0, 1.0, 2.0, 3.0, 4.0, 50.0] {
            h.push(x);
        }
        assert_eq!(h.elapsed_s, vec![1.0, 2.0, 3.0, 4.0, 50.0]);
        assert_eq!(h.median(), Some(Duration::from_secs(3)));
        h.push(f64::NAN);
        h.push(-1.0);
        assert_eq!(h.elapsed_s.len(), KEPT_SAMPLES);
        let even = DurationHistory {
            elapsed_s: vec![4.0, 2.0],
        };
        assert_eq!(even.median(), Some(Duration::from_secs(3)));
        let absurd = DurationHistory::from_json(br#"{"elapsed_s": [1e30]}"#).unwrap();
        assert_eq!(absurd.median(), None);
    }

    #[test]
    fn the_key_is_outside_every_run() {
        let item: Item = [("version".to_string(), "4.1.0".to_string())].into();
        let k = duration_key("Build", &item);
        assert!(k.starts_with("durations/Build/"), "{k}");
        assert!(k.ends_with(".json"), "{k}");
        assert!(!k.contains("runs/"), "{k}");
    }
}
