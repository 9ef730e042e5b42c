//! The worker log's [`LogSink`] on AWS: a CloudWatch Logs stream, batched.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudwatchlogs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use boa_core::retry::Backoff;
use chrono::{DateTime, Utc};

use super::common_kind;
use crate::backoff::{TokioSleeper, retry};
use crate::ports::{LogSink, PortError};

/// PutLogEvents limits: 10,000 events and 1,048,576 bytes (message bytes + 26 per event) per batch.
const CW_MAX_EVENTS: usize = 10_000;
const CW_MAX_BYTES: usize = 1_048_576;
const CW_EVENT_OVERHEAD: usize = 26;

/// CloudWatch Logs stream, batched: lines are buffered and sent by [`LogSink::flush`], which a
/// background task calls every few seconds (see [`CloudWatchLogs::spawn_flusher`]).
pub struct CloudWatchLogs {
    client: Client,
    group: String,
    stream: String,
    buf: Mutex<Vec<(i64, String)>>,
    sending: tokio::sync::Mutex<()>,
}

/// The service as error messages name it.
pub const SERVICE: &str = "CloudWatchLogs";

/// Maps a CloudWatch Logs error to a [`PortError`].
pub fn map_error<E>(operation: &str, e: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match common_kind(SERVICE, operation, &e) {
        Err(pe) => pe,
        Ok((code, message)) => PortError::call(SERVICE, operation, &code, message),
    }
}

impl CloudWatchLogs {
    /// Creates the stream (an existing one is reused).
    /// The client's SDK retries are off: it retries with `Backoff::WORKER`.
    pub async fn create(
        shared: &SdkConfig,
        group: &str,
        stream: &str,
    ) -> Result<Arc<CloudWatchLogs>, PortError> {
        let client = Client::new(&super::without_sdk_retries(shared));
        let r = retry(
            &Backoff::WORKER,
            &TokioSleeper,
            "CreateLogStream",
            || async {
                match client
                    .create_log_stream()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_already_exists_exception()) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(map_error("CreateLogStream", e)),
                }
            },
        )
        .await;
        r?;
        Ok(Arc::new(CloudWatchLogs {
            client,
            group: group.into(),
            stream: stream.into(),
            buf: Mutex::new(Vec::new()),
            sending: tokio::sync::Mutex::new(()),
        }))
    }

    /// Flushes every `every` until the process ends.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                me.flush().await;
            }
        });
    }
}

#[async_trait]
impl LogSink for CloudWatchLogs {
    fn line(&self, at: DateTime<Utc>, text: &str) {
        let text = if text.is_empty() { " " } else { text };
        self.buf
            .lock()
            .expect("log lock")
            .push((at.timestamp_millis(), text.to_string()));
    }

    async fn flush(&self) {
        let _one_at_a_time = self.sending.lock().await;
        let mut events = std::mem::take(&mut *self.buf.lock().expect("log lock"));
        events.sort_by_key(|(t, _)| *t);
        while !events.is_empty() {
            let mut bytes = 0;
            let mut n = 0;
            for (_, m) in &events {
                let b = m.len() + CW_EVENT_OVERHEAD;
                if n == CW_MAX_EVENTS || (n > 0 && bytes + b > CW_MAX_BYTES) {
                    break;
                }
                bytes += b;
                n += 1;
            }
            let batch: Vec<_> = events.drain(..n).collect();
            let r = retry(&Backoff::WORKER, &TokioSleeper, "PutLogEvents", || async {
                let mut req = self
                    .client
                    .put_log_events()
                    .log_group_name(&self.group)
                    .log_stream_name(&self.stream);
                for (t, m) in &batch {
                    req = req.log_events(
                        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                            .timestamp(*t)
                            .message(m)
                            .build()
                            .expect("timestamp and message are set"),
                    );
                }
                req.send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_error("PutLogEvents", e))
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, lines = batch.len(), "lost worker log lines");
            }
        }
    }
}
