//! `local`: build-on-aws' local stack on the embedded [`engine`]: the generated state machine
//! runs in the engine, the Lambda handlers run in-process, "EC2 instances" are local `worker`
//! processes, the objects bucket is a folder, and faults can be injected.
//!
//! - [`stack`]: the whole local stack (engine, in-process Lambdas, worker processes, health check),
//!   its fleet, objects folder, faults and run record.
//!
//! Every wait and lifecycle constant is divided by [`stack::LocalOptions::time_scale`].

pub mod stack;
