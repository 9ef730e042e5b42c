//! The start-workers Lambda: wires tracing, AWS clients and the pipeline to [`start_workers::handle`].

use common::aws::{Ec2Fleet, S3Objects};
use common::launch::{StackConfig, TokioSleeper, load_pipeline, pipeline_path};
use common::task::PrepareRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use start_workers::Ports;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init_lambda_tracing();
    let cfg = StackConfig::from_env()?;
    let pipeline = load_pipeline(&pipeline_path())?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let fleet = Ec2Fleet(aws_sdk_ec2::Client::new(&aws));
    let objects = S3Objects(aws_sdk_s3::Client::new(&aws));
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
