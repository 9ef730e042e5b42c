//! The check-for-failures Lambda: wires tracing to [`check_for_failures::handle`].

use lambda_runtime::service_fn;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    boa_aws::lambda::init_tracing();
    lambda_runtime::run(service_fn(check_for_failures::lambda_handler)).await
}
