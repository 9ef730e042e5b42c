//! S3 done-checks against a local folder: `s3://bucket/key` is `<root>/bucket/key`.

use std::path::PathBuf;

use async_trait::async_trait;
use common::ports::{Objects, PortError};

pub struct LocalObjects {
    pub root: PathBuf,
}

impl LocalObjects {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalObjects { root: root.into() }
    }

    pub fn path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

fn check_key(key: &str) -> Result<(), PortError> {
    if key.split('/').any(|s| s == "..") {
        return Err(PortError::Other(format!(
            "key '{key}' may not contain '..'"
        )));
    }
    Ok(())
}

/// Files below `dir`, at any depth.
fn count_files(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

#[async_trait]
impl Objects for LocalObjects {
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, PortError> {
        check_key(key)?;
        Ok(self.path(bucket, key).is_file())
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), PortError> {
        check_key(key)?;
        let path = self.path(bucket, key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PortError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        std::fs::write(&path, body)
            .map_err(|e| PortError::Other(format!("cannot write {}: {e}", path.display())))
    }

    /// Prefixes are taken to end at a `/` (the only kind build-on-aws counts under).
    async fn count(&self, bucket: &str, prefix: &str) -> Result<u64, PortError> {
        check_key(prefix)?;
        Ok(count_files(
            &self.path(bucket, prefix.trim_end_matches('/')),
        ))
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        _expires_s: u64,
    ) -> Result<String, PortError> {
        Ok(format!("file://{}", self.path(bucket, key).display()))
    }
}
