//! start-workers against in-memory fakes of EC2 and S3.

use std::collections::BTreeMap;

use boa_aws::fakes::{FakeExecutions, FakeFleet, FakeObjects, RecordingSleeper};
use boa_aws::ports::{Fleet, InstanceState, Objects, PortError, Purchase, tags};
use boa_core::retry::Backoff;
use boa_core::stack::StackConfig;
use boa_core::task::{PrepareRecord, PrepareRequest, PrepareStatus, SkipKind};
use boa_core::{BuildInput, Mode, Pipeline};
use lambda_runtime::{Context, LambdaEvent, Service, service_fn};
use serde_json::{Value, json};
use start_workers::{Event, Ports, handle, lambda_handler};

const PIPELINE: &str = r#"
name = "demo"

[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'

[[axis]]
name = "distro"
values = ["debian-12", "ubuntu-22.04", "ubuntu-24.04"]

[defaults.worker]
ami = "ami-0123456789abcdef0"
instance_types = ["c7i.large", "c6i.large"]
market = "spot-then-on-demand"
disk_gb = 40
max_workers = 3
subnets = ["subnet-a", "subnet-b"]
security_groups = ["sg-1"]

[[step]]
name = "Source"
script = "scripts/source.sh"
heartbeat = "6m"
timeout = "1h"
done_when = ["s3://dl/{version}/src.tar.gz", "s3://dl/{version}/src.tar.gz.sig"]

[[step]]
name = "Build"
for_each = ["version", "distro"]
after = ["Source"]
script = "scripts/build.sh"
done_when = ["s3://dl/{version}/{distro}.deb"]

[[step]]
name = "Test"
for_each = ["version", "distro"]
after = ["Build"]
script = "scripts/test.sh"

[[step]]
name = "Publish"
after = ["Build"]
needs = "any-succeeded"
exclusive = true
script = "scripts/publish.sh"

[[step]]
name = "Announce"
after = ["Publish"]
script = "scripts/announce.sh"

[step.worker]
market = "on-demand"
instance_types = ["t3.small"]
"#;

const EXEC: &str = "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-demo:run-1";

fn pipeline() -> Pipeline {
    Pipeline::parse(PIPELINE).unwrap_or_else(|e| panic!("{e}"))
}

fn cfg() -> StackConfig {
    StackConfig::new(
        "build-on-aws-demo",
        "us-east-1",
        "123456789012",
        "s3://artifacts/demo",
    )
}

fn input(p: &Pipeline, steps: &[&str], mode: Mode) -> BuildInput {
    let mut v = json!({"versions": ["1.2.3"], "steps": steps});
    v["mode"] = json!(mode.as_str());
    BuildInput::from_json(p, &v, chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap()).unwrap()
}

/// The inner values of `version` in the input's plan, as the state passes them.
fn plan_inner(input: &BuildInput, version: Option<&str>) -> Vec<String> {
    let plan = input.plan(&pipeline()).unwrap_or_default();
    plan.iter()
        .find(|pi| pi.get("version").and_then(Value::as_str) == version)
        .and_then(|pi| pi.get("distro"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn req(step: &str, item: &[(&str, &str)], input: BuildInput, deps: Value) -> PrepareRequest {
    let version = item.iter().find(|(k, _)| *k == "version").map(|(_, v)| *v);
    PrepareRequest {
        inner: plan_inner(&input, version),
        step: step.into(),
        item: item
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        run: input.scope(),
        index: None,
        deps: serde_json::from_value(deps).unwrap(),
        attempt: 0,
        execution: EXEC.into(),
        entered: "2025-01-02T10:00:00.000Z".into(),
    }
}

fn ok_result(step: &str, item: Value) -> Value {
    json!({"step": step, "item": item, "attempt": 0,
           "prepare": {"status": "pending", "reason": "launched", "launched": ["i-1"]},
           "outcome": {"status": "succeeded", "instance_id": "i-1", "log_stream": "w_i-1", "elapsed_s": 1.0}})
}

fn failed_result() -> Value {
    json!({"Error": "Worker.ScriptFailed", "Cause": "exit status 2"})
}

struct Rig {
    fleet: FakeFleet,
    objects: FakeObjects,
    executions: FakeExecutions,
    sleeper: RecordingSleeper,
    p: Pipeline,
    cfg: StackConfig,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            fleet: FakeFleet::new(),
            objects: FakeObjects::new(),
            executions: FakeExecutions::new(),
            sleeper: RecordingSleeper::new(),
            p: pipeline(),
            cfg: cfg(),
        }
    }
    fn ports(&self) -> Ports<'_> {
        Ports {
            fleet: &self.fleet,
            objects: &self.objects,
            sleeper: &self.sleeper,
            executions: Some(&self.executions),
        }
    }
    async fn run(&self, r: PrepareRequest) -> PrepareRecord {
        handle(r, &self.ports(), &self.cfg, &self.p).await.unwrap()
    }
    fn all_steps(&self, mode: Mode) -> BuildInput {
        input(&self.p, &[], mode)
    }
}

fn assert_skipped(r: &PrepareRecord, kind: SkipKind, reason_has: &str) {
    assert_eq!(r.status, PrepareStatus::Skipped, "{r:?}");
    assert_eq!(r.skip, Some(kind), "{r:?}");
    assert!(
        r.reason.contains(reason_has),
        "{:?} lacks {reason_has:?}",
        r.reason
    );
    assert!(r.launched.is_empty());
}

#[tokio::test]
async fn a_step_not_requested_is_skipped_without_checking_or_launching() {
    let rig = Rig::new();
    let inp = input(&rig.p, &["Build"], Mode::Normal);
    let r = rig
        .run(req("Source", &[("version", "1.2.3")], inp, json!({})))
        .await;
    assert_skipped(&r, SkipKind::NotRequested, "Source was not requested");
    assert!(rig.objects.asked().is_empty());
    assert!(rig.fleet.launch_calls().is_empty());
}

#[tokio::test]
async fn a_failed_dependency_skips_with_its_name() {
    let rig = Rig::new();
    let r = rig
        .run(req(
            "Build",
            &[("version", "1.2.3"), ("distro", "debian-12")],
            rig.all_steps(Mode::Normal),
            json!({"Source": failed_result()}),
        ))
        .await;
    assert_skipped(&r, SkipKind::DependencyFailed, "dependency Source");
    assert!(rig.fleet.launch_calls().is_empty());
}

#[tokio::test]
async fn a_fan_out_step_looks_only_at_its_own_distro_of_a_fan_out_dependency() {
    let rig = Rig::new();
    let build = json!([
        failed_result(),
        ok_result(
            "Build",
            json!({"version": "1.2.3", "distro": "ubuntu-22.04"})
        ),
        ok_result(
            "Build",
            json!({"version": "1.2.3", "distro": "ubuntu-24.04"})
        ),
    ]);
    let deps = json!({"Source": ok_result("Source", json!({"version": "1.2.3"})), "Build": build});
    // The failed element has no item: it is matched by the task's position in the inner Map
    // (debian-12 is first).
    let at = |distro: &str, index: usize| {
        let mut r = req(
            "Test",
            &[("version", "1.2.3"), ("distro", distro)],
            rig.all_steps(Mode::Normal),
            deps.clone(),
        );
        r.index = Some(index);
        r
    };
    let r = rig.run(at("debian-12", 0)).await;
    assert_skipped(&r, SkipKind::DependencyFailed, "dependency Build");
    let r = rig.run(at("ubuntu-22.04", 1)).await;
    assert_eq!(r.status, PrepareStatus::Pending, "{r:?}");
    assert_eq!(r.launched.len(), 1);
}

#[tokio::test]
async fn compact_records_of_a_fan_out_dependency_are_matched_by_position() {
    // What Record<Step> leaves for each distro: its status, no item.
    let rig = Rig::new();
    let deps = json!({
        "Source": {"status": "succeeded"},
        "Build": [{"status": "succeeded"}, {"status": "failed"}, {"status": "succeeded"}],
    });
    let at = |distro: &str, index: Option<usize>| {
        let mut r = req(
            "Test",
            &[("version", "1.2.3"), ("distro", distro)],
            rig.all_steps(Mode::Normal),
            deps.clone(),
        );
        r.index = index;
        r
    };
    let r = rig.run(at("ubuntu-22.04", Some(1))).await;
    assert_skipped(&r, SkipKind::DependencyFailed, "dependency Build");
    let r = rig.run(at("ubuntu-24.04", Some(2))).await;
    assert_eq!(r.status, PrepareStatus::Pending, "{r:?}");
    // Without its position the task cannot find its entry: the dependency counts as lost.
    let r = rig.run(at("ubuntu-24.04", None)).await;
    assert_skipped(
        &r,
        SkipKind::DependencyFailed,
        "no result was stored for Build",
    );
}

#[tokio::test]
async fn any_succeeded_runs_on_one_success_and_skips_when_none() {
    let rig = Rig::new();
    let some = json!({"Build": [failed_result(), ok_result("Build", json!({"version": "1.2.3", "distro": "ubuntu-22.04"}))]});
    let r = rig
        .run(req(
            "Publish",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            some,
        ))
        .await;
    assert_eq!(r.status, PrepareStatus::Pending, "{r:?}");
    let none = json!({"Build": [failed_result(), failed_result()]});
    let r = rig
        .run(req(
            "Publish",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            none,
        ))
        .await;
    assert_skipped(
        &r,
        SkipKind::DependencyFailed,
        "none of its 2 tasks succeeded",
    );
}

#[tokio::test]
async fn a_dependency_with_no_stored_result_counts_as_lost_and_failed() {
    let rig = Rig::new();
    for deps in [json!({}), json!({"Publish": null})] {
        let r = rig
            .run(req(
                "Announce",
                &[("version", "1.2.3")],
                rig.all_steps(Mode::Normal),
                deps,
            ))
            .await;
        assert_skipped(
            &r,
            SkipKind::DependencyFailed,
            "Publish (its stage was lost)",
        );
    }
    assert!(rig.fleet.launch_calls().is_empty());
}

#[tokio::test]
async fn done_when_skips_only_when_every_object_exists() {
    let rig = Rig::new();
    rig.objects.put("dl", "1.2.3/src.tar.gz");
    let source = || {
        req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        )
    };
    let r = rig.run(source()).await;
    assert_eq!(
        r.status,
        PrepareStatus::Pending,
        "one object missing: {r:?}"
    );
    assert_eq!(rig.fleet.launch_calls().len(), 1);
    rig.objects.put("dl", "1.2.3/src.tar.gz.sig");
    let r = rig.run(source()).await;
    assert_skipped(&r, SkipKind::Done, "s3://dl/1.2.3/src.tar.gz.sig");
    assert_eq!(rig.fleet.launch_calls().len(), 1, "no launch when done");
    // The templates were rendered with the task item.
    assert!(
        rig.objects
            .asked()
            .contains(&("dl".to_string(), "1.2.3/src.tar.gz.sig".to_string()))
    );
}

#[tokio::test]
async fn skip_ec2_skips_and_fake_ec2_waits_without_launching_or_checking() {
    let rig = Rig::new();
    rig.objects.put("dl", "1.2.3/src.tar.gz");
    rig.objects.put("dl", "1.2.3/src.tar.gz.sig");
    let r = rig
        .run(req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::SkipEc2),
            json!({}),
        ))
        .await;
    assert_skipped(&r, SkipKind::SkipEc2, "skip-ec2");
    let r = rig
        .run(req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::FakeEc2),
            json!({}),
        ))
        .await;
    assert_eq!(r.status, PrepareStatus::Pending);
    assert_eq!(r.reason, "fake-ec2: waiting for a hand-started worker");
    assert!(rig.objects.asked().is_empty(), "fake-ec2 ignores done_when");
    assert!(rig.fleet.launch_calls().is_empty());
}

#[tokio::test]
async fn the_launch_request_carries_tags_userdata_and_the_worker_settings() {
    let rig = Rig::new();
    let r = rig
        .run(req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Test),
            json!({}),
        ))
        .await;
    assert_eq!(r.status, PrepareStatus::Pending);
    let calls = rig.fleet.launch_calls();
    assert_eq!(calls.len(), 1);
    let spec = &calls[0];
    assert_eq!(r.launched, rig.fleet.live_ids());
    assert_eq!(spec.count, 1);
    assert_eq!(
        (spec.instance_type.as_str(), spec.purchase),
        ("c7i.large", Purchase::Spot)
    );
    assert_eq!(spec.disk_gb, 40);
    assert_eq!(spec.ami, "ami-0123456789abcdef0");
    assert_eq!(spec.subnet.as_deref(), Some("subnet-a"));
    assert_eq!(spec.security_groups, ["sg-1"]);
    let t: BTreeMap<&str, &str> = spec
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(t[tags::STACK], "build-on-aws-demo");
    assert_eq!(t[tags::ACTIVITY], "build-on-aws-demo-Source");
    assert_eq!(t[tags::EXECUTION], EXEC);
    assert_eq!(t[tags::STATE], "PrepareSource");
    assert_eq!(t[tags::NAME], "wa-0-Source");
    let ud = &spec.user_data;
    assert!(ud.contains(
        "BOA_ACTIVITY_ARN='arn:aws:states:us-east-1:123456789012:activity:build-on-aws-demo-Source'"
    ));
    assert!(ud.contains("BOA_HEARTBEAT_S='120'"), "6m / 3: {ud}");
    assert!(ud.contains("BOA_SCRIPTS='s3://artifacts/demo/scripts'"));
    assert!(ud.contains("BOA_SHUTDOWN='poweroff'"));
    assert!(spec.client_token.len() <= 64 && spec.client_token.is_ascii());
}

#[tokio::test]
async fn throttling_is_retried_with_bounded_jitter_then_succeeds() {
    let rig = Rig::new();
    rig.fleet.fail_next([
        PortError::Throttled("RequestLimitExceeded".into()),
        PortError::Throttled("RequestLimitExceeded".into()),
        PortError::Throttled("RequestLimitExceeded".into()),
    ]);
    let r = rig
        .run(req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        ))
        .await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    let slept = rig.sleeper.slept();
    assert_eq!(slept.len(), 3);
    for (i, d) in slept.iter().enumerate() {
        let ceiling = Backoff::LAUNCH.ceiling(i as u32);
        assert!(*d <= ceiling && *d >= ceiling / 2, "sleep {i} = {d:?}");
    }
    // Same type and market on every try: throttling is not a capacity problem.
    assert!(
        rig.fleet
            .launch_calls()
            .iter()
            .all(|c| c.instance_type == "c7i.large" && c.purchase == Purchase::Spot)
    );
}

#[tokio::test]
async fn throttled_on_every_try_gives_up_after_six_and_waits() {
    let rig = Rig::new();
    rig.fleet
        .fail_next((0..10).map(|_| PortError::Throttled("RequestLimitExceeded".into())));
    let r = rig
        .run(req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        ))
        .await;
    assert_eq!(r.status, PrepareStatus::Pending);
    assert!(r.launched.is_empty());
    assert!(r.reason.contains("throttled"), "{}", r.reason);
    assert_eq!(rig.fleet.launch_calls().len(), 6);
    assert_eq!(rig.sleeper.slept().len(), 5);
    assert_eq!(Backoff::LAUNCH.tries, 6);
}

#[tokio::test]
async fn capacity_errors_walk_types_and_markets_in_order() {
    let rig = Rig::new();
    for (t, p) in [
        ("c7i.large", Purchase::Spot),
        ("c7i.large", Purchase::OnDemand),
        ("c6i.large", Purchase::Spot),
    ] {
        rig.fleet.refuse(
            t,
            p,
            PortError::NoCapacity("InsufficientInstanceCapacity".into()),
        );
    }
    let r = rig
        .run(req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        ))
        .await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    let order: Vec<(String, Purchase)> = rig
        .fleet
        .launch_calls()
        .into_iter()
        .map(|c| (c.instance_type, c.purchase))
        .collect();
    assert_eq!(
        order,
        [
            ("c7i.large".to_string(), Purchase::Spot),
            ("c7i.large".to_string(), Purchase::OnDemand),
            ("c6i.large".to_string(), Purchase::Spot),
            ("c6i.large".to_string(), Purchase::OnDemand),
        ]
    );
}

#[tokio::test]
async fn no_capacity_anywhere_fails_prepare_as_no_capacity_unless_a_worker_could_take_it() {
    let rig = Rig::new();
    for t in ["c7i.large", "c6i.large"] {
        for p in [Purchase::Spot, Purchase::OnDemand] {
            rig.fleet
                .refuse(t, p, PortError::NoCapacity(format!("no {t} left")));
        }
    }
    let source = || {
        req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        )
    };
    // No worker at all: the state machine's Ec2.NoCapacity retrier takes it from here.
    let e = handle(source(), &rig.ports(), &rig.cfg, &rig.p)
        .await
        .unwrap_err();
    assert_eq!(e.name.as_str(), "Ec2.NoCapacity");
    assert!(e.message.contains("launched 0 of 1"), "{}", e.message);
    assert!(e.message.contains("no c6i.large left"), "{}", e.message);
    assert!(
        e.message.contains("launch_deadline 1800 s"),
        "{}",
        e.message
    );
    // A busy worker of the activity will take the task when it is done: it waits.
    rig.fleet.add(
        "i-busy",
        InstanceState::Running,
        &[
            (tags::STACK, "build-on-aws-demo"),
            (tags::ACTIVITY, "build-on-aws-demo-Source"),
            (tags::WORK, "busy"),
        ],
    );
    let mut later = source();
    later.entered = "2025-01-02T10:01:00.000Z".into();
    let r = rig.run(later).await;
    assert_eq!(r.status, PrepareStatus::Pending);
    assert!(r.reason.contains("launched 0 of 1"), "{}", r.reason);
}

#[tokio::test]
async fn a_refusal_that_is_not_capacity_fails_the_task_at_once_with_its_code() {
    let rig = Rig::new();
    rig.fleet.refuse(
        "c7i.large",
        Purchase::Spot,
        PortError::Other("InvalidAMIID.NotFound: ami-0123456789abcdef0".into()),
    );
    let e = handle(
        req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        ),
        &rig.ports(),
        &rig.cfg,
        &rig.p,
    )
    .await
    .unwrap_err();
    assert_eq!(e.name.as_str(), "Ec2.LaunchFailed");
    assert!(e.message.contains("InvalidAMIID.NotFound"), "{}", e.message);
    assert!(e.message.contains("c7i.large spot"), "{}", e.message);
    assert_eq!(rig.fleet.launch_calls().len(), 1);
}

fn publish_req(version: &str, execution: &str) -> PrepareRequest {
    let deps =
        json!({"Build": [ok_result("Build", json!({"version": version, "distro": "debian-12"}))]});
    let mut inp = input(&pipeline(), &[], Mode::Normal);
    inp.axes
        .insert("version".into(), vec!["1.2.3".into(), "1.2.4".into()]);
    let mut r = req("Publish", &[("version", version)], inp, deps);
    r.execution = execution.into();
    r
}

const EXEC2: &str = "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-demo:run-2";

#[tokio::test]
async fn executions_racing_an_exclusive_step_launch_one_worker_between_them() {
    let rig = Rig::new();
    // DescribeInstances lags: no request can see the others' launches.
    rig.fleet.lag_describe();
    let (a, b, c) = tokio::join!(
        rig.run(publish_req("1.2.3", EXEC)),
        rig.run(publish_req("1.2.4", EXEC)),
        rig.run(publish_req("1.2.3", EXEC2)),
    );
    rig.fleet.settle();
    assert_eq!(rig.fleet.live_ids().len(), 1, "{a:?} {b:?} {c:?}");
    assert_eq!(rig.fleet.launch_calls().len(), 1);
    let launched: Vec<&PrepareRecord> = [&a, &b, &c]
        .into_iter()
        .filter(|r| !r.launched.is_empty())
        .collect();
    assert_eq!(launched.len(), 1);
    // The worker carries the lock it holds; the others wait for it.
    let call = &rig.fleet.launch_calls()[0];
    assert_eq!(call.tags[tags::LOCK], "build-on-aws-demo-Publish/1");
    for r in [&a, &b, &c] {
        assert_eq!(r.status, PrepareStatus::Pending, "{r:?}");
    }
    let locks: Vec<String> = rig
        .objects
        .keys("artifacts")
        .into_iter()
        .filter(|k| k.contains("/locks/"))
        .collect();
    assert_eq!(locks, ["demo/locks/build-on-aws-demo-Publish/000000000001"]);
    // While its worker lives, a later request (another execution) launches nothing.
    let mut later = publish_req("1.2.4", EXEC2);
    later.entered = "2025-01-02T11:00:00.000Z".into();
    let r = rig.run(later.clone()).await;
    assert!(r.launched.is_empty(), "{r:?}");
    assert!(r.reason.contains("1 live"), "{}", r.reason);
    // Its worker listed and gone (it powered off: shutting down): the next request takes the
    // next generation at once, though the lock is younger than the boot timeout.
    let holder = rig.fleet.live_ids()[0].clone();
    let gone: Vec<(&str, &str)> = call
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    rig.fleet.add(&holder, InstanceState::ShuttingDown, &gone);
    later.entered = "2025-01-02T11:05:00.000Z".into();
    let r = rig.run(later.clone()).await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    assert_eq!(
        rig.fleet.launch_calls().last().unwrap().tags[tags::LOCK],
        "build-on-aws-demo-Publish/2"
    );
    // A terminated worker is not listed at all (as DescribeInstances filters it): its lock is
    // free only once older than the boot timeout, as a launch may not be listed yet.
    let second = rig.fleet.live_ids();
    rig.fleet.terminate(&second).await.unwrap();
    rig.fleet.terminate(&[holder]).await.unwrap();
    later.entered = "2025-01-02T11:10:00.000Z".into();
    let r = rig.run(later.clone()).await;
    assert!(r.launched.is_empty(), "{r:?}");
    assert!(r.reason.contains("was just taken"), "{}", r.reason);
    rig.objects.set_modified(
        "demo/locks/build-on-aws-demo-Publish/000000000002",
        chrono::Utc::now() - chrono::Duration::minutes(11),
    );
    later.entered = "2025-01-02T11:15:00.000Z".into();
    let r = rig.run(later).await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    assert_eq!(
        rig.fleet.launch_calls().last().unwrap().tags[tags::LOCK],
        "build-on-aws-demo-Publish/3"
    );
}

#[tokio::test]
async fn an_exclusive_launch_that_fails_releases_its_lock() {
    let rig = Rig::new();
    for t in ["c7i.large", "c6i.large"] {
        for p in [Purchase::Spot, Purchase::OnDemand] {
            rig.fleet
                .refuse(t, p, PortError::NoCapacity(format!("no {t}")));
        }
    }
    let e = handle(publish_req("1.2.3", EXEC), &rig.ports(), &rig.cfg, &rig.p)
        .await
        .unwrap_err();
    assert_eq!(e.name.as_str(), "Ec2.NoCapacity", "{e:?}");
    let keys = rig.objects.keys("artifacts");
    assert!(
        keys.contains(&"demo/locks/build-on-aws-demo-Publish/000000000001.released".to_string()),
        "{keys:?}"
    );
    // The state machine's retry takes the next generation at once.
    let mut again = publish_req("1.2.3", EXEC);
    again.entered = "2025-01-02T10:01:00.000Z".into();
    let _ = handle(again, &rig.ports(), &rig.cfg, &rig.p).await;
    assert!(
        rig.objects
            .keys("artifacts")
            .contains(&"demo/locks/build-on-aws-demo-Publish/000000000002".to_string())
    );
}

#[tokio::test]
async fn a_retried_invocation_never_launches_twice_but_a_retry_attempt_does() {
    let rig = Rig::new();
    // The first invocation's instance is not yet visible to DescribeInstances.
    rig.fleet.lag_describe();
    let r = || {
        req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        )
    };
    let first = rig.run(r()).await;
    let again = rig.run(r()).await;
    assert_eq!(first.launched, again.launched);
    assert_eq!(rig.fleet.live_ids().len(), 1);
    assert_eq!((first.attempt, again.attempt), (0, 0));
    // The task's retry enters Prepare anew (a new entered time) whatever the engine says its
    // RetryCount is: it gets its own worker, and it is counted as the second attempt.
    let mut retry = r();
    retry.entered = "2025-01-02T10:05:00.000Z".into();
    let third = rig.run(retry).await;
    assert_eq!(third.launched.len(), 1);
    assert_ne!(third.launched, first.launched);
    assert_eq!(third.attempt, 1);
    assert_eq!(rig.fleet.live_ids().len(), 2);
    // The attempt records sit under the execution's prefix in the artifact bucket.
    assert_eq!(
        rig.objects
            .count(
                "artifacts",
                "demo/runs/run-1/attempts/Source/version=1.2.3/"
            )
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn idle_workers_are_reused_and_max_workers_caps_launches() {
    let rig = Rig::new();
    let act = "build-on-aws-demo-Build";
    rig.fleet.add(
        "i-idle",
        InstanceState::Running,
        &[
            (tags::STACK, "build-on-aws-demo"),
            (tags::ACTIVITY, act),
            (tags::WORK, "idle"),
        ],
    );
    let build = |distro: &str| {
        req(
            "Build",
            &[("version", "1.2.3"), ("distro", distro)],
            rig.all_steps(Mode::Normal),
            json!({"Source": ok_result("Source", json!({"version": "1.2.3"}))}),
        )
    };
    let r = rig.run(build("debian-12")).await;
    assert!(r.launched.is_empty(), "an idle worker takes it: {r:?}");
    assert!(r.reason.contains("enough idle workers"), "{}", r.reason);
    rig.fleet.add(
        "i-idle",
        InstanceState::Running,
        &[
            (tags::STACK, "build-on-aws-demo"),
            (tags::ACTIVITY, act),
            (tags::WORK, "busy"),
        ],
    );
    rig.fleet.add(
        "i-busy2",
        InstanceState::Running,
        &[
            (tags::STACK, "build-on-aws-demo"),
            (tags::ACTIVITY, act),
            (tags::WORK, "busy"),
        ],
    );
    let r = rig.run(build("ubuntu-22.04")).await;
    assert_eq!(r.launched.len(), 1, "2 busy of 3: room for one: {r:?}");
    let r = rig.run(build("ubuntu-24.04")).await;
    // The one just launched is booting for its own task, not spare: this task would need a
    // fourth worker, and the activity is at its cap of 3.
    assert!(r.launched.is_empty(), "{r:?}");
    assert!(r.reason.contains("at the worker cap"), "{r:?}");
    // Once it is busy too, the activity is at its cap of 3: nothing more is launched.
    let booting = rig
        .fleet
        .live_ids()
        .into_iter()
        .find(|i| i.starts_with("i-0"))
        .unwrap();
    rig.fleet
        .tag(
            &booting,
            &[(tags::WORK.to_string(), "busy".to_string())].into(),
        )
        .await
        .unwrap();
    let mut again = build("ubuntu-24.04");
    again.entered = "2025-01-02T10:05:00.000Z".into();
    let r = rig.run(again).await;
    assert!(r.launched.is_empty());
    assert!(r.reason.contains("at the worker cap"), "{}", r.reason);
    assert_eq!(rig.fleet.live_ids().len(), 3);
}

#[tokio::test]
async fn the_stacks_worker_ami_replaces_the_pipelines() {
    let mut rig = Rig::new();
    rig.cfg.worker_ami = Some("ami-0fedcba9876543210".into());
    let r = rig
        .run(req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        ))
        .await;
    assert_eq!(r.launched.len(), 1, "{r:?}");
    assert_eq!(rig.fleet.launch_calls()[0].ami, "ami-0fedcba9876543210");
}

#[tokio::test]
async fn each_task_of_a_fan_out_gets_its_own_worker_while_they_boot() {
    let rig = Rig::new();
    let build = |distro: &str| {
        req(
            "Build",
            &[("version", "1.2.3"), ("distro", distro)],
            rig.all_steps(Mode::Normal),
            json!({"Source": ok_result("Source", json!({"version": "1.2.3"}))}),
        )
    };
    let mut launched = vec![];
    for d in ["debian-12", "ubuntu-22.04", "ubuntu-24.04"] {
        let r = rig.run(build(d)).await;
        assert_eq!(r.launched.len(), 1, "{d}: {r:?}");
        assert!(r.reason.contains("booting"), "{}", r.reason);
        launched.extend(r.launched);
    }
    launched.dedup();
    assert_eq!(launched.len(), 3);
    assert_eq!(rig.fleet.live_ids().len(), 3);
}

#[tokio::test]
async fn errors_reach_the_runtime_with_their_stable_names() {
    let rig = Rig::new();
    let ports = rig.ports();
    let mut svc = service_fn(|ev: LambdaEvent<Event>| lambda_handler(ev, &ports, &rig.cfg, &rig.p));
    let bad = req(
        "Nope",
        &[("version", "1.2.3")],
        rig.all_steps(Mode::Normal),
        json!({}),
    );
    let d = svc
        .call(LambdaEvent::new(
            Event::Prepare(Box::new(bad)),
            Context::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(d.error_type, "Input.Invalid");
    assert!(d.error_message.contains("'Nope'"), "{}", d.error_message);
    rig.objects.fail(PortError::Throttled("SlowDown".into()));
    let src = req(
        "Source",
        &[("version", "1.2.3")],
        rig.all_steps(Mode::Normal),
        json!({}),
    );
    let d = svc
        .call(LambdaEvent::new(
            Event::Prepare(Box::new(src)),
            Context::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(d.error_type, "Aws.Throttled");
    assert!(
        d.error_message.contains("s3://dl/1.2.3/src.tar.gz"),
        "{}",
        d.error_message
    );
}

/// The Lambda's shared fleet view: Prepares served by one warm container within the interval
/// share one DescribeInstances, and still see each other's launches, so they launch exactly
/// what they would with a DescribeInstances each: one worker per booting task up to the cap,
/// one worker for an exclusive step.
#[tokio::test]
async fn prepares_sharing_a_fleet_view_see_each_others_launches() {
    use boa_aws::fleet_cache::CachedFleet;
    use std::sync::Arc;
    use std::time::Duration;

    let fake = Arc::new(FakeFleet::new());
    let cached = CachedFleet::new(
        fake.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let rig = Rig::new();
    let ports = Ports {
        fleet: &cached,
        objects: &rig.objects,
        sleeper: &rig.sleeper,
        executions: None,
    };
    let run = |r: PrepareRequest| {
        let ports = &ports;
        let rig = &rig;
        async move { handle(r, ports, &rig.cfg, &rig.p).await.unwrap() }
    };
    let build = |distro: &str| {
        req(
            "Build",
            &[("version", "1.2.3"), ("distro", distro)],
            rig.all_steps(Mode::Normal),
            json!({"Source": ok_result("Source", json!({"version": "1.2.3"}))}),
        )
    };
    // Two at once and one after: each gets its own worker.
    let (a, b) = tokio::join!(run(build("debian-12")), run(build("ubuntu-22.04")));
    let c = run(build("ubuntu-24.04")).await;
    for r in [&a, &b, &c] {
        assert_eq!(r.launched.len(), 1, "{r:?}");
    }
    assert_eq!(fake.live_ids().len(), 3);
    // The cap of 3 holds: the three booting workers are in the view without asking EC2.
    let mut more = build("debian-12");
    more.entered = "2025-01-02T10:05:00.000Z".into();
    let r = run(more).await;
    assert!(r.launched.is_empty(), "{r:?}");
    assert!(r.reason.contains("at the worker cap"), "{}", r.reason);
    assert_eq!(fake.live_ids().len(), 3);
    assert_eq!(
        cached.stats().describes,
        1,
        "four Prepares, one DescribeInstances"
    );

    // Executions racing an exclusive step through the shared view: one worker between them.
    let (x, y, z) = tokio::join!(
        run(publish_req("1.2.3", EXEC)),
        run(publish_req("1.2.4", EXEC)),
        run(publish_req("1.2.3", EXEC2)),
    );
    let launched = [&x, &y, &z]
        .into_iter()
        .filter(|r| !r.launched.is_empty())
        .count();
    assert_eq!(launched, 1, "{x:?} {y:?} {z:?}");
    let publish = fake
        .launch_calls()
        .iter()
        .filter(|s| s.tags[tags::ACTIVITY] == "build-on-aws-demo-Publish")
        .count();
    assert_eq!(publish, 1);
}

// ---------------------------------------------------------------------------------------------
// Lookahead provisioning

mod lookahead {
    use super::*;
    use boa_core::lookahead::{
        LookaheadEvent, LookaheadInput, MAX_REARMS, expected_end_key, rearm_name,
    };
    use boa_core::results::task_record_key;
    use start_workers::{Output, handle_event};

    const MACHINE: &str =
        "arn:aws:states:us-east-1:123456789012:stateMachine:build-on-aws-demo-lookahead";

    fn la_rig() -> Rig {
        let mut rig = Rig::new();
        rig.cfg.lookahead_machine_arn = Some(MACHINE.into());
        rig
    }

    /// Build 1.2.3 on `distro`.
    fn build_item(distro: &str) -> boa_core::Item {
        [("version", "1.2.3"), ("distro", distro)]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
    }

    /// Publish not exclusive: a plain fan-in step after Build.
    fn fan_in_rig() -> Rig {
        let mut rig = la_rig();
        rig.p = Pipeline::parse(&PIPELINE.replace("exclusive = true\n", "")).unwrap();
        rig
    }

    fn source(rig: &Rig) -> PrepareRequest {
        req(
            "Source",
            &[("version", "1.2.3")],
            rig.all_steps(Mode::Normal),
            json!({}),
        )
    }

    fn started(rig: &Rig) -> Vec<(String, LookaheadInput)> {
        rig.executions
            .started()
            .into_iter()
            .map(|(m, name, input)| {
                assert_eq!(m, MACHINE);
                (name, serde_json::from_str(&input).unwrap())
            })
            .collect()
    }

    /// The lookahead executions started for `step`, in order.
    fn lookaheads(rig: &Rig, step: &str) -> Vec<LookaheadInput> {
        started(rig)
            .into_iter()
            .map(|(_, i)| i)
            .filter(|i| i.lookahead.step == step)
            .collect()
    }

    async fn put_json(rig: &Rig, key: &str, v: Value) {
        let at = rig.cfg.record_object(key).unwrap();
        Objects::put(&rig.objects, &at.bucket, &at.key, v.to_string().as_bytes())
            .await
            .unwrap();
    }

    /// `step`'s workers take `secs` to boot.
    fn set_boot(rig: &mut Rig, step: &str, secs: u64) {
        rig.p
            .steps
            .iter_mut()
            .find(|s| s.name == step)
            .unwrap()
            .worker
            .boot_time = std::time::Duration::from_secs(secs);
    }

    /// The tags of every instance launched for `step`'s activity.
    fn workers_of(rig: &Rig, step: &str) -> Vec<BTreeMap<String, String>> {
        rig.fleet
            .all()
            .into_iter()
            .filter(|i| {
                i.tags
                    .get(tags::ACTIVITY)
                    .is_some_and(|a| a.ends_with(step))
            })
            .map(|i| i.tags)
            .collect()
    }

    /// Records that `step`'s task for `item` is expected to end now.
    async fn ends_now(rig: &Rig, step: &str, item: &boa_core::Item) {
        put_json(
            rig,
            &expected_end_key(EXEC, step, item),
            json!({"end": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    }

    /// Build's Prepare for version 1.2.3 on `distro`, after a successful Source.
    fn build_req(rig: &Rig, distro: &str) -> PrepareRequest {
        req(
            "Build",
            &[("version", "1.2.3"), ("distro", distro)],
            rig.all_steps(Mode::Normal),
            json!({"Source": ok_result("Source", json!({"version": "1.2.3"}))}),
        )
    }

    /// The duration history of one task: it took `secs` (pipeline time) last time.
    async fn put_history(rig: &Rig, step: &str, item: &boa_core::Item, secs: f64) {
        put_json(
            rig,
            &boa_core::history::duration_key(step, item),
            json!({ "elapsed_s": [secs] }),
        )
        .await;
    }

    fn secs_until(ts: &str) -> f64 {
        let t = chrono::DateTime::parse_from_rfc3339(ts).unwrap();
        (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0
    }

    #[tokio::test]
    async fn a_prepared_task_times_its_dependents_workers_by_expected_end_minus_boot() {
        let rig = la_rig();
        // History says Source takes 300 s; its worker has to boot (60 s, the default): it ends
        // in ~360 s, and Build's and Test's... only Build comes right after Source.
        let item: boa_core::Item = [("version".to_string(), "1.2.3".to_string())].into();
        put_history(&rig, "Source", &item, 300.0).await;
        let r = rig.run(source(&rig)).await;
        assert_eq!(r.status, PrepareStatus::Pending);
        assert_eq!(r.launched.len(), 1);
        let s = started(&rig);
        assert_eq!(s.len(), 1, "{s:?}");
        let (name, input) = &s[0];
        assert!(name.starts_with("Build-"), "{name}");
        assert_eq!(input.lookahead.step, "Build");
        assert_eq!(input.lookahead.execution, EXEC);
        let distros: Vec<&str> = input
            .lookahead
            .items
            .iter()
            .map(|i| i["distro"].as_str())
            .collect();
        assert_eq!(distros, ["debian-12", "ubuntu-22.04", "ubuntu-24.04"]);
        // 60 s boot + 300 s run - 60 s of Build's boot.
        let wait = secs_until(&input.at);
        assert!((295.0..=300.5).contains(&wait), "{wait}");
        // The expected end is recorded for the lookahead to check.
        let end = rig
            .cfg
            .record_object(&expected_end_key(EXEC, "Source", &item))
            .unwrap();
        let body = rig.objects.body(&end.bucket, &end.key);
        let end: Value = serde_json::from_slice(&body.expect("written")).unwrap();
        let until = secs_until(end["end"].as_str().unwrap());
        assert!((355.0..=360.5).contains(&until), "{until}");
        // A retried Prepare starts no second lookahead.
        rig.run(source(&rig)).await;
        assert_eq!(rig.executions.started().len(), 1);
    }

    #[tokio::test]
    async fn workers_start_half_the_steps_hand_over_later_and_each_prepare_adds_to_its_history() {
        let rig = la_rig();
        let item: boa_core::Item = [("version".to_string(), "1.2.3".to_string())].into();
        put_history(&rig, "Source", &item, 300.0).await;
        // Build's Prepare calls took 40 s (pipeline time) from their state entered to the task
        // ready to be handed out: its workers are started 20 s later than the end of Source.
        put_json(
            &rig,
            &boa_core::history::hand_over_key("Build"),
            json!({ "elapsed_s": [40.0] }),
        )
        .await;
        let mut r = source(&rig);
        // This Prepare's state was entered 30 s ago.
        r.entered = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
        assert_eq!(rig.run(r).await.status, PrepareStatus::Pending);
        let build = lookaheads(&rig, "Build");
        assert_eq!(build.len(), 1, "{build:?}");
        // 60 s boot + 300 s run + 20 s - 60 s of Build's boot.
        let wait = secs_until(&build[0].at);
        assert!((315.0..=320.5).contains(&wait), "{wait}");
        // The Source Prepare's own 30 s is in Source's hand-over history.
        let at = rig
            .cfg
            .record_object(&boa_core::history::hand_over_key("Source"))
            .unwrap();
        let h: Value =
            serde_json::from_slice(&rig.objects.body(&at.bucket, &at.key).expect("written"))
                .unwrap();
        let kept = h["elapsed_s"].as_array().unwrap();
        assert_eq!(kept.len(), 1, "{h}");
        assert!((30.0..31.0).contains(&kept[0].as_f64().unwrap()), "{h}");
        // A Prepare retried under an entry older than a boot (60 s) adds nothing.
        let mut late = source(&rig);
        late.entered = (chrono::Utc::now() - chrono::Duration::seconds(90)).to_rfc3339();
        rig.run(late).await;
        let h: Value =
            serde_json::from_slice(&rig.objects.body(&at.bucket, &at.key).unwrap()).unwrap();
        assert_eq!(h["elapsed_s"].as_array().unwrap().len(), 1, "{h}");
    }

    #[tokio::test]
    async fn without_a_lookahead_machine_no_hand_over_is_kept() {
        let rig = Rig::new();
        let mut r = source(&rig);
        r.entered = chrono::Utc::now().to_rfc3339();
        assert_eq!(rig.run(r).await.status, PrepareStatus::Pending);
        let at = rig
            .cfg
            .record_object(&boa_core::history::hand_over_key("Source"))
            .unwrap();
        assert_eq!(rig.objects.body(&at.bucket, &at.key), None);
    }

    #[tokio::test]
    async fn without_a_lookahead_machine_nothing_is_started() {
        let rig = Rig::new();
        rig.run(source(&rig)).await;
        assert!(rig.executions.started().is_empty());
    }

    async fn fire(rig: &Rig, input: &LookaheadInput) -> boa_core::lookahead::LookaheadOutcome {
        let ev = Event::Lookahead(LookaheadEvent {
            lookahead: input.lookahead.clone(),
        });
        match handle_event(ev, &rig.ports(), &rig.cfg, &rig.p)
            .await
            .unwrap()
        {
            Output::Lookahead(o) => o,
            Output::Prepare(r) => panic!("a Prepare record for a lookahead: {r:?}"),
        }
    }

    fn ahead(rig: &Rig) -> Vec<String> {
        let mut ids: Vec<String> = rig
            .fleet
            .all()
            .into_iter()
            .filter(|i| i.state.is_live())
            .filter(|i| {
                i.tags
                    .get(tags::STATE)
                    .is_some_and(|s| s == "LookaheadBuild")
            })
            .map(|i| i.id)
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn when_the_wait_ends_it_starts_one_worker_per_task_and_prepare_counts_them() {
        // The Wait is over: Source is expected to end in 30 s, within Build's boot (60 s).
        let rig = rig_with_end(30).await;
        let (_, input) = started(&rig).remove(0);
        // Three workers start ahead.
        let o = fire(&rig, &input).await;
        assert_eq!(o.launched.len(), 3, "{o:?}");
        assert_eq!(ahead(&rig).len(), 3);
        for i in rig
            .fleet
            .all()
            .iter()
            .filter(|i| ahead(&rig).contains(&i.id))
        {
            assert_eq!(i.tags[tags::EXECUTION], EXEC);
        }
        // Fired again (a retried Lambda): the same ClientToken, no new worker.
        fire(&rig, &input).await;
        assert_eq!(ahead(&rig).len(), 3);
        // Build's Prepares of this execution take the booting workers as theirs.
        for d in ["debian-12", "ubuntu-22.04", "ubuntu-24.04"] {
            let r = rig.run(build_req(&rig, d)).await;
            assert_eq!(r.status, PrepareStatus::Pending);
            assert!(r.launched.is_empty(), "{d}: {r:?}");
        }
        assert_eq!(
            rig.fleet.live_ids().len(),
            4,
            "Source's worker and three Build workers"
        );
    }

    #[tokio::test]
    async fn a_lookahead_ec2_refuses_says_why_starts_nothing_after_and_the_prepare_fails() {
        let rig = rig_with_end(30).await;
        // The AMI is gone: every launch is refused, and stays refused.
        rig.fleet.refuse(
            "c7i.large",
            Purchase::Spot,
            PortError::Other("InvalidAMIID.NotFound: ami-0123456789abcdef0".into()),
        );
        let (_, input) = started(&rig).remove(0);
        let before = rig.executions.started().len();
        for _ in 0..2 {
            let o = fire(&rig, &input).await;
            assert!(o.launched.is_empty(), "{o:?}");
            assert!(o.reason.contains("InvalidAMIID.NotFound"), "{}", o.reason);
            assert!(o.reason.contains("nothing started ahead"), "{}", o.reason);
            // No lookahead for Test or Publish: Build's tasks cannot run.
            assert!(o.next.is_empty(), "{o:?}");
        }
        assert_eq!(rig.executions.started().len(), before);
        assert_eq!(
            rig.fleet.launch_calls().len(),
            1 + 2,
            "Source's, then one per firing"
        );
        // Build's own Prepare fails at once with EC2's code: the task is not left waiting.
        let e = handle(build_req(&rig, "debian-12"), &rig.ports(), &rig.cfg, &rig.p)
            .await
            .unwrap_err();
        assert_eq!(e.name.as_str(), "Ec2.LaunchFailed");
        assert!(e.message.contains("InvalidAMIID.NotFound"), "{}", e.message);
        assert_eq!(rig.fleet.live_ids().len(), 1, "only Source's worker");
    }

    #[tokio::test]
    async fn a_lookahead_that_fires_after_its_run_ended_starts_nothing() {
        // Source is expected to end within Build's boot, but the run was stopped meanwhile.
        let rig = rig_with_end(30).await;
        let (_, input) = started(&rig).remove(0);
        let before = rig.fleet.launch_calls().len();
        rig.executions.end(EXEC);
        let o = fire(&rig, &input).await;
        assert!(o.launched.is_empty(), "{o:?}");
        assert!(o.reason.contains("has ended"), "{}", o.reason);
        assert!(o.next.is_empty(), "{o:?}");
        assert_eq!(rig.fleet.launch_calls().len(), before);
        // Another run's lookahead is not affected.
        let item: boa_core::Item = [("version".to_string(), "1.2.3".to_string())].into();
        put_json(
            &rig,
            &expected_end_key(EXEC2, "Source", &item),
            json!({"end": (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339()}),
        )
        .await;
        let mut other = input.clone();
        other.lookahead.execution = EXEC2.into();
        assert!(other.lookahead.waits_for.iter().all(|t| t.step == "Source"));
        let o = fire(&rig, &other).await;
        assert_eq!(o.launched.len(), 3, "{o:?}");
    }

    /// A chain of short tasks pays one boot, not one per step: when Build's workers start ahead,
    /// Build's tasks get a projected end (the later of Source's end and their workers' boot,
    /// plus their expected duration) and the steps after Build are timed from it, before any
    /// Build task is prepared.
    #[tokio::test]
    async fn starting_a_steps_workers_ahead_times_the_steps_after_it_too() {
        let rig = rig_with_end(30).await;
        let debian: boa_core::Item = [
            ("version".to_string(), "1.2.3".to_string()),
            ("distro".to_string(), "debian-12".to_string()),
        ]
        .into();
        put_history(&rig, "Build", &debian, 120.0).await;
        // The other two are expected to take less: debian-12 is the last Build to end.
        for (d, secs) in [("ubuntu-22.04", 60.0), ("ubuntu-24.04", 90.0)] {
            let mut i = debian.clone();
            i.insert("distro".into(), d.into());
            put_history(&rig, "Build", &i, secs).await;
        }
        let (_, input) = started(&rig).remove(0);
        let o = fire(&rig, &input).await;
        assert_eq!(o.launched.len(), 3, "{o:?}");
        // Test after each of the three Build tasks; Publish, which waits for all three, once:
        // after the Build expected to end last.
        assert_eq!(o.next.len(), 4, "{o:?}");
        let publishes: Vec<LookaheadInput> = lookaheads(&rig, "Publish");
        assert_eq!(publishes.len(), 1, "{publishes:?}");
        assert_eq!(publishes[0].lookahead.after.item, debian);
        let after_debian: Vec<LookaheadInput> = started(&rig)
            .into_iter()
            .map(|(_, i)| i)
            .filter(|i| i.lookahead.after.item == debian)
            .collect();
        let steps: Vec<&str> = after_debian
            .iter()
            .map(|i| i.lookahead.step.as_str())
            .collect();
        assert_eq!(steps, ["Test", "Publish"], "{after_debian:?}");
        // Build[debian-12] starts when its worker is up (60 s boot, later than Source's 30 s)
        // and takes 120 s: it ends in ~180 s, and Publish's worker (60 s boot) starts at ~120 s.
        let end = rig
            .cfg
            .record_object(&expected_end_key(EXEC, "Build", &debian))
            .unwrap();
        let end: Value =
            serde_json::from_slice(&rig.objects.body(&end.bucket, &end.key).expect("projected"))
                .unwrap();
        let until = secs_until(end["end"].as_str().unwrap());
        assert!((175.0..=180.5).contains(&until), "{until}");
        let publish = &after_debian[1];
        assert_eq!(
            publish.lookahead.waits_for.len(),
            3,
            "Publish waits for every Build of the version"
        );
        let wait = secs_until(&publish.at);
        assert!((115.0..=120.5).contains(&wait), "{wait}");
        // Fired again (a retried Lambda): nothing new is started.
        let before = rig.executions.started().len();
        fire(&rig, &input).await;
        assert_eq!(rig.executions.started().len(), before);
        // Build[debian-12]'s own Prepare replaces the projection with its own expected end, and
        // starts nothing twice (the executions exist by name).
        rig.run(build_req(&rig, "debian-12")).await;
        assert_eq!(rig.executions.started().len(), before);
        // When Publish's Wait ends with the three Builds expected within its boot, its worker
        // starts; Announce (after Publish) is timed in turn.
        for d in ["debian-12", "ubuntu-22.04", "ubuntu-24.04"] {
            let mut i = debian.clone();
            i.insert("distro".into(), d.into());
            put_json(
                &rig,
                &expected_end_key(EXEC, "Build", &i),
                json!({"end": (chrono::Utc::now() + chrono::Duration::seconds(20)).to_rfc3339()}),
            )
            .await;
        }
        let o = fire(&rig, publish).await;
        assert_eq!(o.launched.len(), 1, "{o:?}");
        assert_eq!(o.next.len(), 1, "{o:?}");
        assert!(o.next[0].starts_with("Announce-"), "{o:?}");
    }

    #[tokio::test]
    async fn another_executions_prepare_does_not_take_them() {
        let mut rig = rig_with_end(30).await;
        for s in &mut rig.p.steps {
            s.worker.max_workers = 10;
        }
        let (_, input) = started(&rig).remove(0);
        fire(&rig, &input).await;
        let mut other = req(
            "Build",
            &[("version", "1.2.3"), ("distro", "debian-12")],
            rig.all_steps(Mode::Normal),
            json!({"Source": ok_result("Source", json!({"version": "1.2.3"}))}),
        );
        other.execution = EXEC.replace("run-1", "run-2");
        let r = rig.run(other).await;
        assert_eq!(r.launched.len(), 1, "{r:?}");
    }

    #[tokio::test]
    async fn nothing_starts_for_a_task_that_ended_failed_or_is_far_off() {
        let item: boa_core::Item = [("version".to_string(), "1.2.3".to_string())].into();
        // Source already ended: Build's Prepares start their workers as usual.
        let rig = la_rig();
        rig.run(source(&rig)).await;
        let (_, input) = started(&rig).remove(0);
        put_json(
            &rig,
            &task_record_key(EXEC, "Source", &item),
            json!({"step": "Source", "item": item, "status": "succeeded"}),
        )
        .await;
        let o = fire(&rig, &input).await;
        assert!(o.launched.is_empty() && o.next.is_empty(), "{o:?}");
        assert!(o.reason.contains("has ended"), "{}", o.reason);

        // Source is expected to end in an hour (its Prepare expects more than the projection
        // that timed the lookahead): too early to boot Build's workers, so the lookahead is put
        // off until a boot (60 s) before that end.
        let far = rig_with_end(3600).await;
        let (_, input) = started(&far).remove(0);
        let o = fire(&far, &input).await;
        assert!(o.launched.is_empty(), "{o:?}");
        assert!(
            o.reason.contains("later than a boot from now") && o.reason.contains("put off"),
            "{}",
            o.reason
        );
        let items = input.lookahead.items.clone();
        assert_eq!(o.next, [rearm_name(EXEC, "Build", &items, 1)]);
        let (_, again) = started(&far)
            .into_iter()
            .find(|(n, _)| n == &o.next[0])
            .expect("the put-off lookahead was started");
        assert_eq!(again.lookahead.rearm, 1);
        assert_eq!(again.lookahead.after, input.lookahead.after);
        let wait = chrono::DateTime::parse_from_rfc3339(&again.at)
            .unwrap()
            .to_utc()
            - chrono::Utc::now();
        assert!(
            (3530..=3540).contains(&wait.num_seconds()),
            "its Wait ends a boot before the expected end: {wait}"
        );
        // Still an hour off when that Wait ends: put off again, under the next name; after
        // MAX_REARMS times, no more (the Prepare launches).
        let o = fire(&far, &again).await;
        assert_eq!(o.next, [rearm_name(EXEC, "Build", &items, 2)], "{o:?}");
        let mut last = again.clone();
        last.lookahead.rearm = MAX_REARMS;
        let o = fire(&far, &last).await;
        assert!(o.launched.is_empty() && o.next.is_empty(), "{o:?}");
        assert!(o.reason.contains("put off 8 times"), "{}", o.reason);

        // Publish waits for every Build; one failed and Publish needs any-succeeded: the
        // others still count, so its worker starts; with all failed it does not.
        let rig = la_rig();
        let r = rig
            .run(req(
                "Build",
                &[("version", "1.2.3"), ("distro", "debian-12")],
                rig.all_steps(Mode::Normal),
                json!({"Source": ok_result("Source", json!({"version": "1.2.3"}))}),
            ))
            .await;
        assert_eq!(r.status, PrepareStatus::Pending);
        let publish: Vec<LookaheadInput> = lookaheads(&rig, "Publish");
        assert_eq!(publish.len(), 1);
        let waits = publish[0].lookahead.waits_for.len();
        assert_eq!(waits, 3, "every distro's Build");
        for d in ["ubuntu-22.04", "ubuntu-24.04"] {
            put_json(
                &rig,
                &task_record_key(EXEC, "Build", &build_item(d)),
                json!({"step": "Build", "item": build_item(d), "status": "failed"}),
            )
            .await;
        }
        // debian-12 is expected to end a boot (60 s) + the default expected duration from now.
        let o = fire(&rig, &publish[0]).await;
        assert!(o.launched.is_empty(), "{o:?}");
        assert!(o.reason.contains("later than a boot"), "{}", o.reason);
        ends_now(&rig, "Build", &build_item("debian-12")).await;
        let o = fire(&rig, &publish[0]).await;
        assert_eq!(
            o.launched.len(),
            1,
            "any-succeeded: one Build may still succeed: {o:?}"
        );
    }

    #[tokio::test]
    async fn a_fan_in_steps_task_gets_one_lookahead_timed_by_the_last_dependency_to_end() {
        // Publish (not exclusive here) waits for every distro's Build.
        let mut rig = fan_in_rig();
        for (d, secs) in [
            ("ubuntu-24.04", 300.0),
            ("debian-12", 100.0),
            ("ubuntu-22.04", 200.0),
        ] {
            put_history(&rig, "Build", &build_item(d), secs).await;
        }
        // The longest is prepared first: the two prepared after it end earlier and leave
        // Publish's lookahead to it.
        for d in ["ubuntu-24.04", "debian-12", "ubuntu-22.04"] {
            rig.run(build_req(&rig, d)).await;
        }
        let p = lookaheads(&rig, "Publish");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].lookahead.after.item, build_item("ubuntu-24.04"));
        assert_eq!(p[0].lookahead.waits_for.len(), 3);
        // Its Wait ends a boot (60 s) before ubuntu-24.04's end (60 s boot + 300 s).
        let wait = secs_until(&p[0].at);
        assert!((295.0..=300.5).contains(&wait), "{wait}");
        // Test waits for one Build only: each Build starts its own.
        let tests = started(&rig)
            .into_iter()
            .filter(|(_, i)| i.lookahead.step == "Test")
            .count();
        assert_eq!(tests, 3);
        // A task does not defer to one whose lookahead has fired already: with a Publish boot
        // longer than ubuntu-24.04's whole expected run, its Wait is over. Nor does it start a
        // lookahead whose Wait would be over at once: a Build prepared now does the lookahead's
        // work itself. Every Build is expected to end within Publish's boot, so Publish's
        // worker starts now, tagged as started ahead for it.
        set_boot(&mut rig, "Publish", 1000);
        assert!(workers_of(&rig, "Publish").is_empty());
        rig.run(build_req(&rig, "ubuntu-22.04")).await;
        let p = lookaheads(&rig, "Publish");
        assert_eq!(p.len(), 1, "no second lookahead execution: {p:?}");
        let w = workers_of(&rig, "Publish");
        assert_eq!(w.len(), 1, "{w:?}");
        let after = boa_core::lookahead::TaskRef {
            step: "Build".into(),
            item: build_item("ubuntu-22.04"),
        };
        assert_eq!(
            w[0].get(tags::AHEAD),
            Some(&boa_core::lookahead::ahead_tag(EXEC, "Publish", &after))
        );
        // The task it started ahead for has one worker on its way: a Build prepared again
        // (retried) starts no second one.
        rig.run(build_req(&rig, "ubuntu-22.04")).await;
        assert_eq!(workers_of(&rig, "Publish").len(), 1);
    }

    #[tokio::test]
    async fn fan_in_dependencies_expected_to_end_within_a_slot_of_each_other_share_one_lookahead() {
        let mut rig = fan_in_rig();
        // Publish boots in 4000 s: a slot is a quarter of that. Builds expected to take the same
        // time, prepared one after another, end milliseconds apart: in one slot.
        set_boot(&mut rig, "Publish", 4000);
        for d in ["ubuntu-24.04", "ubuntu-22.04", "debian-12"] {
            put_history(&rig, "Build", &build_item(d), 10_000.0).await;
        }
        // The highest key first: each later one, though it ends a moment later, is in the same
        // slot with a lower key and defers to it.
        for d in ["ubuntu-24.04", "ubuntu-22.04", "debian-12"] {
            rig.run(build_req(&rig, d)).await;
        }
        let p: Vec<LookaheadInput> = lookaheads(&rig, "Publish");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].lookahead.after.item, build_item("ubuntu-24.04"));
    }

    #[tokio::test]
    async fn a_lookahead_done_in_a_prepare_that_cannot_read_its_records_leaves_the_task_going() {
        // Publish boots longer than any Build runs: each Build's Prepare does Publish's
        // lookahead itself. The bucket refuses every read, for the whole run.
        let mut rig = fan_in_rig();
        set_boot(&mut rig, "Publish", 1000);
        rig.objects.deny_reads();
        for d in ["debian-12", "ubuntu-22.04", "ubuntu-24.04"] {
            let r = rig.run(build_req(&rig, d)).await;
            assert_eq!(r.status, PrepareStatus::Pending, "{r:?}");
            assert_eq!(r.launched.len(), 1, "its own Build worker: {r:?}");
        }
        assert!(lookaheads(&rig, "Publish").is_empty());
        let publish = rig
            .fleet
            .all()
            .into_iter()
            .filter(|i| {
                i.tags
                    .get(tags::ACTIVITY)
                    .is_some_and(|a| a.ends_with("Publish"))
            })
            .count();
        assert_eq!(publish, 0, "nothing read, nothing started ahead");
    }

    #[tokio::test]
    async fn a_fan_in_lookahead_reads_what_its_task_waits_for_side_by_side() {
        let rig = fan_in_rig();
        let distros = ["debian-12", "ubuntu-22.04", "ubuntu-24.04"];
        for d in distros {
            rig.run(build_req(&rig, d)).await;
            ends_now(&rig, "Build", &build_item(d)).await;
        }
        let publish = lookaheads(&rig, "Publish")
            .into_iter()
            .next()
            .expect("a Publish lookahead");
        // Each read takes a moment.
        rig.objects.slow_reads(std::time::Duration::from_millis(5));
        let o = fire(&rig, &publish).await;
        assert_eq!(o.launched.len(), 1, "{o:?}");
        // Three Builds' records (none yet), read at once.
        assert_eq!(
            rig.objects.most_reads_at_once(),
            distros.len(),
            "reads in flight at once"
        );
    }

    #[tokio::test]
    async fn a_fan_in_step_s_lookaheads_start_one_worker_between_them() {
        // Publish (not exclusive here) waits for every distro's Build: each Build's Prepare
        // starts a lookahead for it, and they may fire together.
        let rig = fan_in_rig();
        let distros = ["debian-12", "ubuntu-22.04", "ubuntu-24.04"];
        for d in distros {
            rig.run(build_req(&rig, d)).await;
        }
        let publish: Vec<LookaheadInput> = lookaheads(&rig, "Publish");
        assert_eq!(publish.len(), 3, "one per Build");
        // Every Build is now expected to end within a boot.
        for d in distros {
            ends_now(&rig, "Build", &build_item(d)).await;
        }
        let first = fire(&rig, &publish[0]).await;
        assert_eq!(first.launched.len(), 1, "{first:?}");
        // The others find that worker booting for the same Publish task: none starts another.
        for l in &publish[1..] {
            let o = fire(&rig, l).await;
            assert!(o.launched.is_empty(), "a second Publish worker: {o:?}");
        }
        assert_eq!(
            rig.fleet.live_ids().len(),
            3 + 1,
            "three Builds' workers and one Publish worker"
        );
    }

    async fn rig_with_end(secs: i64) -> Rig {
        let rig = la_rig();
        rig.run(source(&rig)).await;
        let item: boa_core::Item = [("version".to_string(), "1.2.3".to_string())].into();
        put_json(
            &rig,
            &expected_end_key(EXEC, "Source", &item),
            json!({"end": (chrono::Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339()}),
        )
        .await;
        rig
    }

    #[tokio::test]
    async fn a_dependency_that_failed_under_all_succeeded_starts_nothing() {
        // Test (after Build, all-succeeded): Build failed → no Test worker.
        let rig = la_rig();
        let b: boa_core::Item = [
            ("version".to_string(), "1.2.3".to_string()),
            ("distro".to_string(), "debian-12".to_string()),
        ]
        .into();
        rig.run(build_req(&rig, "debian-12")).await;
        let test: LookaheadInput = lookaheads(&rig, "Test")
            .into_iter()
            .next()
            .expect("a lookahead for Test");
        assert_eq!(test.lookahead.waits_for.len(), 1);
        // Publish is exclusive with other waits; here Test's only dependency is this Build.
        let mut l = test.clone();
        // Pretend the Build is another task that failed, and this lookahead waits for both.
        let mut other = b.clone();
        other.insert("distro".into(), "ubuntu-22.04".into());
        l.lookahead.waits_for.push(boa_core::lookahead::TaskRef {
            step: "Build".into(),
            item: other.clone(),
        });
        put_json(
            &rig,
            &task_record_key(EXEC, "Build", &other),
            json!({"step": "Build", "item": other, "status": "failed"}),
        )
        .await;
        ends_now(&rig, "Build", &b).await;
        let o = fire(&rig, &l).await;
        assert!(o.launched.is_empty(), "{o:?}");
        assert!(o.reason.contains("failed: it will not run"), "{}", o.reason);
    }

    #[tokio::test]
    async fn each_versions_lookahead_starts_its_own_workers_and_its_prepares_claim_only_those() {
        let mut rig = la_rig();
        for s in &mut rig.p.steps {
            s.worker.max_workers = 10;
        }
        let two = BuildInput::from_json(
            &rig.p,
            &json!({"versions": ["1.2.3", "1.2.4"]}),
            chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap(),
        )
        .unwrap();
        for v in ["1.2.3", "1.2.4"] {
            rig.run(req("Source", &[("version", v)], two.clone(), json!({})))
                .await;
            let item: boa_core::Item = [("version".to_string(), v.to_string())].into();
            ends_now(&rig, "Source", &item).await;
        }
        let inputs: Vec<LookaheadInput> = started(&rig).into_iter().map(|(_, i)| i).collect();
        assert_eq!(inputs.len(), 2);
        let build = |v: &str, d: &str| {
            let mut r = req(
                "Build",
                &[("version", v), ("distro", d)],
                two.clone(),
                json!({"Source": ok_result("Source", json!({"version": v}))}),
            );
            r.entered = format!("2025-01-02T10:00:00.000Z-{v}-{d}");
            r
        };
        // 1.2.3's three start ahead.
        let o = fire(&rig, &inputs[0]).await;
        assert_eq!(o.launched.len(), 3, "{o:?}");
        // A Build of 1.2.4 does not take them: they were started for 1.2.3's Builds.
        let r = rig.run(build("1.2.4", "debian-12")).await;
        assert_eq!(r.launched.len(), 1, "{r:?}");
        // 1.2.3's Builds do.
        for d in ["debian-12", "ubuntu-22.04", "ubuntu-24.04"] {
            let r = rig.run(build("1.2.3", d)).await;
            assert!(r.launched.is_empty(), "{d}: {r:?}");
        }
        // 1.2.4's lookahead starts its own three: a booting worker launched for another task
        // is not spare.
        let o = fire(&rig, &inputs[1]).await;
        assert_eq!(o.launched.len(), 3, "{o:?}");
        assert_eq!(ahead(&rig).len(), 6);
    }

    #[tokio::test]
    async fn an_exclusive_steps_task_is_expected_to_end_after_those_queued_before_it() {
        let rig = la_rig();
        let item = |v: &str| -> boa_core::Item { [("version".to_string(), v.to_string())].into() };
        for v in ["1.2.3", "1.2.4", "1.2.5"] {
            put_history(&rig, "Publish", &item(v), 100.0).await;
        }
        let end_in = |step: &str, it: &boa_core::Item| {
            let at = rig
                .cfg
                .record_object(&expected_end_key(EXEC, step, it))
                .unwrap();
            let body = rig.objects.body(&at.bucket, &at.key).expect("written");
            let e: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(e["prepared"], true, "{e}");
            secs_until(e["end"].as_str().unwrap())
        };
        let end_of = |v: &str| end_in("Publish", &item(v));
        // The first waits for its worker's boot (60 s) and takes 100 s.
        rig.run(publish_req("1.2.3", EXEC)).await;
        let first = end_of("1.2.3");
        assert!((155.0..=160.5).contains(&first), "{first}");
        // A task projected by a lookahead, not published yet, is not in the queue.
        put_json(
            &rig,
            &expected_end_key(EXEC, "Publish", &item("1.2.9")),
            json!({"end": (chrono::Utc::now() + chrono::Duration::seconds(5000)).to_rfc3339()}),
        )
        .await;
        // Nor is another execution's task.
        put_json(
            &rig,
            &expected_end_key(EXEC2, "Publish", &item("1.2.8")),
            json!({"end": (chrono::Utc::now() + chrono::Duration::seconds(4000)).to_rfc3339(),
                   "prepared": true}),
        )
        .await;
        // The second runs after the first, one at a time.
        rig.run(publish_req("1.2.4", EXEC)).await;
        let second = end_of("1.2.4");
        assert!((255.0..=260.5).contains(&second), "{second}");
        // Announce's workers for 1.2.4 are timed by that end, less their boot.
        let announce = lookaheads(&rig, "Announce")
            .into_iter()
            .find(|i| i.lookahead.after.item == item("1.2.4"))
            .expect("a lookahead for Announce after Publish 1.2.4");
        let wait = secs_until(&announce.at);
        assert!((195.0..=200.5).contains(&wait), "{wait}");
        // Once 1.2.4 has ended (its record is written), a third waits only for 1.2.3.
        put_json(
            &rig,
            &task_record_key(EXEC, "Publish", &item("1.2.4")),
            json!({"status": "succeeded"}),
        )
        .await;
        rig.run(publish_req("1.2.5", EXEC)).await;
        let third = end_of("1.2.5");
        assert!((255.0..=260.5).contains(&third), "{third}");
        // A task a lookahead expects to be ready before this one is ahead of it too, though not
        // published yet.
        let now = chrono::Utc::now();
        put_json(
            &rig,
            &expected_end_key(EXEC, "Publish", &item("1.2.7")),
            json!({"end": (now + chrono::Duration::seconds(1000)).to_rfc3339(),
                   "ready": (now - chrono::Duration::seconds(1)).to_rfc3339()}),
        )
        .await;
        put_history(&rig, "Publish", &item("1.2.6"), 100.0).await;
        rig.run(publish_req("1.2.6", EXEC)).await;
        let fourth = end_of("1.2.6");
        assert!((1095.0..=1100.5).contains(&fourth), "{fourth}");
        // A step that is not exclusive runs its tasks side by side: the second is expected to
        // end with the first.
        rig.run(build_req(&rig, "debian-12")).await;
        rig.run(build_req(&rig, "ubuntu-22.04")).await;
        let (a, b) = (
            end_in("Build", &build_item("debian-12")),
            end_in("Build", &build_item("ubuntu-22.04")),
        );
        assert!((a - b).abs() < 1.0, "{a} {b}");
    }

    #[tokio::test]
    async fn an_exclusive_steps_turns_add_up_when_their_ends_were_reckoned_at_once() {
        let rig = la_rig();
        let item = |v: &str| -> boa_core::Item { [("version".to_string(), v.to_string())].into() };
        // Two tasks prepared at the same moment, each unaware of the other: both expect to end
        // in 100 s, each taking 100 s. They still run one after the other.
        let now = chrono::Utc::now();
        for v in ["1.3.1", "1.3.2"] {
            put_json(
                &rig,
                &expected_end_key(EXEC, "Publish", &item(v)),
                json!({"end": (now + chrono::Duration::seconds(100)).to_rfc3339(),
                       "prepared": true,
                       "ready": (now - chrono::Duration::seconds(1)).to_rfc3339(),
                       "run_s": 100.0}),
            )
            .await;
        }
        put_history(&rig, "Publish", &item("1.3.3"), 100.0).await;
        rig.run(publish_req("1.3.3", EXEC)).await;
        let at = rig
            .cfg
            .record_object(&expected_end_key(EXEC, "Publish", &item("1.3.3")))
            .unwrap();
        let e: Value =
            serde_json::from_slice(&rig.objects.body(&at.bucket, &at.key).unwrap()).unwrap();
        // Both turns ahead (200 s), then its own 100 s: not the 200 s that the later of their
        // ends plus its own run would give.
        let end = secs_until(e["end"].as_str().unwrap());
        assert!((295.0..=300.5).contains(&end), "{end} {e}");
        assert_eq!(e["run_s"], 100.0, "{e}");
    }

    #[tokio::test]
    async fn absurd_histories_read_back_from_the_bucket_are_no_panic() {
        let rig = la_rig();
        let item = |v: &str| -> boa_core::Item { [("version".to_string(), v.to_string())].into() };
        // Edited by hand or corrupted: ages of pipeline time, past what the clock can add.
        put_history(&rig, "Source", &item("1.2.3"), 1e15).await;
        put_json(
            &rig,
            &boa_core::history::hand_over_key("Build"),
            json!({ "elapsed_s": [1e15] }),
        )
        .await;
        put_json(
            &rig,
            &expected_end_key(EXEC, "Publish", &item("1.2.2")),
            json!({"end": (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc3339(),
                   "prepared": true,
                   "ready": chrono::Utc::now().to_rfc3339(),
                   "run_s": 1e300}),
        )
        .await;
        assert_eq!(rig.run(source(&rig)).await.status, PrepareStatus::Pending);
        put_history(&rig, "Publish", &item("1.2.3"), 1e15).await;
        assert_eq!(
            rig.run(publish_req("1.2.3", EXEC)).await.status,
            PrepareStatus::Pending
        );
    }
}
