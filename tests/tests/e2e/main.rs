//! The integration tests of `tests`, in one binary (one link of the dependency tree, not one per file).

mod cli_aws_mode;
mod distributed;
mod local_api;
mod local_chaos;
mod local_e2e;
mod local_product;
mod local_stub;
mod lookahead;
mod moto_ec2;
mod moto_errors;
mod moto_s3;
mod moto_sfn;
mod report_vs_engine;
