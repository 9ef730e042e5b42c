use std::path::Path;

use boa_core::Pipeline;
use boa_core::pipeline::{AxisValues, Needs};

fn example() -> Pipeline {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml");
    Pipeline::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn example_pipeline_loads_with_its_shape() {
    let p = example();
    assert_eq!(p.name, "hhvm");
    assert_eq!(p.axes.len(), 2);
    assert!(matches!(
        p.axes[0].values,
        AxisValues::Pattern { nightly: true, .. }
    ));
    let stages: Vec<Vec<&str>> = p
        .stages()
        .iter()
        .map(|s| s.iter().map(|s| s.name.as_str()).collect())
        .collect();
    assert_eq!(
        stages,
        vec![
            vec!["MakeSourceTarball"],
            vec!["MakeBinaryPackage"],
            vec!["PublishBinaryPackages"],
            vec!["PublishSourceTarball", "PublishDockerImages"],
        ]
    );
    let bin = p.step("MakeBinaryPackage").unwrap();
    assert_eq!(bin.worker.disk_gb, 256);
    assert_eq!(bin.for_each, ["version", "distro"]);
    let publish = p.step("PublishBinaryPackages").unwrap();
    assert_eq!(publish.needs, Needs::AnySucceeded);
    assert!(publish.exclusive);
    assert_eq!(publish.worker.max_workers, 1);
    assert_eq!(publish.for_each, ["version"]);
}

#[test]
fn a_worker_setting_in_seconds_past_what_a_duration_holds_is_an_error_not_a_panic() {
    let mut v = serde_json::to_value(boa_core::pipeline::WorkerConfig::default()).unwrap();
    for bad in [serde_json::json!(-1.0), serde_json::json!(1e30)] {
        v["idle_timeout"] = bad.clone();
        let e = serde_json::from_value::<boa_core::pipeline::WorkerConfig>(v.clone()).unwrap_err();
        assert!(
            e.to_string().contains("is not a number of seconds"),
            "{bad}: {e}"
        );
    }
}
