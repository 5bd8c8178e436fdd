//! The ingestion API end to end: HTTP requests to the local runner's port, which reads
//! `template.yaml`, turns each request into an API Gateway event for the ingest function,
//! and stores into moto. Each test gets its own stack, so listing the bucket and table
//! afterwards shows exactly what that test wrote.

use crate::local_cloud;

use http::Method;
use serde_json::Value;
use sluice_cli::LocalCloud;
use sluice_localcloud::client::{HttpClient, HttpResponse};
use sluice_tests::{
    TestStack, assert_nothing_written, moto_endpoint, object_bytes, object_keys, project_root, string_attribute,
    table_items,
};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

struct Api {
    cloud: LocalCloud,
    client: HttpClient,
    /// The same resources, read directly to check what the API wrote.
    stack: TestStack,
}

impl Api {
    async fn start() -> Self {
        let cloud = local_cloud::start().await;
        let stack = TestStack { clients: cloud.clients.clone(), stack: cloud.stack.clone() };
        Self { cloud, client: HttpClient::default(), stack }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<bytes::Bytes>,
    ) -> HttpResponse {
        let url = format!("{}{path}", self.cloud.api.url());
        self.client.send(method, &url, headers, body).await.expect("request completes")
    }

    async fn post(&self, dataset: &str, content_type: &str, body: impl Into<bytes::Bytes>) -> HttpResponse {
        self.send(Method::POST, &format!("/datasets/{dataset}/records"), &[("content-type", content_type)], body).await
    }

    fn raw_bucket(&self) -> &str {
        self.stack.bucket("RawBucket")
    }
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(project_root().join("samples").join(name)).unwrap()
}

fn error_of(response: &HttpResponse) -> (String, String) {
    let body = response.json();
    (
        body["error"]["code"].as_str().unwrap_or_default().to_owned(),
        body["error"]["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn every_format_lands_unchanged_in_the_raw_zone_and_the_catalog() {
    let api = Api::start().await;
    let cases = [
        ("iris.csv", "iris", "text/csv", Some(12)),
        ("iris.xlsx", "iris", XLSX, Some(12)),
        ("iris.json", "iris", "application/json", Some(12)),
        ("iris.ndjson", "iris", "application/x-ndjson", Some(12)),
        ("digit-7.png", "digits", "image/png", None),
        ("digit-3.jpg", "digits", "image/jpeg", None),
    ];
    for (file, dataset, content_type, rows) in cases {
        let body = sample(file);
        let response = api.post(dataset, content_type, body.clone()).await;
        assert_eq!(response.status, 201, "{file}: {}", String::from_utf8_lossy(&response.body));
        let created = response.json();
        let id = created["ingest_id"].as_str().unwrap();
        let key = created["key"].as_str().unwrap();
        let extension = file.rsplit('.').next().unwrap();
        assert!(key.starts_with(&format!("{dataset}/ingest_date=")), "{key}");
        assert!(key.ends_with(&format!("/{id}.{extension}")), "{key}");

        let (stored, stored_type) = object_bytes(&api.stack.clients, api.raw_bucket(), key).await;
        assert_eq!(stored, body, "{file} is stored byte for byte");
        assert_eq!(stored_type.as_deref(), Some(content_type));

        let fetched = api.send(Method::GET, &format!("/datasets/{dataset}/ingests/{id}"), &[], Vec::new()).await;
        assert_eq!(fetched.status, 200);
        let entry = fetched.json();
        // The ETL may already have moved the entry on; everything the API wrote stays.
        assert!(matches!(entry["status"].as_str(), Some("RECEIVED" | "PROCESSED")), "{entry}");
        assert_eq!(without_progress(&entry), without_progress(&created), "GET returns what POST created");
        assert_eq!(entry["source"], "api");
        assert_eq!(entry["content_type"], content_type);
        assert_eq!(entry["size_bytes"], body.len());
        assert_eq!(entry["sha256"], sha256sum(&body));
        assert_eq!(entry["row_count"].as_u64(), rows, "{file}");
        assert!(entry["received_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(object_keys(&api.stack.clients, api.raw_bucket()).await.len(), cases.len());
    assert_eq!(ingest_entries(&api).await, cases.len());
}

/// An entry without what the ETL adds to it later.
fn without_progress(entry: &Value) -> Value {
    let mut entry = entry.clone();
    for field in ["status", "processing"] {
        entry.as_object_mut().unwrap().remove(field);
    }
    entry
}

/// Catalog items the ingestion API itself writes (the ETL adds dataset schemas beside them).
async fn ingest_entries(api: &Api) -> usize {
    let items = table_items(&api.stack.clients, api.stack.table("CatalogTable")).await;
    items.iter().filter(|i| matches!(string_attribute(i, "entity"), "ingest" | "idempotency")).count()
}

fn sha256sum(bytes: &[u8]) -> String {
    use std::process::{Command, Stdio};
    // An independent implementation: the system's sha256sum.
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_nothing_is_written() {
    let api = Api::start().await;
    let mut truncated_png = sample("digit-7.png");
    truncated_png.truncate(60);
    let over_limit = {
        let mut csv = b"a,b\n".to_vec();
        csv.resize(4 * 1024 * 1024 + 1, b'1');
        csv
    };
    let corners_xlsx = std::fs::read(project_root().join("crates/formats/tests/fixtures/corners.xlsx")).unwrap();
    let many_keys: Vec<u8> = (0..10_000).flat_map(|i| format!("{{\"k{i}\":0}}\n").into_bytes()).collect();
    let wide_csv = format!("{}\n", (0..20_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",")).into_bytes();
    let cases = [
        bad(
            "unknown content type",
            "iris",
            Some("text/plain"),
            b"a\n1\n".to_vec(),
            415,
            "unsupported_content_type",
            "text/plain",
        ),
        bad("no content type", "iris", None, b"a\n1\n".to_vec(), 415, "unsupported_content_type", "Content-Type"),
        bad("empty body", "iris", Some("text/csv"), Vec::new(), 400, "empty_body", "empty"),
        bad("ragged CSV", "iris", Some("text/csv"), b"a,b,c\n1,2,3\n4,5\n".to_vec(), 400, "invalid_body", "row 2"),
        bad("xlsx cell past the columns", "iris", Some(XLSX), corners_xlsx, 400, "over_limit", "max_columns = 2000"),
        bad("NDJSON of 10,000 keys", "iris", Some("application/x-ndjson"), many_keys, 400, "over_limit", "record 2001"),
        bad("CSV 20,000 columns wide", "iris", Some("text/csv"), wide_csv, 400, "over_limit", "max_columns"),
        bad(
            "malformed JSON",
            "iris",
            Some("application/json"),
            b"[{\"a\":1},\n{\"a\" 2}]".to_vec(),
            400,
            "invalid_body",
            "JSON line 2",
        ),
        bad(
            "JSON scalar record",
            "iris",
            Some("application/json"),
            b"[{\"a\":1},7]".to_vec(),
            400,
            "invalid_body",
            "record 2",
        ),
        bad(
            "malformed NDJSON",
            "iris",
            Some("application/x-ndjson"),
            b"{\"a\":1}\n{\"a\":\n".to_vec(),
            400,
            "invalid_body",
            "NDJSON line 2",
        ),
        bad("CSV sent as xlsx", "iris", Some(XLSX), sample("iris.csv"), 400, "invalid_body", "xlsx"),
        bad("PNG that does not decode", "digits", Some("image/png"), truncated_png, 400, "invalid_body", "PNG"),
        bad("PNG sent as JPEG", "digits", Some("image/jpeg"), sample("digit-7.png"), 400, "invalid_body", "JPEG"),
        bad("body over the limit", "iris", Some("text/csv"), over_limit, 413, "payload_too_large", "uploads"),
        bad("dataset ../x", "..%2Fx", Some("text/csv"), sample("iris.csv"), 400, "invalid_dataset", "../x"),
        bad("dataset %2e%2e", "%2e%2e", Some("text/csv"), sample("iris.csv"), 400, "invalid_dataset", ".."),
        bad("uppercase dataset", "Iris", Some("text/csv"), sample("iris.csv"), 400, "invalid_dataset", "Iris"),
        bad("empty dataset", "", Some("text/csv"), sample("iris.csv"), 400, "invalid_dataset", "empty"),
    ];
    for case in cases {
        let what = case.what;
        let headers: Vec<(&str, &str)> = case.content_type.map(|ct| ("content-type", ct)).into_iter().collect();
        let response =
            api.send(Method::POST, &format!("/datasets/{}/records", case.dataset), &headers, case.body).await;
        assert_eq!(response.status, case.status, "{what}: {}", String::from_utf8_lossy(&response.body));
        assert_eq!(response.headers["content-type"], "application/json", "{what}");
        let (code, message) = error_of(&response);
        assert_eq!(code, case.code, "{what}");
        assert!(message.contains(case.mentions), "{what}: {message:?} should mention {:?}", case.mentions);
        assert_nothing_written(&api.stack, what).await;
    }
}

/// A request the API must refuse, and how.
struct BadRequest {
    what: &'static str,
    /// The raw path segment, percent-encoding included.
    dataset: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Words the error message must contain, so it names the problem.
    mentions: &'static str,
}

fn bad(
    what: &'static str,
    dataset: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    mentions: &'static str,
) -> BadRequest {
    BadRequest { what, dataset, content_type, body, status, code, mentions }
}

#[tokio::test]
async fn bodies_over_the_gateway_limit_never_reach_the_function() {
    let api = Api::start().await;
    let response = api.post("iris", "text/csv", vec![b'a'; 11 * 1024 * 1024]).await;
    assert_eq!(response.status, 413);
    assert_nothing_written(&api.stack, "11 MiB body").await;
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_answer() {
    let api = Api::start().await;
    let headers = [("content-type", "text/csv"), ("idempotency-key", "batch-2026-11-22")];
    let first = api.send(Method::POST, "/datasets/iris/records", &headers, sample("iris.csv")).await;
    assert_eq!(first.status, 201);
    assert!(first.headers.get("idempotent-replayed").is_none());

    let retry = api.send(Method::POST, "/datasets/iris/records", &headers, sample("iris.csv")).await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.json(), first.json(), "the retry gets the first answer");

    let objects = object_keys(&api.stack.clients, api.raw_bucket()).await;
    assert_eq!(objects.len(), 1, "the retry wrote no object");
    let written = ingest_entries(&api).await;
    assert_eq!(written, 2, "one ingest entry and its idempotency record; the retry wrote nothing");

    let reused = api.send(Method::POST, "/datasets/iris/records", &headers, sample("iris.ndjson")).await;
    assert_eq!(reused.status, 422, "same key, different body");
    assert_eq!(error_of(&reused).0, "idempotency_key_reused");
    assert_eq!(object_keys(&api.stack.clients, api.raw_bucket()).await.len(), 1);
    assert_eq!(ingest_entries(&api).await, written);

    let other_key = [("content-type", "text/csv"), ("idempotency-key", "batch-2026-11-23")];
    let second = api.send(Method::POST, "/datasets/iris/records", &other_key, sample("iris.csv")).await;
    assert_eq!(second.status, 201);
    assert_ne!(second.json()["ingest_id"], first.json()["ingest_id"], "a new key is a new ingest");
}

#[tokio::test]
async fn presigned_upload_url_accepts_the_file_on_the_local_endpoint() {
    let api = Api::start().await;
    let file = sample("iris.csv");
    let response = api
        .send(
            Method::POST,
            "/datasets/iris/uploads",
            &[("content-type", "application/json")],
            format!(r#"{{"content_type":"text/csv","size_bytes":{}}}"#, file.len()),
        )
        .await;
    assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));
    let created = response.json();
    assert_eq!(created["status"], "AWAITING_UPLOAD");
    assert_eq!(created["source"], "presigned_upload");
    let url = created["upload"]["url"].as_str().unwrap();
    assert!(url.starts_with(moto_endpoint()), "the URL points at the local endpoint: {url}");
    // moto does not check signatures; S3 does, and the size is one of the signed headers.
    assert!(url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type"), "{url}");
    assert_eq!(created["upload"]["headers"]["content-length"], file.len().to_string());

    let put = api.client.send(Method::PUT, url, &[("content-type", "text/csv")], file.clone()).await.unwrap();
    assert_eq!(put.status, 200, "{}", String::from_utf8_lossy(&put.body));
    let (stored, content_type) =
        object_bytes(&api.stack.clients, api.raw_bucket(), created["key"].as_str().unwrap()).await;
    assert_eq!(stored, file);
    assert_eq!(content_type.as_deref(), Some("text/csv"));
}

#[tokio::test]
async fn bad_upload_requests_are_refused_and_write_nothing() {
    let api = Api::start().await;
    let cases: [(&str, &str, u16, &str); 8] = [
        ("iris", r#"{"content_type":"text/plain","size_bytes":10}"#, 415, "unsupported_content_type"),
        ("iris", r#"{"content_type":"text/csv","size_bytes":10,"extra":1}"#, 400, "invalid_upload_request"),
        ("iris", r#"{"content_type":"text/csv"}"#, 400, "invalid_upload_request"),
        ("iris", r#"{"content_type":"text/csv","size_bytes":0}"#, 400, "invalid_upload_request"),
        ("iris", r#"{"content_type":"text/csv","size_bytes":-1}"#, 400, "invalid_upload_request"),
        // One byte over the default limits.max_object_bytes (512 MiB).
        ("iris", r#"{"content_type":"text/csv","size_bytes":536870913}"#, 413, "payload_too_large"),
        ("iris", "not json", 400, "invalid_upload_request"),
        ("UP", r#"{"content_type":"text/csv","size_bytes":10}"#, 400, "invalid_dataset"),
    ];
    for (dataset, body, status, code) in cases {
        let response = api
            .send(Method::POST, &format!("/datasets/{dataset}/uploads"), &[("content-type", "application/json")], body)
            .await;
        assert_eq!(response.status, status, "{body}");
        assert_eq!(error_of(&response).0, code, "{body}");
        assert_nothing_written(&api.stack, body).await;
    }

    // A dataset's own limit binds its uploads.
    let options =
        api.send(Method::PUT, "/datasets/small/options", &[], r#"{"limits":{"max_object_bytes":1000}}"#).await;
    assert_eq!(options.status, 200, "{}", String::from_utf8_lossy(&options.body));
    let body = r#"{"content_type":"text/csv","size_bytes":1001}"#;
    let response =
        api.send(Method::POST, "/datasets/small/uploads", &[("content-type", "application/json")], body).await;
    assert_eq!(response.status, 413);
    let (code, message) = error_of(&response);
    assert_eq!(code, "payload_too_large");
    assert!(message.contains("max_object_bytes = 1000"), "{message}");
    assert!(object_keys(&api.stack.clients, api.raw_bucket()).await.is_empty());
    assert_eq!(ingest_entries(&api).await, 0);
}

#[tokio::test]
async fn unknown_routes_and_ingests_are_404() {
    let api = Api::start().await;
    let response = api.send(Method::GET, "/nowhere", &[], Vec::new()).await;
    assert_eq!(response.status, 404);
    let response =
        api.send(Method::GET, "/datasets/iris/ingests/0192f5c4-7d3e-7a10-9c1b-5e2f8a9d0c11", &[], Vec::new()).await;
    assert_eq!(response.status, 404);
    assert_eq!(error_of(&response).0, "not_found");
    let value: Value = response.json();
    assert!(value["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}
