//! Shared helpers: a fake Lambda port that records calls and in-flight concurrency.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::{Engine, EngineConfig, ExecutionResult, LambdaInvoker, TaskFailure};
use serde_json::Value;
use tokio::time::Instant;

pub type Handler = dyn Fn(&str, &Value, usize) -> Result<Value, TaskFailure> + Send + Sync;

#[derive(Debug, Clone)]
pub struct Call {
    pub function: String,
    pub payload: Value,
    pub at: Instant,
}

pub struct Fake {
    pub calls: Mutex<Vec<Call>>,
    per_function: Mutex<HashMap<String, usize>>,
    handler: Box<Handler>,
    pub delay: Duration,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

impl Fake {
    /// `handler(function, payload, n)` where `n` counts earlier calls to that function.
    pub fn new(
        handler: impl Fn(&str, &Value, usize) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Self::with_delay(Duration::ZERO, handler)
    }

    pub fn with_delay(
        delay: Duration,
        handler: impl Fn(&str, &Value, usize) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::new(Vec::new()),
            per_function: Mutex::new(HashMap::new()),
            handler: Box::new(handler),
            delay,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }

    /// Echoes its payload.
    pub fn echo() -> Arc<Self> {
        Self::new(|_, p, _| Ok(p.clone()))
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl LambdaInvoker for Fake {
    async fn invoke(&self, function: &str, payload: Value) -> Result<Value, TaskFailure> {
        let n = {
            let mut m = self.per_function.lock().unwrap();
            let c = m.entry(function.to_string()).or_insert(0);
            *c += 1;
            *c - 1
        };
        self.calls.lock().unwrap().push(Call {
            function: function.to_string(),
            payload: payload.clone(),
            at: Instant::now(),
        });
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let r = (self.handler)(function, &payload, n);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

pub fn fail(error: &str, cause: &str) -> TaskFailure {
    TaskFailure {
        error: error.into(),
        cause: cause.into(),
    }
}

pub fn lambda(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

pub fn activity(name: &str) -> String {
    format!("arn:aws:states:us-east-1:123456789012:activity:{name}")
}

pub fn engine(fake: Arc<Fake>, time_scale: f64) -> Engine {
    Engine::new(
        EngineConfig {
            time_scale,
            seed: 42,
            poll_wait: Duration::from_millis(300),
            ..EngineConfig::default()
        },
        fake,
    )
}

pub async fn run(engine: &Engine, def: &Value, input: Value) -> ExecutionResult {
    let h = engine
        .start_execution("test-machine", def, None, input)
        .expect("definition parses");
    tokio::time::timeout(Duration::from_secs(30), h.wait())
        .await
        .expect("execution finishes within 30 s")
}

/// A one-state machine.
pub fn single(state: Value) -> Value {
    serde_json::json!({"StartAt": "S", "States": {"S": state}})
}

/// A fresh empty folder under the system temp dir, for a `FolderObjects` store.
pub fn temp_folder(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("boa-engine-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("create temp folder");
    dir
}

/// An engine whose Distributed Maps read and write objects in `folder`.
pub fn engine_with_objects(fake: Arc<Fake>, folder: &std::path::Path, max_events: usize) -> Engine {
    Engine::new(
        EngineConfig {
            time_scale: 1000.0,
            seed: 42,
            poll_wait: Duration::from_millis(300),
            max_history_events: max_events,
            objects: Some(Arc::new(engine::FolderObjects::new(folder))),
            ..EngineConfig::default()
        },
        fake,
    )
}

/// Reads a JSON file.
pub fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .expect("JSON file")
}

/// A Step Functions client (the real `aws-sdk-sfn`) pointed at the engine's endpoint.
pub async fn sfn(e: &Engine) -> aws_sdk_sfn::Client {
    use aws_sdk_sfn::config::{Credentials, Region};
    let addr = e.activity_endpoint().await.expect("endpoint starts");
    let conf = aws_sdk_sfn::config::Builder::new()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .http_client(http_client())
        .build();
    aws_sdk_sfn::Client::from_conf(conf)
}

/// The SDK's HTTP client (the workspace builds no default one), for the loopback endpoint.
pub fn http_client() -> aws_sdk_sfn::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Creates a state machine through the API; returns its ARN.
pub async fn create_machine(c: &aws_sdk_sfn::Client, name: &str, def: &Value) -> String {
    c.create_state_machine()
        .name(name)
        .definition(def.to_string())
        .role_arn("arn:aws:iam::123456789012:role/test")
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateStateMachine {name}: {e:?}"))
        .state_machine_arn()
        .to_string()
}

/// Polls DescribeExecution until the execution has ended (at most 30 s).
pub async fn wait_done(
    c: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    for _ in 0..3000 {
        let d = c
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .expect("DescribeExecution");
        if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{execution_arn} did not end within 30 s");
}

/// Starts an execution through the API and waits for it to end.
pub async fn start_and_wait(
    c: &aws_sdk_sfn::Client,
    sm_arn: &str,
    input: &Value,
) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let arn = c
        .start_execution()
        .state_machine_arn(sm_arn)
        .input(input.to_string())
        .send()
        .await
        .expect("StartExecution")
        .execution_arn()
        .to_string();
    wait_done(c, &arn).await
}

/// The whole history through GetExecutionHistory (every page).
pub async fn api_history(
    c: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = c
            .get_execution_history()
            .execution_arn(execution_arn)
            .set_next_token(token.take())
            .send()
            .await
            .expect("GetExecutionHistory");
        out.extend(page.events().iter().cloned());
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return out,
        }
    }
}

/// The event types of a history, as AWS names them.
pub fn types(events: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.r#type().as_str().to_string())
        .collect()
}

/// The parsed JSON output of a described execution.
pub fn output(d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput) -> Value {
    serde_json::from_str(d.output().unwrap_or("null")).expect("output is JSON")
}

/// The `__type` and HTTP status of a failed call.
pub fn api_err<E, R>(e: &aws_sdk_sfn::error::SdkError<E, R>) -> (String, u16)
where
    E: aws_sdk_sfn::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug + HasStatus,
{
    let code = match e {
        aws_sdk_sfn::error::SdkError::ServiceError(s) => s.err().code().map(str::to_string),
        _ => None,
    }
    .unwrap_or_else(|| panic!("not a service error: {e:?}"));
    let status = e.raw_response().map(|r| r.status_code()).unwrap_or(0);
    (code, status)
}

pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_sfn::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}
