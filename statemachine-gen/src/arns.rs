//! The resources the definition calls: Lambda functions and Step Functions activities, either as
//! CloudFormation `DefinitionSubstitutions` placeholders or as concrete ARNs.

use boa_core::Pipeline;

/// The Lambda functions of a build-on-aws stack, by short name (the crate name).
pub const LAMBDAS: [&str; 6] = [
    "parse-input",
    "start-workers",
    "health-check",
    "record-result",
    "normalize-results",
    "check-for-failures",
];

/// The artifact bucket of a definition with [`Arns::Concrete`] (the local stack's).
pub const CONCRETE_BUCKET: &str = "build-on-aws-local";
/// The placeholders of the artifact bucket and prefix (CloudFormation parameters of those names).
pub const ARTIFACT_BUCKET_KEY: &str = "ArtifactBucket";
pub const ARTIFACT_PREFIX_KEY: &str = "ArtifactPrefix";

/// How resources are written into the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arns {
    /// `${LambdaParseInput}`, `${LambdaStartWorkers}`…, `${Activity<Step>}` placeholders, for
    /// CloudFormation `DefinitionSubstitutions`.
    Placeholders,
    /// Concrete ARNs: lambda = `arn:aws:lambda:{region}:{account}:function:build-on-aws-{pipeline}-{lambda}`,
    /// activity = `arn:aws:states:{region}:{account}:activity:build-on-aws-{pipeline}-{Step}`.
    Concrete { region: String, account: String },
}

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// A Lambda function by short name (one of [`LAMBDAS`]).
    Lambda(String),
    /// The activity of a step, by step name.
    Activity(String),
    /// A template parameter of that name (the artifact bucket and prefix, which a Distributed
    /// Map's ResultWriter names).
    Parameter(String),
}

/// The Lambdas the state machine itself calls (health-check runs on a schedule, not from it).
pub(crate) const MACHINE_LAMBDAS: [&str; 5] = [
    "parse-input",
    "start-workers",
    "record-result",
    "normalize-results",
    "check-for-failures",
];

impl Arns {
    /// The placeholder key of a Lambda, e.g. `LambdaParseInput`.
    pub fn lambda_key(name: &str) -> String {
        format!("Lambda{}", crate::camel(name))
    }

    /// The placeholder key of a step's activity, e.g. `ActivityMakeSourceTarball`.
    pub fn activity_key(step: &str) -> String {
        format!("Activity{step}")
    }

    /// The resource of a Lambda task. `name` is one of [`LAMBDAS`].
    pub fn lambda(&self, p: &Pipeline, name: &str) -> String {
        match self {
            Arns::Placeholders => format!("${{{}}}", Arns::lambda_key(name)),
            Arns::Concrete { region, account } => format!(
                "arn:aws:lambda:{region}:{account}:function:build-on-aws-{}-{name}",
                p.name
            ),
        }
    }

    /// The bucket of the stack's records (a Distributed Map's ResultWriter writes there):
    /// `${ArtifactBucket}`, or [`CONCRETE_BUCKET`].
    pub fn records_bucket(&self) -> String {
        match self {
            Arns::Placeholders => format!("${{{ARTIFACT_BUCKET_KEY}}}"),
            Arns::Concrete { .. } => CONCRETE_BUCKET.into(),
        }
    }

    /// The key prefix of the stack's records in [`Arns::records_bucket`], ending in `/` when not
    /// empty: `${ArtifactPrefix}/`, or nothing.
    pub fn records_prefix(&self) -> String {
        match self {
            Arns::Placeholders => format!("${{{ARTIFACT_PREFIX_KEY}}}/"),
            Arns::Concrete { .. } => String::new(),
        }
    }

    /// The resource of a step's activity Task.
    pub fn activity(&self, p: &Pipeline, step: &str) -> String {
        match self {
            Arns::Placeholders => format!("${{{}}}", Arns::activity_key(step)),
            Arns::Concrete { region, account } => format!(
                "arn:aws:states:{region}:{account}:activity:build-on-aws-{}-{step}",
                p.name
            ),
        }
    }

    /// Every placeholder key the definition generated with [`Arns::Placeholders`] uses, with what it
    /// stands for, so deploy can map each key to a resource: the four Lambdas the machine calls,
    /// then one activity per step in pipeline order.
    pub fn placeholder_keys(p: &Pipeline) -> Vec<(String, Target)> {
        let mut out: Vec<(String, Target)> = MACHINE_LAMBDAS
            .iter()
            .map(|l| (Arns::lambda_key(l), Target::Lambda(l.to_string())))
            .collect();
        out.extend(p.steps.iter().map(|s| {
            (
                Arns::activity_key(&s.name),
                Target::Activity(s.name.clone()),
            )
        }));
        if p.outer_axis().distributed {
            out.extend(
                [ARTIFACT_BUCKET_KEY, ARTIFACT_PREFIX_KEY]
                    .map(|k| (k.to_string(), Target::Parameter(k.to_string()))),
            );
        }
        out
    }
}
