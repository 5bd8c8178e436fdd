//! `sluice local demo`: the lifecycle so far, on the samples shipped in `samples/`.

use std::fmt::Write as _;
use std::path::Path;

use http::Method;
use serde_json::Value;
use sluice_localcloud::client::{ClientError, HttpClient, HttpResponse};

use crate::LocalCloud;

/// A sample with a bad value, a duplicate row and a null, to show what the ETL sets aside.
const DIRTY_SAMPLE: &str = "iris-dirty.csv";

/// Each sample, the request path it is posted to, and its content type.
const SAMPLES: [(&str, &str, &str); 7] = [
    ("iris.csv", "/datasets/iris/records", "text/csv"),
    ("iris.xlsx", "/datasets/iris/records", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("iris.json", "/datasets/iris/records", "application/json"),
    ("iris.ndjson", "/datasets/iris/records", "application/x-ndjson"),
    (DIRTY_SAMPLE, "/datasets/iris/records", "text/csv"),
    ("digit-7.png", "/datasets/digits/records?label=7", "image/png"),
    ("digit-3.jpg", "/datasets/digits/records?label=3", "image/jpeg"),
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
    let mut dirty_id = String::new();
    for (file, path, content_type) in SAMPLES {
        let sample = project_root.join("samples").join(file);
        let body = std::fs::read(&sample)
            .map_err(|source| DemoError::Sample { path: sample.display().to_string(), source })?;
        let response =
            client.send(Method::POST, &format!("{api}{path}"), &[("content-type", content_type)], body).await?;
        let entry = expect(&response, 201, file)?;
        let rows = entry["row_count"].as_u64().map_or("image".to_owned(), |n| format!("{n} rows"));
        say(format!(
            "  {file:<14} -> {} {path:<33} ingest {}  {rows}",
            response.status.as_u16(),
            entry["ingest_id"].as_str().unwrap_or("?")
        ));
        if file == DIRTY_SAMPLE {
            dirty_id = entry["ingest_id"].as_str().unwrap_or_default().to_owned();
        }
        ingests.push(entry);
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
    ingests.push(upload);

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

    let first = &ingests[0];
    let (dataset, id) =
        (first["dataset"].as_str().unwrap_or_default(), first["ingest_id"].as_str().unwrap_or_default());
    say(format!("\n5. The catalog: GET /datasets/{dataset}/ingests/{id}"));
    let response = client.send(Method::GET, &format!("{api}/datasets/{dataset}/ingests/{id}"), &[], Vec::new()).await?;
    say(indented(&expect(&response, 200, "GET ingest")?));

    say("\n6. The ETL (S3 event -> etl function) turned every object into curated Parquet".into());
    for entry in &ingests {
        let (dataset, id) =
            (entry["dataset"].as_str().unwrap_or_default(), entry["ingest_id"].as_str().unwrap_or_default());
        let processed = wait_processed(&client, &api, dataset, id).await?;
        let processing = &processed["processing"];
        let outcome = match processed["status"].as_str() {
            Some("PROCESSED") => format!(
                "{} rows in, {} out, {} rejected",
                processing["rows_in"], processing["rows_out"], processing["rows_rejected"]
            ),
            _ => format!("FAILED: {}", processing["failure_reason"].as_str().unwrap_or("?")),
        };
        say(format!("  {dataset:<7} {id}  {outcome}"));
    }
    let curated = cloud.resource_name("CuratedBucket").unwrap_or("?").to_owned();
    let listing = cloud
        .clients
        .s3
        .list_objects_v2()
        .bucket(&curated)
        .send()
        .await
        .map_err(|err| DemoError::List(sluice_aws::error_chain(err)))?;
    say(format!("  s3://{curated}/"));
    for object in listing.contents() {
        say(format!("    {:<84} {:>6} bytes", object.key().unwrap_or_default(), object.size().unwrap_or_default()));
    }
    let dirty_entry = wait_processed(&client, &api, "iris", &dirty_id).await?;
    if let Some(key) = dirty_entry["processing"]["rejected_key"].as_str() {
        let rejected = cloud.clients.s3.get_object().bucket(&curated).key(key).send().await;
        if let Ok(output) = rejected
            && let Ok(body) = output.body.collect().await
        {
            say(format!("  rejected rows of {DIRTY_SAMPLE}, with their reasons:"));
            for line in String::from_utf8_lossy(&body.into_bytes()).lines() {
                say(format!("    {line}"));
            }
        }
    }

    say("\n7. The dataset: GET /datasets/iris (schema, counts, merged profile)".into());
    let response = client.send(Method::GET, &format!("{api}/datasets/iris"), &[], Vec::new()).await?;
    let summary = expect(&response, 200, "GET dataset")?;
    let fields: Vec<String> = summary["schema"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{}: {}", f["name"].as_str().unwrap_or("?"), f["type"].as_str().unwrap_or("?")))
        .collect();
    say(format!("  schema v{}: {}", summary["schema"]["version"], fields.join(", ")));
    say(format!("  objects {}  rows {}", summary["objects"], summary["rows"]));
    for column in summary["profile"]["columns"].as_array().into_iter().flatten() {
        let detail = match column["kind"].as_str() {
            Some("numeric") => format!(
                "min {} max {} mean {:.3} std {:.3}",
                column["min"],
                column["max"],
                column["mean"].as_f64().unwrap_or_default(),
                column["std"].as_f64().unwrap_or_default()
            ),
            _ => format!("top {}", column["top"]),
        };
        say(format!(
            "  {:<13} {:>3} values {:>2} nulls  {detail}",
            column["name"].as_str().unwrap_or("?"),
            column["count"],
            column["nulls"]
        ));
    }

    say("\n8. Training: POST /models/iris/train -> SageMaker job (run locally) -> register -> Model Registry".into());
    let request = r#"{"dataset":"iris","target":"species","algorithm":"linear"}"#;
    let response = client
        .send(Method::POST, &format!("{api}/models/iris/train"), &[("content-type", "application/json")], request)
        .await?;
    let started = expect(&response, 202, "POST train")?;
    say(format!("  training job {} started", started["job_name"].as_str().unwrap_or("?")));
    let model = wait_for_production(&client, &api, "iris").await?;
    for version in model["versions"].as_array().into_iter().flatten() {
        say(format!(
            "  version {} {}{}: accuracy {:.3}, f1 {:.3}",
            version["version"],
            version["status"].as_str().unwrap_or("?"),
            if version["production"] == true { " (production)" } else { "" },
            version["metrics"]["accuracy"].as_f64().unwrap_or(f64::NAN),
            version["metrics"]["f1_macro"].as_f64().unwrap_or(f64::NAN),
        ));
        say(format!("    bundle {}", version["bundle"].as_str().unwrap_or("?")));
    }

    say("\n9. Serving: POST /models/iris/predict with the production version, then feedback".into());
    let rows = r#"{"rows": [
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}]}"#;
    let json = [("content-type", "application/json")];
    let response = client.send(Method::POST, &format!("{api}/models/iris/predict"), &json, rows).await?;
    let answer = expect(&response, 200, "POST predict")?;
    say(format!(
        "  version {}, inference {:.3} ms",
        answer["version"],
        answer["latency_ms"].as_f64().unwrap_or(f64::NAN)
    ));
    for prediction in answer["predictions"].as_array().into_iter().flatten() {
        say(format!(
            "  {} -> {} {}",
            prediction["prediction_id"].as_str().unwrap_or("?"),
            prediction["prediction"],
            prediction["probabilities"]
        ));
    }
    let bad = r#"{"rows": [{"sepal_length": "long", "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]}"#;
    let refused = client.send(Method::POST, &format!("{api}/models/iris/predict"), &json, bad).await?;
    say(format!("  refused with {}: {}", refused.status, refused.json()["error"]["message"].as_str().unwrap_or("?")));
    let id = answer["predictions"][0]["prediction_id"].as_str().unwrap_or_default();
    let feedback =
        client.send(Method::POST, &format!("{api}/predictions/{id}/feedback"), &json, r#"{"truth": "setosa"}"#).await?;
    let stored = expect(&feedback, 201, "POST feedback")?;
    say(format!("  feedback stored: {} was {}, truth {}", id, stored["output"]["prediction"], stored["feedback"]));
    let capture = cloud.resource_name("CaptureBucket").unwrap_or("?").to_owned();
    let listing = cloud
        .clients
        .s3
        .list_objects_v2()
        .bucket(&capture)
        .send()
        .await
        .map_err(|err| DemoError::List(sluice_aws::error_chain(err)))?;
    say(format!("  captured for monitoring in s3://{capture}/"));
    for object in listing.contents() {
        say(format!("    {}", object.key().unwrap_or_default()));
    }
    Ok(report)
}

/// `GET /models/{model}` once a production version exists (bounded: 120 s).
async fn wait_for_production(client: &HttpClient, api: &str, model: &str) -> Result<Value, DemoError> {
    for _ in 0..1200 {
        let response = client.send(Method::GET, &format!("{api}/models/{model}"), &[], Vec::new()).await?;
        if response.status.as_u16() == 200 && response.json()["production_version"].is_number() {
            return Ok(response.json());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(DemoError::Unexpected(format!("model {model} had no production version within 120 s")))
}

/// The entry once the ETL has run (bounded: 30 s).
async fn wait_processed(client: &HttpClient, api: &str, dataset: &str, id: &str) -> Result<Value, DemoError> {
    for _ in 0..300 {
        let response =
            client.send(Method::GET, &format!("{api}/datasets/{dataset}/ingests/{id}"), &[], Vec::new()).await?;
        let entry = expect(&response, 200, "GET ingest")?;
        if matches!(entry["status"].as_str(), Some("PROCESSED" | "FAILED")) {
            return Ok(entry);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(DemoError::Unexpected(format!("ingest {id} was not processed within 30 s")))
}

fn indented(value: &Value) -> String {
    let mut text = String::new();
    for line in serde_json::to_string_pretty(value).unwrap_or_default().lines() {
        let _ = writeln!(text, "  {line}");
    }
    text.trim_end().to_owned()
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
