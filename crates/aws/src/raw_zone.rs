use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use sluice_core::Sha256Digest;

use crate::StoreError;

/// The raw zone of the data lake: objects exactly as clients sent them.
#[derive(Debug, Clone)]
pub struct RawZone {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

/// A URL the client PUTs the object to, with the headers it must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

impl RawZone {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { s3, bucket: bucket.into() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores `body` unchanged. The SHA-256 goes with the request so S3 verifies what it
    /// stored, and into the metadata so readers can check it without the catalog.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        sha256: &Sha256Digest,
    ) -> Result<(), StoreError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_sha256(&sha256.base64)
            .metadata("sha256", &sha256.hex)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| StoreError::new("S3", "PutObject", err))?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| StoreError::new("S3", "DeleteObject", err))?;
        Ok(())
    }

    /// A presigned PUT bound to `key` and `content_type`; S3 refuses any other content type.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        expires_in: Duration,
    ) -> Result<PresignedPut, StoreError> {
        let config =
            PresigningConfig::expires_in(expires_in).map_err(|err| StoreError::new("S3", "PresignPutObject", err))?;
        let request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .presigned(config)
            .await
            .map_err(|err| StoreError::new("S3", "PresignPutObject", err))?;
        Ok(PresignedPut {
            url: request.uri().to_owned(),
            headers: request.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
        })
    }
}
