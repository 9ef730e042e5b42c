//! build-on-aws against AWS: the ports the Lambdas, the worker and the CLI talk through
//! ([`ports`]), their only adapters over the real `aws-sdk-*` clients ([`adapters`]), the launch
//! logic start-workers and the health check share ([`launch`]), Lambda plumbing ([`lambda`]), the
//! duration history ([`durations`]), a short-lived shared view of the fleet ([`fleet_cache`])
//! and, with the `fakes` feature, in-memory fakes of every port for tests (module `fakes`).

pub mod adapters;
pub mod backoff;
pub mod durations;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod fleet_cache;
pub mod lambda;
pub mod launch;
pub mod ports;
