//! End to end in local mode: `bin/build-on-aws --local` on the example pipeline, with the real
//! worker binary, the in-process Lambdas and the embedded engine.

use boa_core::results::Status;
use boa_core::task::SkipKind;
use e2e_tests::local_cli::{LocalCli, statuses, task};

const V: &str = "4.28.2";
const JAMMY: &str = "ubuntu-22.04-jammy";
const BOOKWORM: &str = "debian-12-bookworm";

#[test]
fn the_example_run_succeeds_and_a_rerun_skips_what_is_done() {
    let cli = LocalCli::new();
    let first = cli.run(&["--local", V, JAMMY, BOOKWORM, "--json"]);
    assert_eq!(first.code, 0, "{first:?}");
    let r = first.results();
    assert_eq!((r.summary.total, r.summary.succeeded), (6, 6), "{r:#?}");
    for t in &r.tasks {
        let id = t.instance_id.as_deref().unwrap_or_default();
        assert!(id.starts_with("i-local-"), "{t:?}");
        let stream = boa_core::task::log_stream(&t.step, id);
        assert_eq!(t.log_stream.as_deref(), Some(stream.as_str()));
        assert_eq!(t.attempts, Some(1), "{t:?}");
    }
    // Progress was shown while it ran.
    assert!(first.stderr.contains("/6 done"), "{}", first.stderr);
    // Both binary packages ran, each once, on the step's own workers. Not necessarily two: a
    // worker serves its step's activity, and one started ahead (lookahead) that is free first
    // may take the second package before the other worker has booted.
    for d in [JAMMY, BOOKWORM] {
        let t = task(&r, "MakeBinaryPackage", &[("distro", d)]);
        assert_eq!(t.status, Status::Succeeded, "{t:?}");
        assert_eq!(t.attempts, Some(1), "{t:?}");
    }

    // The same request again: the tarball and the packages exist (done_when), the rest runs.
    let again = cli.run(&["--local", BOOKWORM, V, JAMMY, "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let r2 = again.results();
    for t in &r2.tasks {
        let done = t.step == "MakeSourceTarball" || t.step == "MakeBinaryPackage";
        if done {
            assert_eq!(
                (t.status, t.skip),
                (Status::Skipped, Some(SkipKind::Done)),
                "{t:?}"
            );
            assert!(
                t.reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("already exist"),
                "{t:?}"
            );
        } else {
            assert_eq!(t.status, Status::Succeeded, "{t:?}");
        }
    }
    // And the table form, read back from the saved record.
    let status = cli.run(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("skipped (done)"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("6 tasks: 3 succeeded, 0 failed, 3 skipped"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_failing_distro_is_reported_with_its_worker_and_log_and_publish_still_runs() {
    let cli = LocalCli::new();
    let out = cli.run(&[
        "--local",
        V,
        JAMMY,
        BOOKWORM,
        "--env",
        &format!("BOA_EXAMPLE_FAIL_DISTRO={BOOKWORM}"),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    // The table names the failure, its worker and where its log is.
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("6 tasks: 5 succeeded, 1 failed, 0 skipped"),
        "{}",
        out.stdout
    );
    let json = cli.run(&["status", "--json"]);
    assert_eq!(json.code, 1, "status of a failed run exits 1: {json:?}");
    let r = json.results();
    let bad = task(&r, "MakeBinaryPackage", &[("distro", BOOKWORM)]);
    assert_eq!(bad.status, Status::Failed);
    assert_eq!(bad.error.as_deref(), Some("Worker.ScriptFailed"), "{bad:?}");
    assert_eq!(
        bad.attempts,
        Some(3),
        "a script failure is retried twice: {bad:?}"
    );
    let id = bad
        .instance_id
        .clone()
        .expect("the failed task names its worker");
    assert!(out.stdout.contains(&id), "{}", out.stdout);
    assert!(
        bad.cause
            .as_deref()
            .unwrap_or_default()
            .contains("compiler crashed"),
        "{bad:?}"
    );
    // Each run keeps its logs in its own folder (runs/<name>/logs).
    let log = cli
        .only_run_folder()
        .join("logs")
        .join(format!("MakeBinaryPackage/w_{id}.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(text.contains("compiler crashed"), "{text}");
    // needs = "any-succeeded": publishing goes on with the distro that built.
    assert_eq!(
        task(&r, "PublishBinaryPackages", &[]).status,
        Status::Succeeded
    );
    assert_eq!(
        task(&r, "PublishDockerImages", &[]).status,
        Status::Succeeded
    );
}

#[test]
fn when_every_distro_fails_the_dependents_are_skipped_with_the_reason() {
    let cli = LocalCli::new();
    let out = cli.run(&[
        "--local",
        V,
        BOOKWORM,
        "--json",
        "--env",
        &format!("BOA_EXAMPLE_FAIL_DISTRO={BOOKWORM}"),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = out.results();
    assert_eq!(
        statuses(&r),
        [
            (
                "MakeBinaryPackage".into(),
                format!("{BOOKWORM} {V}"),
                Status::Failed
            ),
            ("MakeSourceTarball".into(), V.into(), Status::Succeeded),
            ("PublishBinaryPackages".into(), V.into(), Status::Skipped),
            ("PublishDockerImages".into(), V.into(), Status::Skipped),
            ("PublishSourceTarball".into(), V.into(), Status::Skipped),
        ]
    );
    for s in [
        "PublishBinaryPackages",
        "PublishDockerImages",
        "PublishSourceTarball",
    ] {
        let t = task(&r, s, &[]);
        assert_eq!(t.skip, Some(SkipKind::DependencyFailed), "{t:?}");
        assert!(
            t.instance_id.is_none(),
            "no worker for a skipped task: {t:?}"
        );
    }
}

#[test]
fn skip_ec2_runs_the_machine_and_launches_nothing() {
    let cli = LocalCli::new();
    let out = cli.run(&["--local", V, "--skip-ec2", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = out.results();
    assert!(r.summary.total >= 5, "{r:#?}");
    assert!(
        r.tasks
            .iter()
            .all(|t| t.status == Status::Skipped && t.skip == Some(SkipKind::SkipEc2)),
        "{r:#?}"
    );
    let rec = &cli.records()[0];
    assert_eq!(rec["fleet"]["run_instances_calls"], 0, "{rec}");
}

#[test]
fn fake_ec2_launches_nothing_and_hand_started_workers_do_the_work() {
    let cli = LocalCli::new();
    let out = cli.run(&[
        "--local",
        V,
        JAMMY,
        "MakeSourceTarball",
        "MakeBinaryPackage",
        "--fake-ec2",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = out.results();
    assert_eq!(r.summary.succeeded, 2, "{r:#?}");
    for t in &r.tasks {
        assert!(
            t.instance_id
                .as_deref()
                .unwrap_or_default()
                .starts_with("i-hand-"),
            "{t:?}"
        );
    }
    let rec = &cli.records()[0];
    assert_eq!(rec["fleet"]["run_instances_calls"], 0, "{rec}");
    assert_eq!(rec["fleet"]["instances_launched"], 0, "{rec}");
}

#[test]
fn an_exclusive_step_never_has_two_workers() {
    // Two versions: both PublishBinaryPackages tasks are ready at about the same time.
    let cli = LocalCli::new();
    let out = cli.run(&["--local", "4.28.2", "4.27.0", JAMMY, "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = out.results();
    let publish: Vec<_> = r
        .tasks
        .iter()
        .filter(|t| t.step == "PublishBinaryPackages")
        .collect();
    assert_eq!(publish.len(), 2);
    assert!(
        publish.iter().all(|t| t.status == Status::Succeeded),
        "{publish:?}"
    );
    let rec = &cli.records()[0];
    let peak = &rec["fleet"]["peak_alive_per_activity"];
    assert_eq!(peak["build-on-aws-hhvm-PublishBinaryPackages"], 1, "{rec}");
    // The binary packages of the two versions did run side by side.
    assert!(
        peak["build-on-aws-hhvm-MakeBinaryPackage"]
            .as_u64()
            .unwrap_or(0)
            >= 2,
        "{rec}"
    );
}
