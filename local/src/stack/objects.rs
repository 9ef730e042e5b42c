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

/// Files below `dir` (whose key is `dir_key`: empty, or ending in `/`) whose key starts with
/// `prefix`. Only folders that can hold such keys are read, and entries are matched by name
/// before anything else is done with them: the duration history lists one key among a step's
/// hundreds on every Prepare.
fn list_files(dir: &std::path::Path, dir_key: &str, prefix: &str, out: &mut Vec<ObjectInfo>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    // What an entry's name must start with (or, for a folder, may be a beginning of).
    let rest = prefix.get(dir_key.len()..).unwrap_or("");
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let file_may_match = name.starts_with(rest);
        let folder_may_match = file_may_match
            || rest
                .strip_prefix(name)
                .is_some_and(|after| after.starts_with('/'));
        if !folder_may_match {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                list_files(&e.path(), &format!("{dir_key}{name}/"), prefix, out);
            }
            Ok(t) if t.is_file() && file_may_match => {
                let last_modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .map(chrono::DateTime::<chrono::Utc>::from);
                out.push(ObjectInfo {
                    key: format!("{dir_key}{name}"),
                    last_modified,
                });
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

    /// As S3 lists: every key that starts with `prefix`, whether the prefix ends at a `/`, in
    /// the middle of a name, or is a whole key (the duration history lists its own key).
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        check_key(prefix)?;
        let base = self.bucket_dir(bucket, prefix);
        // The folder the prefix ends in, with its `/`.
        let folder = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        let mut out = vec![];
        list_files(&base.join(folder), folder, prefix, &mut out);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_as_s3_does_by_folder_by_partial_name_and_by_whole_key() {
        let dir = tempfile::tempdir().unwrap();
        let o = LocalObjects::new(dir.path());
        for k in [
            "durations/Build/version=1.json",
            "durations/Build/version=10.json",
            "durations/Test/version=1.json",
            "runs/x/records/a.json",
        ] {
            o.put("b", k, b"{}").await.unwrap();
        }
        let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(o.list("b", "durations/Build/").await.unwrap()),
            [
                "durations/Build/version=1.json",
                "durations/Build/version=10.json"
            ]
        );
        assert_eq!(
            keys(o.list("b", "durations/Build/version=1.json").await.unwrap()),
            ["durations/Build/version=1.json"],
            "a whole key lists itself (and not its longer neighbour)"
        );
        assert_eq!(
            keys(o.list("b", "durations/B").await.unwrap()),
            [
                "durations/Build/version=1.json",
                "durations/Build/version=10.json"
            ]
        );
        assert_eq!(keys(o.list("b", "durations/").await.unwrap()).len(), 3);
        assert!(o.list("b", "durations/Nope/").await.unwrap().is_empty());
        assert!(o.list("other", "").await.unwrap().is_empty());
    }

    /// What lookahead relies on: a run's record-result writes a task's elapsed time, and the
    /// next run of the folder (its own artifact folder, the same shared history) reads it back
    /// as the expected duration instead of the step's default.
    #[tokio::test]
    async fn the_next_run_of_a_folder_expects_what_the_last_one_measured() {
        use boa_aws::durations::{expected_duration, record_duration};
        let dir = tempfile::tempdir().unwrap();
        let p = boa_core::Pipeline::parse("name = \"t\"\n[[axis]]\nname = \"version\"\npattern = \"^[0-9.]+$\"\n[[step]]\nname = \"Build\"\nscript = \"b.sh\"\nexpected_duration = \"40m\"\n").unwrap();
        let step = p.step("Build").unwrap();
        let mut cfg =
            boa_core::stack::StackConfig::new("s", "us-east-1", "123456789012", "s3://art");
        cfg.time_scale = 100.0;
        let item: boa_core::input::Item = [("version".to_string(), "1.0".to_string())].into();
        let run = |name: &str| {
            LocalObjects::new(dir.path())
                .with_bucket("art", dir.path().join("runs").join(name))
                .sharing("durations/")
        };
        let first = run("first");
        assert_eq!(
            expected_duration(&first, &cfg, step, &item).await,
            std::time::Duration::from_secs(40 * 60),
            "no history yet: the step's expected_duration"
        );
        // 0.25 s of wall time at ×100 is 25 s of pipeline time.
        record_duration(&first, &cfg, "Build", &item, 0.25)
            .await
            .unwrap();
        let second = run("second");
        let expected = expected_duration(&second, &cfg, step, &item).await;
        assert!(
            (expected.as_secs_f64() - 25.0).abs() < 0.01,
            "the second run expects the first one's 25 s, not the default: {expected:?}"
        );
    }
}
