//! S3 objects as `std::io` streams, for CPU-bound work on a blocking thread (the ETL): an
//! object is read as it downloads and written as a multipart upload, so memory holds one
//! buffer, not the object. Each call blocks on the runtime handle it was given, so these
//! belong inside `tokio::task::spawn_blocking`, never on a runtime thread.

use std::io::{Read, Write};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::runtime::Handle;
use tokio_util::io::SyncIoBridge;

use crate::StoreError;

/// The object's bytes as they download.
pub(crate) fn object_reader(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    handle: &Handle,
) -> Result<impl Read + Send + use<>, StoreError> {
    let output = handle
        .block_on(s3.get_object().bucket(bucket).key(key).send())
        .map_err(|err| StoreError::new("S3", "GetObject", err))?;
    Ok(SyncIoBridge::new_with_handle(output.body.into_async_read(), handle.clone()))
}

/// Bytes per uploaded part: S3 wants at least 5 MiB for every part but the last.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Writes an object as a multipart upload, one part per [`PART_BYTES`]. Nothing is visible
/// under the key until [`MultipartWriter::finish`]; [`MultipartWriter::abort`] discards the
/// parts (and the bucket's lifecycle rule removes those of a writer that died).
pub struct MultipartWriter {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    content_type: String,
    handle: Handle,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    written: u64,
}

impl MultipartWriter {
    pub(crate) fn new(s3: aws_sdk_s3::Client, bucket: &str, key: &str, content_type: &str, handle: Handle) -> Self {
        Self {
            s3,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            handle,
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn upload_part(&mut self) -> Result<(), StoreError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .handle
                    .block_on(
                        self.s3
                            .create_multipart_upload()
                            .bucket(&self.bucket)
                            .key(&self.key)
                            .content_type(&self.content_type)
                            .send(),
                    )
                    .map_err(|err| StoreError::new("S3", "CreateMultipartUpload", err))?;
                let id = created.upload_id().unwrap_or_default().to_owned();
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).expect("at most 10,000 parts");
        let body = ByteStream::from(std::mem::take(&mut self.buffer));
        let uploaded = self
            .handle
            .block_on(
                self.s3
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(body)
                    .send(),
            )
            .map_err(|err| StoreError::new("S3", "UploadPart", err))?;
        self.parts.push(CompletedPart::builder().part_number(number).set_e_tag(uploaded.e_tag).build());
        Ok(())
    }

    /// Makes the object appear under its key: one `PutObject` when it fit in one part,
    /// otherwise the last part and `CompleteMultipartUpload`. Returns its size.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = ByteStream::from(std::mem::take(&mut self.buffer));
            let request = self.s3.put_object().bucket(&self.bucket).key(&self.key).content_type(&self.content_type);
            self.handle.block_on(request.body(body).send()).map_err(|err| StoreError::new("S3", "PutObject", err))?;
            return Ok(self.written);
        };
        if !self.buffer.is_empty() {
            self.upload_part()?;
        }
        let parts = CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build();
        let request = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(parts);
        self.handle.block_on(request.send()).map_err(|err| StoreError::new("S3", "CompleteMultipartUpload", err))?;
        Ok(self.written)
    }

    /// Discards the parts uploaded so far; the key keeps whatever it held before.
    pub fn abort(self) -> Result<(), StoreError> {
        let Some(upload_id) = &self.upload_id else { return Ok(()) };
        let request = self.s3.abort_multipart_upload().bucket(&self.bucket).key(&self.key).upload_id(upload_id);
        self.handle.block_on(request.send()).map_err(|err| StoreError::new("S3", "AbortMultipartUpload", err))?;
        Ok(())
    }
}

impl MultipartWriter {
    /// Discards the parts and deletes what the key held: the key ends up empty.
    pub fn remove(self) -> Result<(), StoreError> {
        let (s3, bucket, key, handle) = (self.s3.clone(), self.bucket.clone(), self.key.clone(), self.handle.clone());
        self.abort()?;
        handle.block_on(crate::delete_object(&s3, &bucket, &key))
    }
}

impl Write for MultipartWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buffer.len() >= PART_BYTES {
            self.upload_part().map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
