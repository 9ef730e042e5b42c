//! Self-tagging: the worker keeps `Name`, `build-on-aws:work` and `build-on-aws:lease` current on
//! its own instance, so the health check can count busy/idle workers and reap lost ones.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use boa_aws::ports::{Fleet, PortError};

/// Puts tags on this worker (merging with the ones it already has).
#[async_trait]
pub trait Tagger: Send + Sync {
    async fn tag(&self, tags: &BTreeMap<String, String>) -> Result<(), PortError>;
}

/// Tags nothing (local mode without a tags file).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTags;

#[async_trait]
impl Tagger for NoTags {
    async fn tag(&self, _tags: &BTreeMap<String, String>) -> Result<(), PortError> {
        Ok(())
    }
}

/// Local mode: keeps the worker's current tags in a JSON object file (`BOA_TAGS_FILE`), rewritten
/// atomically (temp file + rename) on every change, for the local engine to read.
#[derive(Debug)]
pub struct FileTagger {
    path: PathBuf,
    current: Mutex<BTreeMap<String, String>>,
}

impl FileTagger {
    pub fn new(path: impl Into<PathBuf>) -> FileTagger {
        FileTagger {
            path: path.into(),
            current: Mutex::new(BTreeMap::new()),
        }
    }
}

#[async_trait]
impl Tagger for FileTagger {
    async fn tag(&self, tags: &BTreeMap<String, String>) -> Result<(), PortError> {
        let text = {
            let mut cur = self.current.lock().expect("tag lock");
            cur.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            serde_json::to_string_pretty(&*cur).expect("strings serialise")
        };
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                PortError::Other(format!(
                    "cannot write tags file {}: {e} (check BOA_TAGS_FILE)",
                    self.path.display()
                ))
            })
    }
}

/// Tags through any [`Fleet`] adapter: on EC2, `boa_aws::adapters::Ec2Fleet` (CreateTags on its
/// own instance, which the instance profile allows).
pub struct FleetTagger<F> {
    pub fleet: F,
    pub instance_id: String,
}

#[async_trait]
impl<F: Fleet> Tagger for FleetTagger<F> {
    async fn tag(&self, tags: &BTreeMap<String, String>) -> Result<(), PortError> {
        self.fleet.tag(&self.instance_id, tags).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_tagger_merges_and_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tags.json");
        let t = FileTagger::new(&path);
        t.tag(&[("Name".to_string(), "wa-1-x".to_string())].into())
            .await
            .unwrap();
        t.tag(&[("build-on-aws:work".to_string(), "busy".to_string())].into())
            .await
            .unwrap();
        t.tag(&[("Name".to_string(), "ww-1-x".to_string())].into())
            .await
            .unwrap();
        let got: BTreeMap<String, String> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(got["Name"], "ww-1-x");
        assert_eq!(got["build-on-aws:work"], "busy");
        assert_eq!(got.len(), 2);
    }

    #[tokio::test]
    async fn file_tagger_names_the_bad_path() {
        let t = FileTagger::new("/nonexistent-dir-boa/tags.json");
        let e = t.tag(&BTreeMap::new()).await.unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-dir-boa/tags.json"),
            "{e}"
        );
    }
}
