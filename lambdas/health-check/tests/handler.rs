//! health-check against in-memory fakes.

use std::path::Path;

use boa_aws::fakes::{FakeExecutions, FakeFleet, FakeObjects, RecordingSleeper, event};
use boa_aws::ports::{HistoryEvent, InstanceState, PortError, Purchase, tags};
use boa_core::Pipeline;
use boa_core::history_event::EventType;
use boa_core::stack::StackConfig;
use chrono::{DateTime, TimeZone, Utc};
use health_check::{handle, pending_tasks};

const SM: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:build-on-aws-hhvm";
const E1: &str = "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-hhvm:one";
const E2: &str = "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-hhvm:two";
const GONE: &str = "arn:aws:states:us-east-1:123456789012:execution:build-on-aws-hhvm:gone";
const STACK: &str = "build-on-aws-hhvm";

fn example() -> Pipeline {
    Pipeline::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipeline.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn cfg() -> StackConfig {
    let mut c = StackConfig::new(STACK, "us-east-1", "123456789012", "s3://artifacts/hhvm");
    c.state_machine_arn = SM.into();
    c
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 1, 12, 0, 0).unwrap()
}

fn arn(step: &str) -> String {
    format!("arn:aws:states:us-east-1:123456789012:activity:build-on-aws-hhvm-{step}")
}

fn entered(id: i64, prev: i64, state: &str) -> HistoryEvent {
    let mut e = event(id, prev, EventType::TaskStateEntered);
    e.state_name = Some(state.into());
    e
}

fn scheduled(id: i64, prev: i64, step: &str) -> HistoryEvent {
    let mut e = event(id, prev, EventType::ActivityScheduled);
    e.resource = Some(arn(step));
    e
}

#[test]
fn pending_means_scheduled_and_not_started_finished_or_timed_out() {
    // AWS-shaped chains: Scheduled ← Started ← Succeeded, a timeout straight after scheduling,
    // and two schedules still open.
    let h = vec![
        event(1, 0, EventType::ExecutionStarted),
        entered(2, 1, "MakeBinaryPackage"),
        scheduled(3, 2, "MakeBinaryPackage"),
        entered(4, 1, "MakeBinaryPackage"),
        scheduled(5, 4, "MakeBinaryPackage"),
        event(6, 3, EventType::ActivityStarted),
        event(7, 6, EventType::ActivitySucceeded),
        entered(8, 1, "MakeBinaryPackage"),
        scheduled(9, 8, "MakeBinaryPackage"),
        event(10, 9, EventType::ActivityTimedOut),
        entered(11, 1, "PublishBinaryPackages"),
        scheduled(12, 11, "PublishBinaryPackages"),
        entered(13, 1, "MakeSourceTarball"),
        scheduled(14, 13, "MakeSourceTarball"),
        event(15, 14, EventType::ActivityScheduleFailed),
    ];
    let p: Vec<(i64, String)> = pending_tasks(E1, &h)
        .into_iter()
        .map(|t| (t.event_id, t.resource))
        .collect();
    assert_eq!(
        p,
        [
            (5, arn("MakeBinaryPackage")),
            (12, arn("PublishBinaryPackages"))
        ]
    );
}

#[test]
fn an_unlinked_start_closes_the_latest_open_schedule_of_its_state() {
    let h = vec![
        entered(1, 0, "A"),
        scheduled(2, 1, "MakeSourceTarball"),
        entered(3, 0, "B"),
        scheduled(4, 3, "MakeBinaryPackage"),
        // Linked to B's state entry, not to its schedule.
        event(5, 3, EventType::ActivityStarted),
    ];
    let p: Vec<i64> = pending_tasks(E1, &h).iter().map(|t| t.event_id).collect();
    assert_eq!(p, [2]);
}

#[test]
fn fake_ec2_tasks_wait_for_a_hand_started_worker_and_launch_nothing() {
    let with_mode = |id: i64, mode: &str| {
        let mut e = scheduled(id, id - 1, "MakeSourceTarball");
        e.payload = Some(format!(
            r#"{{"step":"MakeSourceTarball","item":{{"version":"4.28.2"}},"mode":"{mode}","attempt":1}}"#
        ));
        e
    };
    let h = vec![
        entered(1, 0, "MakeSourceTarball"),
        with_mode(2, "fake-ec2"),
        entered(3, 0, "MakeSourceTarball"),
        with_mode(4, "normal"),
    ];
    let p: Vec<i64> = pending_tasks(E1, &h).iter().map(|t| t.event_id).collect();
    assert_eq!(p, [4]);
}

fn worker(fleet: &FakeFleet, id: &str, step: &str, exec: &str, work: Option<&str>) {
    let act = format!("build-on-aws-hhvm-{step}");
    let mut t = vec![
        (tags::STACK, STACK),
        (tags::ACTIVITY, act.as_str()),
        (tags::EXECUTION, exec),
    ];
    if let Some(w) = work {
        t.push((tags::WORK, w));
    }
    fleet.add(id, InstanceState::Running, &t);
}

#[tokio::test]
async fn launches_pending_minus_idle_per_activity_and_reaps_orphans() {
    let (ex, fleet, sleeper, p) = (
        FakeExecutions::new(),
        FakeFleet::new(),
        RecordingSleeper::new(),
        example(),
    );
    // E1: three MakeBinaryPackage tasks waiting; E2: one PublishBinaryPackages task waiting.
    ex.add_running(
        SM,
        E1,
        vec![
            entered(1, 0, "MakeBinaryPackage"),
            scheduled(2, 1, "MakeBinaryPackage"),
            entered(3, 0, "MakeBinaryPackage"),
            scheduled(4, 3, "MakeBinaryPackage"),
            entered(5, 0, "MakeBinaryPackage"),
            scheduled(6, 5, "MakeBinaryPackage"),
        ],
    );
    ex.add_running(
        SM,
        E2,
        vec![
            entered(1, 0, "PublishBinaryPackages"),
            scheduled(2, 1, "PublishBinaryPackages"),
        ],
    );
    // One idle and one busy binary worker; one booting (no work tag yet) counts as idle.
    worker(&fleet, "i-idle", "MakeBinaryPackage", E1, Some("idle"));
    worker(&fleet, "i-busy", "MakeBinaryPackage", E1, Some("busy"));
    worker(&fleet, "i-boot", "MakeBinaryPackage", E1, None);
    // Kept: an idle worker launched by an execution that ended (activities are shared: it may
    // take another execution's task at any moment), with a fresh lease.
    let act = "build-on-aws-hhvm-MakeSourceTarball";
    fleet.add(
        "i-other-execution",
        InstanceState::Running,
        &[
            (tags::STACK, STACK),
            (tags::ACTIVITY, act),
            (tags::EXECUTION, GONE),
            (tags::WORK, "idle"),
            (tags::LEASE, "2025-05-01T12:08:00Z"),
        ],
    );
    // Orphans: a busy worker whose lease expired (its heartbeats stopped), and an instance that
    // never registered within the boot timeout (10 minutes by default).
    fleet.add(
        "i-stale",
        InstanceState::Running,
        &[
            (tags::STACK, STACK),
            (tags::ACTIVITY, act),
            (tags::EXECUTION, E1),
            (tags::WORK, "busy"),
            (tags::LEASE, "2025-05-01T11:50:00Z"),
        ],
    );
    fleet.add_at(
        "i-deadboot",
        InstanceState::Running,
        &[
            (tags::STACK, STACK),
            (tags::ACTIVITY, "build-on-aws-hhvm-MakeBinaryPackage"),
            (tags::EXECUTION, E1),
        ],
        Some(now() - chrono::Duration::minutes(11)),
    );
    // Kept: still within its boot timeout.
    fleet.add_at(
        "i-booting",
        InstanceState::Running,
        &[
            (tags::STACK, STACK),
            (tags::ACTIVITY, "build-on-aws-hhvm-PublishSourceTarball"),
            (tags::EXECUTION, E1),
        ],
        Some(now() - chrono::Duration::minutes(9)),
    );
    // Kept: busy for an ended execution, with a fresh lease (its task is alive).
    fleet.add(
        "i-finishing",
        InstanceState::Running,
        &[
            (tags::STACK, STACK),
            (tags::ACTIVITY, act),
            (tags::EXECUTION, GONE),
            (tags::WORK, "busy"),
            (tags::LEASE, "2025-05-01T12:10:00Z"),
        ],
    );
    let report = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "round-1",
    )
    .await
    .unwrap();
    assert_eq!(report.executions, 2);
    assert_eq!(report.pending_per_activity["MakeBinaryPackage"], 3);
    assert_eq!(report.pending_per_activity["PublishBinaryPackages"], 1);
    let mut reaped = fleet.terminated();
    reaped.sort();
    assert_eq!(reaped, ["i-deadboot", "i-stale"]);
    assert_eq!(report.reaped.len(), 2);
    let why = |id: &str| {
        report
            .reaped
            .iter()
            .find(|r| r.starts_with(id))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        why("i-stale").contains("lease expired"),
        "{:?}",
        report.reaped
    );
    assert!(
        why("i-deadboot").contains("never registered within the boot timeout (600 s)"),
        "{:?}",
        report.reaped
    );
    // 3 pending − 2 idle (i-idle, i-boot) = 1 binary worker; 1 publisher.
    let calls = fleet.launch_calls();
    let by_act: Vec<(String, u32)> = calls
        .iter()
        .map(|c| (c.tags[tags::ACTIVITY].clone(), c.count))
        .collect();
    assert_eq!(
        by_act,
        [
            ("build-on-aws-hhvm-MakeBinaryPackage".to_string(), 1),
            ("build-on-aws-hhvm-PublishBinaryPackages".to_string(), 1),
        ]
    );
    assert_eq!(report.launched.len(), 2);
    assert!(calls.iter().all(|c| c.tags[tags::STATE] == "HealthCheck"));
    assert_eq!(calls[1].tags[tags::EXECUTION], E2);
    assert!(report.errors.is_empty());

    // A second check right after: the new workers are booting (idle): nothing more is launched.
    let again = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "round-1",
    )
    .await
    .unwrap();
    assert!(again.launched.is_empty(), "{again:?}");
    assert_eq!(fleet.launch_calls().len(), 2);
}

#[tokio::test]
async fn no_capacity_is_reported_and_other_launch_errors_fail_loudly() {
    let (ex, fleet, sleeper, p) = (
        FakeExecutions::new(),
        FakeFleet::new(),
        RecordingSleeper::new(),
        example(),
    );
    ex.add_running(
        SM,
        E1,
        vec![
            entered(1, 0, "MakeSourceTarball"),
            scheduled(2, 1, "MakeSourceTarball"),
        ],
    );
    for t in &p.step("MakeSourceTarball").unwrap().worker.instance_types {
        for m in [Purchase::Spot, Purchase::OnDemand] {
            fleet.refuse(t, m, PortError::NoCapacity(format!("no {t}")));
        }
    }
    let r = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "round-1",
    )
    .await
    .unwrap();
    assert!(r.launched.is_empty());
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].contains("no m7i.xlarge"), "{:?}", r.errors);

    let fleet = FakeFleet::new();
    fleet.fail_next([PortError::Other(
        "UnauthorizedOperation: ec2:RunInstances".into(),
    )]);
    let e = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "round-1",
    )
    .await
    .unwrap_err();
    assert_eq!(e.name.as_str(), "Ec2.LaunchFailed");
    assert!(e.message.contains("UnauthorizedOperation"), "{}", e.message);
}

#[tokio::test]
async fn port_errors_fail_the_check_with_their_name() {
    let (ex, fleet, sleeper, p) = (
        FakeExecutions::new(),
        FakeFleet::new(),
        RecordingSleeper::new(),
        example(),
    );
    ex.add_running(SM, E1, vec![]);
    fleet.fail_instances(PortError::Throttled("RequestLimitExceeded".into()));
    let e = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "round-1",
    )
    .await
    .unwrap_err();
    assert_eq!(e.name.as_str(), "Aws.Throttled");
    assert!(
        e.message.contains("listing the stack's instances"),
        "{}",
        e.message
    );
    ex.fail(PortError::Transient("connection reset".into()));
    let d = boa_aws::lambda::diagnostic(
        handle(
            &ex,
            &fleet,
            &FakeObjects::new(),
            &sleeper,
            &cfg(),
            &p,
            now(),
            "round-1",
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(d.error_type, "Aws.CallFailed");
    assert!(d.error_message.contains(SM), "{}", d.error_message);
}

/// A Distributed Map's tasks wait in its child executions' histories: the check reads the
/// running children of each running execution and launches for their pending tasks, tagging the
/// workers with the top-level execution (the one start-workers tags with, and whose end frees them).
#[tokio::test]
async fn pending_tasks_of_distributed_children_are_found_and_belong_to_the_parent() {
    let (ex, fleet, sleeper, p) = (
        FakeExecutions::new(),
        FakeFleet::new(),
        RecordingSleeper::new(),
        example(),
    );
    ex.add_running(SM, E1, vec![entered(1, 0, "ForEachVersion")]);
    let child = format!("{SM}/ForEachVersion:0001").replace(":stateMachine:", ":execution:");
    ex.add_running_child(
        E1,
        &child,
        vec![
            entered(1, 0, "MakeSourceTarball"),
            scheduled(2, 1, "MakeSourceTarball"),
        ],
    );
    let r = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "round-1",
    )
    .await
    .unwrap();
    assert_eq!(r.pending_per_activity.get("MakeSourceTarball"), Some(&1));
    assert_eq!(r.launched.len(), 1, "{r:?}");
    let launched = fleet.all();
    assert_eq!(
        launched[0].tags.get(tags::EXECUTION).map(String::as_str),
        Some(E1),
        "the worker belongs to the top-level execution"
    );
}

#[tokio::test]
async fn each_round_can_launch_anew_while_a_retried_round_is_idempotent() {
    let (ex, fleet, sleeper, p) = (
        FakeExecutions::new(),
        FakeFleet::new(),
        RecordingSleeper::new(),
        example(),
    );
    ex.add_running(
        SM,
        E1,
        vec![
            entered(1, 0, "MakeSourceTarball"),
            scheduled(2, 1, "MakeSourceTarball"),
        ],
    );
    let first = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "2025-05-01T12:00:00Z",
    )
    .await
    .unwrap();
    assert_eq!(first.launched.len(), 1);
    // The instance dies at boot (EC2 terminates it) and the task still waits.
    for i in fleet.all() {
        fleet.add(&i.id, InstanceState::Terminated, &[]);
    }
    // Scheduler retries the same round: same ClientToken, the same (dead) instance, no new one.
    let retried = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "2025-05-01T12:00:00Z",
    )
    .await
    .unwrap();
    assert_eq!(retried.launched, first.launched);
    // The next round launches a new instance.
    let next = handle(
        &ex,
        &fleet,
        &FakeObjects::new(),
        &sleeper,
        &cfg(),
        &p,
        now(),
        "2025-05-01T12:05:00Z",
    )
    .await
    .unwrap();
    assert_eq!(next.launched.len(), 1);
    assert_ne!(next.launched, first.launched);
    let tokens: Vec<String> = fleet
        .launch_calls()
        .iter()
        .map(|c| c.client_token.clone())
        .collect();
    assert_eq!(tokens[0], tokens[1]);
    assert_ne!(tokens[1], tokens[2]);
}

#[test]
fn the_round_comes_from_the_scheduler_event_or_the_request() {
    use health_check::round_of;
    let ev = serde_json::json!({"round": "2025-05-01T12:05:00Z"});
    assert_eq!(round_of(&ev, "req-1"), "2025-05-01T12:05:00Z");
    // An unexpanded placeholder or a hand-made event: the invocation is a round of its own.
    let raw = serde_json::json!({"round": "<aws.scheduler.scheduled-time>"});
    assert_eq!(round_of(&raw, "req-2"), "req-2");
    assert_eq!(round_of(&serde_json::json!({}), "req-3"), "req-3");
}
