//! `deploy/deploy.sh --dry-run`: builds the five Lambda zips and the worker with cargo-lambda,
//! generates and lints the template, with no AWS. Runs in CI with the dev profile
//! (`BOA_DEPLOY_PROFILE=dev`) so it reuses the cached dev build of the shared target dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use boa_core::Pipeline;
use deploy::{TemplateOptions, template};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The names of the entries of a zip file, read from its central directory.
fn zip_entries(bytes: &[u8]) -> Vec<String> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
    let eocd = (0..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .expect("a zip end-of-central-directory record");
    let count = u16_at(eocd + 10);
    let mut at = u32_at(eocd + 16);
    let mut names = vec![];
    for _ in 0..count {
        assert_eq!(
            bytes[at..at + 4],
            [0x50, 0x4b, 0x01, 0x02],
            "central directory entry"
        );
        let (n, x, c) = (u16_at(at + 28), u16_at(at + 30), u16_at(at + 32));
        names.push(String::from_utf8_lossy(&bytes[at + 46..at + 46 + n]).into_owned());
        at += 46 + n + x + c;
    }
    names
}

/// The folder of the binaries `cargo test --workspace` built beside this test
/// (`<target>/debug`; this test runs from `<target>/debug/deps`).
fn built_binaries() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Runs `deploy.sh --dry-run` with `extra` and checks what it left in dist/.
fn dry_run(extra: &[&str]) -> PathBuf {
    let root = root();
    for t in ["cargo-lambda", "cfn-lint"] {
        assert!(
            root.join(".tools/venv/bin").join(t).exists(),
            "{t} is missing: run tools/setup"
        );
    }
    let out = Command::new(root.join("deploy/deploy.sh"))
        .arg("--dry-run")
        .args(extra)
        .env("BOA_DEPLOY_PROFILE", "dev")
        // A dry run must not need AWS: make sure nothing could find credentials.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .expect("deploy.sh runs");
    assert!(
        out.status.success(),
        "deploy.sh --dry-run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dist = root.join("dist");
    for l in statemachine_gen::LAMBDAS {
        let zip = dist.join("lambda").join(format!("{l}.zip"));
        let bytes = std::fs::read(&zip).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
        let names = zip_entries(&bytes);
        for want in ["bootstrap", "pipeline.toml", "scripts/init.sh"] {
            assert!(
                names.iter().any(|n| n == want),
                "{l}.zip lacks {want}: {names:?}"
            );
        }
    }
    let worker = std::fs::metadata(dist.join("worker/worker")).expect("dist/worker/worker");
    assert!(worker.len() > 0);

    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("template.json")).unwrap()).unwrap();
    let p = Pipeline::load(&root.join("pipeline.toml")).unwrap();
    assert_eq!(written, template(&p, &TemplateOptions::default()));
    let def: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("statemachine.json")).unwrap()).unwrap();
    assert_eq!(def["StartAt"], "ParseInput");
    dist
}

/// What CI runs: the binaries `cargo test` already built are packaged (the dependency tree is not
/// compiled a third time, after clippy's check and the test build); bundle, zips, template and
/// cfn-lint are the real ones.
#[test]
fn dry_run_packages_one_zip_per_lambda_the_worker_and_the_linted_template() {
    let bins = built_binaries();
    let dist = dry_run(&["--prebuilt", bins.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(dist.join("worker/worker")).unwrap(),
        std::fs::read(bins.join("worker")).unwrap(),
        "the worker shipped is the one built"
    );
}

/// The full build with cargo-lambda, as a real deploy does (several minutes from cold on two
/// cores: `cargo test -p deploy -- --ignored`).
#[test]
#[ignore]
fn dry_run_builds_with_cargo_lambda() {
    dry_run(&[]);
}

#[test]
fn help_teaches_the_dry_run_and_unknown_options_fail() {
    let script = root().join("deploy/deploy.sh");
    let help = Command::new(&script).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for w in ["--dry-run", "--yes", "--arch", "--profile-dev", "cfn-lint"] {
        assert!(text.contains(w), "--help does not mention {w}");
    }
    let bad = Command::new(&script).arg("--frobnicate").output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown option '--frobnicate'"));
    let arch = Command::new(&script)
        .args(["--dry-run", "--arch", "sparc"])
        .output()
        .unwrap();
    assert!(!arch.status.success());
    assert!(String::from_utf8_lossy(&arch.stderr).contains("'sparc' must be x86_64 or arm64"));
}
