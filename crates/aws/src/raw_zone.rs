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

/// Object metadata key carrying an image's ground-truth label (`x-amz-meta-label`).
pub const LABEL_METADATA: &str = "label";

/// What an object in the raw zone is, as its metadata says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
    pub label: Option<String>,
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
        label: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .checksum_sha256(&sha256.base64)
            .metadata("sha256", &sha256.hex);
        if let Some(label) = label {
            request = request.metadata(LABEL_METADATA, label);
        }
        request.body(ByteStream::from(body)).send().await.map_err(|err| StoreError::new("S3", "PutObject", err))?;
        Ok(())
    }

    /// What the object is, without its bytes.
    pub async fn head(&self, key: &str) -> Result<RawObjectInfo, StoreError> {
        let output = self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| StoreError::new("S3", "HeadObject", err))?;
        Ok(RawObjectInfo {
            size: output.content_length().unwrap_or_default().max(0) as u64,
            content_type: output.content_type().map(str::to_owned),
            label: output.metadata().and_then(|m| m.get(LABEL_METADATA)).cloned(),
        })
    }

    /// The datasets that have objects: the bucket's top-level prefixes (`<dataset>/`), in
    /// name order, every page of the listing.
    pub async fn datasets(&self) -> Result<Vec<String>, StoreError> {
        let mut pages = self.s3.list_objects_v2().bucket(&self.bucket).delimiter("/").into_paginator().send();
        let mut datasets = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| StoreError::new("S3", "ListObjectsV2", err))?;
            datasets.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|prefix| prefix.prefix()?.strip_suffix('/'))
                    .map(str::to_owned),
            );
        }
        Ok(datasets)
    }

    /// The whole object, for what is decoded in memory (images, capped by the caller).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let output = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| StoreError::new("S3", "GetObject", err))?;
        Ok(output.body.collect().await.map_err(|err| StoreError::new("S3", "GetObject", err))?.to_vec())
    }

    /// The object's bytes as they download, for a blocking thread (see [`crate::blocking`]).
    pub fn blocking_reader(
        &self,
        key: &str,
        handle: &tokio::runtime::Handle,
    ) -> Result<impl std::io::Read + Send + use<>, StoreError> {
        crate::blocking::object_reader(&self.s3, &self.bucket, key, handle)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        crate::delete_object(&self.s3, &self.bucket, key).await
    }

    /// A presigned PUT bound to `key`, `content_type`, the label (sent as object metadata)
    /// and the size: each is a signed header, so S3 refuses an upload that sends other
    /// values, a larger file included.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        label: Option<&str>,
        size: u64,
        expires_in: Duration,
    ) -> Result<PresignedPut, StoreError> {
        let config =
            PresigningConfig::expires_in(expires_in).map_err(|err| StoreError::new("S3", "PresignPutObject", err))?;
        let size = i64::try_from(size).map_err(|err| StoreError::new("S3", "PresignPutObject", err))?;
        let mut request =
            self.s3.put_object().bucket(&self.bucket).key(key).content_type(content_type).content_length(size);
        if let Some(label) = label {
            request = request.metadata(LABEL_METADATA, label);
        }
        let request = request.presigned(config).await.map_err(|err| StoreError::new("S3", "PresignPutObject", err))?;
        Ok(PresignedPut {
            url: request.uri().to_owned(),
            headers: request.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
        })
    }
}
