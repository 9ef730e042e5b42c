//! The start-workers Lambda: wires tracing, AWS clients and the pipeline to [`start_workers::handle`].

use boa_aws::adapters::{Ec2Fleet, S3Objects};
use boa_aws::backoff::TokioSleeper;
use boa_aws::lambda::StackLambda;
use boa_core::task::PrepareRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use start_workers::Ports;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let StackLambda { cfg, pipeline, aws } = StackLambda::load().await?;
    let fleet = Ec2Fleet::new(&aws);
    let objects = S3Objects::for_stack(&aws, &cfg);
    let sleeper = TokioSleeper;
    let ports = Ports {
        fleet: &fleet,
        objects: &objects,
        sleeper: &sleeper,
    };
    let (ports, cfg, pipeline) = (&ports, &cfg, &pipeline);
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<PrepareRequest>| async move {
            start_workers::lambda_handler(ev, ports, cfg, pipeline).await
        },
    ))
    .await
}
