//! A Map state in DISTRIBUTED mode, following the Step Functions documentation
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html>):
//!
//! - the items come from `ItemsPath` or an `ItemReader` (S3 `getObject` of a JSON array, or
//!   `listObjectsV2`) through [`crate::ObjectStore`];
//! - the Map starts a **Map Run**; each item runs as a **child workflow execution** with its own
//!   record, history and history limit, registered with the engine (so `Engine::history` of its
//!   ARN works). The parent's history gets `MapStateStarted`, `MapRunStarted`, then
//!   `MapRunSucceeded`/`MapRunFailed` (or `MapRunAborted`) and `MapStateSucceeded`/`Failed`: no
//!   per-item events;
//! - names: Map Run `arn:…:mapRun:<machine>/<label>:<map run id>`, child state machine
//!   `arn:…:stateMachine:<machine>/<label>`, child execution
//!   `arn:…:execution:<machine>/<label>:<map run id>-<index>` (label = `Label` or the state
//!   name; AWS names children with UUIDs, the index keeps them readable);
//! - at most `MaxConcurrency` children run at once (0 or absent: AWS's default of 10,000);
//! - failure threshold (section "Setting failure thresholds for Distributed Map states"): the
//!   Map Run fails with `States.ExceedToleratedFailureThreshold` when the failed children (failed,
//!   timed out or aborted) exceed `ToleratedFailureCount`, or their share of all items exceeds
//!   `ToleratedFailurePercentage`; with neither, none is tolerated. On failure the running
//!   children are aborted and the remaining items never start (PENDING);
//! - `ResultWriter`
//!   (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html>):
//!   `<Prefix>/<map run id>/manifest.json` plus `SUCCEEDED_0.json`, `FAILED_0.json`,
//!   `PENDING_0.json`, each written only when it has entries (the manifest lists the files it
//!   wrote), also when the Map Run failed; the Map's result is then
//!   `{"MapRunArn", "ResultWriterDetails": {"Bucket", "Key"}}` instead of the array of outputs.
//!   Without ResultWriter the result is the array of child outputs in item order, a failed
//!   (tolerated) child's entry being its execution record (ExecutionArn, Input, Error, Cause,
//!   Status, …), as the doc says of failed children under the default transformation.

use std::sync::Arc;

use boa_core::history_event::EventType;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Run, Services, ctx_with, resolve_seconds, select_items};
use crate::asl::parse::{Distributed, ItemSource, Percentage, State, StateMachine};
use crate::asl::paths::IoPath;
use crate::asl::template::Template;
use crate::error::{StatesError, names};
use crate::execution::{Execution, ExecutionResult, ExecutionStatus, MapRun};
use crate::history::History;
use crate::objects::ObjectStore;
use crate::quotas::MAX_PAYLOAD_BYTES;

/// AWS's default concurrency of a Distributed Map (child executions at once).
const DEFAULT_MAX_CONCURRENCY: usize = 10_000;

/// The parts of a Map state a Distributed Map uses.
pub(super) struct MapArgs<'a> {
    pub(super) state: &'a State,
    pub(super) items_path: &'a IoPath,
    pub(super) item_selector: Option<&'a Template>,
    pub(super) processor: &'a Arc<StateMachine>,
    pub(super) max_concurrency: u64,
    pub(super) dist: &'a Distributed,
}

/// Aborts the Map Run (and its running children) if the Map's future is dropped before the run
/// ended: parent stopped, timed out, or cancelled by a failing sibling branch.
struct AbortOnDrop {
    services: Arc<Services>,
    run: Arc<MapRun>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.services.registry.abort_map_run(&self.run);
    }
}

/// Where the ResultWriter writes.
struct Destination {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn str_param(params: &Value, field: &str, what: &str) -> Result<Option<String>, StatesError> {
    match params.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(StatesError::runtime(format!(
            "{what}.Parameters.{field} must be a string, got {other}"
        ))),
    }
}

/// Whether `failed` failed children out of `total` items exceed the tolerated failure threshold.
fn threshold_exceeded(failed: usize, total: usize, count: Option<u64>, pct: Option<f64>) -> bool {
    if count.is_none() && pct.is_none() {
        return failed > 0;
    }
    count.is_some_and(|c| failed as u64 > c)
        || pct.is_some_and(|p| total > 0 && failed as f64 * 100.0 / total as f64 > p)
}

/// A child's entry in the ResultWriter files and in the result array of a failed child.
fn child_entry(child: &Execution, res: &ExecutionResult) -> Value {
    let summary = child.summary();
    let mut e = json!({
        "ExecutionArn": child.arn,
        "Input": &*child.input,
        "InputDetails": {"Included": true},
        "Name": child.name,
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE",
        "StartDate": iso(child.start),
        "StateMachineArn": child.state_machine_arn,
        "Status": res.status,
        "StopDate": summary.stop_date.map(iso),
    });
    if res.status == ExecutionStatus::Succeeded {
        let out = res.output.as_ref().unwrap_or(&Value::Null).to_string();
        e["Output"] = json!(out);
        e["OutputDetails"] = json!({"Included": true});
    } else {
        e["Error"] = json!(res.error.clone().unwrap_or_default());
        e["Cause"] = json!(res.cause.clone().unwrap_or_default());
    }
    e
}

impl Run {
    pub(super) async fn run_distributed(
        &self,
        a: MapArgs<'_>,
        eff: Value,
        ctx: &Value,
        prev: &mut i64,
    ) -> Result<Value, StatesError> {
        let state = a.state;
        let name = state.name.as_str();
        let dist = a.dist;
        let store = || {
            self.services.config.objects.clone().ok_or_else(|| {
                StatesError::runtime(format!(
                    "Map state '{name}': ItemReader and ResultWriter need an object store, \
                     and none is configured (EngineConfig.objects)"
                ))
            })
        };
        if dist.item_reader.is_some() || dist.result_writer.is_some() {
            store()?;
        }
        let destination = match &dist.result_writer {
            None => None,
            Some(w) => {
                let p = w.parameters.evaluate(&eff, ctx)?;
                let bucket = str_param(&p, "Bucket", "ResultWriter")?.ok_or_else(|| {
                    StatesError::runtime("ResultWriter.Parameters.Bucket is missing")
                })?;
                let prefix = str_param(&p, "Prefix", "ResultWriter")?.unwrap_or_default();
                Some(Destination {
                    store: store()?,
                    bucket,
                    prefix,
                })
            }
        };
        let tolerated_count = dist
            .tolerated_failure_count
            .as_ref()
            .map(|s| resolve_seconds(s, &eff, ctx, "ToleratedFailureCountPath"))
            .transpose()?;
        let tolerated_pct = match &dist.tolerated_failure_percentage {
            None => None,
            Some(Percentage::Fixed(p)) => Some(*p),
            Some(Percentage::Path(path)) => {
                let v = path.query(&eff, ctx)?;
                Some(
                    v.as_f64()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| {
                            StatesError::runtime(format!(
                                "ToleratedFailurePercentagePath {path} must select a number \
                                 from 0 to 100, got {v}"
                            ))
                        })?,
                )
            }
        };
        let items = match &dist.item_reader {
            None => select_items(state, a.items_path, &eff, ctx)?,
            Some(_) => self.read_items(dist, &eff, ctx, store()?).await?,
        };
        let n = items.len();

        let start = self.record(
            prev,
            EventType::MapStateStarted,
            json!({"name": name, "length": n}),
        )?;
        let cfg = &self.services.config;
        let label = dist.label.as_deref().unwrap_or(name);
        let run_id = uuid::Uuid::new_v4().to_string();
        let child_machine = format!("{}/{label}", self.sm_name);
        let run_arn = format!(
            "arn:aws:states:{}:{}:mapRun:{child_machine}:{run_id}",
            cfg.region, cfg.account_id
        );
        let child_sm_arn = format!(
            "arn:aws:states:{}:{}:stateMachine:{child_machine}",
            cfg.region, cfg.account_id
        );
        let limit = match a.max_concurrency {
            0 => DEFAULT_MAX_CONCURRENCY,
            m => usize::try_from(m).unwrap_or(DEFAULT_MAX_CONCURRENCY),
        };
        let run = Arc::new(MapRun::new(
            run_arn.clone(),
            self.exec.arn.clone(),
            name.to_string(),
            n,
            limit as u64,
            tolerated_count,
            tolerated_pct,
        ));
        self.services.registry.add_map_run(run.clone());
        let guard = AbortOnDrop {
            services: self.services.clone(),
            run: run.clone(),
        };
        let mut p = start;
        self.record(
            &mut p,
            EventType::MapRunStarted,
            json!({"mapRunArn": run_arn}),
        )?;
        tracing::debug!(execution = %self.exec.arn, map_run = %run_arn, items = n, "map run started");

        // Children start lazily, in item order, at most `limit` at once.
        let eff = &eff;
        let (items_ref, run_ref) = (&items, &run);
        let (child_machine, child_sm_arn, run_id) = (&child_machine, &child_sm_arn, &run_id);
        let (item_selector, processor) = (a.item_selector, a.processor);
        let children = (0..n).map(|i| async move {
            let item = items_ref[i].clone();
            let input = match item_selector {
                Some(t) => {
                    let c = ctx_with(ctx, "Map", json!({"Item": {"Index": i, "Value": item}}));
                    t.evaluate(eff, &c)?
                }
                None => item,
            };
            let child_name = format!("{run_id}-{i}");
            let child = self
                .start_child(
                    run_ref,
                    processor,
                    child_machine,
                    child_sm_arn,
                    &child_name,
                    input,
                )
                .await;
            Ok::<_, StatesError>((i, child))
        });
        let mut stream = futures::stream::iter(children).buffer_unordered(limit);
        let mut outcomes: Vec<Option<(Arc<Execution>, ExecutionResult)>> = vec![None; n];
        let mut failed = 0usize;
        let mut failure: Option<StatesError> = None;
        while let Some(r) = stream.next().await {
            match r {
                Ok((i, (child, res))) => {
                    if res.status != ExecutionStatus::Succeeded {
                        failed += 1;
                    }
                    outcomes[i] = Some((child, res));
                    if threshold_exceeded(failed, n, tolerated_count, tolerated_pct) {
                        failure = Some(StatesError::new(
                            names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                            format!(
                                "The specified tolerated failure threshold was exceeded: {failed} \
                                 of {n} child executions of Map Run {run_arn} failed"
                            ),
                        ));
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() {
            // Running children are stopped; items not started stay PENDING.
            self.services.registry.abort_children(&run);
            drop(stream);
            for c in run.children() {
                let i = c
                    .name
                    .rsplit('-')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok());
                if let (Some(i), Some(res)) = (i, c.result())
                    && i < n
                    && outcomes[i].is_none()
                {
                    outcomes[i] = Some((c.clone(), res));
                }
            }
        } else {
            drop(stream);
        }

        let ended = match &failure {
            None => {
                run.end(ExecutionStatus::Succeeded);
                self.record(
                    &mut p,
                    EventType::MapRunSucceeded,
                    json!({"mapRunArn": run_arn}),
                )
            }
            Some(e) => {
                run.end(ExecutionStatus::Failed);
                self.record(
                    &mut p,
                    EventType::MapRunFailed,
                    json!({"mapRunArn": run_arn, "error": e.error, "cause": e.cause}),
                )
            }
        };
        drop(guard);
        let result = ended.and(match &destination {
            Some(d) => self
                .write_results(
                    d,
                    &run_arn,
                    run_id,
                    &items,
                    &outcomes,
                    a.item_selector,
                    eff,
                    ctx,
                )
                .await
                .map(|key| {
                    json!({"MapRunArn": run_arn,
                           "ResultWriterDetails": {"Bucket": d.bucket, "Key": key}})
                }),
            None => Ok(Value::Array(
                outcomes
                    .iter()
                    .map(|o| match o {
                        Some((_, r)) if r.status == ExecutionStatus::Succeeded => {
                            r.output.clone().unwrap_or(Value::Null)
                        }
                        Some((c, r)) => child_entry(c, r),
                        None => Value::Null,
                    })
                    .collect(),
            )),
        });
        let result = match failure {
            Some(e) => Err(e),
            None => result,
        };
        match result {
            Ok(v) => {
                self.record(prev, EventType::MapStateSucceeded, json!({"name": name}))?;
                Ok(v)
            }
            Err(e) => {
                self.record(
                    prev,
                    EventType::MapStateFailed,
                    json!({"name": name, "error": e.error, "cause": e.cause}),
                )?;
                Err(e)
            }
        }
    }

    /// Starts one child workflow execution on its own task and waits for its end.
    async fn start_child(
        &self,
        run: &Arc<MapRun>,
        processor: &Arc<StateMachine>,
        child_machine: &str,
        child_sm_arn: &str,
        child_name: &str,
        input: Value,
    ) -> (Arc<Execution>, ExecutionResult) {
        let cfg = &self.services.config;
        let arn = format!(
            "arn:aws:states:{}:{}:execution:{child_machine}:{child_name}",
            cfg.region, cfg.account_id
        );
        let input_text: Arc<str> = Arc::from(input.to_string());
        let (tx, _rx) = watch::channel(None);
        let child = Arc::new(
            Execution::new(
                arn.clone(),
                child_name.to_string(),
                child_sm_arn.to_string(),
                Utc::now(),
                input_text.clone(),
                History::new(cfg.max_history_events),
                tx,
            )
            .child_of(run.arn.clone(), self.exec.clone()),
        );
        self.services.registry.insert(child.clone());
        run.add_child(child.clone());
        child.history.observe_payload(input_text.len());
        let mut prev = 0;
        // Cannot overflow: first event.
        let _ = child.history.record_shared(
            &mut prev,
            EventType::ExecutionStarted,
            json!({"input": null, "stateMachineArn": child_sm_arn, "mapRunArn": run.arn}),
            Some(("input", input_text.clone())),
        );
        if input_text.len() > MAX_PAYLOAD_BYTES {
            child.finish(
                ExecutionStatus::Failed,
                Err(StatesError::new(
                    names::DATA_LIMIT_EXCEEDED,
                    format!(
                        "The input of child execution {arn} is {} bytes, more than the \
                         {MAX_PAYLOAD_BYTES} byte quota.",
                        input_text.len()
                    ),
                )),
            );
        } else {
            let r = Run::new(
                self.services.clone(),
                child.clone(),
                child_machine.to_string(),
            );
            let machine = processor.clone();
            let task = tokio::spawn(async move {
                r.run_execution(machine, input, Some(input_text), prev)
                    .await
            });
            child.set_abort(task.abort_handle());
            if let Err(e) = task.await
                && !e.is_cancelled()
            {
                child.finish(
                    ExecutionStatus::Failed,
                    Err(StatesError::runtime(format!(
                        "the child execution panicked: {e}"
                    ))),
                );
            }
        }
        let res = child.result().unwrap_or_else(|| {
            // Cancelled before it could finish itself (its parent was stopped meanwhile).
            child.finish(
                ExecutionStatus::Aborted,
                Err(StatesError::new("", "the child execution was stopped")),
            );
            child
                .result()
                .unwrap_or_else(|| unreachable!("finished above"))
        });
        (child, res)
    }

    /// The items of an `ItemReader`
    /// (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html>).
    async fn read_items(
        &self,
        dist: &Distributed,
        eff: &Value,
        ctx: &Value,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Vec<Value>, StatesError> {
        let reader = dist
            .item_reader
            .as_ref()
            .unwrap_or_else(|| unreachable!("called with an ItemReader"));
        let failed = |cause: String| StatesError::new(names::ITEM_READER_FAILED, cause);
        let p = reader.parameters.evaluate(eff, ctx)?;
        let bucket = str_param(&p, "Bucket", "ItemReader")?
            .ok_or_else(|| failed("ItemReader.Parameters.Bucket is missing".into()))?;
        let mut items = match reader.source {
            ItemSource::JsonObject => {
                let key = str_param(&p, "Key", "ItemReader")?
                    .ok_or_else(|| failed("ItemReader.Parameters.Key is missing".into()))?;
                let body = store
                    .get(&bucket, &key)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Array(a)) => a,
                    Ok(_) => {
                        return Err(failed(format!(
                            "object {key:?} of bucket {bucket:?} is not a JSON array"
                        )));
                    }
                    Err(e) => {
                        return Err(failed(format!(
                            "object {key:?} of bucket {bucket:?} is not JSON: {e}"
                        )));
                    }
                }
            }
            ItemSource::ListObjects => {
                let prefix = str_param(&p, "Prefix", "ItemReader")?.unwrap_or_default();
                store
                    .list(&bucket, &prefix)
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .into_iter()
                    .map(|o| {
                        json!({"Key": o.key, "Size": o.size,
                               "LastModified": iso(o.last_modified), "StorageClass": "STANDARD"})
                    })
                    .collect()
            }
        };
        if let Some(m) = &reader.max_items {
            let max = resolve_seconds(m, eff, ctx, "ReaderConfig.MaxItemsPath")?;
            if max > 0 {
                items.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            }
        }
        Ok(items)
    }

    /// Writes the ResultWriter files; returns the manifest's key.
    #[allow(clippy::too_many_arguments)]
    async fn write_results(
        &self,
        d: &Destination,
        run_arn: &str,
        run_id: &str,
        items: &[Value],
        outcomes: &[Option<(Arc<Execution>, ExecutionResult)>],
        item_selector: Option<&Template>,
        eff: &Value,
        ctx: &Value,
    ) -> Result<String, StatesError> {
        let (mut succeeded, mut failed, mut pending) = (Vec::new(), Vec::new(), Vec::new());
        for (i, o) in outcomes.iter().enumerate() {
            match o {
                Some((c, r)) if r.status == ExecutionStatus::Succeeded => {
                    succeeded.push(child_entry(c, r))
                }
                Some((c, r)) => failed.push(child_entry(c, r)),
                None => {
                    // Never started: its input as the child would have had it.
                    let input = match item_selector {
                        Some(t) => {
                            let c = ctx_with(
                                ctx,
                                "Map",
                                json!({"Item": {"Index": i, "Value": items[i]}}),
                            );
                            t.evaluate(eff, &c).unwrap_or_else(|_| items[i].clone())
                        }
                        None => items[i].clone(),
                    };
                    pending.push(json!({"Input": input.to_string(),
                                        "InputDetails": {"Included": true},
                                        "Status": "PENDING"}));
                }
            }
        }
        let base = match d.prefix.trim_end_matches('/') {
            "" => run_id.to_string(),
            p => format!("{p}/{run_id}"),
        };
        let write_failed = |e: crate::objects::ObjectError| {
            StatesError::new(names::RESULT_WRITER_FAILED, e.to_string())
        };
        let mut files = serde_json::Map::new();
        for (status, entries) in [
            ("FAILED", failed),
            ("PENDING", pending),
            ("SUCCEEDED", succeeded),
        ] {
            let mut listed = Vec::new();
            if !entries.is_empty() {
                let key = format!("{base}/{status}_0.json");
                let body = serde_json::to_vec(&entries)
                    .map_err(|e| StatesError::runtime(e.to_string()))?;
                let size = body.len();
                d.store
                    .put(&d.bucket, &key, body)
                    .await
                    .map_err(write_failed)?;
                listed.push(json!({"Key": key, "Size": size}));
            }
            files.insert(status.to_string(), Value::Array(listed));
        }
        let manifest = json!({
            "DestinationBucket": d.bucket,
            "MapRunArn": run_arn,
            "ResultFiles": files,
        });
        let key = format!("{base}/manifest.json");
        let body = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| StatesError::runtime(e.to_string()))?;
        d.store
            .put(&d.bucket, &key, body)
            .await
            .map_err(write_failed)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::threshold_exceeded;

    #[test]
    fn failure_threshold() {
        // Neither given: no failure is tolerated.
        assert!(!threshold_exceeded(0, 10, None, None));
        assert!(threshold_exceeded(1, 10, None, None));
        assert!(!threshold_exceeded(2, 10, Some(2), None));
        assert!(threshold_exceeded(3, 10, Some(2), None));
        assert!(!threshold_exceeded(1, 10, None, Some(10.0)));
        assert!(threshold_exceeded(2, 10, None, Some(10.0)));
        assert!(!threshold_exceeded(10, 10, None, Some(100.0)));
        // Either exceeded fails the run.
        assert!(threshold_exceeded(3, 100, Some(2), Some(50.0)));
    }
}
