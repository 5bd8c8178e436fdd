//! `sluice local demo`: the lifecycle so far, on the samples shipped in `samples/`.

use std::fmt::Write as _;
use std::path::Path;

use http::Method;
use serde_json::Value;
use sluice_localcloud::client::{ClientError, HttpClient, HttpResponse};

use crate::LocalCloud;

/// Each sample and the dataset it is ingested into.
const SAMPLES: [(&str, &str, &str); 6] = [
    ("iris.csv", "iris", "text/csv"),
    ("iris.xlsx", "iris", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("iris.json", "iris", "application/json"),
    ("iris.ndjson", "iris", "application/x-ndjson"),
    ("digit-7.png", "digits", "image/png"),
    ("digit-3.jpg", "digits", "image/jpeg"),
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot read sample {path}: {source}")]
    Sample { path: String, source: std::io::Error },
    #[error(transparent)]
    Http(#[from] ClientError),
    #[error("{0}")]
    Unexpected(String),
    #[error("listing the raw zone failed: {0}")]
    List(String),
}

/// Runs the demo against a started local cloud and returns the report it printed.
pub async fn run(cloud: &LocalCloud, project_root: &Path) -> Result<String, DemoError> {
    let client = HttpClient::default();
    let api = cloud.api.url();
    let bucket = cloud.resource_name("RawBucket").unwrap_or("?").to_owned();
    let mut report = String::new();
    let mut say = |line: String| {
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    };

    say("Sluice local cloud".into());
    say(format!("  AWS endpoint   {}", cloud.endpoint));
    say(format!("  API            {api}"));
    say(format!("  raw bucket     {bucket}"));
    say(format!("  catalog table  {}", cloud.resource_name("CatalogTable").unwrap_or("?")));
    say("  metrics        .local/metrics.ndjson (CloudWatch EMF, as Lambda would log them)".into());

    say("\n1. Samples uploaded with POST /datasets/{dataset}/records".into());
    let mut ingests = Vec::new();
    for (file, dataset, content_type) in SAMPLES {
        let path = project_root.join("samples").join(file);
        let body =
            std::fs::read(&path).map_err(|source| DemoError::Sample { path: path.display().to_string(), source })?;
        let url = format!("{api}/datasets/{dataset}/records");
        let response = client.send(Method::POST, &url, &[("content-type", content_type)], body).await?;
        let entry = expect(&response, 201, file)?;
        let rows = entry["row_count"].as_u64().map_or("image".to_owned(), |n| format!("{n} rows"));
        say(format!(
            "  {file:<12} -> {} {dataset:<7} ingest {}  {rows}",
            response.status.as_u16(),
            entry["ingest_id"].as_str().unwrap_or("?")
        ));
        ingests.push((dataset, entry));
    }

    say("\n2. A large file goes through a presigned upload URL".into());
    let url = format!("{api}/datasets/iris/uploads");
    let response = client
        .send(Method::POST, &url, &[("content-type", "application/json")], r#"{"content_type":"text/csv"}"#)
        .await?;
    let upload = expect(&response, 201, "POST /uploads")?;
    let put_url = upload["upload"]["url"].as_str().unwrap_or_default().to_owned();
    let csv = std::fs::read(project_root.join("samples/iris.csv"))
        .map_err(|source| DemoError::Sample { path: "samples/iris.csv".into(), source })?;
    let put = client.send(Method::PUT, &put_url, &[("content-type", "text/csv")], csv).await?;
    say(format!(
        "  POST /datasets/iris/uploads -> {} ({}), PUT to the URL -> {}",
        response.status.as_u16(),
        upload["status"].as_str().unwrap_or("?"),
        put.status.as_u16()
    ));
    say(format!("  object: s3://{bucket}/{}", upload["key"].as_str().unwrap_or("?")));

    say("\n3. Bad input is refused with a reason, and nothing is written".into());
    let bad: [(&str, &str, &str, &[u8]); 4] = [
        ("malformed CSV", "iris", "text/csv", b"a,b,c\n1,2,3\n4,5\n"),
        ("unknown type", "iris", "text/plain", b"hello"),
        ("bad dataset name", "..%2Fetc", "text/csv", b"a\n1\n"),
        ("broken image", "digits", "image/png", b"\x89PNG\r\n\x1a\nnope"),
    ];
    for (what, dataset, content_type, body) in bad {
        let url = format!("{api}/datasets/{dataset}/records");
        let response = client.send(Method::POST, &url, &[("content-type", content_type)], body.to_vec()).await?;
        let message = response.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        say(format!("  {what:<16} -> {} {message}", response.status.as_u16()));
    }

    say(format!("\n4. The raw zone: s3://{bucket}/"));
    let listing = cloud
        .clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .map_err(|err| DemoError::List(sluice_aws::error_chain(err)))?;
    for object in listing.contents() {
        say(format!("  {:<72} {:>6} bytes", object.key().unwrap_or_default(), object.size().unwrap_or_default()));
    }

    let (dataset, first) = &ingests[0];
    let id = first["ingest_id"].as_str().unwrap_or_default();
    say(format!("\n5. The catalog: GET /datasets/{dataset}/ingests/{id}"));
    let response = client.send(Method::GET, &format!("{api}/datasets/{dataset}/ingests/{id}"), &[], Vec::new()).await?;
    let entry = expect(&response, 200, "GET ingest")?;
    let mut pretty = String::new();
    for line in serde_json::to_string_pretty(&entry).unwrap_or_default().lines() {
        let _ = writeln!(pretty, "  {line}");
    }
    say(pretty.trim_end().to_owned());
    Ok(report)
}

fn expect(response: &HttpResponse, status: u16, what: &str) -> Result<Value, DemoError> {
    if response.status.as_u16() != status {
        return Err(DemoError::Unexpected(format!(
            "{what}: expected {status}, got {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )));
    }
    Ok(response.json())
}
