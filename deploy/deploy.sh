#!/usr/bin/env bash
# build-on-aws: build, check and deploy a pipeline's stack in one command. Run with --help.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lambdas=(parse-input start-workers health-check record-result normalize-results check-for-failures)

usage() {
  cat <<'EOF'
deploy/deploy.sh — build, check and deploy a build-on-aws stack in one command.

  deploy/deploy.sh --dry-run            build + zip + generate + lint into dist/ (no AWS needed)
  deploy/deploy.sh --subnets subnet-0abc1234
                                        ...then upload to S3, show the change set, ask, deploy

What it does, in order:
  1. builds the five Lambdas with cargo-lambda (.tools/venv/bin/cargo-lambda; it cross-links with
     the zig from .tools/venv, so no system toolchain is needed) and zips each `bootstrap` together
     with pipeline.toml and the step scripts (the Lambdas read BOA_PIPELINE_FILE=/var/task/pipeline.toml);
  2. builds the worker binary (the agent each EC2 worker downloads), in the same cargo-lambda
     invocation when it has the Lambdas' architecture (the dependency tree is compiled once);
  3. generates the CloudFormation template and the state machine definition from the pipeline
     (`cargo run -p deploy -- template`) and lints the template with .tools/venv/bin/cfn-lint;
  4. (not with --dry-run) uploads everything to the artifact bucket under content-addressed keys,
     creates a change set, prints it, asks before executing it (--yes skips the question), waits,
     and prints the stack outputs and the console URL.
  Artifacts are left in dist/ (gitignored): dist/lambda/<name>.zip, dist/worker/worker,
  dist/pipeline/, dist/template.json, dist/statemachine.json.

Options:
  --dry-run                 Build, zip, generate and lint only. Needs no AWS credentials (CI runs it).
  --yes                     Execute the change set without asking.
  --pipeline FILE           Pipeline file (default: pipeline.toml at the repository root).
  --stack NAME              Stack name (default: build-on-aws-<pipeline name>).
  --region REGION           AWS region (default: the AWS CLI's: AWS_REGION / profile).
  --bucket NAME             Artifact bucket; created (encrypted, public access blocked) if missing.
                            Default: build-on-aws-artifacts-<account>-<region>.
  --prefix PREFIX           Key prefix in the bucket (default: build-on-aws/<pipeline name>).
  --arch x86_64|arm64       Lambda architecture (default x86_64). arm64 needs the Rust target:
                            rustup target add aarch64-unknown-linux-gnu
  --worker-arch x86_64|arm64  Worker binary architecture; must match the instance types
                            (default x86_64, as c7i/c6i/m7i).
  --subnets a,b             Default worker subnets (steps may name their own).
  --security-groups a,b     Default worker security groups.
  --create-worker-security-group VPC_ID
                            Create an egress-only worker security group in VPC_ID.
  --worker-ami AMI          Override every step's AMI (ami-… or resolve:ssm:/path).
  --log-retention-days N    CloudWatch Logs retention (default 30).
  --profile-dev             Build with the dev profile (no --release): what CI uses to reuse its
                            cached build. Also on when CI=true or BOA_DEPLOY_PROFILE=dev.
                            Real deploys should use release builds (the default otherwise).
  --prebuilt DIR            Package the Lambda and worker binaries already built in DIR (e.g.
                            target/debug after `cargo test --workspace`) instead of building them
                            with cargo-lambda: the tests' dry run, which must not compile the
                            dependency tree a third time. Only for x86_64 on an x86_64 Linux host.
  -h, --help                This help.

Environment: BOA_DEPLOY_PROFILE=dev|release overrides the profile choice; AWS_PROFILE/AWS_REGION
are honoured by the AWS CLI as usual.
EOF
}

say() { printf '\033[1mdeploy:\033[0m %s\n' "$*" >&2; }
die() { printf 'deploy: error: %s\n' "$*" >&2; exit 1; }

prebuilt="" dry_run=false yes=false pipeline="$root/pipeline.toml" stack="" region="" bucket="" prefix=""
arch=x86_64 worker_arch=x86_64 subnets="" security_groups="" vpc_id="" worker_ami="" retention=30
profile=release
if [ "${CI:-}" = "true" ]; then profile=dev; fi
case "${BOA_DEPLOY_PROFILE:-}" in
  dev|release) profile="$BOA_DEPLOY_PROFILE" ;;
  "") ;;
  *) die "BOA_DEPLOY_PROFILE='$BOA_DEPLOY_PROFILE' must be dev or release" ;;
esac

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=true ;;
    --yes|-y) yes=true ;;
    --pipeline) need_value "$@"; pipeline="$2"; shift ;;
    --stack) need_value "$@"; stack="$2"; shift ;;
    --region) need_value "$@"; region="$2"; shift ;;
    --bucket) need_value "$@"; bucket="$2"; shift ;;
    --prefix) need_value "$@"; prefix="${2%/}"; shift ;;
    --arch) need_value "$@"; arch="$2"; shift ;;
    --worker-arch) need_value "$@"; worker_arch="$2"; shift ;;
    --subnets) need_value "$@"; subnets="$2"; shift ;;
    --security-groups) need_value "$@"; security_groups="$2"; shift ;;
    --create-worker-security-group) need_value "$@"; vpc_id="$2"; shift ;;
    --worker-ami) need_value "$@"; worker_ami="$2"; shift ;;
    --log-retention-days) need_value "$@"; retention="$2"; shift ;;
    --profile-dev) profile=dev ;;
    --prebuilt) need_value "$@"; prebuilt="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

arch_flag() {
  case "$1" in
    x86_64) echo --x86-64 ;;
    arm64) echo --arm64 ;;
    *) die "architecture '$1' must be x86_64 or arm64" ;;
  esac
}
lambda_arch_flag="$(arch_flag "$arch")"
worker_arch_flag="$(arch_flag "$worker_arch")"
profile_flag=()
[ "$profile" = release ] && profile_flag=(--release)

tools="$root/.tools/venv/bin"
for t in cargo-lambda cfn-lint; do
  [ -x "$tools/$t" ] || die "$tools/$t is missing: run tools/setup"
done
# cargo-lambda finds zig (python-zig) on PATH.
export PATH="$tools:$PATH"
[ -f "$pipeline" ] || die "pipeline file '$pipeline' does not exist (--pipeline FILE)"
pipeline="$(cd "$(dirname "$pipeline")" && pwd)/$(basename "$pipeline")"

dist="$root/dist"
rm -rf "$dist/lambda" "$dist/worker" "$dist/pipeline" "$dist/cargo-lambda" \
  "$dist/template.json" "$dist/statemachine.json"
mkdir -p "$dist/lambda" "$dist/worker"

if [ -n "$prebuilt" ] && [ -x "$prebuilt/deploy" ]; then
  # The deploy tool the same build made: `cargo build -p deploy` alone resolves the features of
  # one package and would compile part of the dependency tree a second time.
  deploy_exe="$prebuilt/deploy"
else
  say "building the deploy tool (cargo build -p deploy)"
  cargo build --quiet --manifest-path "$root/Cargo.toml" -p deploy
  deploy_exe="${CARGO_TARGET_DIR:-$root/target}/debug/deploy"
fi
deploy_bin() { "$deploy_exe" --pipeline "$pipeline" "$@"; }

say "reading $pipeline"
default_stack=""
code_params=()
while read -r kind a b; do
  case "$kind" in
    stack) default_stack="$a" ;;
    lambda) code_params+=("$a=$b") ;;
  esac
done < <(deploy_bin info)
stack="${stack:-$default_stack}"
pipeline_name="${default_stack#build-on-aws-}"
prefix="${prefix:-build-on-aws/$pipeline_name}"

say "bundling pipeline.toml and its scripts into dist/pipeline"
mapfile -t bundle_entries < <(deploy_bin bundle --out "$dist/pipeline")
includes=()
for e in "${bundle_entries[@]}"; do includes+=(--include "$e"); done

if [ -n "$prebuilt" ]; then
  [ "$arch" = x86_64 ] && [ "$worker_arch" = x86_64 ] && [ "$(uname -m)" = x86_64 ] \
    || die "--prebuilt packages host binaries: only for x86_64 on an x86_64 host"
  say "packaging the prebuilt Lambdas and worker from $prebuilt"
  for b in "${lambdas[@]}" worker; do
    [ -x "$prebuilt/$b" ] || die "$prebuilt/$b is missing: build it first (cargo test --workspace builds it)"
  done
  # The zip cargo-lambda makes: `bootstrap` (mode 0755) and the bundle's files beside it.
  (cd "$dist/pipeline" && "$tools/python" - "$prebuilt" "$dist/lambda" "${lambdas[@]}" \
      -- "${bundle_entries[@]}" <<'PY'
import os, sys, zipfile
prebuilt, out = sys.argv[1], sys.argv[2]
rest = sys.argv[3:]
sep = rest.index("--")
names, entries = rest[:sep], rest[sep + 1:]
def add(z, path, arc, mode):
    info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(path, "rb") as f:
        z.writestr(info, f.read())
for n in names:
    with zipfile.ZipFile(os.path.join(out, n + ".zip"), "w") as z:
        add(z, os.path.join(prebuilt, n), "bootstrap", 0o100755)
        for e in entries:
            for dirpath, _, files in os.walk(e) if os.path.isdir(e) else [("", [], [e])]:
                for f in files:
                    p = os.path.join(dirpath, f) if dirpath else f
                    add(z, p, p, 0o100644)
PY
  )
  cp "$prebuilt/worker" "$dist/worker/worker"
else
packages=()
# record-result is the second binary of the normalize-results package (cargo-lambda builds every
# binary of a selected package, each into its own folder).
for l in "${lambdas[@]}"; do [ "$l" = record-result ] || packages+=(-p "$l"); done
# One cargo-lambda invocation when the Lambdas and the worker share an architecture: one
# selection of packages resolves features once, so the dependency tree (the AWS SDK) is compiled
# once, not once per selection. --include paths are taken relative to the working directory: run
# from the bundle.
if [ "$arch" = "$worker_arch" ]; then
  say "building the Lambdas and the worker ($profile, $arch) with cargo-lambda"
  (cd "$dist/pipeline" && cargo-lambda lambda build --manifest-path "$root/Cargo.toml" \
    "${profile_flag[@]}" "$lambda_arch_flag" --output-format zip \
    --lambda-dir "$dist/cargo-lambda" "${includes[@]}" "${packages[@]}" -p worker)
  "$tools/python" - "$dist/cargo-lambda/worker/bootstrap.zip" "$dist/worker/worker" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("bootstrap"))
PY
  chmod +x "$dist/worker/worker"
else
  say "building the Lambdas ($profile, $arch) with cargo-lambda"
  (cd "$dist/pipeline" && cargo-lambda lambda build --manifest-path "$root/Cargo.toml" \
    "${profile_flag[@]}" "$lambda_arch_flag" --output-format zip \
    --lambda-dir "$dist/cargo-lambda" "${includes[@]}" "${packages[@]}")
  say "building the worker ($profile, $worker_arch)"
  cargo-lambda lambda build --manifest-path "$root/Cargo.toml" "${profile_flag[@]}" \
    "$worker_arch_flag" --output-format binary --lambda-dir "$dist/cargo-lambda" -p worker --bin worker
  cp "$dist/cargo-lambda/worker/bootstrap" "$dist/worker/worker"
fi
for l in "${lambdas[@]}"; do
  mv "$dist/cargo-lambda/$l/bootstrap.zip" "$dist/lambda/$l.zip"
done
fi
rm -rf "$dist/cargo-lambda"

say "generating dist/template.json and dist/statemachine.json"
deploy_bin template --out "$dist/template.json" --definition-out "$dist/statemachine.json"

say "linting the template with cfn-lint"
cfn-lint "$dist/template.json"

if $dry_run; then
  say "dry run done; artifacts in dist/:"
  (cd "$dist" && find . -maxdepth 2 -type f | sort) >&2
  exit 0
fi

# ------------------------------------------------------------------------------------------
# Real deploy: needs the AWS CLI v2 and credentials.
command -v aws >/dev/null || die "the AWS CLI v2 is required for a real deploy (or use --dry-run)"
aws_() { if [ -n "$region" ]; then aws --region "$region" "$@"; else aws "$@"; fi; }
account="$(aws_ sts get-caller-identity --query Account --output text)" ||
  die "no AWS credentials (aws sts get-caller-identity failed): configure them, or use --dry-run"
region="${region:-$(aws configure get region || true)}"
region="${region:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"
[ -n "$region" ] || die "no region: pass --region or set AWS_REGION"
bucket="${bucket:-build-on-aws-artifacts-$account-$region}"

# Every S3 call names the account that must own the bucket (S3's bucket owner condition): a
# predictable bucket name registered by someone else is refused, never written to.
owner=(--expected-bucket-owner "$account")
if ! aws_ s3api head-bucket --bucket "$bucket" "${owner[@]}" 2>/dev/null; then
  say "creating artifact bucket $bucket (encrypted, public access blocked)"
  if [ "$region" = us-east-1 ]; then
    aws_ s3api create-bucket --bucket "$bucket" >/dev/null
  else
    aws_ s3api create-bucket --bucket "$bucket" \
      --create-bucket-configuration "LocationConstraint=$region" >/dev/null
  fi
  aws_ s3api put-public-access-block --bucket "$bucket" "${owner[@]}" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  aws_ s3api put-bucket-encryption --bucket "$bucket" "${owner[@]}" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
fi

sha() { sha256sum "$1" | cut -c1-16; }
put() { aws_ s3api put-object --bucket "$bucket" --key "$prefix/$2" --body "$1" "${owner[@]}" >/dev/null; }
params=()
for cp in "${code_params[@]}"; do
  l="${cp%%=*}" param="${cp#*=}"
  key="lambda/$l-$(sha "$dist/lambda/$l.zip").zip"
  put "$dist/lambda/$l.zip" "$key"
  params+=("$param=$key")
done
worker_key="worker/worker-$(sha "$dist/worker/worker")"
worker_sha256="$(sha256sum "$dist/worker/worker" | cut -c1-64)"
put "$dist/worker/worker" "$worker_key"
scripts_key="scripts/$( (cd "$dist/pipeline" && find . -type f | sort | xargs sha256sum) | sha256sum | cut -c1-16)"
while IFS= read -r f; do
  put "$dist/pipeline/$f" "$scripts_key/$f"
done < <(cd "$dist/pipeline" && find . -type f | sed 's|^\./||' | sort)
params+=(
  "ArtifactBucket=$bucket" "ArtifactPrefix=$prefix" "WorkerBinaryKey=$worker_key"
  "WorkerBinarySha256=$worker_sha256"
  "ScriptsKey=$scripts_key" "Architecture=$arch" "LogRetentionDays=$retention"
  "Subnets=$subnets" "SecurityGroups=$security_groups" "WorkerAmi=$worker_ami"
)
if [ -n "$vpc_id" ]; then
  params+=("CreateWorkerSecurityGroup=true" "VpcId=$vpc_id")
else
  params+=("CreateWorkerSecurityGroup=false" "VpcId=")
fi

existed=false
status="$(aws_ cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].StackStatus' --output text 2>/dev/null || true)"
case "$status" in ""|REVIEW_IN_PROGRESS) ;; *) existed=true ;; esac

say "creating a change set for stack $stack in $region"
aws_ cloudformation deploy --stack-name "$stack" --template-file "$dist/template.json" \
  --s3-bucket "$bucket" --s3-prefix "$prefix/templates" \
  --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM \
  --parameter-overrides "${params[@]}" \
  --tags "build-on-aws:stack=$stack" \
  --no-execute-changeset --no-fail-on-empty-changeset >/dev/null
change_set="$(aws_ cloudformation list-change-sets --stack-name "$stack" \
  --query 'reverse(sort_by(Summaries[?Status==`CREATE_COMPLETE`], &CreationTime))[0].ChangeSetId' \
  --output text)"
if [ -z "$change_set" ] || [ "$change_set" = None ]; then
  say "nothing changed: the stack already matches"
else
  say "the change set:"
  aws_ cloudformation describe-change-set --change-set-name "$change_set" \
    --query 'Changes[].ResourceChange.{Action:Action,LogicalId:LogicalResourceId,Type:ResourceType,Replacement:Replacement}' \
    --output table
  if ! $yes; then
    read -r -p "Execute this change set? [y/N] " answer
    case "$answer" in
      y|Y|yes) ;;
      *) say "not executed; the change set stays for review: $change_set"; exit 0 ;;
    esac
  fi
  aws_ cloudformation execute-change-set --change-set-name "$change_set"
  say "waiting for the stack (this takes a few minutes)"
  if $existed; then
    aws_ cloudformation wait stack-update-complete --stack-name "$stack"
  else
    aws_ cloudformation wait stack-create-complete --stack-name "$stack"
  fi
fi

aws_ cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].Outputs' --output table
url="$(aws_ cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs[?OutputKey==`ConsoleUrl`].OutputValue' --output text)"
say "deployed. Console: $url"
