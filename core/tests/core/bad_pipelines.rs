//! Bad `pipeline.toml` files: each problem is reported with what is wrong, how to fix it, and
//! the line it is on; several problems are reported at once.

use boa_core::Pipeline;

const AXES: &str = r#"name = "t"

[[axis]]
name = "version"
pattern = '^\d+\.\d+\.\d+$'

[[axis]]
name = "distro"
values = ["debian-12", "ubuntu-24.04"]
"#;

/// 1-based line of the first line containing `needle`.
fn line_of(src: &str, needle: &str) -> usize {
    src.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("'{needle}' not in:\n{src}"))
        + 1
}

/// Parses `src`, which must fail; returns the whole message.
fn problems(src: &str) -> (String, Vec<boa_core::pipeline::Problem>) {
    match Pipeline::parse(src) {
        Ok(_) => panic!("accepted a bad pipeline:\n{src}"),
        Err(e) => (e.to_string(), e.problems),
    }
}

struct Case {
    what: &'static str,
    src: String,
    /// Text the message must contain.
    says: &'static [&'static str],
    /// The line is the one containing this text.
    line_at: &'static str,
}

fn cases() -> Vec<Case> {
    let step =
        |body: &str| format!("{AXES}\n[[step]]\nname = \"Build\"\nscript = \"b.sh\"\n{body}");
    vec![
        Case {
            what: "unknown key with a did-you-mean",
            src: step("timout = \"1h\"\n"),
            says: &["unknown key 'timout'", "did you mean 'timeout'"],
            line_at: "timout",
        },
        Case {
            what: "only the outer axis can be distributed",
            src: format!(
                "{}\n[[step]]\nname = \"Build\"\nscript = \"b.sh\"\n",
                AXES.replace(
                    "values = [\"debian-12\", \"ubuntu-24.04\"]",
                    "values = [\"debian-12\", \"ubuntu-24.04\"]\ndistributed = true"
                )
            ),
            says: &["only the outer axis ('version') can be distributed"],
            line_at: "distributed = true",
        },
        Case {
            what: "duplicate step name",
            src: format!(
                "{AXES}\n[[step]]\nname = \"Build\"\nscript = \"a.sh\"\n\n[[step]]\nname = \"Build\" # again\nscript = \"b.sh\"\n"
            ),
            says: &["'Build' is used twice", "unique"],
            line_at: "# again",
        },
        Case {
            what: "unknown step in after",
            src: format!(
                "{AXES}\n[[step]]\nname = \"Build\"\nscript = \"a.sh\"\n\n[[step]]\nname = \"Ship\"\nscript = \"b.sh\"\nafter = [\"Biuld\"]\n"
            ),
            says: &["unknown step 'Biuld'", "did you mean 'Build'"],
            line_at: "after = [\"Biuld\"]",
        },
        Case {
            what: "cycle in after",
            src: format!(
                "{AXES}\n[[step]]\nname = \"A\"\nscript = \"a.sh\"\nafter = [\"C\"]\n\n[[step]]\nname = \"B\"\nscript = \"b.sh\"\nafter = [\"A\"]\n\n[[step]]\nname = \"C\"\nscript = \"c.sh\"\nafter = [\"B\"]\n"
            ),
            says: &["cycle", "A", "B", "C", "→"],
            // One of the `after` entries of the cycle (the first step found in it: B).
            line_at: "after = [\"A\"]",
        },
        Case {
            what: "template naming an axis the step does not fan out over",
            src: step("done_when = [\"s3://b/{version}/{distro}.deb\"]\n"),
            says: &["axis 'distro'", "does not fan out over"],
            line_at: "done_when",
        },
        Case {
            what: "unknown placeholder",
            src: step("done_when = [\"s3://b/{verison}.tar.gz\"]\n"),
            says: &["'{verison}'", "not an axis"],
            line_at: "done_when",
        },
        Case {
            what: "heartbeat not shorter than timeout",
            src: step("timeout = \"10m\"\nheartbeat = \"10m\"\n"),
            says: &["heartbeat (10m) must be shorter than timeout (10m)"],
            line_at: "heartbeat",
        },
        Case {
            what: "empty instance_types",
            src: step("[step.worker]\ninstance_types = []\n"),
            says: &["instance_types", "empty"],
            line_at: "instance_types",
        },
        Case {
            what: "bad market",
            src: format!("{AXES}\n[defaults.worker]\nmarket = \"cheap\"\n\n[[step]]\nname = \"Build\"\nscript = \"b.sh\"\n"),
            says: &["'cheap' is not a market", "spot-then-on-demand"],
            line_at: "market",
        },
        Case {
            what: "bad duration",
            src: step("timeout = \"4 hours-ish\"\n"),
            says: &["'4 hours-ish' is not a duration", "\"4h\""],
            line_at: "timeout",
        },
        Case {
            what: "axis with both values and pattern",
            src: "name = \"t\"\n\n[[axis]]\nname = \"version\"\nvalues = [\"1\"]\npattern = '^\\d+$'\n\n[[step]]\nname = \"Build\"\nscript = \"b.sh\"\n".to_string(),
            says: &["either values", "not both"],
            line_at: "pattern",
        },
        Case {
            what: "three axes",
            src: format!("{AXES}\n[[axis]] # third\nname = \"arch\"\nvalues = [\"x86\"]\n\n[[step]]\nname = \"Build\"\nscript = \"b.sh\"\n"),
            says: &["3 axes", "an outer and an inner axis"],
            line_at: "# third",
        },
        Case {
            what: "no steps",
            src: AXES.to_string(),
            says: &["no step", "[[step]]"],
            line_at: "",
        },
        Case {
            what: "heartbeat too short for the worker's beat",
            src: step("heartbeat = \"1ms\" # hb\n"),
            says: &["'1ms' is out of range", "30s", "heartbeat"],
            line_at: "# hb",
        },
        Case {
            what: "timeout past a year",
            src: step("timeout = \"400d\" # long\n"),
            says: &["'400d' is out of range", "a year"],
            line_at: "# long",
        },
        Case {
            what: "absurd retries",
            src: step("retries = 1000 # many\n"),
            says: &["1000 retries is too many", "0 to 20"],
            line_at: "",
        },
        Case {
            what: "disk larger than EC2 allows",
            src: step("[step.worker]\ndisk_gb = 100000 # big\n"),
            says: &["100000 GB", "at most 16384"],
            line_at: "# big",
        },
        Case {
            what: "boot timeout shorter than a boot",
            src: step("[step.worker]\nboot_timeout = \"5s\" # boot\n"),
            says: &["'5s' is out of range", "boot"],
            line_at: "# boot",
        },
        Case {
            what: "script outside the pipeline's folder",
            src: format!("{AXES}\n[[step]]\nname = \"Build\"\nscript = \"../../etc/evil.sh\"\nafter_script = \"/usr/bin/x\"\n"),
            says: &["'../../etc/evil.sh' must be a relative path inside the pipeline's folder"],
            line_at: "",
        },
        Case {
            what: "absolute after_script",
            src: step("after_script = \"/usr/bin/x\"\n"),
            says: &["'/usr/bin/x' must be a relative path"],
            line_at: "",
        },
        Case {
            what: "done_when key that walks up",
            src: step("done_when = [\"s3://b/{version}/../x\"]\n"),
            says: &["'..' path segment"],
            line_at: "",
        },
        Case {
            what: "non-ASCII axis value",
            src: AXES.replace("\"debian-12\"", "\"debian-١٢\"")
                + "\n[[step]]\nname = \"Build\"\nscript = \"b.sh\"\n",
            says: &["'debian-١٢' cannot be typed", "plain ASCII"],
            line_at: "",
        },
    ]
}

#[test]
fn each_bad_pipeline_names_the_problem_and_its_line() {
    let mut failures = vec![];
    for c in cases() {
        let (msg, ps) = problems(&c.src);
        for s in c.says {
            if !msg.contains(s) {
                failures.push(format!("{}: message lacks {s:?}:\n{msg}", c.what));
            }
        }
        if c.line_at.is_empty() {
            continue;
        }
        let want = line_of(&c.src, c.line_at);
        let hit = ps
            .iter()
            .find(|p| c.says.iter().all(|s| p.to_string().contains(s)));
        match hit {
            Some(p) if p.line == Some(want) => {
                assert!(msg.contains(&format!("line {want}:")), "{msg}");
            }
            Some(p) => failures.push(format!(
                "{}: line {:?}, expected {want}:\n{msg}",
                c.what, p.line
            )),
            None => failures.push(format!("{}: no single problem says it all:\n{msg}", c.what)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn one_file_with_several_problems_reports_them_all() {
    let src = format!(
        r#"{AXES}
[defaults.worker]
market = "cheap"

[[step]]
name = "Build"
script = "b.sh"
timout = "1h"

[[step]]
name = "Build"
script = "c.sh"
after = ["Nope"]
heartbeat = "5h"
"#
    );
    let (msg, ps) = problems(&src);
    assert!(ps.len() >= 5, "{msg}");
    assert!(msg.contains(&format!("{} problems", ps.len())), "{msg}");
    for (needle, line_at) in [
        ("'cheap' is not a market", "market"),
        ("unknown key 'timout'", "timout"),
        ("used twice", "name = \"Build\"\nscript = \"c.sh\""),
        ("unknown step 'Nope'", "after = [\"Nope\"]"),
        ("must be shorter than timeout", "heartbeat"),
    ] {
        let p = ps
            .iter()
            .find(|p| p.message.contains(needle))
            .unwrap_or_else(|| panic!("no problem says {needle}:\n{msg}"));
        let want = if line_at.contains('\n') {
            // The second `name = "Build"`.
            src.find(line_at)
                .map(|o| src[..o].matches('\n').count() + 1)
        } else {
            Some(line_of(&src, line_at))
        };
        assert_eq!(p.line, want, "{needle}:\n{msg}");
    }
}

#[test]
fn a_toml_syntax_error_names_its_line() {
    let src = format!("{AXES}\n[[step]]\nname = \"Build\nscript = \"b.sh\"\n");
    let (msg, ps) = problems(&src);
    assert_eq!(ps.len(), 1, "{msg}");
    assert_eq!(ps[0].line, Some(line_of(&src, "name = \"Build")), "{msg}");
}
