//! What every Lambda binary shares: JSON-line logging and the error shape Step Functions matches.

use boa_core::NamedError;

/// Installs the global tracing subscriber for a Lambda binary: JSON lines, level from Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`), no timestamps (CloudWatch adds them).
pub fn init_tracing() {
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

/// What every Lambda of the stack loads at start-up, once: tracing, its configuration from the
/// environment, its pipeline (with the scripts bundled beside it) and the AWS SDK configuration.
pub struct StackLambda {
    pub cfg: boa_core::stack::StackConfig,
    pub pipeline: boa_core::Pipeline,
    pub aws: aws_config::SdkConfig,
}

impl StackLambda {
    pub async fn load() -> Result<StackLambda, lambda_runtime::Error> {
        init_tracing();
        let cfg = boa_core::stack::StackConfig::from_env()?;
        let pipeline = boa_core::stack::load_pipeline(&boa_core::stack::pipeline_path())?;
        let aws = crate::adapters::load_sdk_config().await;
        Ok(StackLambda { cfg, pipeline, aws })
    }

    /// S3 with the stack's bucket owner on calls to its artifact bucket.
    pub fn objects(&self) -> crate::adapters::S3Objects {
        crate::adapters::S3Objects::for_stack(&self.aws, &self.cfg)
    }
}

/// The Lambda error for a named error: its stable name becomes the `errorType` that a state's
/// `Retry`/`Catch` `ErrorEquals` matches.
pub fn diagnostic(e: NamedError) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic {
        error_type: e.name.as_str().to_string(),
        error_message: e.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_carries_the_stable_name() {
        let d = diagnostic(NamedError::input("unknown token 'foo'"));
        assert_eq!(d.error_type, "Input.Invalid");
        assert_eq!(d.error_message, "unknown token 'foo'");
    }
}
