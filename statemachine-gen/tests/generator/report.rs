//! The static report: numbers that follow the counting convention, grow as the input grows, and
//! say EXCEEDS when a run would break a Step Functions quota.

use crate::support::*;
use boa_core::{BuildInput, Pipeline};
use statemachine_gen::{Report, check_quotas, report};

fn day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2025, 3, 4).unwrap()
}

fn rep(p: &Pipeline, tokens: &str) -> Report {
    let t: Vec<&str> = tokens.split_whitespace().collect();
    let input = BuildInput::from_tokens(p, &t, day()).unwrap_or_else(|e| panic!("{e}"));
    report(p, &input)
}

fn versions(n: usize) -> String {
    (0..n).map(|i| format!("1.{i}.0 ")).collect()
}

fn distros(n: usize) -> String {
    (0..n).map(|i| format!("d{i} ")).collect()
}

#[test]
fn one_step_one_axis_counts_by_hand() {
    // ParseInput, ForEachVersion, RunBuild, PrepareBuild, CheckBuild, Build, RecordBuild,
    // NormalizeResults, CheckForFailures: 9 transitions; events: 2 (execution) + 5 + 4 + 2 (one
    // iteration) + [Run 4 + Prepare 5 + Check 2 + Build 5 + Record 5] + 5 + 5 = 44.
    let r = rep(&one_step_one_axis(), "1.0.0");
    assert_eq!(r.requested_tasks, 1);
    assert_eq!(r.transitions_happy, 9);
    assert_eq!(r.history_events_happy, 44);
    assert_eq!(r.lambda_invocations, 5);
    assert_eq!(r.activity_tasks, 1);
    assert_eq!(r.states, 9 + 2); // + SkipBuild and CaughtRunBuild
    assert!(r.exceeds.is_empty(), "{r}");
}

#[test]
fn worst_case_multiplies_the_retriers() {
    let r = rep(&one_step_one_axis(), "1.0.0");
    let lambda = u64::from(boa_core::retry::worst_case_attempts(
        &boa_core::retry::retriers(boa_core::retry::TaskKind::Lambda),
    ));
    let run = u64::from(boa_core::retry::worst_case_attempts(
        &boa_core::retry::retriers(boa_core::retry::TaskKind::Activity { build_retries: 2 }),
    ));
    // Prepare also waits out its launch deadline for capacity.
    let prepare = u64::from(boa_core::retry::worst_case_attempts(
        &boa_core::retry::retriers(boa_core::retry::TaskKind::Prepare {
            launch_deadline: boa_core::pipeline::DEFAULT_LAUNCH_DEADLINE,
        }),
    ));
    assert!(prepare > lambda);
    // ParseInput, RecordBuild, NormalizeResults, CheckForFailures, and Prepare once per Run
    // attempt.
    assert_eq!(r.lambda_invocations_worst, 4 * lambda + run * prepare);
    assert_eq!(r.activity_tasks_worst, run);
    // ParseInput(lambda) + Map(1) + Run(run) + per Run attempt [Prepare(prepare) + Check + Build]
    // + RecordBuild(lambda; the Catch goes there) + NormalizeResults(lambda)
    // + CheckForFailures(lambda).
    assert_eq!(
        r.transitions_worst,
        lambda + 1 + run + run * (prepare + 2) + 3 * lambda
    );
    assert!(r.history_events_worst > r.history_events_happy);
    assert!(r.payload_bytes_worst > r.payload_bytes);
}

#[test]
fn numbers_grow_linearly_with_versions_and_distros() {
    let p = diamond();
    let r = |v: usize, d: usize| rep(&p, &format!("{}{}", versions(v), distros(d)));
    let small = r(1, 3);
    let big = r(3, 10);
    // A, C, D per version, B per version × distro.
    assert_eq!(small.requested_tasks, 3 + 3);
    assert_eq!(big.requested_tasks, 3 * (3 + 10));
    assert_eq!(big.activity_tasks, big.requested_tasks as u64);
    // Each more distro adds one fanned-out task: Run, Prepare, Check, activity, Record = 5
    // transitions; Run 4 + Prepare 5 + Check 2 + activity 5 + Record 5 + the Map iteration 2 = 23
    // events; 2 Lambdas.
    let d4 = r(1, 4);
    assert_eq!(d4.transitions_happy - small.transitions_happy, 5);
    assert_eq!(d4.history_events_happy - small.history_events_happy, 23);
    assert_eq!(d4.lambda_invocations - small.lambda_invocations, 2);
    // Each more version adds the same again.
    let v2 = r(2, 10);
    let v1 = r(1, 10);
    assert_eq!(
        big.history_events_happy - v2.history_events_happy,
        v2.history_events_happy - v1.history_events_happy
    );
    assert_eq!(
        big.transitions_happy - v1.transitions_happy,
        2 * (v2.transitions_happy - v1.transitions_happy)
    );
    assert!(big.transitions_worst > big.transitions_happy);
}

#[test]
fn steps_not_requested_still_pass_through_prepare_but_start_no_activity() {
    let p = diamond();
    let all = rep(&p, "1.0.0 d0 d1");
    let only_a = rep(&p, "1.0.0 d0 d1 A");
    assert_eq!(only_a.requested_tasks, 1);
    assert_eq!(only_a.activity_tasks, 1);
    assert_eq!(only_a.lambda_invocations, all.lambda_invocations);
    // Skip<Step> (Pass) instead of the activity Task: 3 fewer events per skipped task.
    let skipped = (all.requested_tasks - only_a.requested_tasks) as u64;
    assert_eq!(
        all.history_events_happy - only_a.history_events_happy,
        3 * skipped
    );
    let skip_ec2 = rep(&p, "1.0.0 d0 d1 --skip-ec2");
    assert_eq!(skip_ec2.activity_tasks, 0);
}

#[test]
fn per_version_overrides_shrink_the_fan_out() {
    let p = example();
    // 4.28.x is never built for noble: 4 distros; 4.30.0 builds all 5.
    let old = rep(&p, "4.28.2");
    let new = rep(&p, "4.30.0");
    assert_eq!(old.requested_tasks + 1, new.requested_tasks);
    assert_eq!(new.history_events_happy - old.history_events_happy, 23);
}

#[test]
fn the_example_fits_comfortably() {
    let r = rep(&example(), "4.28.2 4.29.0 4.30.0");
    assert!(r.exceeds.is_empty(), "{r}");
    assert!(!r.exceeds_on_happy_path());
    let text = r.to_string();
    assert!(
        text.contains("history events") && text.contains("OK"),
        "{text}"
    );
}

#[test]
fn a_huge_input_says_exceeds_with_a_hint() {
    let p = many_fan_out_steps(8);
    let r = rep(&p, &format!("{}{}", versions(40), distros(5)));
    assert!(r.exceeds_on_happy_path(), "{r}");
    assert!(r.history_events_happy > 25_000);
    let text = r.to_string();
    assert!(text.contains("EXCEEDS"), "{text}");
    assert!(
        text.contains("split the versions into separate runs"),
        "{text}"
    );
    // The suggested number of versions per run does fit.
    let k: usize = text
        .split("about ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no 'about N versions' in {text}"));
    assert!(k >= 1);
    let fits = rep(&p, &format!("{}{}", versions(k), distros(5)));
    assert!(fits.history_events_happy <= 25_000, "{fits}");
    let too_many = rep(&p, &format!("{}{}", versions(k + 1), distros(5)));
    assert!(too_many.history_events_happy > 25_000, "{too_many}");
}

#[test]
fn results_no_longer_grow_the_payload_but_a_huge_plan_still_does() {
    let p = many_fan_out_steps(8);
    // Records are objects: ten times the tasks, and failures with long log tails, leave the
    // largest payload about where it was (the plan grows a little).
    let small = rep(&p, &format!("{}{}", versions(6), distros(10)));
    let big = rep(&p, &format!("{}{}", versions(60), distros(10)));
    assert!(big.requested_tasks >= 10 * small.requested_tasks);
    assert!(
        big.payload_bytes_worst < 2 * small.payload_bytes_worst,
        "{small}\n{big}"
    );
    assert!(big.payload_bytes_worst < 64 * 1024, "{big}");
    // The plan travels in the payload: 300 versions × 50 long distro names is over 256 KiB.
    let open = parse(
        r#"
name = "open"
[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'
[[axis]]
name = "distro"
pattern = '^[a-z0-9-]+$'
[[step]]
name = "Pkg"
for_each = ["version", "distro"]
script = "p.sh"
"#,
    );
    let long: String = (0..50)
        .map(|i| format!("distribution-name-{i:03} "))
        .collect();
    let r = rep(&open, &format!("{}{long}", versions(300)));
    assert!(r.payload_bytes > 256 * 1024, "{r}");
    assert!(r.exceeds.iter().any(|e| e.contains("payload")), "{r}");
}

#[test]
fn a_distributed_outer_map_gives_each_version_its_own_history() {
    // The same shape inline and distributed: 8 fan-out steps × 10 distros per version.
    let inline = many_fan_out_steps(8);
    let dist = distributed(8);
    let tokens = format!("{}{}", versions(40), distros(10));
    let i = rep(&inline, &tokens);
    let d = rep(&dist, &tokens);
    assert!(
        i.history_events_happy > 25_000 && i.exceeds_on_happy_path(),
        "{i}"
    );
    assert!(!d.exceeds_on_happy_path(), "{d}");
    assert!(d.distributed && !i.distributed);
    // The parent holds no task events; each child holds one version's.
    assert!(d.history_events_happy < 100, "{d}");
    let one = rep(&dist, &format!("{}{}", versions(1), distros(10)));
    assert_eq!(d.child_history_events_happy, one.child_history_events_happy);
    assert!(d.child_history_events_happy < i.history_events_happy / 30);
    // The same work: the same transitions, Lambda calls and activity tasks, hence the same cost.
    assert_eq!(
        (d.transitions_happy, d.lambda_invocations, d.activity_tasks),
        (i.transitions_happy, i.lambda_invocations, i.activity_tasks)
    );
    assert!((d.transitions_cost_usd - d.transitions_happy as f64 * 0.000025).abs() < 1e-9);
    let text = d.to_string();
    assert!(text.contains("one child's history events"), "{text}");
    assert!(text.contains("Step Functions cost"), "{text}");
    // The inline report says distributing is the way out.
    assert!(i.to_string().contains("distributed = true"), "{i}");
}

#[test]
fn serialises_with_the_happy_path_fields() {
    let r = rep(&diamond(), "1.0.0 d1");
    let v = serde_json::to_value(&r).unwrap();
    for k in [
        "transitions_happy",
        "history_events_happy",
        "lambda_invocations",
        "activity_tasks",
    ] {
        assert!(v[k].as_u64().is_some(), "{k} in {v}");
    }
}

fn input(p: &Pipeline, tokens: &str) -> BuildInput {
    let t: Vec<&str> = tokens.split_whitespace().collect();
    BuildInput::from_tokens(p, &t, day()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_up_front_check_refuses_what_could_break_a_quota_and_names_the_largest_fit() {
    let p = example();
    // 150 versions of the example: ~1,350 tasks, whose results once broke the payload quota at
    // the end of the run.
    let big = input(&p, &versions(150));
    let e = check_quotas(&p, &big).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("nothing was started"), "{text}");
    assert!(text.contains("EXCEEDS"), "{text}");
    assert_eq!((e.outer.as_str(), e.requested), ("version", 150));
    assert!(e.fits >= 1 && e.fits < 150, "{e:?}");
    assert!(
        text.contains(&format!("{} versions of the 150", e.fits)),
        "{text}"
    );
    // The figure is exact: that many fit every quota, one more does not.
    let first = |k: usize| input(&p, &versions(k));
    assert!(check_quotas(&p, &first(e.fits)).is_ok());
    assert!(check_quotas(&p, &first(e.fits + 1)).is_err());
    // A request that fits passes with its report.
    let r = check_quotas(&p, &input(&p, "4.28.2 4.29.0")).unwrap();
    assert!(r.exceeds.is_empty());
    // A history that only the worst case breaks is a warning, not a refusal: ten versions of
    // the example run (their happy path and worst-case payload fit).
    let ten = check_quotas(&p, &first(10)).unwrap();
    assert!(ten.history_events_worst > 25_000, "{ten}");
    assert!(
        ten.exceeds.iter().any(|l| l.contains("in the worst case")),
        "{ten}"
    );
    assert!(!ten.refused());
}

#[test]
fn when_not_even_one_value_fits_the_check_says_so() {
    // 150 fanned-out steps over 10 distros: one version is 1,500 tasks, past the history quota.
    let p = many_fan_out_steps(150);
    let e = check_quotas(&p, &input(&p, &format!("1.0.0 2.0.0 {}", distros(10)))).unwrap_err();
    assert_eq!(e.fits, 0, "{e:?}");
    assert!(e.to_string().contains("even one version"), "{e}");
}
