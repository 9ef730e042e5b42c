//! [`Objects`] over `aws_sdk_s3::Client`.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::common_kind;
use crate::ports::{ObjectInfo, Objects, PortError};

/// The service as error messages name it.
pub const SERVICE: &str = "S3";

/// Maps any S3 error to a [`PortError`]: the one place S3 error codes are read.
pub fn map_error<E>(operation: &str, e: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match common_kind(SERVICE, operation, &e) {
        Err(pe) => pe,
        Ok((code, message))
            if matches!(
                code.as_str(),
                "NotFound" | "NoSuchKey" | "NoSuchBucket" | "HTTP 404"
            ) =>
        {
            PortError::NotFound(format!("{SERVICE} {operation} {code}: {message}"))
        }
        Ok((code, message)) => PortError::call(SERVICE, operation, &code, message),
    }
}

/// S3 as [`Objects`]. Calls on a bucket whose owner it was told ([`S3Objects::with_owner`]: the
/// stack's artifact bucket) carry S3's bucket owner condition, so a bucket of the same name in
/// another account is refused, never read or written; `done_when` buckets of other accounts are
/// left as they are.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    owners: std::collections::BTreeMap<String, String>,
}

impl S3Objects {
    /// With the SDK's standard retry (see the module's table).
    pub fn new(shared: &aws_config::SdkConfig) -> S3Objects {
        S3Objects::from_client(Client::new(shared))
    }

    /// Over a client built elsewhere (tests).
    pub fn from_client(client: Client) -> S3Objects {
        S3Objects {
            client,
            owners: Default::default(),
        }
    }

    /// Every call on `bucket` names `account` as its expected owner.
    pub fn with_owner(mut self, bucket: &str, account: &str) -> S3Objects {
        if !bucket.is_empty() && !account.is_empty() {
            self.owners.insert(bucket.to_string(), account.to_string());
        }
        self
    }

    /// The client a Lambda of the stack uses: calls on the stack's artifact bucket carry the
    /// stack's account as the expected bucket owner.
    pub fn for_stack(
        shared: &aws_config::SdkConfig,
        cfg: &boa_core::stack::StackConfig,
    ) -> S3Objects {
        let bucket = cfg.records("").map(|(b, _)| b).unwrap_or_default();
        S3Objects::new(shared).with_owner(&bucket, &cfg.account)
    }

    fn owner(&self, bucket: &str) -> Option<String> {
        self.owners.get(bucket).cloned()
    }
}

#[async_trait]
impl Objects for S3Objects {
    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, PortError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner(bucket))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(false),
            Err(e) => match map_error("HeadObject", e) {
                // A HEAD has no body: some servers answer a missing key with a bare 404.
                PortError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let got = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner(bucket))
            .send()
            .await;
        match got {
            Ok(o) => {
                let body = o.body.collect().await.map_err(|e| {
                    PortError::Other(format!("cannot read s3://{bucket}/{key}: {e}"))
                })?;
                Ok(Some(body.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => Ok(None),
            Err(e) => match map_error("GetObject", e) {
                PortError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn put(&self, bucket: &str, key: &str, body: &[u8]) -> Result<(), PortError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner(bucket))
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(|e| map_error("PutObject", e))?;
        Ok(())
    }

    async fn create(&self, bucket: &str, key: &str, body: &[u8]) -> Result<bool, PortError> {
        let sent = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner(bucket))
            .if_none_match("*")
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => {
                let code = e
                    .as_service_error()
                    .and_then(ProvideErrorMetadata::code)
                    .unwrap_or_default()
                    .to_string();
                // 412: the key exists; 409: a concurrent conditional write is in progress.
                if code == "PreconditionFailed" || code == "ConditionalRequestConflict" {
                    Ok(false)
                } else {
                    Err(map_error("PutObject", e))
                }
            }
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_expected_bucket_owner(self.owner(bucket))
            .into_paginator()
            .send();
        let mut out = vec![];
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_error("ListObjectsV2", e))?;
            for o in page.contents() {
                out.push(ObjectInfo {
                    key: o.key().unwrap_or_default().to_string(),
                    last_modified: o.last_modified().and_then(super::to_chrono),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn presign_get(
        &self,
        bucket: &str,
        key: &str,
        expires_s: u64,
    ) -> Result<String, PortError> {
        let cfg = PresigningConfig::expires_in(Duration::from_secs(expires_s)).map_err(|e| {
            PortError::Other(format!(
                "cannot presign s3://{bucket}/{key} for {expires_s}s: {e} (at most 7 days)"
            ))
        })?;
        let req = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner(bucket))
            .presigned(cfg)
            .await
            .map_err(|e| map_error("GetObject", e))?;
        Ok(req.uri().to_string())
    }
}
