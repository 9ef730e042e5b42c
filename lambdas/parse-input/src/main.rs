//! The parse-input Lambda: wires tracing and the pipeline to [`parse_input::handle`].

use common::launch::{load_pipeline, pipeline_path};
use lambda_runtime::{LambdaEvent, service_fn};
use parse_input::ParseInputEvent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    let pipeline = load_pipeline(&pipeline_path())?;
    let pipeline = &pipeline;
    lambda_runtime::run(service_fn(
        move |ev: LambdaEvent<ParseInputEvent>| async move {
            parse_input::lambda_handler(ev, pipeline, chrono::Utc::now().date_naive()).await
        },
    ))
    .await
}

fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_current_span(false)
        .without_time()
        .with_target(false)
        .init();
}
