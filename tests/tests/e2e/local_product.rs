//! Local mode as a product, through `bin/build-on-aws` as a person runs it: Ctrl-C and kills
//! leave nothing running, runs side by side in one folder do not meet, and the HTML report
//! renders in a real headless browser.
//!
//! Bounds here are generous ceilings (a loaded 2-core machine), never timing assertions.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use boa_core::results::Status;
use e2e_tests::local_cli::{LocalCli, processes_with, wait_for, worker_bin};

/// A quick step, then a slow one whose script starts a child of its own and sleeps: stopped
/// half-way, the quick task has finished and the slow one is running.
const STOP: &str = r#"
name = "stop"

[[axis]]
name = "version"
pattern = '^\d+$'

[defaults.worker]
ami = "ami-0123456789abcdef0"
instance_types = ["c7i.large"]

[[step]]
name = "Quick"
script = "quick.sh"
timeout = "2h"
heartbeat = "5m"

[[step]]
name = "Slow"
after = ["Quick"]
script = "slow.sh"
timeout = "2h"
heartbeat = "5m"
"#;

/// A failing step whose output and failure are markup: the report must show it as text.
const EVIL: &str = r#"
name = "evil"

[[axis]]
name = "version"
pattern = '^\d+$'

[defaults.worker]
ami = "ami-0123456789abcdef0"
instance_types = ["c7i.large"]

[[step]]
name = "Quick"
script = "quick.sh"
timeout = "2h"
heartbeat = "5m"

[[step]]
name = "Evil"
script = "evil.sh"
timeout = "2h"
heartbeat = "5m"
retries = 0
"#;

struct Pipe {
    dir: tempfile::TempDir,
}

impl Pipe {
    fn new(toml: &str) -> Pipe {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pipeline.toml"), toml).unwrap();
        std::fs::write(dir.path().join("quick.sh"), "echo quick $BOA_VERSION\n").unwrap();
        std::fs::write(
            dir.path().join("slow.sh"),
            "echo slow $BOA_VERSION\nsleep 600 &\nsleep 600\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("evil.sh"),
            "echo \"<script>document.body.setAttribute('data-pwned','yes')</script>\"\n\
             echo '<img src=x onerror=\"document.body.setAttribute(`data-pwned`,`img`)\">'\n\
             echo 'compiler & linker said: </pre></div><b>bold</b>' >&2\nexit 3\n",
        )
        .unwrap();
        Pipe { dir }
    }

    fn path(&self) -> String {
        self.dir.path().join("pipeline.toml").display().to_string()
    }
}

/// Waits for the child to exit (at most `bound`); its exit code, stdout and stderr.
fn finish(mut child: Child, bound: Duration) -> (Option<i32>, String, String) {
    let ended = wait_for(bound, || child.try_wait().ok().flatten());
    if ended.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output");
    (
        ended.and_then(|s| s.code()),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts the STOP pipeline's run and waits until its slow script runs; the CLI.
fn start_slow_run(cli: &LocalCli, p: &Pipe) -> Child {
    start_slow_run_with(cli, p, &[])
}

fn start_slow_run_with(cli: &LocalCli, p: &Pipe, extra: &[&str]) -> Child {
    worker_bin();
    let path = p.path();
    let mut args = vec!["--local", "--pipeline", &path, "7"];
    args.extend_from_slice(extra);
    let child = cli.spawn(&args, &[]);
    let slow = wait_for(Duration::from_secs(120), || {
        processes_with(cli.path())
            .into_iter()
            .find(|(_, cmd)| cmd.contains("slow.sh"))
    });
    assert!(
        slow.is_some(),
        "the slow script never started: {:?}",
        processes_with(cli.path())
    );
    // Its own child too.
    assert!(
        wait_for(Duration::from_secs(30), || processes_with(cli.path())
            .into_iter()
            .find(|(_, cmd)| cmd.starts_with("sleep 600")))
        .is_some()
    );
    child
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[test]
fn ctrl_c_stops_the_run_every_worker_and_script_and_saves_an_aborted_record() {
    let cli = LocalCli::new();
    let p = Pipe::new(STOP);
    let child = start_slow_run(&cli, &p);
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let (code, stdout, stderr) = finish(child, Duration::from_secs(120));
    assert_eq!(code, Some(130), "exit 128 + SIGINT\n{stdout}\n{stderr}");
    // Nothing of the run is left: no worker, no script, no script's child.
    let left = wait_for(Duration::from_secs(20), || {
        let l = processes_with(cli.path());
        l.is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "left running: {:?}",
        processes_with(cli.path())
    );
    let records = cli.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["status"], "ABORTED", "{:#}", records[0]);
    // Stopped as on AWS: the CLI called StopExecution.
    assert_eq!(
        records[0]["api_calls"]["StopExecution"], 1,
        "{:#}",
        records[0]
    );
    // `status` shows the aborted run with the task that had finished.
    let status = cli.run(&["status", "--pipeline", &p.path()]);
    assert_eq!(status.code, 1, "{status:?}");
    assert!(status.stdout.contains("ABORTED"), "{}", status.stdout);
    let json = cli.run(&["status", "--json", "--pipeline", &p.path()]);
    let r = json.results();
    assert_eq!(r.tasks.len(), 1, "{r:#?}");
    assert_eq!(
        (r.tasks[0].step.as_str(), r.tasks[0].status),
        ("Quick", Status::Succeeded)
    );
}

#[test]
fn sigterm_exits_143_and_sigkill_of_the_cli_takes_its_workers_and_scripts_with_it() {
    let p = Pipe::new(STOP);
    let cli = LocalCli::new();
    let child = start_slow_run(&cli, &p);
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let (code, stdout, stderr) = finish(child, Duration::from_secs(120));
    assert_eq!(code, Some(143), "exit 128 + SIGTERM\n{stdout}\n{stderr}");
    assert!(
        wait_for(Duration::from_secs(20), || processes_with(cli.path())
            .is_empty()
            .then_some(()))
        .is_some(),
        "{:?}",
        processes_with(cli.path())
    );

    let cli = LocalCli::new();
    let child = start_slow_run(&cli, &p);
    // The workers die with the CLI (parent-death signal), their scripts with them (guards).
    sigkill_leaves_nothing(&cli, child);
    // The record the run wrote when it started says what became of it.
    let status = cli.run(&["status", "--list", "--pipeline", &p.path()]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains("KILLED"), "{}", status.stdout);

    // Workers started directly (no stub, no fork of the CLI): each asks the kernel itself.
    let cli = LocalCli::new();
    let child = start_slow_run_with(&cli, &p, &["--no-stubs"]);
    let worker_parent = processes_with(cli.path())
        .into_iter()
        .find(|(_, cmd)| {
            cmd.split_whitespace()
                .next()
                .is_some_and(|c| c.ends_with("/worker"))
        })
        .and_then(|(pid, _)| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat.rsplit_once(") ")?
                .1
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    assert_eq!(
        worker_parent,
        Some(child.id()),
        "the worker is the CLI's own child: {:?}",
        processes_with(cli.path())
    );
    sigkill_leaves_nothing(&cli, child);
}

/// SIGKILLs the CLI and checks that none of its processes outlives it.
fn sigkill_leaves_nothing(cli: &LocalCli, child: Child) {
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    let (code, _, _) = finish(child, Duration::from_secs(30));
    assert_eq!(code, None, "killed by a signal");
    assert!(
        wait_for(Duration::from_secs(20), || processes_with(cli.path())
            .is_empty()
            .then_some(()))
        .is_some(),
        "outlived the CLI: {:?}",
        processes_with(cli.path())
    );
}

#[test]
fn two_runs_in_one_folder_at_once_both_succeed_on_first_attempts() {
    worker_bin();
    let cli = LocalCli::new();
    let slow = [("BOA_EXAMPLE_SLEEP", "1")];
    let args = |v: &'static str| {
        vec![
            "--local",
            v,
            "ubuntu-22.04-jammy",
            "debian-12-bookworm",
            "--json",
            "--env",
            "BOA_EXAMPLE_SLEEP=1",
        ]
    };
    let a = cli.spawn(&args("4.28.2"), &slow);
    let b = cli.spawn(&args("4.28.3"), &slow);
    let (ca, oa, ea) = finish(a, Duration::from_secs(240));
    let (cb, ob, eb) = finish(b, Duration::from_secs(240));
    assert_eq!(ca, Some(0), "{oa}\n{ea}");
    assert_eq!(cb, Some(0), "{ob}\n{eb}");
    for out in [&oa, &ob] {
        let r: boa_core::NormalizedResults = serde_json::from_str(out).unwrap();
        assert_eq!((r.summary.total, r.summary.succeeded), (6, 6), "{r:#?}");
        for t in &r.tasks {
            assert_eq!(t.attempts, Some(1), "{t:?}");
        }
    }
    // Each run has its own folder, and `status --list` shows both.
    let records = cli.records();
    assert_eq!(records.len(), 2, "{records:?}");
    for rec in &records {
        let name = rec["name"].as_str().unwrap();
        assert_eq!(rec["status"], "SUCCEEDED");
        assert!(cli.run_folder(name).join("logs").is_dir(), "{name}");
    }
    let list = cli.run(&["status", "--list"]);
    assert_eq!(list.code, 0, "{list:?}");
    for rec in &records {
        assert!(
            list.stdout.contains(rec["name"].as_str().unwrap()),
            "{}",
            list.stdout
        );
    }
}

/// Debian's chromium, which `tools/setup` installs.
fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "chromium is not installed: the HTML report is tested in a real headless browser. Run tools/setup (as root it installs Debian's chromium) or `apt-get install chromium`."
    );
}

/// The page's DOM after its scripts ran, as headless chromium sees it.
fn dump_dom(page: &Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_html_report_renders_in_a_browser_with_every_task_and_failure() {
    worker_bin();
    let cli = LocalCli::new();
    let page = cli.path().join("report.html");
    let out = cli.run(&[
        "--local",
        "4.28.2",
        "ubuntu-22.04-jammy",
        "debian-12-bookworm",
        "--env",
        "BOA_EXAMPLE_FAIL_DISTRO=debian-12-bookworm",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let dom = dump_dom(&page);
    // The page's own script ran to the end and found the graph and every task.
    assert!(dom.contains("data-rendered=\"ok\""), "{dom}");
    assert!(dom.contains("data-tasks=\"6\""), "{dom}");
    for task in [
        "MakeSourceTarball 4.28.2",
        "MakeBinaryPackage 4.28.2 ubuntu-22.04-jammy",
        "MakeBinaryPackage 4.28.2 debian-12-bookworm",
        "PublishBinaryPackages 4.28.2",
        "PublishSourceTarball 4.28.2",
        "PublishDockerImages 4.28.2",
    ] {
        assert!(dom.contains(&format!("data-task=\"{task}\"")), "{task}");
    }
    // The failed task with its cause and log tail.
    assert!(
        dom.contains("data-failure=\"MakeBinaryPackage 4.28.2 debian-12-bookworm\""),
        "{dom}"
    );
    assert!(
        dom.contains("compiler crashed on debian-12-bookworm"),
        "{dom}"
    );
    assert!(dom.contains("Worker.ScriptFailed"), "{dom}");
    // The graph has every step, coloured: the package step had a failure.
    assert!(
        dom.contains("data-step=\"MakeBinaryPackage\" data-class=\"mixed\""),
        "{dom}"
    );
    // The timeline has every task attempt and every worker's boot.
    assert!(
        dom.contains("class=\"run\" data-attempt=\"MakeSourceTarball 4.28.2\""),
        "{dom}"
    );
    assert!(dom.contains("class=\"boot\""), "{dom}");
    // `status --html` writes the same report again from the saved run.
    let again = cli.path().join("again.html");
    let st = cli.run(&["status", "--html", again.to_str().unwrap()]);
    assert_eq!(st.code, 1, "{st:?}");
    let dom2 = dump_dom(&again);
    assert!(dom2.contains("data-rendered=\"ok\"") && dom2.contains("data-tasks=\"6\""));
}

#[test]
fn a_build_scripts_output_cannot_inject_markup_into_the_report() {
    worker_bin();
    let cli = LocalCli::new();
    let p = Pipe::new(EVIL);
    let page = cli.path().join("evil.html");
    let out = cli.run(&[
        "--local",
        "--pipeline",
        &p.path(),
        "7",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let dom = dump_dom(&page);
    assert!(dom.contains("data-rendered=\"ok\""), "{dom}");
    // The body's attributes after the scripts ran: the page's marker, and no injected one.
    let body = dom
        .split("<body")
        .nth(1)
        .and_then(|b| b.split('>').next())
        .unwrap_or_default();
    assert!(
        !body.contains("data-pwned"),
        "the log tail ran as markup: {body}"
    );
    assert!(
        !dom.contains("<img src=\"x\"") && !dom.contains("<img src=x"),
        "{dom}"
    );
    assert!(!dom.contains("<b>bold</b>"), "{dom}");
    assert!(
        dom.contains("&lt;script&gt;document.body.setAttribute"),
        "{dom}"
    );
    assert!(dom.contains("compiler &amp; linker said"), "{dom}");
}
