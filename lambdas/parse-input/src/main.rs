//! The parse-input Lambda: wires tracing and the pipeline to [`parse_input::handle`].

use boa_core::stack::{load_pipeline, pipeline_path};
use lambda_runtime::{LambdaEvent, service_fn};
use parse_input::ParseInputEvent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    boa_aws::lambda::init_tracing();
    let pipeline = load_pipeline(&pipeline_path())?;
    let pipeline = &pipeline;
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<ParseInputEvent>| async move {
            parse_input::lambda_handler(ev, pipeline, chrono::Utc::now().date_naive()).await
        },
    ))
    .await
}
