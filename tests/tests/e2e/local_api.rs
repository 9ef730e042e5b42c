//! One path (issue 18): the CLI starts and follows a local run through the Step Functions API of
//! the embedded engine, with the same SDK code as on AWS; `status` reads it back the same way.

use e2e_tests::local_cli::LocalCli;

const V: &str = "4.28.2";
const JAMMY: &str = "ubuntu-22.04-jammy";

#[test]
fn the_cli_starts_and_follows_a_local_run_through_the_step_functions_api() {
    let cli = LocalCli::new();
    let out = cli.run(&["--local", V, JAMMY, "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    let r = out.results();
    assert!(r.summary.total >= 3, "{r:#?}");
    assert_eq!(r.summary.succeeded, r.summary.total, "{r:#?}");

    let records = cli.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let rec = &records[0];
    assert_eq!(rec["status"], "SUCCEEDED", "{rec:#}");
    // The engine answered the CLI's calls: the run was started with StartExecution and followed
    // with DescribeExecution and GetExecutionHistory (the health check reads histories the same
    // way, through the SFN adapter).
    let calls = &rec["api_calls"];
    let n = |op: &str| calls[op].as_u64().unwrap_or(0);
    assert!(n("StartExecution") >= 1, "{calls:#}");
    assert!(
        n("DescribeExecution") >= 2,
        "followed until it ended: {calls:#}"
    );
    assert!(n("GetExecutionHistory") >= 2, "{calls:#}");
    assert!(n("ListMapRuns") >= 1, "children are looked for: {calls:#}");
    assert_eq!(n("StopExecution"), 0, "{calls:#}");

    // `status` reads the history the run saved and the results NormalizeResults named in it,
    // as for an AWS execution.
    let status = cli.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.results(), r);
    let table = cli.run(&["status"]);
    assert_eq!(table.code, 0, "{table:?}");
    let line = format!(
        "{n} tasks: {n} succeeded, 0 failed, 0 skipped",
        n = r.summary.total
    );
    assert!(table.stdout.contains(&line), "{}", table.stdout);
}
