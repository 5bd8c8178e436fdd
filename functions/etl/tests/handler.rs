//! The ETL handler fed with real S3 `ObjectCreated` events, against moto.

use aws_lambda_events::s3::S3Event;
use bytes::Bytes;
use etl::{Etl, EtlFailure};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;
use sluice_aws::{Catalog, CuratedZone};
use sluice_core::{CatalogEntry, DatasetName, IngestId, IngestStatus, RawKey};
use sluice_tests::{TestStack, object_keys, project_root};

const KEY: &str = "iris/ingest_date=2026-11-22/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11.csv";

fn event(bucket: &str, key: &str) -> S3Event {
    let path = format!("{}/tests/events/object-created.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let record = &mut event["Records"][0]["s3"];
    record["bucket"]["name"] = bucket.into();
    // As S3 sends it: URL-encoded, spaces as '+'.
    record["object"]["key"] = key.replace('=', "%3D").replace(' ', "+").into();
    serde_json::from_value(event).expect("a real S3 event deserialises")
}

struct Fixture {
    stack: TestStack,
    etl: Etl,
}

impl Fixture {
    async fn new() -> Self {
        let stack = TestStack::provision().await;
        let etl = Etl::from_settings(stack.clients.clone(), &stack.environment("EtlFunction")).unwrap();
        Self { stack, etl }
    }

    async fn put_raw(&self, key: &str, body: Vec<u8>, label: Option<&str>) {
        let mut request =
            self.stack.clients.s3.put_object().bucket(self.stack.bucket("RawBucket")).key(key).body(body.into());
        if let Some(label) = label {
            request = request.metadata("label", label);
        }
        request.send().await.unwrap();
    }

    async fn run(&self, key: &str) -> Result<(), EtlFailure> {
        self.etl.handle(event(self.stack.bucket("RawBucket"), key)).await
    }

    fn catalog(&self) -> Catalog {
        Catalog::new(self.stack.clients.dynamodb.clone(), self.stack.table("CatalogTable"))
    }

    fn curated(&self) -> CuratedZone {
        CuratedZone::new(self.stack.clients.s3.clone(), self.stack.bucket("CuratedBucket"))
    }

    async fn entry(&self, key: &str) -> CatalogEntry {
        let raw = RawKey::parse(key).unwrap();
        self.catalog().ingest(&raw.dataset, raw.ingest_id).await.unwrap().expect("catalogued")
    }

    /// The dataset's current merged profile, through the catalog's pointer.
    async fn dataset_profile(&self, dataset: &str) -> Value {
        let dataset = DatasetName::parse(dataset).unwrap();
        let pointer = self.catalog().profile_pointer(&dataset).await.unwrap().expect("a merged profile");
        serde_json::from_slice(&self.curated_bytes(&pointer.key).await).unwrap()
    }

    async fn curated_bytes(&self, key: &str) -> Vec<u8> {
        self.curated().get(key).await.unwrap().unwrap_or_else(|| panic!("{key} is missing"))
    }
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(project_root().join("samples").join(name)).unwrap()
}

fn raw_key(dataset: &str, extension: &str) -> String {
    format!("{dataset}/ingest_date=2026-11-22/{}.{extension}", IngestId::generate())
}

#[tokio::test]
async fn a_csv_object_becomes_typed_parquet_a_profile_and_a_processed_entry() {
    let fixture = Fixture::new().await;
    fixture.put_raw(KEY, sample("iris.csv"), None).await;
    fixture.run(KEY).await.unwrap();

    let entry = fixture.entry(KEY).await;
    assert_eq!(entry.status, IngestStatus::Processed);
    let processing = entry.processing.unwrap();
    assert_eq!((processing.rows_in, processing.rows_out, processing.rows_rejected), (Some(12), Some(12), Some(0)));
    assert_eq!(entry.size_bytes, Some(362));

    let parquet = fixture.curated_bytes(processing.curated_key.as_deref().unwrap()).await;
    let reader = SerializedFileReader::new(Bytes::from(parquet)).unwrap();
    let rows: Vec<_> = reader.get_row_iter(None).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 12);
    let first: Vec<(String, Field)> = rows[0].get_column_iter().map(|(n, f)| (n.clone(), f.clone())).collect();
    assert_eq!(first[0], ("sepal_length".to_owned(), Field::Double(5.1)));
    assert_eq!(first[4], ("species".to_owned(), Field::Str("setosa".into())));

    let schema = fixture.catalog().schema(&DatasetName::parse("iris").unwrap()).await.unwrap().unwrap();
    assert_eq!(schema.version, 1);
    assert_eq!(schema.schema.fields.len(), 5);

    let profile: Value =
        serde_json::from_slice(&fixture.curated_bytes(processing.profile_key.as_deref().unwrap()).await).unwrap();
    assert_eq!(profile["rows"], 12);
    assert_eq!(fixture.dataset_profile("iris").await, profile, "one object: the dataset profile is its profile");
}

#[tokio::test]
async fn replaying_the_same_event_changes_nothing() {
    let fixture = Fixture::new().await;
    fixture.put_raw(KEY, sample("iris.csv"), None).await;
    fixture.run(KEY).await.unwrap();
    let curated_bucket = fixture.stack.bucket("CuratedBucket");
    let keys_before = object_keys(&fixture.stack.clients, curated_bucket).await;
    let data_key = fixture.entry(KEY).await.processing.unwrap().curated_key.unwrap();
    let data_before = fixture.curated_bytes(&data_key).await;

    fixture.run(KEY).await.unwrap();
    assert_eq!(object_keys(&fixture.stack.clients, curated_bucket).await, keys_before, "one Parquet object, no more");
    assert_eq!(fixture.curated_bytes(&data_key).await, data_before, "byte for byte the same");
    assert_eq!(fixture.dataset_profile("iris").await["rows"], 12, "the replayed object is not counted twice");
}

#[tokio::test]
async fn bad_rows_are_set_aside_with_their_reasons() {
    let fixture = Fixture::new().await;
    let key = raw_key("orders", "csv");
    let mut csv = String::from("order_id,amount\n");
    for i in 0..150 {
        csv.push_str(&format!("{i},{}.5\n", i * 3));
    }
    csv.push_str("150,lots\n1,3.5\n");
    fixture.put_raw(&key, csv.into_bytes(), None).await;
    fixture.run(&key).await.unwrap();

    let processing = fixture.entry(&key).await.processing.unwrap();
    let (rows_in, rows_out, rejected) =
        (processing.rows_in.unwrap(), processing.rows_out.unwrap(), processing.rows_rejected.unwrap());
    assert_eq!((rows_in, rows_out, rejected), (152, 150, 2));
    assert_eq!(rows_in, rows_out + rejected);
    let lines = String::from_utf8(fixture.curated_bytes(processing.rejected_key.as_deref().unwrap()).await).unwrap();
    let rejected: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rejected[0]["row"], 151);
    assert_eq!(rejected[0]["reason"], "column \"amount\": \"lots\" is not a valid float");
    assert_eq!(rejected[1]["reason"], "exact duplicate of row 2");
}

#[tokio::test]
async fn an_object_that_breaks_the_schema_fails_with_the_reason_and_writes_nothing() {
    let fixture = Fixture::new().await;
    fixture.put_raw(KEY, sample("iris.csv"), None).await;
    fixture.run(KEY).await.unwrap();
    let curated_bucket = fixture.stack.bucket("CuratedBucket");
    let before = object_keys(&fixture.stack.clients, curated_bucket).await;

    let key = raw_key("iris", "csv");
    fixture.put_raw(&key, b"sepal_length,colour\n1.0,red\n".to_vec(), None).await;
    fixture.run(&key).await.unwrap();
    let entry = fixture.entry(&key).await;
    assert_eq!(entry.status, IngestStatus::Failed);
    let reason = entry.processing.unwrap().failure_reason.unwrap();
    assert!(reason.contains("\"colour\"") && reason.contains("not in the dataset schema"), "{reason}");
    assert_eq!(object_keys(&fixture.stack.clients, curated_bucket).await, before, "nothing written for it");
}

#[tokio::test]
async fn a_labelled_png_becomes_a_row_of_784_pixels() {
    let fixture = Fixture::new().await;
    let key = raw_key("digits", "png");
    fixture.put_raw(&key, sample("digit-7.png"), Some("7")).await;
    fixture.run(&key).await.unwrap();

    let entry = fixture.entry(&key).await;
    assert_eq!(entry.status, IngestStatus::Processed);
    assert_eq!(entry.label.as_deref(), Some("7"));
    let parquet = fixture.curated_bytes(&entry.processing.unwrap().curated_key.unwrap()).await;
    let reader = SerializedFileReader::new(Bytes::from(parquet)).unwrap();
    let row = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
    let columns: Vec<(&String, &Field)> = row.get_column_iter().collect();
    assert_eq!(columns[0], (&"label".to_owned(), &Field::Str("7".into())));
    let Field::ListInternal(pixels) = columns[1].1 else { panic!("pixels is a list: {:?}", columns[1]) };
    assert_eq!(pixels.len(), 784);
}

#[tokio::test]
async fn a_key_outside_the_raw_layout_fails_the_invocation() {
    let fixture = Fixture::new().await;
    fixture.put_raw("notes/readme.txt", b"hello".to_vec(), None).await;
    let err = fixture.run("notes/readme.txt").await.unwrap_err();
    assert!(matches!(err, EtlFailure::UnexpectedKey(ref key) if key == "notes/readme.txt"), "{err}");
}

#[tokio::test]
async fn an_object_that_does_not_parse_is_marked_failed() {
    let fixture = Fixture::new().await;
    let key = raw_key("iris", "json");
    fixture.put_raw(&key, b"{not json".to_vec(), None).await;
    fixture.run(&key).await.unwrap();
    let entry = fixture.entry(&key).await;
    assert_eq!(entry.status, IngestStatus::Failed);
    assert!(entry.processing.unwrap().failure_reason.unwrap().contains("JSON"));
    assert_eq!(entry.source, sluice_core::IngestSource::S3, "objects that bypassed the API are catalogued too");
}

/// Marks the object FAILED with `words` in its reason, and checks nothing reached the
/// curated zone for it.
async fn assert_failed_with_nothing_written(fixture: &Fixture, key: &str, words: &str) {
    let entry = fixture.entry(key).await;
    assert_eq!(entry.status, IngestStatus::Failed);
    let reason = entry.processing.unwrap().failure_reason.unwrap();
    assert!(reason.contains(words), "{reason}");
    let written = object_keys(&fixture.stack.clients, fixture.stack.bucket("CuratedBucket")).await;
    let id = RawKey::parse(key).unwrap().ingest_id.to_string();
    assert!(!written.iter().any(|k| k.contains(&id)), "{written:?}");
}

#[tokio::test]
async fn hostile_objects_are_marked_failed_with_the_limit_they_broke() {
    let fixture = Fixture::new().await;
    let wide = raw_key("wide", "csv");
    let header: Vec<String> = (0..20_000).map(|i| format!("c{i}")).collect();
    fixture.put_raw(&wide, format!("{}\n{}\n", header.join(","), "1,".repeat(19_999) + "1").into_bytes(), None).await;
    fixture.run(&wide).await.unwrap();
    assert_failed_with_nothing_written(&fixture, &wide, "max_columns = 2000").await;

    let keys = raw_key("sparse", "ndjson");
    let records: String = (0..10_000).map(|i| format!("{{\"k{i}\":0}}\n")).collect();
    fixture.put_raw(&keys, records.into_bytes(), None).await;
    fixture.run(&keys).await.unwrap();
    assert_failed_with_nothing_written(&fixture, &keys, "record 2001").await;

    // An object over the dataset's size limit is not even read.
    let small = sluice_core::options::DatasetOptions {
        limits: sluice_core::options::TableLimits { max_object_bytes: 1_000, ..Default::default() },
        ..Default::default()
    };
    fixture.catalog().save_options(&DatasetName::parse("small").unwrap(), &small).await.unwrap();
    let big = raw_key("small", "csv");
    fixture.put_raw(&big, format!("a\n{}", "1\n".repeat(1_000)).into_bytes(), None).await;
    fixture.run(&big).await.unwrap();
    assert_failed_with_nothing_written(&fixture, &big, "2002 bytes, over the dataset limit max_object_bytes = 1000")
        .await;
}

#[tokio::test]
async fn an_object_the_function_gave_up_on_is_marked_failed_with_lambdas_reason() {
    let fixture = Fixture::new().await;
    let key = raw_key("iris", "csv");
    fixture.put_raw(&key, sample("iris.csv"), None).await;
    let record = serde_json::json!({
        "version": "1.0",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "requestContext": {"requestId": "c9f8", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:etl:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": serde_json::to_value(event(fixture.stack.bucket("RawBucket"), &key)).unwrap(),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Runtime.ExitError", "errorMessage": "Runtime exited with error: signal: killed"},
    });
    let sqs_event = serde_json::json!({"Records": [{
        "messageId": "1", "receiptHandle": "r", "body": record.to_string(), "attributes": {}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:etl-dlq",
        "awsRegion": "us-east-1"
    }]});
    fixture.etl.handle_event(sqs_event.clone()).await.unwrap();
    assert_failed_with_nothing_written(
        &fixture,
        &key,
        "gave up after 3 attempt(s) (RetriesExhausted): Runtime.ExitError",
    )
    .await;

    // A replayed record changes nothing; and an object a later attempt processed stays processed.
    fixture.etl.handle_event(sqs_event).await.unwrap();
    assert_eq!(fixture.entry(&key).await.status, IngestStatus::Failed);
    let processed = raw_key("iris", "csv");
    fixture.put_raw(&processed, sample("iris.csv"), None).await;
    fixture.run(&processed).await.unwrap();
    let mut late = record.clone();
    late["requestPayload"] = serde_json::to_value(event(fixture.stack.bucket("RawBucket"), &processed)).unwrap();
    let batch =
        serde_json::json!({"Records": [{"messageId": "2", "body": late.to_string(), "eventSource": "aws:sqs"}]});
    fixture.etl.handle_event(batch).await.unwrap();
    assert_eq!(fixture.entry(&processed).await.status, IngestStatus::Processed);
}

#[tokio::test]
async fn twenty_objects_of_one_dataset_processed_at_once_are_all_counted_in_its_profile() {
    let fixture = std::sync::Arc::new(Fixture::new().await);
    let mut keys = Vec::new();
    let mut expected_rows = 0;
    for object in 0..20 {
        let key = raw_key("busy", "csv");
        let rows = 3 + object;
        let body: String = std::iter::once("n,colour\n".to_owned())
            .chain((0..rows).map(|row| format!("{},{}\n", object * 100 + row, ["red", "blue"][row % 2])))
            .collect();
        fixture.put_raw(&key, body.into_bytes(), None).await;
        keys.push(key);
        expected_rows += rows;
    }
    run_all_at_once(&fixture, &keys).await;
    let profile = fixture.dataset_profile("busy").await;
    assert_eq!(profile["rows"], expected_rows, "no object's rows lost to a concurrent update");
    let colour = profile["columns"].as_array().unwrap().iter().find(|c| c["name"] == "colour").unwrap();
    assert_eq!(colour["count"], expected_rows);
    let versions = object_keys(&fixture.stack.clients, fixture.stack.bucket("CuratedBucket"))
        .await
        .into_iter()
        .filter(|k| k.starts_with("profiles/busy/dataset/"))
        .count();
    assert_eq!(versions, 1, "earlier versions and lost attempts are removed");

    // Replaying all of them at once changes nothing.
    run_all_at_once(&fixture, &keys).await;
    assert_eq!(fixture.dataset_profile("busy").await["rows"], expected_rows);
}

/// One ETL run per key, all in flight together.
async fn run_all_at_once(fixture: &std::sync::Arc<Fixture>, keys: &[String]) {
    let runs: Vec<_> = keys
        .iter()
        .map(|key| {
            let (fixture, key) = (fixture.clone(), key.clone());
            tokio::spawn(async move { fixture.run(&key).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn outputs_larger_than_a_part_are_uploaded_in_parts_and_appear_only_when_finished() {
    use std::io::Write;
    let fixture = Fixture::new().await;
    let curated = fixture.curated();
    let handle = tokio::runtime::Handle::current();
    let body: Vec<u8> = (0..2 * sluice_aws::blocking::PART_BYTES + 1_000).map(|i| (i % 251) as u8).collect();
    let key = "data/big/object.bin";

    let (zone, bytes, runtime) = (curated.clone(), body.clone(), handle.clone());
    let writer = tokio::task::spawn_blocking(move || {
        let mut writer = zone.multipart_writer(key, "application/octet-stream", runtime);
        writer.write_all(&bytes).unwrap();
        writer
    })
    .await
    .unwrap();
    assert_eq!(curated.get(key).await.unwrap(), None, "nothing is visible before the upload completes");
    let size = tokio::task::spawn_blocking(move || writer.finish()).await.unwrap().unwrap();
    assert_eq!(size, body.len() as u64);
    assert_eq!(curated.get(key).await.unwrap().unwrap(), body);

    // An aborted rewrite leaves the object as it was.
    let (zone, runtime) = (curated.clone(), handle.clone());
    tokio::task::spawn_blocking(move || {
        let mut writer = zone.multipart_writer(key, "application/octet-stream", runtime);
        writer.write_all(&vec![0; sluice_aws::blocking::PART_BYTES + 1]).unwrap();
        writer.abort().unwrap();
    })
    .await
    .unwrap();
    assert_eq!(curated.get(key).await.unwrap().unwrap(), body);
}
