//! Ingest → S3 event → ETL → curated zone, end to end through the local runner: the API
//! stores the object, moto notifies the runner's queue, the runner invokes the ETL with the
//! S3 event, and the results are read back through the API and from the buckets.

use crate::local_cloud;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use http::Method;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;
use sluice_cli::LocalCloud;
use sluice_localcloud::client::{HttpClient, HttpResponse};
use sluice_tests::{object_bytes, project_root};

struct Pipeline {
    cloud: LocalCloud,
    client: HttpClient,
}

impl Pipeline {
    async fn start() -> Self {
        Self { cloud: local_cloud::start().await, client: HttpClient::default() }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> HttpResponse {
        let url = format!("{}{path}", self.cloud.api.url());
        self.client.send(method, &url, headers, body).await.expect("request completes")
    }

    async fn upload(&self, path: &str, content_type: &str, body: Vec<u8>) -> Value {
        let response = self.send(Method::POST, path, &[("content-type", content_type)], body).await;
        assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));
        response.json()
    }

    /// Polls the catalog entry until the ETL has run (bounded: 30 s).
    async fn processed(&self, dataset: &str, id: &str) -> Value {
        for _ in 0..300 {
            let entry =
                self.send(Method::GET, &format!("/datasets/{dataset}/ingests/{id}"), &[], Vec::new()).await.json();
            if matches!(entry["status"].as_str(), Some("PROCESSED" | "FAILED")) {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("ingest {id} was not processed within 30 s");
    }

    async fn curated(&self, key: &str) -> Vec<u8> {
        object_bytes(&self.cloud.clients, self.cloud.resource_name("CuratedBucket").unwrap(), key).await.0
    }
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(project_root().join("samples").join(name)).unwrap()
}

#[tokio::test]
async fn an_uploaded_csv_becomes_curated_parquet_with_a_profile() {
    let pipeline = Pipeline::start().await;
    let created = pipeline.upload("/datasets/iris/records", "text/csv", sample("iris.csv")).await;
    let entry = pipeline.processed("iris", created["ingest_id"].as_str().unwrap()).await;
    assert_eq!(entry["status"], "PROCESSED", "{entry}");
    assert_eq!(entry["processing"]["rows_out"], 12);

    let parquet = pipeline.curated(entry["processing"]["curated_key"].as_str().unwrap()).await;
    let reader = SerializedFileReader::new(Bytes::from(parquet)).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let columns: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(columns, ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]);
    let last = reader.get_row_iter(None).unwrap().last().unwrap().unwrap();
    let values: Vec<Field> = last.get_column_iter().map(|(_, f)| f.clone()).collect();
    assert_eq!(values[0], Field::Double(6.3));
    assert_eq!(values[4], Field::Str("virginica".into()));

    let dataset = pipeline.send(Method::GET, "/datasets/iris", &[], Vec::new()).await;
    assert_eq!(dataset.status, 200);
    let dataset = dataset.json();
    assert_eq!(dataset["schema"]["version"], 1);
    assert_eq!(dataset["schema"]["fields"][4], serde_json::json!({"name": "species", "type": "string"}));
    assert_eq!(dataset["objects"]["by_status"]["PROCESSED"], 1);
    assert_eq!(dataset["rows"]["out"], 12);
    assert_eq!(dataset["profile"]["rows"], 12);
    let species = dataset["profile"]["columns"].as_array().unwrap().iter().find(|c| c["name"] == "species").unwrap();
    assert_eq!(species["top"][0], serde_json::json!(["setosa", 4]));
}

#[tokio::test]
async fn every_format_and_a_presigned_upload_are_processed() {
    let pipeline = Pipeline::start().await;
    let formats = [
        ("iris.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("iris.json", "application/json"),
        ("iris.ndjson", "application/x-ndjson"),
    ];
    let mut ids = Vec::new();
    for (file, content_type) in formats {
        ids.push(pipeline.upload("/datasets/iris/records", content_type, sample(file)).await["ingest_id"].clone());
    }
    let upload = pipeline
        .send(
            Method::POST,
            "/datasets/iris/uploads",
            &[("content-type", "application/json")],
            format!(r#"{{"content_type":"text/csv","size_bytes":{}}}"#, sample("iris.csv").len()),
        )
        .await
        .json();
    let put = pipeline
        .client
        .send(
            Method::PUT,
            upload["upload"]["url"].as_str().unwrap(),
            &[("content-type", "text/csv")],
            sample("iris.csv"),
        )
        .await
        .unwrap();
    assert_eq!(put.status, 200);
    ids.push(upload["ingest_id"].clone());

    for id in &ids {
        let entry = pipeline.processed("iris", id.as_str().unwrap()).await;
        assert_eq!(entry["status"], "PROCESSED", "{entry}");
        assert_eq!(entry["processing"]["rows_out"], 12, "{entry}");
    }
    let presigned = pipeline.processed("iris", upload["ingest_id"].as_str().unwrap()).await;
    assert_eq!(presigned["source"], "presigned_upload");
    assert_eq!(presigned["size_bytes"], 362, "completed when the object arrived");
    assert!(presigned["sha256"].as_str().is_some_and(|h| h.len() == 64));

    let dataset = pipeline.send(Method::GET, "/datasets/iris", &[], Vec::new()).await.json();
    assert_eq!(dataset["profile"]["rows"], 48, "four objects merged into the dataset profile");
    assert_eq!(dataset["objects"]["total"], 4);
}

#[tokio::test]
async fn a_labelled_image_becomes_a_pixel_row() {
    let pipeline = Pipeline::start().await;
    let created = pipeline.upload("/datasets/digits/records?label=7", "image/png", sample("digit-7.png")).await;
    assert_eq!(created["label"], "7");
    let entry = pipeline.processed("digits", created["ingest_id"].as_str().unwrap()).await;
    assert_eq!(entry["status"], "PROCESSED", "{entry}");
    let parquet = pipeline.curated(entry["processing"]["curated_key"].as_str().unwrap()).await;
    let reader = SerializedFileReader::new(Bytes::from(parquet)).unwrap();
    let columns: Vec<String> =
        reader.metadata().file_metadata().schema_descr().columns().iter().map(|c| c.path().string()).collect();
    assert_eq!(columns, ["label", "pixels.list.element"]);
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1);

    let refused = pipeline
        .send(Method::POST, "/datasets/iris/records?label=x", &[("content-type", "text/csv")], sample("iris.csv"))
        .await;
    assert_eq!(refused.status, 400, "labels are for images");
    assert_eq!(refused.json()["error"]["code"], "invalid_label");
}

#[tokio::test]
async fn schema_changes_are_refused_unless_the_dataset_evolves() {
    let pipeline = Pipeline::start().await;
    let first = pipeline.upload("/datasets/sensors/records", "text/csv", b"device,temp\na,21.5\n".to_vec()).await;
    pipeline.processed("sensors", first["ingest_id"].as_str().unwrap()).await;

    let widened = b"device,temp,humidity\nb,22.0,40\n".to_vec();
    let refused = pipeline.upload("/datasets/sensors/records", "text/csv", widened.clone()).await;
    let entry = pipeline.processed("sensors", refused["ingest_id"].as_str().unwrap()).await;
    assert_eq!(entry["status"], "FAILED");
    assert!(entry["processing"]["failure_reason"].as_str().unwrap().contains("humidity"), "{entry}");

    let bad_options = pipeline.send(Method::PUT, "/datasets/sensors/options", &[], r#"{"evolve":true}"#).await;
    assert_eq!(bad_options.status, 400);
    assert_eq!(bad_options.json()["error"]["code"], "invalid_options");
    let options = pipeline.send(Method::PUT, "/datasets/sensors/options", &[], r#"{"evolve_schema":true}"#).await;
    assert_eq!(options.status, 200);

    let accepted = pipeline.upload("/datasets/sensors/records", "text/csv", widened).await;
    let entry = pipeline.processed("sensors", accepted["ingest_id"].as_str().unwrap()).await;
    assert_eq!(entry["status"], "PROCESSED", "{entry}");
    let dataset = pipeline.send(Method::GET, "/datasets/sensors", &[], Vec::new()).await.json();
    assert_eq!(dataset["schema"]["version"], 2);
    assert_eq!(dataset["schema"]["fields"][2]["name"], "humidity");
    assert_eq!(dataset["objects"]["by_status"], serde_json::json!({"PROCESSED": 2, "FAILED": 1}));
}

#[tokio::test]
async fn an_object_the_etl_gives_up_on_is_marked_failed_with_lambdas_reason() {
    let pipeline = Pipeline::start().await;
    let clients = &pipeline.cloud.clients;
    // Options the ETL cannot read make every attempt fail, as a crash or a timeout would.
    let table = pipeline.cloud.resource_name("CatalogTable").unwrap();
    clients
        .dynamodb
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S("DATASET#poison".into()))
        .item("sk", AttributeValue::S("OPTIONS".into()))
        .item("entity", AttributeValue::S("options".into()))
        .item("options", AttributeValue::S("{not json".into()))
        .send()
        .await
        .unwrap();
    let id = sluice_core::IngestId::generate().to_string();
    let raw = pipeline.cloud.resource_name("RawBucket").unwrap();
    let key = format!("poison/ingest_date=2026-11-22/{id}.csv");
    clients.s3.put_object().bucket(raw).key(&key).body(b"a\n1\n".to_vec().into()).send().await.unwrap();

    // First try and two retries, the on-failure record to the queue, the ETL reading it back.
    let entry = pipeline.processed("poison", &id).await;
    assert_eq!(entry["status"], "FAILED", "{entry}");
    let reason = entry["processing"]["failure_reason"].as_str().unwrap();
    assert!(reason.starts_with("the ETL gave up after 3 attempt(s) (RetriesExhausted): EtlFailure:"), "{reason}");
    assert!(reason.contains("read catalog item"), "the last error is kept: {reason}");
}

#[tokio::test]
async fn unknown_datasets_are_404() {
    let pipeline = Pipeline::start().await;
    let response = pipeline.send(Method::GET, "/datasets/nothing-here", &[], Vec::new()).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn rejected_rows_are_listed_newest_object_first_with_their_reasons() {
    let pipeline = Pipeline::start().await;
    // Clean rows first, so that the column types are iris's and the dirty file's bad cells
    // are rejected rather than typing their columns as text.
    let clean = pipeline.upload("/datasets/dirty/records", "text/csv", sample("iris.csv")).await;
    pipeline.processed("dirty", clean["ingest_id"].as_str().unwrap()).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let created = pipeline.upload("/datasets/dirty/records", "text/csv", sample("iris-dirty.csv")).await;
        let id = created["ingest_id"].as_str().unwrap().to_owned();
        assert_eq!(pipeline.processed("dirty", &id).await["processing"]["rows_rejected"], 2);
        ids.push(id);
    }
    let listed = pipeline.send(Method::GET, "/datasets/dirty/rejected", &[], Vec::new()).await;
    assert_eq!(listed.status, 200, "{}", String::from_utf8_lossy(&listed.body));
    let listed = listed.json();
    assert_eq!(listed["total"], 4, "{listed}");
    let rows = listed["rows"].as_array().unwrap();
    let from: Vec<&str> = rows.iter().map(|r| r["ingest_id"].as_str().unwrap()).collect();
    assert_eq!(from, [&ids[1], &ids[1], &ids[0], &ids[0]], "the newest object's rows first");
    assert!(rows.iter().all(|r| r["row"].as_u64().is_some() && !r["reason"].as_str().unwrap().is_empty()), "{listed}");

    let limited = pipeline.send(Method::GET, "/datasets/dirty/rejected?limit=1", &[], Vec::new()).await.json();
    assert_eq!(limited["rows"].as_array().unwrap().len(), 1);
    assert_eq!(limited["rows"][0], rows[0]);
    let refused = pipeline.send(Method::GET, "/datasets/dirty/rejected?limit=0", &[], Vec::new()).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"]["code"], "invalid_request");
    assert_eq!(pipeline.send(Method::GET, "/datasets/nothing/rejected", &[], Vec::new()).await.status, 404);
}
