use aws_sdk_s3::primitives::ByteStream;

use crate::StoreError;

/// The curated zone: Parquet data, rejected rows and profiles the ETL derives from raw objects.
#[derive(Debug, Clone)]
pub struct CuratedZone {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl CuratedZone {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { s3, bucket: bucket.into() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| StoreError::new("S3", "PutObject", err))?;
        Ok(())
    }

    /// The object's bytes, or `None` if there is no such key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.fetch(key, None).await
    }

    /// At most the first `bytes` bytes of the object (a ranged GET), or `None` if there is
    /// no such key: for reading the start of what may be large.
    pub async fn get_start(&self, key: &str, bytes: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.fetch(key, Some(format!("bytes=0-{}", bytes.saturating_sub(1)))).await
    }

    async fn fetch(&self, key: &str, range: Option<String>) -> Result<Option<Vec<u8>>, StoreError> {
        match self.s3.get_object().bucket(&self.bucket).key(key).set_range(range).send().await {
            Ok(output) => {
                let body = output.body.collect().await.map_err(|err| StoreError::new("S3", "GetObject", err))?;
                Ok(Some(body.to_vec()))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => Err(StoreError::new("S3", "GetObject", err)),
        }
    }

    /// A writer that uploads `key` in parts from a blocking thread (see [`crate::blocking`]).
    pub fn multipart_writer(
        &self,
        key: &str,
        content_type: &str,
        handle: tokio::runtime::Handle,
    ) -> crate::blocking::MultipartWriter {
        crate::blocking::MultipartWriter::new(self.s3.clone(), &self.bucket, key, content_type, handle)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        crate::delete_object(&self.s3, &self.bucket, key).await
    }
}
