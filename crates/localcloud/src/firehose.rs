//! Firehose delivery streams to S3, as Firehose runs them. The emulator accepts
//! `PutRecordBatch` but writes every call straight to S3 as its own object, without the
//! template's prefix expressions (`!{timestamp:yyyy-MM-dd}`) or compression. So the local
//! cloud creates each stream on the emulator with a staging prefix, and this deliverer does
//! the rest: every buffer interval (on the local clock) it gathers the staged records into
//! one object under the template's prefix, named as Firehose names its objects and
//! gzip-compressed when the template says so, then removes what it staged.

use std::io::Write;
use std::sync::Arc;

use sluice_aws::AwsClients;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::template::{DeliveryStream, Stack};

/// Where the emulator's copy of a stream writes, in the stream's bucket.
pub fn staging_prefix(stream: &DeliveryStream) -> String {
    format!("local-firehose-staging/{}/", stream.name)
}

/// Delivers the stack's streams until dropped.
pub struct FirehoseDelivery {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FirehoseDelivery {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FirehoseDelivery {
    pub fn start(clients: &AwsClients, stack: &Stack, clock: &Clock) -> Self {
        let tasks = stack
            .delivery_streams
            .iter()
            .map(|stream| {
                let (s3, stream) = (clients.s3.clone(), Arc::new(stream.clone()));
                let interval = clock.real(std::time::Duration::from_secs(stream.buffer_seconds));
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                    loop {
                        ticks.tick().await;
                        if let Err(err) = deliver(&s3, &stream, OffsetDateTime::now_utc()).await {
                            tracing::warn!(stream = %stream.name, error = %err, "capture not delivered this interval");
                        }
                    }
                })
            })
            .collect();
        Self { tasks }
    }
}

/// Moves everything staged for `stream` into one delivered object; `None` when nothing
/// was staged. Staged objects are removed only after the delivered object is written.
pub async fn deliver(
    s3: &aws_sdk_s3::Client,
    stream: &DeliveryStream,
    now: OffsetDateTime,
) -> Result<Option<String>, String> {
    let staging = staging_prefix(stream);
    let pages = s3
        .list_objects_v2()
        .bucket(&stream.bucket)
        .prefix(&staging)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(sluice_aws::error_chain)?;
    let keys: Vec<String> =
        pages.iter().flat_map(|p| p.contents()).filter_map(|o| o.key().map(str::to_owned)).collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let mut records = Vec::new();
    for key in &keys {
        let object = s3.get_object().bucket(&stream.bucket).key(key).send().await.map_err(sluice_aws::error_chain)?;
        records.extend_from_slice(&object.body.collect().await.map_err(|e| e.to_string())?.into_bytes());
    }
    let body = if stream.gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&records).and_then(|()| encoder.finish()).map_err(|e| e.to_string())?
    } else {
        records
    };
    let key = object_key(stream, now, &uuid::Uuid::now_v7().to_string());
    s3.put_object().bucket(&stream.bucket).key(&key).body(body.into()).send().await.map_err(sluice_aws::error_chain)?;
    for staged in &keys {
        s3.delete_object().bucket(&stream.bucket).key(staged).send().await.map_err(sluice_aws::error_chain)?;
    }
    Ok(Some(key))
}

/// `<prefix, expressions evaluated><stream>-1-YYYY-MM-DD-HH-MM-SS-<id>[.gz]`, as Firehose
/// names the objects it delivers.
pub fn object_key(stream: &DeliveryStream, at: OffsetDateTime, id: &str) -> String {
    format!(
        "{}{}-1-{}-{id}{}",
        expand(&stream.prefix, at, id),
        stream.name,
        java_format(at, "yyyy-MM-dd-HH-mm-ss"),
        if stream.gzip { ".gz" } else { "" }
    )
}

/// Evaluates Firehose's `!{timestamp:<pattern>}` and `!{firehose:random-string}`.
fn expand(prefix: &str, at: OffsetDateTime, random: &str) -> String {
    let mut out = String::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("!{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}').map(|e| e + start) else { break };
        let expression = &rest[start + 2..end];
        match expression.split_once(':') {
            Some(("timestamp", pattern)) => out.push_str(&java_format(at, pattern)),
            Some(("firehose", "random-string")) => out.push_str(random),
            _ => out.push_str(&rest[start..=end]),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The Java `DateTimeFormatter` letters Firehose prefixes use, in UTC.
fn java_format(at: OffsetDateTime, pattern: &str) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    pattern
        .replace("yyyy", &format!("{:04}", at.year()))
        .replace("MM", &format!("{:02}", u8::from(at.month())))
        .replace("dd", &format!("{:02}", at.day()))
        .replace("HH", &format!("{:02}", at.hour()))
        .replace("mm", &format!("{:02}", at.minute()))
        .replace("ss", &format!("{:02}", at.second()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_named_as_firehose_names_them() {
        let stream = DeliveryStream {
            logical_id: "CaptureStream".into(),
            name: "sluice-CaptureStream".into(),
            bucket: "capture".into(),
            prefix: "capture/date=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/".into(),
            error_prefix: String::new(),
            gzip: true,
            buffer_seconds: 300,
        };
        let at = time::macros::datetime!(2026-11-22 04:05:06 UTC);
        assert_eq!(
            object_key(&stream, at, "abc"),
            "capture/date=2026-11-22/hour=04/sluice-CaptureStream-1-2026-11-22-04-05-06-abc.gz"
        );
    }
}
