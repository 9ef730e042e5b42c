//! The worker log: every line of every script (stdout and stderr, merged, timestamped) plus the
//! worker's own notes about each task, written to a [`LogSink`] — a local file in local mode
//! (`<BOA_LOG_DIR>/w_<instance id>.log`), CloudWatch Logs stream `w_<instance id>` on AWS
//! (`boa_aws::adapters::CloudWatchLogs`).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
pub use boa_aws::ports::LogSink;
use chrono::{DateTime, SecondsFormat, Utc};

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
    /// Opens (creating the folder and file) `<dir>/<stream>.log` for appending. The file is
    /// readable by its owner only (0600): build output can carry what other users of the machine
    /// should not read.
    pub fn open(dir: &Path, stream: &str) -> std::io::Result<FileLog> {
        use std::os::unix::fs::OpenOptionsExt;
        // A stream `<Step>/w_<id>` is the file `<dir>/<Step>/w_<id>.log`.
        let path = dir.join(format!("{stream}.log"));
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
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
