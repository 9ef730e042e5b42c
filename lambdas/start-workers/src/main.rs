//! The start-workers Lambda: wires tracing, AWS clients and the pipeline to [`start_workers::handle`].

use boa_aws::adapters::{Ec2Fleet, S3Objects, SfnExecutions};
use boa_aws::backoff::TokioSleeper;
use boa_aws::fleet_cache::CachedFleet;
use boa_aws::lambda::StackLambda;
use lambda_runtime::{LambdaEvent, service_fn};
use start_workers::{Event, Ports};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let StackLambda { cfg, pipeline, aws } = StackLambda::load().await?;
    // One view of the fleet per activity per few seconds, shared by the invocations this warm
    // container serves; its own launches are in it at once.
    let fleet =
        CachedFleet::for_time_scale(std::sync::Arc::new(Ec2Fleet::new(&aws)), cfg.time_scale);
    let objects = S3Objects::for_stack(&aws, &cfg);
    let sleeper = TokioSleeper;
    let executions = SfnExecutions::new(&aws);
    let ports = Ports {
        fleet: &fleet,
        objects: &objects,
        sleeper: &sleeper,
        executions: Some(&executions),
    };
    let (ports, cfg, pipeline) = (&ports, &cfg, &pipeline);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Event>| async move {
        start_workers::lambda_handler(ev, ports, cfg, pipeline).await
    }))
    .await
}
