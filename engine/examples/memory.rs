//! Memory of the engine under a build-shaped load: `N` executions at once, each a Map of `M`
//! items where every item runs Pass → Lambda Task → Pass with a ~`BYTES`-byte payload (like a
//! build task's input and result), and prints peak RSS (`VmHWM` of /proc/self/status), history
//! events, and wall time.
//!
//! ```sh
//! cargo run --release -p engine --example memory -- [N=4] [M=250] [BYTES=1024] [inline|distributed]
//! ```

use std::sync::Arc;
use std::time::Instant;

use engine::{Engine, EngineConfig, LambdaInvoker, TaskFailure};
use serde_json::{Value, json};

/// Returns its payload with a result of the same size added, as a build-task Lambda would.
struct Echo;

#[async_trait::async_trait]
impl LambdaInvoker for Echo {
    async fn invoke(&self, _function: &str, payload: Value) -> Result<Value, TaskFailure> {
        tokio::task::yield_now().await;
        let log = payload["blob"].as_str().unwrap_or_default().to_uppercase();
        Ok(json!({"status": "SUCCEEDED", "item": payload["item"], "log": log}))
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn machine(items: usize, bytes: usize, distributed: bool) -> (Value, Value) {
    let mut processor = json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Parameters": {
                "item.$": "$.item", "blob.$": "$.blob", "input.$": "$.input"},
                "Next": "Build"},
            "Build": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:build",
                      "ResultPath": "$.result", "Next": "Keep"},
            "Keep": {"Type": "Pass", "Parameters": {"item.$": "$.item", "status.$": "$.result.status"},
                     "End": true}
        }
    });
    if distributed {
        processor["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    }
    let def = json!({"StartAt": "Plan", "States": {
        "Plan": {"Type": "Pass", "Next": "ForEach"},
        "ForEach": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 50,
                    "ItemSelector": {"item.$": "$$.Map.Item.Value", "blob.$": "$.blob", "input.$": "$.input"},
                    "ItemProcessor": processor, "ResultPath": "$.results", "Next": "Done"},
        "Done": {"Type": "Succeed"}
    }});
    let blob: String = "x".repeat(bytes);
    let input = json!({
        "items": (0..items).map(|i| json!({"version": format!("v{i}"), "distro": "debian"})).collect::<Vec<_>>(),
        "blob": blob,
        "input": {"run": "memory", "tokens": ["a", "b", "c"]},
    });
    (def, input)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, m, bytes) = (arg(0, 4), arg(1, 250), arg(2, 1024));
    let distributed = args.get(3).is_some_and(|a| a == "distributed");
    let engine = Engine::new(EngineConfig::default(), Arc::new(Echo));
    let (def, input) = machine(m, bytes, distributed);
    let before = status_kib("VmRSS:");
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            engine
                .start_execution("memory", &def, Some(&format!("run-{i}")), input.clone())
                .expect("definition parses")
        })
        .collect();
    let mut events = 0;
    let mut arns = Vec::new();
    for h in handles {
        let r = h.wait().await;
        assert_eq!(r.status, engine::ExecutionStatus::Succeeded, "{r:?}");
        events += r.counts.history_events;
        arns.push(r.execution_arn);
    }
    let wall = t0.elapsed();
    let (peak, after) = (status_kib("VmHWM:"), status_kib("VmRSS:"));
    // Measured after the peak: one `history()` call (what a progress display polls), and the
    // parents' histories as GetExecutionHistory-like JSON.
    let t1 = Instant::now();
    let one = engine.history(&arns[0]).map(|h| h.len()).unwrap_or(0);
    let history_call = t1.elapsed();
    let history_bytes: usize = arns
        .iter()
        .map(|a| {
            engine
                .history(a)
                .map(|h| serde_json::to_string(&h).map(|s| s.len()).unwrap_or(0))
                .unwrap_or(0)
        })
        .sum();
    println!(
        "executions={n} tasks={} payload={bytes}B mode={} events={events} \
         parent-history-json={:.1}MiB wall={:.2}s rss-before={}MiB peak-rss={}MiB rss-after={}MiB \
         history()-of-{one}-events={:.1}ms",
        n * m,
        if distributed { "distributed" } else { "inline" },
        history_bytes as f64 / 1048576.0,
        wall.as_secs_f64(),
        before / 1024,
        peak / 1024,
        after / 1024,
        history_call.as_secs_f64() * 1000.0,
    );
}
