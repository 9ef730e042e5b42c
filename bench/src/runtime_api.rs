//! A minimal loopback implementation of the Lambda Runtime API (`/2018-06-01/runtime/...`), to
//! time a function binary from process start to its first `GET invocation/next` (ready) and to
//! its first response; and, on the same port, just enough of the EC2 and Step Functions APIs
//! (`DescribeInstances`, `RunInstances`, `ListExecutions`) for start-workers and health-check to
//! do a real first invocation without AWS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

/// What one function process did, as seen by the server.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// First `GET /runtime/invocation/next`.
    pub ready: Option<Instant>,
    /// First `POST .../response` or `.../error`.
    pub responded: Option<Instant>,
    pub response: Option<String>,
    /// The body of an error post (`invocation/<id>/error` or `init/error`).
    pub error: Option<String>,
    /// Requests to the fake AWS endpoint, by action.
    pub aws_calls: Vec<String>,
}

#[derive(Default)]
struct Slot {
    event: Option<String>,
    delivered: bool,
    seen: Observed,
}

#[derive(Clone, Default)]
struct Shared {
    slot: Arc<Mutex<Slot>>,
    done: Arc<Notify>,
}

/// The server; one function process at a time.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

const REQUEST_ID: &str = "bench-0001";

impl RuntimeApi {
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let shared = Shared::default();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .route("/", post(aws))
            .fallback(s3)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            shared,
            server,
        })
    }

    /// Arms the server with the next process's one event.
    pub fn arm(&self, event: &str) {
        *self.shared.slot.lock().expect("slot") = Slot {
            event: Some(event.to_string()),
            ..Slot::default()
        };
    }

    /// Waits until the armed event got a response or an error.
    pub async fn wait_done(&self) -> Observed {
        loop {
            let notified = self.shared.done.notified();
            {
                let s = self.shared.slot.lock().expect("slot");
                if s.seen.responded.is_some() || s.seen.error.is_some() {
                    return s.seen.clone();
                }
            }
            notified.await;
        }
    }

    /// What was seen so far.
    pub fn observed(&self) -> Observed {
        self.shared.slot.lock().expect("slot").seen.clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(sh): State<Shared>) -> Response {
    let now = Instant::now();
    let event = {
        let mut s = sh.slot.lock().expect("slot");
        s.seen.ready.get_or_insert(now);
        if s.delivered {
            None
        } else {
            s.delivered = true;
            s.event.clone()
        }
    };
    match event {
        Some(ev) => {
            let deadline = chrono::Utc::now().timestamp_millis() + 60_000;
            (
                [
                    ("lambda-runtime-aws-request-id", REQUEST_ID.to_string()),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
                    ),
                    ("content-type", "application/json".into()),
                ],
                ev,
            )
                .into_response()
        }
        // Only one event per process: the next poll waits until the process is killed.
        None => std::future::pending::<Response>().await,
    }
}

fn finish(sh: &Shared, body: Bytes, is_error: bool) {
    let now = Instant::now();
    {
        let mut s = sh.slot.lock().expect("slot");
        let text = String::from_utf8_lossy(&body).into_owned();
        if is_error {
            s.seen.error.get_or_insert(text);
        } else {
            s.seen.response.get_or_insert(text);
        }
        s.seen.responded.get_or_insert(now);
    }
    sh.done.notify_waiters();
}

async fn response(State(sh): State<Shared>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    finish(&sh, body, false);
    StatusCode::ACCEPTED
}

async fn error(State(sh): State<Shared>, Path(_id): Path<String>, body: Bytes) -> StatusCode {
    finish(&sh, body, true);
    StatusCode::ACCEPTED
}

async fn init_error(State(sh): State<Shared>, body: Bytes) -> StatusCode {
    finish(&sh, body, true);
    StatusCode::ACCEPTED
}

const EC2_NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Just enough EC2 (query protocol, XML) and Step Functions (JSON 1.0) for one invocation.
async fn aws(State(sh): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = String::from_utf8_lossy(&body).into_owned();
    let action = match &target {
        Some(t) => t.rsplit('.').next().unwrap_or_default().to_string(),
        None => body
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or_default()
            .to_string(),
    };
    sh.slot
        .lock()
        .expect("slot")
        .seen
        .aws_calls
        .push(action.clone());
    let xml =
        |text: String| ([(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], text).into_response();
    match action.as_str() {
        "ListExecutions" => (
            [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
            r#"{"executions":[]}"#,
        )
            .into_response(),
        "DescribeInstances" => xml(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="{EC2_NS}"><requestId>bench</requestId><reservationSet/></DescribeInstancesResponse>"#
        )),
        // The image's root device (start-workers sizes the worker's disk on it).
        "DescribeImages" => xml(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeImagesResponse xmlns="{EC2_NS}"><requestId>bench</requestId><imagesSet><item><imageId>ami-00000000000000000</imageId><imageState>available</imageState><architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/xvda</rootDeviceName></item></imagesSet></DescribeImagesResponse>"#
        )),
        "RunInstances" => xml(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="{EC2_NS}"><requestId>bench</requestId><reservationId>r-0bench</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet><item><instanceId>i-0bench00000000001</instanceId><imageId>ami-00000000000000000</imageId><instanceState><code>0</code><name>pending</name></instanceState><instanceType>c7i.large</instanceType><amiLaunchIndex>0</amiLaunchIndex></item></instancesSet></RunInstancesResponse>"#
        )),
        other => (
            StatusCode::BAD_REQUEST,
            xml(format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidAction</Code><Message>the bench does not fake {other}</Message></Error></Errors><RequestID>bench</RequestID></Response>"#
            )),
        )
            .into_response(),
    }
}

/// S3, as a bucket that keeps nothing: a put succeeds, a listing is empty, a get finds no key
/// (start-workers writes its attempt record, record-result a task record, normalize-results
/// lists them).
async fn s3(State(sh): State<Shared>, method: Method, uri: Uri) -> Response {
    let listing = uri.query().is_some_and(|q| q.contains("list-type=2"));
    let action = match (&method, listing) {
        (&Method::PUT, _) => "PutObject",
        (&Method::GET, true) => "ListObjectsV2",
        (&Method::GET, false) => "GetObject",
        (&Method::HEAD, _) => "HeadObject",
        (&Method::DELETE, _) => "DeleteObject",
        _ => "S3",
    };
    sh.slot
        .lock()
        .expect("slot")
        .seen
        .aws_calls
        .push(action.to_string());
    let xml = |status: StatusCode, text: String| {
        (status, [(header::CONTENT_TYPE, "application/xml")], text).into_response()
    };
    match action {
        "PutObject" => ([(header::ETAG, "\"bench\"")], "").into_response(),
        "DeleteObject" => StatusCode::NO_CONTENT.into_response(),
        "ListObjectsV2" => {
            let bucket = uri.path().trim_matches('/').to_string();
            xml(
                StatusCode::OK,
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>{bucket}</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"#
                ),
            )
        }
        "HeadObject" => StatusCode::NOT_FOUND.into_response(),
        _ => xml(
            StatusCode::NOT_FOUND,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>bench</RequestId></Error>"#
                .to_string(),
        ),
    }
}
