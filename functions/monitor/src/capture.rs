//! Reading the prediction capture: the objects Firehose delivered in a time range, listed
//! by the hour partitions they can be in, and their lines parsed as they stream out of
//! gzip, each line capped, so neither a huge object nor a hostile line can exhaust memory.

use std::io::{BufRead, BufReader, Read};

use sluice_aws::StoreError;
use sluice_core::capture::CaptureRecord;
use time::{Duration, OffsetDateTime};

/// Where Firehose delivers (the template's `Prefix`: `capture/date=…/hour=…/`).
pub const CAPTURE_PREFIX: &str = "capture/";
/// Firehose's largest record is 1000 KiB: a longer line is not one of ours.
const MAX_LINE_BYTES: u64 = 1024 * 1024;
/// A delivered object holds at most the stream's buffer (64 MiB) before compression; more
/// is not one of ours.
const MAX_OBJECT_BYTES: i64 = 256 * 1024 * 1024;
/// How long before its delivery an object's hour partition can be: Firehose names it by
/// when the buffer's first record arrived, and delivers within the buffer interval (at most
/// 15 minutes) plus upload time, or later when it retries. Two hours covers that for the
/// price of listing a partition or two more.
const PARTITION_LAG: Duration = Duration::hours(2);
const MAX_INFLATED_BYTES: u64 = 1024 * 1024 * 1024;

/// A delivered capture object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureObject {
    pub key: String,
    pub delivered: OffsetDateTime,
    pub size: i64,
}

/// The hour partitions an object delivered in `(from, to]` can be under (see
/// [`PARTITION_LAG`]).
pub fn hour_prefixes(from: OffsetDateTime, to: OffsetDateTime) -> Vec<String> {
    let earliest = (from - PARTITION_LAG).to_offset(time::UtcOffset::UTC);
    let mut hour = earliest.replace_time(time::Time::from_hms(earliest.hour(), 0, 0).expect("a valid hour"));
    let mut prefixes = Vec::new();
    while hour <= to {
        prefixes.push(format!(
            "{CAPTURE_PREFIX}date={:04}-{:02}-{:02}/hour={:02}/",
            hour.year(),
            u8::from(hour.month()),
            hour.day(),
            hour.hour()
        ));
        hour += Duration::hours(1);
    }
    prefixes
}

/// Objects delivered in `(from, to]`, oldest first.
pub async fn delivered(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<CaptureObject>, StoreError> {
    let mut objects = Vec::new();
    for prefix in hour_prefixes(from, to) {
        let pages = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| StoreError::new("S3", "ListObjectsV2", e))?;
        for object in pages.iter().flat_map(|page| page.contents()) {
            let Some(delivered) =
                object.last_modified().and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
            else {
                continue;
            };
            if delivered > from && delivered <= to {
                objects.push(CaptureObject {
                    key: object.key().unwrap_or_default().to_owned(),
                    delivered,
                    size: object.size().unwrap_or_default(),
                });
            }
        }
    }
    objects.sort_by_key(|o| o.delivered);
    Ok(objects)
}

/// What reading one object gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    pub read: u64,
    /// Lines that were too long or not a capture record.
    pub unreadable: u64,
}

/// Streams an object's capture records to `each`.
pub async fn read(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    object: &CaptureObject,
    mut each: impl FnMut(&CaptureRecord),
) -> Result<Lines, StoreError> {
    if object.size > MAX_OBJECT_BYTES {
        tracing::warn!(key = %object.key, size = object.size, "capture object too large; skipped");
        return Ok(Lines { read: 0, unreadable: 1 });
    }
    let output = match s3.get_object().bucket(bucket).key(&object.key).send().await {
        Ok(output) => output,
        // Expired by the bucket's lifecycle between the listing and now: nothing to read.
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(Lines::default()),
        Err(err) => return Err(StoreError::new("S3", "GetObject", err)),
    };
    let bytes = output.body.collect().await.map_err(|e| StoreError::new("S3", "GetObject", e))?.into_bytes();
    let plain: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(&bytes[..]).take(MAX_INFLATED_BYTES))
    } else {
        Box::new(&bytes[..])
    };
    Ok(parse_lines(BufReader::new(plain), &mut each))
}

/// Splits a stream into lines of at most [`MAX_LINE_BYTES`] and parses each.
fn parse_lines(mut reader: impl BufRead, each: &mut impl FnMut(&CaptureRecord)) -> Lines {
    let mut lines = Lines::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader).take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut line);
        match read {
            Ok(0) => return lines,
            Ok(_) if line.len() as u64 > MAX_LINE_BYTES => {
                lines.unreadable += 1;
                // Skip the rest of the over-long line.
                let mut rest = Vec::new();
                while !rest.ends_with(b"\n") {
                    rest.clear();
                    match (&mut reader).take(MAX_LINE_BYTES).read_until(b'\n', &mut rest) {
                        Ok(0) | Err(_) => return lines,
                        Ok(_) => {}
                    }
                }
            }
            Ok(_) => {
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<CaptureRecord>(text) {
                    Ok(record) => {
                        lines.read += 1;
                        each(&record);
                    }
                    Err(_) => lines.unreadable += 1,
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "capture object unreadable past this point");
                lines.unreadable += 1;
                return lines;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_cover_the_window_and_the_buffer_before_it() {
        let from = time::macros::datetime!(2026-11-22 09:05:00 UTC);
        let to = time::macros::datetime!(2026-11-22 10:30:00 UTC);
        assert_eq!(
            hour_prefixes(from, to),
            [
                "capture/date=2026-11-22/hour=07/",
                "capture/date=2026-11-22/hour=08/",
                "capture/date=2026-11-22/hour=09/",
                "capture/date=2026-11-22/hour=10/"
            ]
        );
        let midnight = hour_prefixes(
            time::macros::datetime!(2026-11-23 01:50:00 UTC),
            time::macros::datetime!(2026-11-23 02:10:00 UTC),
        );
        assert_eq!(
            midnight,
            [
                "capture/date=2026-11-22/hour=23/",
                "capture/date=2026-11-23/hour=00/",
                "capture/date=2026-11-23/hour=01/",
                "capture/date=2026-11-23/hour=02/"
            ]
        );
    }

    #[test]
    fn lines_are_parsed_and_bad_or_huge_ones_counted() {
        let good = r#"{"kind":"feedback","prediction_id":"p","time":"2026-11-22T10:00:00Z","model":"m","version":1,"truth":"a","output":null}"#;
        let huge = format!("{{\"kind\":\"{}\"}}", "x".repeat(2 * MAX_LINE_BYTES as usize));
        let text = format!("{good}\nnot json\n\n{huge}\n{good}");
        let mut seen = 0;
        let lines = parse_lines(BufReader::new(text.as_bytes()), &mut |_| seen += 1);
        assert_eq!((lines.read, lines.unreadable, seen), (2, 2, 2));
    }
}
