//! Retry timing and matching, Catch routing, Parallel and Map semantics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use boa_core::history_event::EventType;
use engine::ExecutionStatus;
use serde_json::json;

fn gaps(calls: &[Call]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn assert_gap(got: Duration, want_ms: u64) {
    let want = Duration::from_millis(want_ms);
    assert!(
        got >= want.mul_f64(0.95) && got < want + Duration::from_millis(120),
        "gap {got:?}, expected about {want:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_intervals_backoff_and_max_delay() {
    // time_scale 100: 10 s → 100 ms. Backoff 2.0, cap 35 s → 100, 200, 350, 350 ms.
    let fake = Fake::new(|_, _, _| Err(fail("Ec2.NoCapacity", "none")));
    let e = engine(fake.clone(), 100.0);
    let def = single(json!({"Type": "Task", "Resource": lambda("f"), "End": true,
        "Retry": [{"ErrorEquals": ["Ec2.NoCapacity"], "IntervalSeconds": 10, "BackoffRate": 2.0,
                   "MaxAttempts": 4, "MaxDelaySeconds": 35}]}));
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Failed);
    assert_eq!(r.error.as_deref(), Some("Ec2.NoCapacity"));
    let calls = fake.calls();
    assert_eq!(calls.len(), 5, "1 attempt + 4 retries");
    let g = gaps(&calls);
    for (got, want) in g.iter().zip([100, 200, 350, 350]) {
        assert_gap(*got, want);
    }
    // 1 state entered + 4 retries.
    assert_eq!(r.counts.state_transitions, 5);
}

#[tokio::test]
async fn defaults_and_max_attempts_zero() {
    // Defaults: IntervalSeconds 1, BackoffRate 2, MaxAttempts 3 → 10, 20, 40 ms at scale 100.
    let fake = Fake::new(|_, _, _| Err(fail("X", "")));
    let e = engine(fake.clone(), 100.0);
    run(&e, &single(json!({"Type": "Task", "Resource": lambda("f"), "End": true, "Retry": [{"ErrorEquals": ["X"]}]})), json!({})).await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 4);
    for (got, want) in gaps(&calls).iter().zip([10, 20, 40]) {
        assert_gap(*got, want);
    }
    let fake = Fake::new(|_, _, _| Err(fail("X", "")));
    let e = engine(fake.clone(), 100.0);
    run(&e, &single(json!({"Type": "Task", "Resource": lambda("f"), "End": true,
        "Retry": [{"ErrorEquals": ["X"], "MaxAttempts": 0}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}]})), json!({})).await;
    assert_eq!(
        fake.calls().len(),
        1,
        "MaxAttempts 0 on the first matching retrier means no retry"
    );
}

#[tokio::test]
async fn each_retrier_keeps_its_own_count_and_retry_count_is_visible() {
    // Errors: A, B, A, B, then success. Retrier A allows 2, B allows 2 → succeeds on call 5.
    let fake = Fake::new(|_, p, n| match n {
        0 | 2 => Err(fail("A", "")),
        1 | 3 => Err(fail("B", "")),
        _ => Ok(json!({"retry_seen": p["rc"]})),
    });
    let e = engine(fake.clone(), 1000.0);
    let def = single(json!({"Type": "Task", "Resource": lambda("f"), "End": true,
        "Parameters": {"rc.$": "$$.State.RetryCount"},
        "Retry": [{"ErrorEquals": ["A"], "MaxAttempts": 2}, {"ErrorEquals": ["B"], "MaxAttempts": 2}]}));
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{:?}", r.error);
    let rcs: Vec<_> = fake
        .calls()
        .iter()
        .map(|c| c.payload["rc"].clone())
        .collect();
    assert_eq!(rcs, vec![json!(0), json!(1), json!(2), json!(3), json!(4)]);
    assert_eq!(r.output, Some(json!({"retry_seen": 4})));
    // With B allowing only 1, the 4th call's B error is final even though A has budget left.
    let fake = Fake::new(|_, _, n| {
        if n % 2 == 0 {
            Err(fail("A", ""))
        } else {
            Err(fail("B", "b"))
        }
    });
    let e = engine(fake.clone(), 1000.0);
    let def = single(json!({"Type": "Task", "Resource": lambda("f"), "End": true,
        "Retry": [{"ErrorEquals": ["A"], "MaxAttempts": 5}, {"ErrorEquals": ["B"], "MaxAttempts": 1}]}));
    let r = run(&e, &def, json!({})).await;
    assert_eq!(fake.calls().len(), 4);
    assert_eq!(r.error.as_deref(), Some("B"));
}

#[tokio::test]
async fn catch_precedence_and_task_failed() {
    let def = |err: &str| {
        json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": lambda(err), "End": true,
                  "Catch": [
                      {"ErrorEquals": ["Worker.Interrupted", "Test.NoRetry"], "Next": "First", "ResultPath": "$.caught"},
                      {"ErrorEquals": ["Worker.Interrupted"], "Next": "Second"},
                      {"ErrorEquals": ["States.TaskFailed"], "Next": "TaskFailed"},
                      {"ErrorEquals": ["States.ALL"], "Next": "All"}]},
            "First": {"Type": "Pass", "End": true},
            "Second": {"Type": "Pass", "End": true, "Result": "second"},
            "TaskFailed": {"Type": "Pass", "End": true, "Result": "taskfailed"},
            "All": {"Type": "Pass", "End": true, "Result": "all"}}})
    };
    let fake = Fake::with_delay(Duration::ZERO, |f, _, _| Err(fail(f, "boom")));
    let e = engine(fake, 1.0);
    let r = run(&e, &def("Worker.Interrupted"), json!({"keep": 1})).await;
    assert_eq!(
        r.output,
        Some(json!({"keep": 1, "caught": {"Error": "Worker.Interrupted", "Cause": "boom"}}))
    );
    let r = run(&e, &def("Worker.ScriptFailed"), json!({})).await;
    assert_eq!(r.output, Some(json!("taskfailed")));
    // States.Timeout is not matched by States.TaskFailed, only by States.ALL.
    let slow = Fake::with_delay(Duration::from_millis(500), |_, _, _| Ok(json!(1)));
    let e = engine(slow, 100.0);
    let mut d = def("slow");
    d["States"]["T"]["TimeoutSeconds"] = json!(1);
    let r = run(&e, &d, json!({})).await;
    assert_eq!(r.output, Some(json!("all")));
    let kinds: Vec<EventType> = e
        .history(&r.execution_arn)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert!(
        kinds.contains(&EventType::LambdaFunctionTimedOut),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn parallel_branch_error_surfaces_and_retry_reruns_the_branch() {
    // Branch 2's task fails the first time it runs, then succeeds.
    let fake = Fake::new(|f, _, n| match (f, n) {
        ("flaky", 0) => Err(fail("Worker.Interrupted", "spot notice")),
        (f, _) => Ok(json!(f)),
    });
    let e = engine(fake.clone(), 1000.0);
    let branch = |name: &str| json!({"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": lambda(name), "End": true}}});
    let def = single(json!({"Type": "Parallel", "End": true,
        "Branches": [branch("steady"), branch("flaky")],
        "Retry": [{"ErrorEquals": ["Worker.Interrupted"], "MaxAttempts": 1}]}));
    let r = run(&e, &def, json!({})).await;
    assert_eq!(r.status, ExecutionStatus::Succeeded, "{:?}", r.cause);
    assert_eq!(r.output, Some(json!(["steady", "flaky"])));
    let flaky_calls = fake
        .calls()
        .iter()
        .filter(|c| c.function == "flaky")
        .count();
    assert_eq!(flaky_calls, 2, "the retry re-ran the branch");
    let kinds: Vec<EventType> = e
        .history(&r.execution_arn)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert!(kinds.contains(&EventType::ParallelStateFailed));
    assert!(kinds.contains(&EventType::ParallelStateSucceeded));

    // Without a retrier, the Parallel's Catch sees the branch's own error name.
    let fake = Fake::new(|f, _, _| {
        if f == "bad" {
            Err(fail("Worker.ScriptFailed", "exit 2"))
        } else {
            Ok(json!(1))
        }
    });
    let e = engine(fake, 1.0);
    let def = json!({"StartAt": "Par", "States": {
        "Par": {"Type": "Parallel", "End": true, "Branches": [branch("good"), branch("bad")],
                "Catch": [{"ErrorEquals": ["Worker.ScriptFailed"], "Next": "H", "ResultPath": "$.e"}]},
        "H": {"Type": "Pass", "End": true}}});
    let r = run(&e, &def, json!({})).await;
    assert_eq!(
        r.output,
        Some(json!({"e": {"Error": "Worker.ScriptFailed", "Cause": "exit 2"}}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_max_concurrency_bounds_in_flight_and_keeps_order() {
    for (mc, want_max) in [(2u64, 2usize), (1, 1), (0, 8)] {
        let fake = Fake::with_delay(Duration::from_millis(40), |_, p, _| {
            Ok(json!({"sq": p.as_i64().unwrap_or(0).pow(2)}))
        });
        let e = engine(fake.clone(), 1.0);
        let def = single(
            json!({"Type": "Map", "End": true, "ItemsPath": "$.items", "MaxConcurrency": mc,
            "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("sq"), "End": true,
                                                               "ResultSelector": {"v.$": "$.sq"}}}}}),
        );
        let r = run(&e, &def, json!({"items": [1, 2, 3, 4, 5, 6, 7, 8]})).await;
        assert_eq!(r.status, ExecutionStatus::Succeeded);
        assert_eq!(
            r.output,
            Some(
                json!([{"v": 1}, {"v": 4}, {"v": 9}, {"v": 16}, {"v": 25}, {"v": 36}, {"v": 49}, {"v": 64}])
            )
        );
        assert_eq!(
            fake.max_in_flight.load(Ordering::SeqCst),
            want_max,
            "MaxConcurrency {mc}"
        );
    }
}

#[tokio::test]
async fn map_iteration_failure_and_legacy_fields() {
    let fake = Fake::new(|_, p, _| {
        if p["d"] == json!("bad") {
            Err(fail("Worker.ScriptFailed", "distro bad"))
        } else {
            Ok(p.clone())
        }
    });
    let e = engine(fake, 1.0);
    // Legacy Iterator + Parameters.
    let def = json!({"StartAt": "M", "States": {
        "M": {"Type": "Map", "End": true, "ItemsPath": "$.ds", "Parameters": {"d.$": "$$.Map.Item.Value"},
              "Iterator": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("b"), "End": true}}},
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}]},
        "H": {"Type": "Pass", "End": true}}});
    let r = run(&e, &def, json!({"ds": ["ok", "bad"]})).await;
    assert_eq!(
        r.output,
        Some(json!({"Error": "Worker.ScriptFailed", "Cause": "distro bad"}))
    );
    let kinds: Vec<EventType> = e
        .history(&r.execution_arn)
        .unwrap()
        .into_iter()
        .map(|h| h.kind)
        .collect();
    for k in [
        EventType::MapStateEntered,
        EventType::MapStateStarted,
        EventType::MapIterationStarted,
        EventType::MapIterationFailed,
        EventType::MapStateFailed,
        EventType::MapStateExited,
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let r = run(&e, &def, json!({"ds": ["a", "b"]})).await;
    assert_eq!(r.output, Some(json!([{"d": "a"}, {"d": "b"}])));
    let r = run(&e, &def, json!({"ds": "notalist"})).await;
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
}

#[tokio::test]
async fn full_jitter_is_deterministic_for_a_seed() {
    let timings = || async {
        let fake = Fake::new(|_, _, _| Err(fail("X", "")));
        let e = engine(fake.clone(), 100.0);
        let def = single(json!({"Type": "Task", "Resource": lambda("f"), "End": true,
            "Retry": [{"ErrorEquals": ["X"], "IntervalSeconds": 20, "BackoffRate": 1.0, "MaxAttempts": 3, "JitterStrategy": "FULL"}]}));
        let h = e
            .start_execution("m", &def, Some("same-name"), json!({}))
            .unwrap();
        h.wait().await;
        gaps(&fake.calls())
    };
    let a = timings().await;
    assert_eq!(a.len(), 3);
    assert!(
        a.iter().all(|g| *g < Duration::from_millis(200 + 100)),
        "{a:?}"
    );
    assert!(
        a.iter().any(|g| *g < Duration::from_millis(185)),
        "jitter shortens some delays: {a:?}"
    );
}
