//! EC2 instance metadata (IMDSv2): the instance id, and the spot interruption notice.

use std::time::Duration;

/// The default IMDS base URL; `BOA_IMDS_ENDPOINT` overrides it (tests).
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error(
        "instance metadata at {url} failed: {why} (set BOA_INSTANCE_ID when not running on EC2)"
    )]
    Failed { url: String, why: String },
}

/// An IMDSv2 client: a session token (PUT) then GETs with it.
#[derive(Debug, Clone)]
pub struct Imds {
    base: String,
    http: reqwest::Client,
}

impl Imds {
    pub fn new(base: &str) -> Imds {
        Imds {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .no_proxy()
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn fail(&self, path: &str, why: impl std::fmt::Display) -> ImdsError {
        ImdsError::Failed {
            url: format!("{}{path}", self.base),
            why: why.to_string(),
        }
    }

    async fn token(&self) -> Result<String, ImdsError> {
        let path = "/latest/api/token";
        let r = self
            .http
            .put(format!("{}{path}", self.base))
            .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
            .send()
            .await
            .map_err(|e| self.fail(path, e))?;
        if !r.status().is_success() {
            return Err(self.fail(path, format!("HTTP {}", r.status())));
        }
        r.text().await.map_err(|e| self.fail(path, e))
    }

    /// GET a metadata path; `None` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<String>, ImdsError> {
        let token = self.token().await?;
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("X-aws-ec2-metadata-token", token)
            .send()
            .await
            .map_err(|e| self.fail(path, e))?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(self.fail(path, format!("HTTP {}", r.status())));
        }
        r.text().await.map(Some).map_err(|e| self.fail(path, e))
    }

    /// This instance's id, retried a few times (IMDS can be slow right after boot).
    pub async fn instance_id(&self) -> Result<String, ImdsError> {
        let path = "/latest/meta-data/instance-id";
        let mut last = None;
        for n in 0..5u32 {
            match self.get(path).await {
                Ok(Some(id)) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
                Ok(_) => last = Some(self.fail(path, "empty or missing")),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(n))).await;
        }
        Err(last.expect("at least one attempt"))
    }

    /// The spot interruption notice (`{"action": "terminate", "time": ...}`) if one was issued.
    pub async fn spot_action(&self) -> Result<Option<String>, ImdsError> {
        self.get("/latest/meta-data/spot/instance-action").await
    }
}
