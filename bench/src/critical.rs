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
