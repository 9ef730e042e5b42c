//! Lookahead provisioning: a step's workers are started so that they are up when the tasks they
//! wait for end, instead of when their own task is prepared (which puts a whole boot on the
//! critical path of every step).
//!
//! How it runs:
//! 1. `Prepare<S>` of a task that will run writes when the task is expected to end
//!    ([`ExpectedEnd`], at [`expected_end_key`]: now + its worker's boot if it had to launch one +
//!    its expected duration from history), and for each requested dependent step `D` starts one
//!    execution of the stack's lookahead state machine ([`LookaheadInput`]: a Wait until the end
//!    minus `D`'s boot time, then start-workers with a [`LookaheadEvent`]). The execution's name
//!    is a hash of (execution, `D`, this task), so a retried Prepare starts nothing new.
//! 2. When the Wait ends, start-workers checks the tasks `D`'s tasks wait for ([`Lookahead::waits_for`]):
//!    each must have finished without forbidding `D`, or be expected to end within `D`'s boot
//!    time. Then it starts one worker per such task of `D`, tagged as started ahead for that
//!    execution; `Prepare<D>` of the same execution counts them as its own.
//! 3. A worker started for nothing (a dependency failed, `D` was done) idles out after its
//!    `idle_timeout` like any other; the health check does not reap it as an orphan while its
//!    execution runs.

use serde::{Deserialize, Serialize};

use crate::input::{Item, item_key};
use crate::pipeline::{Pipeline, Step};
use crate::results::run_folder;

/// The Wait state of the lookahead machine.
pub const WAIT_STATE: &str = "WaitUntilBootTime";
/// The Task state of the lookahead machine (start-workers).
pub const START_STATE: &str = "StartWorkersAhead";
/// The `build-on-aws:state` tag of a worker started ahead: `Lookahead<Step>`.
pub fn state_tag(step: &str) -> String {
    format!("Lookahead{step}")
}

/// One task: a step and its axis values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskRef {
    pub step: String,
    pub item: Item,
}

/// What one lookahead execution starts workers for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookahead {
    /// The run's (top-level) execution ARN.
    pub execution: String,
    /// The step whose workers are started.
    pub step: String,
    /// The task whose expected end timed this lookahead.
    pub after: TaskRef,
    /// The tasks of `step` that wait for `after`: one worker each.
    pub items: Vec<Item>,
    /// Every task those wait for (`after` included).
    pub waits_for: Vec<TaskRef>,
    /// The inner axis values of `after`'s outer value, in plan order: what the next hop's plan
    /// needs (see start-workers' lookahead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner: Vec<String>,
    /// The run's requested steps (the next hop plans among them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// How many times this lookahead has been put off: when its Wait ends before a task it
    /// waits for is expected within a boot, it starts again, timed by that task ([`rearm_name`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rearm: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The most times one lookahead is put off (each time a task it waits for is expected later
/// than it was): past that, the workers start when their tasks are prepared.
pub const MAX_REARMS: u32 = 8;

/// The lookahead machine's input: when to start (`at`, RFC 3339) and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookaheadInput {
    pub at: String,
    pub lookahead: Lookahead,
}

/// start-workers' event from the lookahead machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookaheadEvent {
    pub lookahead: Lookahead,
}

/// What start-workers did for a [`LookaheadEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookaheadOutcome {
    /// Instances launched ahead.
    pub launched: Vec<String>,
    /// Why (or why not), in words.
    pub reason: String,
    /// The lookahead executions started for the steps after (the next hop).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<String>,
}

/// When a prepared task is expected to end (wall clock of the stack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedEnd {
    /// RFC 3339.
    pub end: String,
    /// Written by the task's own `Prepare` (its task is published): true. A projection made by
    /// a lookahead for a task not prepared yet: false.
    #[serde(default)]
    pub prepared: bool,
    /// When the task was, or is expected to be, ready to start (RFC 3339): its `Prepare`'s time,
    /// or the projected end of what it waits for. An `exclusive` step's tasks take their turns
    /// in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// How long the task itself is expected to take (pipeline seconds): an `exclusive` step's
    /// queue is at least the sum of the turns ahead, even when their ends were reckoned at the
    /// same moment by `Prepare` calls that did not see each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_s: Option<f64>,
}

/// The prefix (under the stack's records prefix) of every [`ExpectedEnd`] of `step`'s tasks in
/// `execution`; a task's key is this + `<item>.json`, its record's
/// [`crate::results::task_record_key`] the same name under `tasks/<step>/`.
pub fn expected_ends_prefix(execution: &str, step: &str) -> String {
    format!("{}/expected/{step}/", run_folder(execution))
}

/// The key (under the stack's records prefix) of a task's [`ExpectedEnd`]:
/// `runs/<execution>/expected/<step>/<item>.json`.
pub fn expected_end_key(execution: &str, step: &str, item: &Item) -> String {
    format!(
        "{}{}.json",
        expected_ends_prefix(execution, step),
        item_key(item)
    )
}

/// The `build-on-aws:ahead` tag of the workers started for `step`'s tasks that wait for
/// `after` in `execution`.
pub fn ahead_tag(execution: &str, step: &str, after: &TaskRef) -> String {
    crate::names::stable_hash(&[execution, step, &after.step, &item_key(&after.item)])
}

/// The name of the lookahead execution that starts `step`'s workers after `after` (≤ 80
/// characters of `[A-Za-z0-9_-]`, as Step Functions requires): the same task of the same run
/// always gives the same name, so a retried `Prepare` cannot start a second one.
pub fn execution_name(execution: &str, step: &str, after: &TaskRef) -> String {
    format!(
        "{}-{}",
        short_name(step, 40),
        ahead_tag(execution, step, after)
    )
}

/// The first `max` characters of `step` that an execution name may carry (`[A-Za-z0-9_-]`).
fn short_name(step: &str, max: usize) -> String {
    step.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(max)
        .collect()
}

/// The name of the `n`th putting-off of the lookahead that starts `step`'s workers for `items`:
/// the same for every lookahead of those tasks (a fan-in step's tasks wait for many, and each of
/// their lookaheads may find the same late one), so they are put off once.
pub fn rearm_name(execution: &str, step: &str, items: &[Item], n: u32) -> String {
    let short = short_name(step, 36);
    let mut parts: Vec<String> = vec![execution.into(), step.into(), format!("rearm{n}")];
    parts.extend(items.iter().map(item_key));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("{short}-r{n}-{}", crate::names::stable_hash(&refs))
}

fn project(item: &Item, p: &Pipeline, step: &Step) -> Item {
    let inner = p.inner_axis().map(|a| a.name.as_str());
    item.iter()
        .filter(|(k, _)| step.fans_out() || Some(k.as_str()) != inner)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The tasks of `d` that wait for task `(s, item)`, given the inner axis values of the item's
/// outer value (in plan order).
fn items_after(
    p: &Pipeline,
    s: &Step,
    item: &Item,
    d: &Step,
    inner_values: &[String],
) -> Vec<Item> {
    match (d.fans_out(), s.fans_out(), p.inner_axis()) {
        (true, false, Some(inner)) => inner_values
            .iter()
            .map(|v| {
                let mut i = item.clone();
                i.insert(inner.name.clone(), v.clone());
                i
            })
            .collect(),
        _ => vec![project(item, p, d)],
    }
}

/// The tasks `(d, d_item)` waits for among the requested steps, given the inner axis values of
/// the item's outer value (in plan order).
pub fn dependencies(
    p: &Pipeline,
    steps: &[String],
    d: &Step,
    d_item: &Item,
    inner_values: &[String],
) -> Vec<TaskRef> {
    let mut out = vec![];
    for dep in d.after.iter().filter_map(|n| p.step(n)) {
        if !steps.iter().any(|s| s == &dep.name) {
            continue;
        }
        match (dep.fans_out(), d.fans_out(), p.inner_axis()) {
            (true, false, Some(inner)) => {
                for v in inner_values {
                    let mut i = d_item.clone();
                    i.insert(inner.name.clone(), v.clone());
                    out.push(TaskRef {
                        step: dep.name.clone(),
                        item: i,
                    });
                }
            }
            _ => out.push(TaskRef {
                step: dep.name.clone(),
                item: project(d_item, p, dep),
            }),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The lookaheads a prepared task `(s, item)` of `execution` starts: one per requested step that
/// comes after `s`, with the tasks of that step waiting for this one and everything they wait
/// for. `inner_values` are the inner axis values of the item's outer value, in plan order.
pub fn plan(
    p: &Pipeline,
    execution: &str,
    steps: &[String],
    s: &Step,
    item: &Item,
    inner_values: &[String],
) -> Vec<Lookahead> {
    let after = TaskRef {
        step: s.name.clone(),
        item: item.clone(),
    };
    p.steps
        .iter()
        .filter(|d| d.after.iter().any(|a| a == &s.name))
        .filter(|d| steps.iter().any(|n| n == &d.name))
        .map(|d| {
            let items = items_after(p, s, item, d, inner_values);
            let mut all: Vec<TaskRef> = items
                .iter()
                .flat_map(|i| dependencies(p, steps, d, i, inner_values))
                .collect();
            all.sort();
            all.dedup();
            Lookahead {
                execution: execution.to_string(),
                step: d.name.clone(),
                after: after.clone(),
                items,
                waits_for: all,
                inner: inner_values.to_vec(),
                steps: steps.to_vec(),
                rearm: 0,
            }
        })
        .filter(|l| !l.items.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Pipeline {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Pipeline::load(&dir.join("pipeline.toml")).expect("the example loads")
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn all_steps(p: &Pipeline) -> Vec<String> {
        p.steps.iter().map(|s| s.name.clone()).collect()
    }

    #[test]
    fn a_source_task_starts_one_package_worker_per_distro_of_its_version() {
        let p = example();
        let distros = vec![
            "debian-12-bookworm".to_string(),
            "ubuntu-22.04-jammy".to_string(),
        ];
        let v = item(&[("version", "4.28.2")]);
        let s = p.step("MakeSourceTarball").unwrap();
        let plans = plan(&p, "arn:x", &all_steps(&p), s, &v, &distros);
        assert_eq!(plans.len(), 1, "{plans:?}");
        let l = &plans[0];
        assert_eq!(l.step, "MakeBinaryPackage");
        assert_eq!(
            l.items,
            vec![
                item(&[("version", "4.28.2"), ("distro", "debian-12-bookworm")]),
                item(&[("version", "4.28.2"), ("distro", "ubuntu-22.04-jammy")]),
            ]
        );
        assert_eq!(
            l.waits_for,
            vec![TaskRef {
                step: "MakeSourceTarball".into(),
                item: v.clone()
            }]
        );
    }

    #[test]
    fn a_package_task_starts_the_publisher_which_waits_for_every_distro() {
        let p = example();
        let distros = vec![
            "debian-12-bookworm".to_string(),
            "ubuntu-22.04-jammy".to_string(),
        ];
        let t = item(&[("version", "4.28.2"), ("distro", "ubuntu-22.04-jammy")]);
        let s = p.step("MakeBinaryPackage").unwrap();
        let plans = plan(&p, "arn:x", &all_steps(&p), s, &t, &distros);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].step, "PublishBinaryPackages");
        assert_eq!(plans[0].items, vec![item(&[("version", "4.28.2")])]);
        let waits: Vec<&str> = plans[0]
            .waits_for
            .iter()
            .map(|t| t.item["distro"].as_str())
            .collect();
        assert_eq!(waits, ["debian-12-bookworm", "ubuntu-22.04-jammy"]);
        // The two publish steps after PublishBinaryPackages, each once.
        let pb = p.step("PublishBinaryPackages").unwrap();
        let v = item(&[("version", "4.28.2")]);
        let next: Vec<String> = plan(&p, "arn:x", &all_steps(&p), pb, &v, &distros)
            .into_iter()
            .map(|l| l.step)
            .collect();
        assert_eq!(next, ["PublishSourceTarball", "PublishDockerImages"]);
    }

    #[test]
    fn steps_not_requested_are_neither_started_nor_waited_for() {
        let p = example();
        let s = p.step("MakeSourceTarball").unwrap();
        let v = item(&[("version", "4.28.2")]);
        let only = vec!["MakeSourceTarball".to_string()];
        assert!(plan(&p, "arn:x", &only, s, &v, &[]).is_empty());
        // The publisher run alone waits for nothing.
        let mb = p.step("MakeBinaryPackage").unwrap();
        let t = item(&[("version", "4.28.2"), ("distro", "debian-12-bookworm")]);
        let two = vec![
            "MakeBinaryPackage".to_string(),
            "PublishBinaryPackages".to_string(),
        ];
        let l = plan(&p, "arn:x", &two, mb, &t, &["debian-12-bookworm".into()]);
        assert_eq!(l[0].waits_for.len(), 1);
    }

    #[test]
    fn names_are_stable_short_and_distinct_per_task() {
        let a = TaskRef {
            step: "MakeSourceTarball".into(),
            item: item(&[("version", "4.28.2")]),
        };
        let b = TaskRef {
            step: "MakeSourceTarball".into(),
            item: item(&[("version", "4.28.3")]),
        };
        let n = execution_name("arn:e", "MakeBinaryPackage", &a);
        assert_eq!(n, execution_name("arn:e", "MakeBinaryPackage", &a));
        assert_ne!(n, execution_name("arn:e", "MakeBinaryPackage", &b));
        assert_ne!(n, execution_name("arn:f", "MakeBinaryPackage", &a));
        assert!(n.len() <= 80 && n.starts_with("MakeBinaryPackage-"), "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        // Putting off: one name per (run, step, tasks, generation), whichever lookahead of
        // those tasks puts it off; within the limits even for a long step name.
        let long = "P".repeat(80);
        let items = [item(&[("version", "4.28.2")])];
        let r1 = rearm_name("arn:e", &long, &items, 1);
        assert_eq!(r1, rearm_name("arn:e", &long, &items, 1));
        assert_ne!(r1, rearm_name("arn:e", &long, &items, 2));
        assert_ne!(r1, rearm_name("arn:f", &long, &items, 1));
        assert_ne!(
            r1,
            rearm_name("arn:e", &long, &[item(&[("version", "4.28.3")])], 1)
        );
        assert!(r1.len() <= 80, "{r1}");
        assert!(
            r1.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
