//! The normalize-results Lambda: wires tracing and the pipeline to [`normalize_results::handle`].

use boa_core::stack::{load_pipeline, pipeline_path};
use lambda_runtime::{LambdaEvent, service_fn};
use normalize_results::NormalizeEvent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    boa_aws::lambda::init_tracing();
    let pipeline = load_pipeline(&pipeline_path())?;
    let pipeline = &pipeline;
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<NormalizeEvent>| async move {
            normalize_results::lambda_handler(ev, pipeline).await
        },
    ))
    .await
}
