//! The object-store port a Distributed Map reads its items from (`ItemReader`) and writes its
//! results to (`ResultWriter`), and its folder implementation. The engine stays SDK-free: an
//! embedder that wants real S3 implements [`ObjectStore`] with its own client.

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};

/// An object-store failure (missing object, refused key, I/O error), as a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ObjectError(pub String);

/// One object of a listing, like an entry of S3 `ListObjectsV2`'s `Contents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// Get, put and list objects by bucket and key (the three S3 calls a Distributed Map needs).
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, ObjectError>;
    async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), ObjectError>;
    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, ObjectError>;
}

/// Objects in a local folder: key `K` is the file `<root>/K`. **The bucket name is ignored**
/// (one folder stands for every bucket). Keys containing a `..` segment or starting with `/`
/// are refused, so nothing outside `root` is read or written.
#[derive(Debug, Clone)]
pub struct FolderObjects {
    root: PathBuf,
}

impl FolderObjects {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `key`, or an error for a key that could escape the root.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, ObjectError> {
        let rel = Path::new(key);
        let escapes = key.is_empty()
            || key.starts_with('/')
            || key.split(['/', '\\']).any(|s| s == "..")
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            return Err(ObjectError(format!(
                "object key {key:?} is refused (empty, absolute or containing '..')"
            )));
        }
        Ok(self.root.join(rel))
    }
}

fn io_err(what: &str, key: &str, e: std::io::Error) -> ObjectError {
    ObjectError(format!("{what} {key:?}: {e}"))
}

#[async_trait::async_trait]
impl ObjectStore for FolderObjects {
    async fn get(&self, _bucket: &str, key: &str) -> Result<Vec<u8>, ObjectError> {
        let path = self.path_of(key)?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| io_err("cannot read object", key, e))
    }

    async fn put(&self, _bucket: &str, key: &str, body: Vec<u8>) -> Result<(), ObjectError> {
        // Done in one poll, not on the blocking pool: a put whose execution is stopped meanwhile
        // is either done or not started, never finished on a pool thread after the execution
        // ended (which recreated a folder its caller had already removed). The objects are a
        // run's small JSON files.
        let path = self.path_of(key)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| io_err("cannot create the folder of object", key, e))?;
        }
        std::fs::write(&path, body).map_err(|e| io_err("cannot write object", key, e))
    }

    async fn list(&self, _bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, ObjectError> {
        if prefix.starts_with('/') || prefix.split(['/', '\\']).any(|s| s == "..") {
            return Err(ObjectError(format!("prefix {prefix:?} is refused")));
        }
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, "", &prefix, &mut out)?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| ObjectError(format!("listing failed: {e}")))?
    }
}

fn walk(dir: &Path, rel: &str, prefix: &str, out: &mut Vec<ObjectInfo>) -> Result<(), ObjectError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.is_empty() => return Ok(()),
        Err(e) => return Err(io_err("cannot list", rel, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", rel, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let key = format!("{rel}{name}");
        let meta = entry
            .metadata()
            .map_err(|e| io_err("cannot stat", &key, e))?;
        if meta.is_dir() {
            let sub = format!("{key}/");
            // Only descend where keys can still start with the prefix.
            if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                walk(&entry.path(), &sub, prefix, out)?;
            }
        } else if key.starts_with(prefix) {
            out.push(ObjectInfo {
                key,
                size: meta.len(),
                last_modified: meta
                    .modified()
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_default(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        let f = FolderObjects::new("/tmp/x");
        assert!(f.path_of("a/b.json").is_ok());
        assert!(f.path_of("../a").is_err());
        assert!(f.path_of("a/../../b").is_err());
        assert!(f.path_of("/etc/passwd").is_err());
        assert!(f.path_of("").is_err());
        assert_eq!(
            f.path_of("p/q.json").unwrap(),
            PathBuf::from("/tmp/x/p/q.json")
        );
    }
}
