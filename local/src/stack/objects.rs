//! S3 done-checks against a local folder: `s3://bucket/key` is `<root>/bucket/key`.

use std::path::PathBuf;

use async_trait::async_trait;
use boa_aws::ports::{ObjectInfo, Objects, PortError};

#[derive(Debug, Clone)]
pub struct LocalObjects {
    pub root: PathBuf,
    /// Buckets kept somewhere else than `<root>/<bucket>` (a run's own artifact bucket).
    elsewhere: Vec<(String, PathBuf)>,
    /// Key prefixes that stay at `<root>/<bucket>/` even for a bucket kept elsewhere: what every
    /// run of the folder shares (the duration history outlives runs).
    shared: Vec<String>,
}

impl LocalObjects {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalObjects {
            root: root.into(),
            elsewhere: vec![],
            shared: vec![],
        }
    }

    /// Keys under `prefix` stay in `<root>/<bucket>/`, shared by the runs of the folder.
    pub fn sharing(mut self, prefix: &str) -> Self {
        self.shared.push(prefix.to_string());
        self
    }

    /// Keeps `bucket` in the folder `dir` instead of `<root>/<bucket>`.
    pub fn with_bucket(mut self, bucket: &str, dir: impl Into<PathBuf>) -> Self {
        self.elsewhere.push((bucket.to_string(), dir.into()));
        self
    }

    fn bucket_dir(&self, bucket: &str, key: &str) -> PathBuf {
        if self.shared.iter().any(|p| key.starts_with(p.as_str())) {
            return self.root.join(bucket);
        }
        self.elsewhere
            .iter()
            .find(|(b, _)| b == bucket)
            .map_or_else(|| self.root.join(bucket), |(_, d)| d.clone())
    }

    pub fn path(&self, bucket: &str, key: &str) -> PathBuf {
        self.bucket_dir(bucket, key).join(key)
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

/// Files below `dir`, as keys relative to `base`.
fn list_files(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<ObjectInfo>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => list_files(&e.path(), base, out),
            Ok(t) if t.is_file() => {
                let key = e
                    .path()
                    .strip_prefix(base)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let last_modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from);
                out.push(ObjectInfo { key, last_modified });
            }
            _ => {}
        }
    }
}

#[async_trait]
impl Objects for LocalObjects {
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, PortError> {
        check_key(key)?;
        Ok(self.path(bucket, key).is_file())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        check_key(key)?;
        let path = self.path(bucket, key);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PortError::Other(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), PortError> {
        check_key(key)?;
        let path = self.path(bucket, key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PortError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        // Written aside and renamed: a reader (another run sharing the folder) never sees half.
        let tmp = path.with_extension(format!("tmp-{}", rand::random::<u64>()));
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| PortError::Other(format!("cannot write {}: {e}", path.display())))
    }

    async fn create(&self, bucket: &str, key: &str, body: &[u8]) -> Result<bool, PortError> {
        use std::io::Write;
        check_key(key)?;
        let path = self.path(bucket, key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PortError::Other(format!("cannot create {}: {e}", dir.display())))?;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(body).map_err(|e| {
                    PortError::Other(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(PortError::Other(format!(
                "cannot create {}: {e}",
                path.display()
            ))),
        }
    }

    /// Prefixes are taken to end at a `/` (the only kind build-on-aws lists under).
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        check_key(prefix)?;
        let base = self.bucket_dir(bucket, prefix);
        let mut out = vec![];
        list_files(
            &self.path(bucket, prefix.trim_end_matches('/')),
            &base,
            &mut out,
        );
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
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

/// The same folders as the engine's object store (a Distributed Map's `ItemReader` and
/// `ResultWriter`), bucket by bucket.
pub struct EngineObjects(pub LocalObjects);

fn engine_err(e: PortError) -> engine::ObjectError {
    engine::ObjectError(e.to_string())
}

#[async_trait]
impl engine::ObjectStore for EngineObjects {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, engine::ObjectError> {
        self.0
            .get(bucket, key)
            .await
            .map_err(engine_err)?
            .ok_or_else(|| engine::ObjectError(format!("s3://{bucket}/{key} does not exist")))
    }

    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), engine::ObjectError> {
        self.0.put(bucket, key, &body).await.map_err(engine_err)
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<engine::ObjectInfo>, engine::ObjectError> {
        let listed = self.0.list(bucket, prefix).await.map_err(engine_err)?;
        Ok(listed
            .into_iter()
            .map(|o| engine::ObjectInfo {
                size: std::fs::metadata(self.0.path(bucket, &o.key))
                    .map(|m| m.len())
                    .unwrap_or(0),
                last_modified: o.last_modified.unwrap_or_else(chrono::Utc::now),
                key: o.key,
            })
            .collect())
    }
}
