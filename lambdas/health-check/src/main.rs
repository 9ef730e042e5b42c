//! The health-check Lambda (EventBridge Scheduler, `rate(5 minutes)`): wires tracing, AWS clients
//! and the pipeline to [`health_check::handle`]. The scheduler's event carries the round's
//! scheduled time (`{"round": "<aws.scheduler.scheduled-time>"}`), which seeds its ClientTokens.

use boa_aws::adapters::{Ec2Fleet, S3Objects, SfnExecutions};
use boa_aws::backoff::TokioSleeper;
use boa_aws::lambda::StackLambda;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let StackLambda { cfg, pipeline, aws } = StackLambda::load().await?;
    let fleet = Ec2Fleet::new(&aws);
    let executions = SfnExecutions::new(&aws);
    let objects = S3Objects::for_stack(&aws, &cfg);
    let sleeper = TokioSleeper;
    let (fleet, executions, objects, sleeper, cfg, pipeline) =
        (&fleet, &executions, &objects, &sleeper, &cfg, &pipeline);
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<serde_json::Value>| async move {
            let round = health_check::round_of(&ev.payload, &ev.context.request_id);
            health_check::lambda_handler(executions, fleet, objects, sleeper, cfg, pipeline, &round)
                .await
        },
    ))
    .await
}
