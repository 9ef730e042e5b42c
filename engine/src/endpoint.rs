//! Loopback HTTP endpoint speaking the Step Functions JSON protocol (awsJson1_0): `POST /` with
//! `X-Amz-Target: AWSStepFunctions.<Op>`.
//!
//! This module answers the activity operations itself: GetActivityTask (long poll),
//! SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat, CreateActivity, DescribeActivity,
//! ListActivities, DeleteActivity. Any other operation goes to the [`Operations`] it is given
//! (the engine's control plane, [`crate::api`]). Errors are HTTP 400
//! `{"__type": ..., "message": ...}` with the `__type` also in `x-amzn-errortype`, as
//! <https://docs.aws.amazon.com/step-functions/latest/apireference/CommonErrors.html> and each
//! operation's "Errors" section describe.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::broker::{ActivityBroker, BrokerError};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The operations this module does not answer itself (the control plane).
#[async_trait::async_trait]
pub trait Operations: Send + Sync {
    /// `None` when `op` is not one of them.
    async fn call(&self, op: &str, body: &Value) -> Option<Result<Value, ApiError>>;
}

#[derive(Clone)]
struct AppState {
    broker: ActivityBroker,
    poll_wait: Duration,
    access_key: Option<String>,
    control: Option<Arc<dyn Operations>>,
}

/// Binds `addr` (use port 0 for a free port) and serves in a background task.
/// Returns the bound address and the server task.
/// With `access_key`, only requests signed with that access key id are answered.
pub async fn serve(
    broker: ActivityBroker,
    poll_wait: Duration,
    access_key: Option<String>,
    control: Option<Arc<dyn Operations>>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(broker, poll_wait, access_key, control);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "Step Functions endpoint stopped");
        }
    });
    tracing::info!(%bound, "Step Functions endpoint listening");
    Ok((bound, task))
}

/// The axum router (for embedding in another server).
pub fn router(
    broker: ActivityBroker,
    poll_wait: Duration,
    access_key: Option<String>,
    control: Option<Arc<dyn Operations>>,
) -> Router {
    Router::new().route("/", post(handle)).with_state(AppState {
        broker,
        poll_wait,
        access_key,
        control,
    })
}

/// The access key id a SigV4 `Authorization` header was signed with.
fn signing_key(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    cred.split('/').next()
}

fn reply(status: StatusCode, body: Value, error_type: Option<&str>) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Some(t) = error_type.and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert("x-amzn-errortype", t);
    }
    resp
}

/// An API error: AWS `__type` and message (answered with HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub type_name: &'static str,
    pub message: String,
}

/// An [`ApiError`].
pub fn api_error(type_name: &'static str, message: impl std::fmt::Display) -> ApiError {
    ApiError {
        type_name,
        message: message.to_string(),
    }
}

fn error(type_name: &str, message: impl std::fmt::Display) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"__type": type_name, "message": message.to_string()}),
        Some(type_name),
    )
}

fn broker_error(e: BrokerError) -> ApiError {
    api_error(e.type_name(), &e)
}

/// A required string field of a request, or `ValidationException`.
pub fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    body.get(name).and_then(Value::as_str).ok_or_else(|| {
        api_error(
            "ValidationException",
            format!("missing string field {name}"),
        )
    })
}

async fn handle(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(want) = &app.access_key
        && signing_key(&headers) != Some(want.as_str())
    {
        return reply(
            StatusCode::FORBIDDEN,
            json!({"__type": "UnrecognizedClientException", "message": "The security token included in the request is invalid: this endpoint serves one local run's workers only"}),
            Some("UnrecognizedClientException"),
        );
    }
    let Some(op) = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AWSStepFunctions."))
        .map(str::to_string)
    else {
        return error(
            "UnknownOperationException",
            "missing or invalid X-Amz-Target",
        );
    };
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error("SerializationException", e),
        }
    };
    match dispatch(&app, &op, &body).await {
        Ok(v) => reply(StatusCode::OK, v, None),
        Err(e) => error(e.type_name, e.message),
    }
}

async fn dispatch(app: &AppState, op: &str, body: &Value) -> Result<Value, ApiError> {
    let b = &app.broker;
    match op {
        "GetActivityTask" => {
            let arn = field(body, "activityArn")?;
            let worker = body.get("workerName").and_then(Value::as_str).unwrap_or("");
            match b.get_activity_task(arn, worker, app.poll_wait).await {
                Ok(Some(t)) => Ok(json!({"taskToken": t.task_token, "input": t.input})),
                Ok(None) => Ok(json!({})),
                Err(e) => Err(broker_error(e)),
            }
        }
        "SendTaskSuccess" => {
            let token = field(body, "taskToken")?;
            let output = field(body, "output")?;
            b.send_task_success(token, output).map_err(broker_error)?;
            Ok(json!({}))
        }
        "SendTaskFailure" => {
            let token = field(body, "taskToken")?;
            let err = body.get("error").and_then(Value::as_str).unwrap_or("");
            let cause = body.get("cause").and_then(Value::as_str).unwrap_or("");
            b.send_task_failure(token, err, cause)
                .map_err(broker_error)?;
            Ok(json!({}))
        }
        "SendTaskHeartbeat" => {
            b.send_task_heartbeat(field(body, "taskToken")?)
                .map_err(broker_error)?;
            Ok(json!({}))
        }
        "CreateActivity" => {
            let a = b
                .create_activity(field(body, "name")?)
                .map_err(broker_error)?;
            Ok(
                json!({"activityArn": a.arn, "creationDate": a.created.timestamp_millis() as f64 / 1000.0}),
            )
        }
        "DescribeActivity" => {
            let a = b
                .describe_activity(field(body, "activityArn")?)
                .map_err(broker_error)?;
            Ok(json!({"activityArn": a.arn, "name": a.name,
                      "creationDate": a.created.timestamp_millis() as f64 / 1000.0}))
        }
        "ListActivities" => {
            // https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListActivities.html
            let all: Vec<Value> = b
                .list_activities()
                .iter()
                .map(|a| {
                    json!({"activityArn": a.arn, "name": a.name,
                                "creationDate": a.created.timestamp_millis() as f64 / 1000.0})
                })
                .collect();
            Ok(json!({"activities": all}))
        }
        "DeleteActivity" => {
            b.delete_activity(field(body, "activityArn")?);
            Ok(json!({}))
        }
        other => {
            if let Some(c) = &app.control
                && let Some(r) = c.call(other, body).await
            {
                return r;
            }
            Err(api_error(
                "UnknownOperationException",
                format!("operation {other} is not supported by the local engine"),
            ))
        }
    }
}
