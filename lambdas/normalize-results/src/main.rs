//! The normalize-results Lambda: wires tracing, S3 and the pipeline to [`normalize_results::handle`].

use boa_aws::adapters::S3Objects;
use boa_aws::lambda::StackLambda;
use lambda_runtime::{LambdaEvent, service_fn};
use normalize_results::NormalizeEvent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let StackLambda { cfg, pipeline, aws } = StackLambda::load().await?;
    let objects = S3Objects::for_stack(&aws, &cfg);
    let (pipeline, objects, cfg) = (&pipeline, &objects, &cfg);
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<NormalizeEvent>| async move {
            normalize_results::lambda_handler(ev, pipeline, objects, cfg).await
        },
    ))
    .await
}
