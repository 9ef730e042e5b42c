//! The worker log: every line of every script (stdout and stderr, merged, timestamped) plus the
//! worker's own notes about each task, written to a [`LogSink`] — a local file in local mode
//! (`<BOA_LOG_DIR>/w_<instance id>.log`), CloudWatch Logs stream `w_<instance id>` on AWS.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use common::ports::PortError;

use crate::retry::{RetryPolicy, retry};

/// Where the worker log goes.
#[async_trait]
pub trait LogSink: Send + Sync {
    /// Records one line (without its newline). Never blocks on the network.
    fn line(&self, at: DateTime<Utc>, text: &str);
    /// Pushes every buffered line out.
    async fn flush(&self);
}

/// Discards everything (tests, or no log configured).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLog;

#[async_trait]
impl LogSink for NoLog {
    fn line(&self, _at: DateTime<Utc>, _text: &str) {}
    async fn flush(&self) {}
}

/// Appends `<RFC 3339 time> <line>` to a local file.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl FileLog {
    /// Opens (creating the folder and file) `<dir>/<stream>.log` for appending.
    pub fn open(dir: &Path, stream: &str) -> std::io::Result<FileLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{stream}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(FileLog {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl LogSink for FileLog {
    fn line(&self, at: DateTime<Utc>, text: &str) {
        let mut f = self.file.lock().expect("log lock");
        if let Err(e) = writeln!(
            f,
            "{} {text}",
            at.to_rfc3339_opts(SecondsFormat::Millis, true)
        ) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the worker log");
        }
    }
    async fn flush(&self) {
        let _ = self.file.lock().expect("log lock").flush();
    }
}

/// PutLogEvents limits: 10,000 events and 1,048,576 bytes (message bytes + 26 per event) per batch.
const CW_MAX_EVENTS: usize = 10_000;
const CW_MAX_BYTES: usize = 1_048_576;
const CW_EVENT_OVERHEAD: usize = 26;

/// CloudWatch Logs stream, batched: lines are buffered and sent by [`LogSink::flush`], which a
/// background task calls every few seconds (see [`CloudWatchLog::spawn_flusher`]).
pub struct CloudWatchLog {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    stream: String,
    buf: Mutex<Vec<(i64, String)>>,
    sending: tokio::sync::Mutex<()>,
}

fn cw_error<E: aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata>(op: &str, e: &E) -> PortError {
    let code = e.code().unwrap_or_default();
    let text = format!("{op}: {code} {}", e.message().unwrap_or_default());
    match code {
        "ThrottlingException" => PortError::Throttled(text),
        "" | "ServiceUnavailableException" => PortError::Transient(text),
        _ => PortError::Other(text),
    }
}

impl CloudWatchLog {
    /// Creates the stream (an existing one is reused).
    pub async fn create(
        client: aws_sdk_cloudwatchlogs::Client,
        group: &str,
        stream: &str,
    ) -> Result<Arc<CloudWatchLog>, PortError> {
        let r = retry(&RetryPolicy::default(), "CreateLogStream", || async {
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
                Err(e) => Err(cw_error("CreateLogStream", &e)),
            }
        })
        .await;
        r?;
        Ok(Arc::new(CloudWatchLog {
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
impl LogSink for CloudWatchLog {
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
            let r = retry(&RetryPolicy::default(), "PutLogEvents", || async {
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
                    .map_err(|e| cw_error("PutLogEvents", &e))
            })
            .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, lines = batch.len(), "lost worker log lines");
            }
        }
    }
}

/// The last lines of a script's output, bounded in lines and bytes.
#[derive(Debug, Clone)]
pub struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

/// Lines kept in a [`Tail`] by default.
pub const TAIL_LINES: usize = 64;
/// Bytes kept in a [`Tail`] by default.
pub const TAIL_BYTES: usize = 16 * 1024;

impl Default for Tail {
    fn default() -> Self {
        Tail::new(TAIL_LINES, TAIL_BYTES)
    }
}

impl Tail {
    pub fn new(max_lines: usize, max_bytes: usize) -> Tail {
        Tail {
            lines: VecDeque::new(),
            bytes: 0,
            max_lines,
            max_bytes,
        }
    }

    pub fn push(&mut self, line: &str) {
        // Each kept line costs its bytes plus a newline.
        let line = truncate_front(line, self.max_bytes.saturating_sub(1));
        self.bytes += line.len() + 1;
        self.lines.push_back(line.to_string());
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            match self.lines.pop_front() {
                Some(l) => self.bytes -= l.len() + 1,
                None => break,
            }
        }
    }

    /// The kept lines joined with newlines.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
pub fn truncate_front(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_within_both_bounds() {
        let mut t = Tail::new(3, 1000);
        for i in 0..10 {
            t.push(&format!("line {i}"));
        }
        assert_eq!(t.text(), "line 7\nline 8\nline 9");

        let mut t = Tail::new(100, 20);
        for i in 0..10 {
            t.push(&format!("line {i}"));
        }
        assert!(t.text().len() <= 20, "{}", t.text());
        assert!(t.text().ends_with("line 9"));

        let mut t = Tail::new(100, 8);
        t.push("ééééééééé");
        assert!(t.text().len() <= 8 && t.text().ends_with('é'));
    }

    #[test]
    fn file_log_appends_timestamped_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLog::open(&dir.path().join("logs"), "w_i-1").unwrap();
        log.line(Utc::now(), "hello");
        log.line(Utc::now(), "world");
        let text = std::fs::read_to_string(dir.path().join("logs/w_i-1.log")).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let (ts, rest) = lines[1].split_once(' ').unwrap();
        assert!(DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(rest, "world");
    }
}
