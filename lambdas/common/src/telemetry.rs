//! Logging setup shared by the Lambda binaries: JSON lines, level from Lambda's
//! `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`), no timestamps (CloudWatch adds them).

/// Installs the global tracing subscriber for a Lambda binary.
pub fn init_lambda_tracing() {
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
