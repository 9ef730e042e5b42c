//! Fault injection for local runs: seeded, so a chaos run can be replayed.

use std::sync::Mutex;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

/// Rates (0.0–1.0) of each injected fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Fraction of tasks whose worker is killed (SIGKILL) while the task runs.
    pub kill_worker: f64,
    /// Fraction of launch requests refused with RequestLimitExceeded.
    pub throttle_launch: f64,
    /// Fraction of launch requests refused with InsufficientInstanceCapacity.
    pub no_capacity: f64,
    /// Fraction of Lambda invocations that fail with Lambda.ServiceException.
    pub fail_lambda: f64,
    /// Fraction of launch requests refused for good (InvalidAMIID.NotFound), as a bad AMI would.
    #[serde(default)]
    pub bad_launch: f64,
    /// Fraction of launched instances that boot dead: the instance runs but its worker never
    /// starts (a failed download, a worker that cannot start), until something terminates it.
    #[serde(default)]
    pub dead_boot: f64,
    /// The first N instances launched boot dead, whatever `dead_boot` says (deterministic
    /// tests of the boot deadline).
    #[serde(default)]
    pub dead_boot_first: u32,
    pub seed: u64,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }

    pub fn any(&self) -> bool {
        self.kill_worker > 0.0
            || self.throttle_launch > 0.0
            || self.no_capacity > 0.0
            || self.fail_lambda > 0.0
            || self.bad_launch > 0.0
            || self.dead_boot > 0.0
            || self.dead_boot_first > 0
    }
}

/// A seeded coin shared by the fault sites.
pub struct Dice {
    rng: Mutex<StdRng>,
}

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// True with probability `rate`.
    pub fn roll(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let x: f64 = self.rng.lock().expect("dice lock").random();
        x < rate
    }

    /// A value in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        self.rng.lock().expect("dice lock").random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rolls_and_rates_are_respected() {
        let a = Dice::new(7);
        let b = Dice::new(7);
        let ra: Vec<bool> = (0..100).map(|_| a.roll(0.3)).collect();
        let rb: Vec<bool> = (0..100).map(|_| b.roll(0.3)).collect();
        assert_eq!(ra, rb);
        let hits = ra.iter().filter(|x| **x).count();
        assert!((15..=45).contains(&hits), "{hits} hits of 100 at rate 0.3");
        assert!(!a.roll(0.0));
    }
}
