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

#[async_trait]
impl Objects for LocalObjects {
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, PortError> {
        if key.split('/').any(|s| s == "..") {
            return Err(PortError::Other(format!(
                "key '{key}' may not contain '..'"
            )));
        }
        Ok(self.path(bucket, key).is_file())
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
