//! build-on-aws deploy: the CloudFormation template of a stack, generated from `pipeline.toml`
//! ([`template()`]), the checks every generated template must pass ([`audit`]), and the pipeline
//! bundle shipped with the Lambdas and the workers ([`bundle`](mod@bundle)). `deploy/deploy.sh` drives the
//! `deploy` binary, cargo-lambda, cfn-lint and the AWS CLI.

pub mod audit;
pub mod bundle;
pub mod template;

pub use audit::{iam_problems, isolation_problems, substitution_problems};
pub use bundle::{BundleError, bundle};
pub use template::{ALLOWED_WILDCARD_ACTIONS, TemplateOptions, name_problems, template};
