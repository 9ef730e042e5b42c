//! The critical path of a run: the longest chain of (boot + task duration) along the pipeline's
//! `after` dependencies. It is what the makespan would be with unlimited workers that boot the
//! moment a task's dependencies are done and no orchestration overhead.

use std::collections::BTreeMap;

/// One task of a run: its step, its item (axis → value) and how long it took, boot included.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub step: String,
    pub item: BTreeMap<String, String>,
    pub weight_s: f64,
}

/// The longest chain: its length and the tasks on it, first to last (indices into the input).
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalPath {
    pub length_s: f64,
    pub chain: Vec<usize>,
}

/// For every task, the tasks it waits for: every task of each step in its step's `after` list
/// whose item agrees with its own on the axes both have. (`MakeBinaryPackage {version, distro}`
/// waits for `MakeSourceTarball {version}`; `PublishBinaryPackages {version}` waits for every
/// distro's package of that version.)
pub fn dependencies(after: &BTreeMap<String, Vec<String>>, tasks: &[Task]) -> Vec<Vec<usize>> {
    tasks
        .iter()
        .map(|t| {
            let needs = after.get(&t.step).map(Vec::as_slice).unwrap_or_default();
            tasks
                .iter()
                .enumerate()
                .filter(|(_, d)| needs.contains(&d.step))
                .filter(|(_, d)| {
                    d.item
                        .iter()
                        .all(|(axis, v)| t.item.get(axis).is_none_or(|mine| mine == v))
                })
                .map(|(j, _)| j)
                .collect()
        })
        .collect()
}

/// The longest weighted path of a DAG (`deps[i]` = what task `i` waits for). Err on a cycle.
pub fn longest_path(weights: &[f64], deps: &[Vec<usize>]) -> Result<CriticalPath, String> {
    let (finish, via) = finish_times(weights, deps)?;
    let n = weights.len();
    let Some(end) = (0..n).max_by(|a, b| finish[*a].total_cmp(&finish[*b])) else {
        return Ok(CriticalPath {
            length_s: 0.0,
            chain: vec![],
        });
    };
    let mut chain = vec![end];
    while let Some(p) = via[*chain.last().expect("non-empty")] {
        chain.push(p);
    }
    chain.reverse();
    Ok(CriticalPath {
        length_s: finish[end],
        chain,
    })
}

/// A lower bound on the makespan of tasks that also take turns: the tasks marked in `one_at_a_time`
/// (an `exclusive` step's, which run one after another whatever the launching) cannot overlap.
/// For every release time `r` of such a task (the longest chain before it), the ones released
/// at `r` or later still need `r` + the sum of their durations, and then the shortest chain
/// after any of them. The result is the larger of that and the longest path.
pub fn lower_bound(
    weights: &[f64],
    deps: &[Vec<usize>],
    one_at_a_time: &[bool],
) -> Result<f64, String> {
    assert_eq!(weights.len(), one_at_a_time.len(), "one mark per task");
    let (head, _) = finish_times(weights, deps)?;
    let mut dependents = vec![vec![]; weights.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let (tail, _) = finish_times(weights, &dependents)?;
    let mut bound = head.iter().copied().fold(0.0, f64::max);
    // (release, duration, what must follow) of each task that takes turns.
    let turns: Vec<(f64, f64, f64)> = (0..weights.len())
        .filter(|&i| one_at_a_time[i])
        .map(|i| (head[i] - weights[i], weights[i], tail[i] - weights[i]))
        .collect();
    for &(r, _, _) in &turns {
        let later = turns.iter().filter(|t| t.0 >= r);
        let work: f64 = later.clone().map(|t| t.1).sum();
        let after = later.map(|t| t.2).fold(f64::INFINITY, f64::min);
        bound = bound.max(r + work + after);
    }
    Ok(bound)
}

/// For every task, the longest chain ending with it (its own weight included) and its
/// predecessor on that chain. Err on a cycle.
fn finish_times(
    weights: &[f64],
    deps: &[Vec<usize>],
) -> Result<(Vec<f64>, Vec<Option<usize>>), String> {
    assert_eq!(weights.len(), deps.len(), "one weight per task");
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let n = weights.len();
    let mut mark = vec![Mark::New; n];
    // finish[i]: the longest chain ending with i; via[i]: its predecessor on that chain.
    let mut finish = vec![0.0f64; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    for root in 0..n {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next dependency to look at).
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Open;
        while let Some(&mut (i, ref mut k)) = stack.last_mut() {
            if let Some(&d) = deps[i].get(*k) {
                *k += 1;
                match mark[d] {
                    Mark::Open => return Err(format!("dependency cycle through task {d}")),
                    Mark::New => {
                        mark[d] = Mark::Open;
                        stack.push((d, 0));
                    }
                    Mark::Done => {}
                }
                continue;
            }
            let best = deps[i]
                .iter()
                .copied()
                .max_by(|a, b| finish[*a].total_cmp(&finish[*b]));
            finish[i] = weights[i] + best.map_or(0.0, |b| finish[b]);
            via[i] = best;
            mark[i] = Mark::Done;
            stack.pop();
        }
    }
    Ok((finish, via))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(step: &str, item: &[(&str, &str)], w: f64) -> Task {
        Task {
            step: step.into(),
            item: item
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            weight_s: w,
        }
    }

    fn example_after() -> BTreeMap<String, Vec<String>> {
        [
            ("MakeBinaryPackage", vec!["MakeSourceTarball"]),
            ("PublishBinaryPackages", vec!["MakeBinaryPackage"]),
            ("PublishSourceTarball", vec!["PublishBinaryPackages"]),
            ("PublishDockerImages", vec!["PublishBinaryPackages"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect()
    }

    #[test]
    fn example_shape_takes_the_slowest_package_of_the_slowest_version() {
        let boot = 0.5;
        let mut tasks = vec![];
        for (v, pkgs) in [("1.0.0", [1.0, 1.4]), ("2.0.0", [1.2, 1.1])] {
            tasks.push(task("MakeSourceTarball", &[("version", v)], boot + 0.3));
            for (d, w) in ["a", "b"].iter().zip(pkgs) {
                tasks.push(task(
                    "MakeBinaryPackage",
                    &[("version", v), ("distro", d)],
                    boot + w,
                ));
            }
            tasks.push(task("PublishBinaryPackages", &[("version", v)], boot + 0.2));
            tasks.push(task("PublishSourceTarball", &[("version", v)], boot + 0.2));
            tasks.push(task("PublishDockerImages", &[("version", v)], boot + 0.25));
        }
        let deps = dependencies(&example_after(), &tasks);
        // A package waits for its own version's tarball only; a publish for both packages.
        assert_eq!(deps[1], vec![0]);
        assert_eq!(deps[3], vec![1, 2]);
        assert_eq!(deps[9], vec![7, 8]);
        let w: Vec<f64> = tasks.iter().map(|t| t.weight_s).collect();
        let cp = longest_path(&w, &deps).unwrap();
        // 0.8 + 1.9 + 0.7 + 0.75 along version 1.0.0, distro b, docker images.
        assert!((cp.length_s - 4.15).abs() < 1e-9, "{cp:?}");
        let names: Vec<(&str, Option<&str>)> = cp
            .chain
            .iter()
            .map(|&i| {
                (
                    tasks[i].step.as_str(),
                    tasks[i].item.get("distro").map(String::as_str),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("MakeSourceTarball", None),
                ("MakeBinaryPackage", Some("b")),
                ("PublishBinaryPackages", None),
                ("PublishDockerImages", None),
            ]
        );
        assert!(
            cp.chain
                .iter()
                .all(|&i| tasks[i].item["version"] == "1.0.0")
        );
    }

    #[test]
    fn tasks_that_take_turns_add_their_durations_to_the_bound() {
        // Three versions: tarball 1 → publish 1 (one at a time) → docker 0.5; the publishes are
        // released at 1, 1 and 2.
        let w = [1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5];
        let deps = vec![
            vec![],
            vec![],
            vec![],
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![4],
            vec![5],
        ];
        let turns = [false, false, false, true, true, true, false, false, false];
        // The longest path alone: 2 + 1 + 0.5.
        assert_eq!(longest_path(&w, &deps).unwrap().length_s, 3.5);
        // From 1, three publishes of 1 one after another, then 0.5.
        assert_eq!(lower_bound(&w, &deps, &turns).unwrap(), 4.5);
        // Nothing takes turns: the longest path.
        assert_eq!(lower_bound(&w, &deps, &[false; 9]).unwrap(), 3.5);
        // A publish released late enough does not wait for the others: 10 + 1 + 0.5.
        let mut late = w;
        late[2] = 10.0;
        assert_eq!(lower_bound(&late, &deps, &turns).unwrap(), 11.5);
    }

    #[test]
    fn independent_tasks_and_the_empty_run() {
        let cp = longest_path(&[1.0, 3.0, 2.0], &[vec![], vec![], vec![]]).unwrap();
        assert_eq!((cp.length_s, cp.chain), (3.0, vec![1]));
        let empty = longest_path(&[], &[]).unwrap();
        assert_eq!((empty.length_s, empty.chain.len()), (0.0, 0));
    }

    #[test]
    fn a_diamond_counts_the_shared_ancestor_once_and_a_cycle_is_an_error() {
        // 0 → {1, 2} → 3
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let cp = longest_path(&[1.0, 5.0, 2.0, 1.0], &deps).unwrap();
        assert_eq!((cp.length_s, cp.chain), (7.0, vec![0, 1, 3]));
        assert!(longest_path(&[1.0, 1.0], &[vec![1], vec![0]]).is_err());
    }
}
