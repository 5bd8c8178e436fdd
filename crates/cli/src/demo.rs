//! `sluice local demo`: the whole lifecycle on the samples in `samples/`, narrated. Ingest
//! every format → ETL → train → register → predict → the world changes (a recalibrated
//! instrument) → monitor finds drift → CloudWatch alarm → SNS → remediate → retraining on
//! the new data → the gate → the new version promoted → its predictions. Ends with a
//! summary: versions, metrics, the top drift figures and how long each stage took.

use std::path::Path;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use sluice_localcloud::client::{ClientError, HttpClient, HttpResponse};

use crate::LocalCloud;

/// The model the demo trains and watches, on the dataset of the same name.
const MODEL: &str = "iris";
/// A sample with a bad value, a duplicate row and a null, to show what the ETL sets aside.
const DIRTY_SAMPLE: &str = "iris-dirty.csv";
/// Fisher's 150 irises: the training data and today's traffic.
const FULL_SAMPLE: &str = "iris-full.csv";
/// The same flowers measured by a recalibrated instrument (petals read 2.5 cm longer and
/// 1 cm wider): tomorrow's labelled data and traffic.
const RECALIBRATED_SAMPLE: &str = "iris-recalibrated.csv";
/// How long the demo waits for any one stage.
const STAGE_LIMIT: Duration = Duration::from_secs(120);

/// Each sample, the request path it is posted to, and its content type.
const SAMPLES: [(&str, &str, &str); 8] = [
    ("iris.csv", "/datasets/iris/records", "text/csv"),
    ("iris.xlsx", "/datasets/iris/records", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("iris.json", "/datasets/iris/records", "application/json"),
    ("iris.ndjson", "/datasets/iris/records", "application/x-ndjson"),
    (DIRTY_SAMPLE, "/datasets/iris/records", "text/csv"),
    (FULL_SAMPLE, "/datasets/iris/records", "text/csv"),
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
    #[error("the local cloud: {0}")]
    Cloud(String),
}

/// Prints and keeps the narration, and times the stages.
struct Narrator {
    report: String,
    started: Instant,
    stage: Option<(String, Instant)>,
    stages: Vec<(String, Duration)>,
}

impl Narrator {
    fn say(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        self.report.push_str(line.as_ref());
        self.report.push('\n');
    }

    /// Starts a numbered stage (ending the one before).
    fn stage(&mut self, title: &str) {
        self.end_stage();
        let number = self.stages.len() + 1;
        self.say(format!("\n{number}. {title}"));
        self.stage = Some((title.to_owned(), Instant::now()));
    }

    fn end_stage(&mut self) {
        if let Some((title, started)) = self.stage.take() {
            self.stages.push((title, started.elapsed()));
        }
    }
}

/// The demo's HTTP calls to the local API.
struct Api {
    client: HttpClient,
    url: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: impl Into<bytes::Bytes>) -> Result<HttpResponse, DemoError> {
        let headers = [("content-type", "application/json")];
        Ok(self.client.send(method, &format!("{}{path}", self.url), &headers, body).await?)
    }

    async fn get(&self, path: &str) -> Result<Value, DemoError> {
        expect(&self.call(Method::GET, path, Vec::new()).await?, 200, path)
    }

    /// Polls `GET path` until `done` holds (bounded by [`STAGE_LIMIT`]).
    async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Result<Value, DemoError> {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < STAGE_LIMIT {
            let response = self.call(Method::GET, path, Vec::new()).await?;
            last = response.json();
            if response.status.as_u16() == 200 && done(&last) {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(DemoError::Unexpected(format!("{what} did not happen within {STAGE_LIMIT:?}; last answer: {last}")))
    }

    /// Predicts `rows` (chunks of 50) and returns how many the model got right and the
    /// prediction ids with their true labels.
    async fn predict(&self, rows: &[Value]) -> Result<(usize, Vec<(String, String)>, i64), DemoError> {
        let (mut correct, mut ids, mut version) = (0, Vec::new(), 0);
        for chunk in rows.chunks(50) {
            let body = json!({ "rows": chunk }).to_string();
            let answer =
                expect(&self.call(Method::POST, &format!("/models/{MODEL}/predict"), body).await?, 200, "predict")?;
            version = answer["version"].as_i64().unwrap_or_default();
            for (row, prediction) in chunk.iter().zip(answer["predictions"].as_array().into_iter().flatten()) {
                let truth = row["species"].as_str().unwrap_or_default().to_owned();
                correct += usize::from(prediction["prediction"].as_str() == Some(truth.as_str()));
                ids.push((prediction["prediction_id"].as_str().unwrap_or_default().to_owned(), truth));
            }
        }
        Ok((correct, ids, version))
    }
}

/// Runs the demo against a started local cloud and returns the report it printed.
pub async fn run(cloud: &LocalCloud, project_root: &Path) -> Result<String, DemoError> {
    let api = Api { client: HttpClient::default(), url: cloud.api.url() };
    let mut n = Narrator { report: String::new(), started: Instant::now(), stage: None, stages: Vec::new() };
    let operators = subscribe_operators(cloud).await?;
    let speed = cloud.clock.speed();
    n.say("Sluice local cloud");
    n.say(format!("  AWS endpoint   {}", cloud.endpoint));
    n.say(format!("  API            {}", api.url));
    n.say(format!(
        "  clock          {speed}x: the 15-minute monitoring schedule runs every {:.1} s, alarm periods and capture buffers shrink alike",
        900.0 / speed
    ));
    n.say("  metrics        .local/metrics.ndjson (EMF lines, also sent to the local CloudWatch)");

    n.stage("Ingest: every sample format through POST /datasets/{dataset}/records");
    let mut ingests = Vec::new();
    for (file, path, content_type) in SAMPLES {
        let body = read_sample(project_root, file)?;
        let url = format!("{}{path}", api.url);
        let response = api.client.send(Method::POST, &url, &[("content-type", content_type)], body).await?;
        let entry = expect(&response, 201, file)?;
        let rows = entry["row_count"].as_u64().map_or("an image".to_owned(), |n| format!("{n} rows"));
        n.say(format!("  {file:<22} -> {}  {rows}", response.status.as_u16()));
        ingests.push((file, entry));
    }
    let bad: [(&str, &str, &str, &[u8]); 3] = [
        ("malformed CSV", "iris", "text/csv", b"a,b,c\n1,2,3\n4,5\n"),
        ("unknown type", "iris", "text/plain", b"hello"),
        ("bad dataset name", "..%2Fetc", "text/csv", b"a\n1\n"),
    ];
    for (what, dataset, content_type, body) in bad {
        let url = format!("{}/datasets/{dataset}/records", api.url);
        let response = api.client.send(Method::POST, &url, &[("content-type", content_type)], body.to_vec()).await?;
        let message = response.json()["error"]["message"].as_str().unwrap_or_default().to_owned();
        n.say(format!("  {what:<22} -> {} {message}", response.status.as_u16()));
    }

    n.stage("ETL: S3 event -> etl -> curated Parquet, rejected rows with reasons, profiles");
    for (file, entry) in &ingests {
        let path = format!(
            "/datasets/{}/ingests/{}",
            entry["dataset"].as_str().unwrap_or("?"),
            entry["ingest_id"].as_str().unwrap_or("?")
        );
        let processed =
            api.until(&path, "the ETL", |e| matches!(e["status"].as_str(), Some("PROCESSED" | "FAILED"))).await?;
        let p = &processed["processing"];
        n.say(format!(
            "  {file:<22} {} {} in, {} out, {} rejected",
            processed["status"].as_str().unwrap_or("?"),
            p["rows_in"],
            p["rows_out"],
            p["rows_rejected"]
        ));
        if *file == DIRTY_SAMPLE
            && let Some(key) = p["rejected_key"].as_str()
        {
            let bucket = cloud.resource_name("CuratedBucket").unwrap_or("?");
            let rejected = read_object(cloud, bucket, key).await?;
            for line in String::from_utf8_lossy(&rejected).lines() {
                n.say(format!("    rejected: {line}"));
            }
        }
    }
    let dataset = api.get("/datasets/iris").await?;
    n.say(format!(
        "  dataset iris: {} objects, {} rows curated ({} rejected), schema v{}",
        dataset["objects"]["total"], dataset["rows"]["out"], dataset["rows"]["rejected"], dataset["schema"]["version"]
    ));

    n.stage("Train: POST /models/iris/train -> SageMaker job (the trainer, run locally) -> register -> gate");
    let request = json!({"dataset": "iris", "target": "species", "algorithm": "linear"}).to_string();
    let started = expect(&api.call(Method::POST, "/models/iris/train", request).await?, 202, "train")?;
    n.say(format!("  job {} started", started["job_name"].as_str().unwrap_or("?")));
    let model = api.until("/models/iris", "version 1", |m| m["production_version"] == 1).await?;
    let v1 = &model["versions"][0];
    n.say(format!(
        "  version 1 {}: validation accuracy {:.3} ({})",
        v1["status"].as_str().unwrap_or("?"),
        v1["metrics"]["accuracy"].as_f64().unwrap_or(f64::NAN),
        v1["gate_reason"].as_str().unwrap_or("?")
    ));

    n.stage("Serve: today's traffic, 150 flowers through POST /models/iris/predict");
    let today = sample_rows(project_root, FULL_SAMPLE)?;
    let (correct, _, version) = api.predict(&today).await?;
    n.say(format!("  version {version} answered; {correct} of {} right", today.len()));
    n.say("  each row is captured (one line per row) through the Firehose capture stream");

    n.stage("The world changes: a recalibrated instrument reads petals 2.5 cm longer and 1 cm wider");
    let recalibrated_entry = expect(
        &api.client
            .send(
                Method::POST,
                &format!("{}/datasets/iris/records", api.url),
                &[("content-type", "text/csv")],
                read_sample(project_root, RECALIBRATED_SAMPLE)?,
            )
            .await?,
        201,
        RECALIBRATED_SAMPLE,
    )?;
    let path = format!("/datasets/iris/ingests/{}", recalibrated_entry["ingest_id"].as_str().unwrap_or("?"));
    api.until(&path, "the new data's ETL", |e| e["status"] == "PROCESSED").await?;
    n.say(format!("  new labelled data ingested: {RECALIBRATED_SAMPLE} ({} rows)", recalibrated_entry["row_count"]));
    let tomorrow = sample_rows(project_root, RECALIBRATED_SAMPLE)?;
    let (correct, ids, version) = api.predict(&tomorrow).await?;
    n.say(format!("  version {version} on the new traffic: {correct} of {} right", tomorrow.len()));
    // Ground truth comes back for some predictions: every third, all species alike.
    let labelled: Vec<&(String, String)> = ids.iter().step_by(3).collect();
    for (id, truth) in &labelled {
        let body = json!({ "truth": truth }).to_string();
        expect(&api.call(Method::POST, &format!("/predictions/{id}/feedback"), body).await?, 201, "feedback")?;
    }
    n.say(format!(
        "  ground truth sent for {} of those predictions (POST /predictions/{{id}}/feedback)",
        labelled.len()
    ));
    let v1_on_new_traffic = correct;

    n.stage("Monitor (schedule): the capture against version 1's baseline");
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let history = format!(
        "/models/iris/drift?since={}",
        since.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
    );
    let reports = api.until(&history, "a drift verdict", |h| drift_summary(h).is_some()).await?;
    let drift = drift_summary(&reports).cloned().unwrap_or_default();
    n.say(format!(
        "  window {} .. {}: {} over {} predictions of version {}",
        drift["window_start"].as_str().unwrap_or("?"),
        drift["window_end"].as_str().unwrap_or("?"),
        drift["verdict"].as_str().unwrap_or("?"),
        drift["predictions"],
        drift["version"]
    ));
    let mut top_drift = Vec::new();
    for feature in drift["top_features"].as_array().into_iter().flatten() {
        let line = format!(
            "{:<13} {:<9} {} statistic {:.3} p {:.1e} distance {:.3} (threshold {}) n {}",
            feature["feature"].as_str().unwrap_or("?"),
            feature["verdict"].as_str().unwrap_or("?"),
            feature["test"].as_str().unwrap_or("-"),
            feature["statistic"].as_f64().unwrap_or(f64::NAN),
            feature["p_value"].as_f64().unwrap_or(f64::NAN),
            feature["distance"].as_f64().unwrap_or(f64::NAN),
            feature["threshold"],
            feature["n"]
        );
        n.say(format!("  {line}"));
        if feature["verdict"] == "drift" {
            top_drift.push(line);
        }
    }
    if let Some(prediction) = drift["prediction"].as_object() {
        n.say(format!(
            "  {:<13} {:<9} distance {:.3}",
            "(predictions)",
            prediction["verdict"].as_str().unwrap_or("?"),
            prediction["distance"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    let quality = &drift["quality"];
    if let (Some(live), Some(validation)) = (quality["live"].as_f64(), quality["validation"].as_f64()) {
        n.say(format!("  live accuracy {live:.3} from {} feedback (validation {validation:.3})", quality["feedback"]));
    }

    n.stage("Alarm -> SNS -> remediate: one retraining for this drift episode");
    let events = api.until("/models/iris/events", "the retraining", |e| has_event(e, "retraining_started")).await?;
    for event in events["events"].as_array().into_iter().flatten() {
        if matches!(event["kind"].as_str(), Some("drift_detected" | "alarm" | "retraining_started")) {
            n.say(format!(
                "  {:<18} {}",
                event["kind"].as_str().unwrap_or("?"),
                event["message"].as_str().unwrap_or("?")
            ));
        }
    }
    for message in operator_messages(cloud, &operators).await? {
        n.say("  operators were told:");
        for line in message.lines() {
            n.say(format!("    | {line}"));
        }
    }

    n.stage("Retrain on the new data -> register -> the gate compares both versions on the same rows");
    let model =
        api.until("/models/iris", "version 2", |m| m["versions"].as_array().is_some_and(|v| v.len() >= 2)).await?;
    let v2 = &model["versions"][0];
    n.say(format!(
        "  version 2 {}: {}",
        v2["status"].as_str().unwrap_or("?"),
        v2["gate_reason"].as_str().unwrap_or("?")
    ));
    let model = api.until("/models/iris", "version 2 in production", |m| m["production_version"] == 2).await?;

    n.stage("Serve: version 2 answers the new traffic");
    // predict asks for the production version every ModelRefreshSeconds.
    let started = Instant::now();
    let (mut correct, mut version) = (0, 0);
    while version != 2 && started.elapsed() < STAGE_LIMIT {
        (correct, _, version) = api.predict(&tomorrow[..1]).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if version == 2 {
        (correct, _, version) = api.predict(&tomorrow).await?;
    }
    n.say(format!("  version {version} on the new traffic: {correct} of {} right", tomorrow.len()));
    let v2_on_new_traffic = correct;
    n.end_stage();

    n.say("\nTimeline (GET /models/iris/events)");
    let events = api.get("/models/iris/events").await?;
    for event in events["events"].as_array().into_iter().flatten() {
        n.say(format!(
            "  {} {:<18} {}",
            event["time"].as_str().unwrap_or("?").get(11..19).unwrap_or("?"),
            event["kind"].as_str().unwrap_or("?"),
            event["message"].as_str().unwrap_or("?")
        ));
    }

    n.say("\nSummary");
    for version in model["versions"].as_array().into_iter().flatten().rev() {
        n.say(format!(
            "  version {} {:<22} validation accuracy {:.3}  trained {}",
            version["version"],
            format!(
                "{}{}",
                version["status"].as_str().unwrap_or("?"),
                if version["production"] == true { " (production)" } else { "" }
            ),
            version["metrics"]["accuracy"].as_f64().unwrap_or(f64::NAN),
            version["trained_at"].as_str().unwrap_or("?")
        ));
    }
    n.say(format!(
        "  on the recalibrated traffic: version 1 {v1_on_new_traffic} of {count} right, version 2 {v2_on_new_traffic} of {count}",
        count = tomorrow.len()
    ));
    n.say("  drift that set off the retraining:");
    for line in &top_drift {
        n.say(format!("  {line}"));
    }
    n.say("  stage durations:");
    let stages = n.stages.clone();
    for (title, took) in &stages {
        n.say(format!("    {:>6.1} s  {}", took.as_secs_f64(), title.split(':').next().unwrap_or(title)));
    }
    let total = n.started.elapsed();
    n.say(format!("    {:>6.1} s  in all", total.as_secs_f64()));
    Ok(n.report)
}

/// The first drift verdict in a drift history.
fn drift_summary(history: &Value) -> Option<&Value> {
    history["reports"].as_array()?.iter().find(|report| report["verdict"] == "drift")
}

fn has_event(events: &Value, kind: &str) -> bool {
    events["events"].as_array().is_some_and(|events| events.iter().any(|e| e["kind"] == kind))
}

fn read_sample(project_root: &Path, file: &str) -> Result<Vec<u8>, DemoError> {
    let path = project_root.join("samples").join(file);
    std::fs::read(&path).map_err(|source| DemoError::Sample { path: path.display().to_string(), source })
}

/// A CSV sample's rows as JSON objects (numbers where they parse).
fn sample_rows(project_root: &Path, file: &str) -> Result<Vec<Value>, DemoError> {
    let text = String::from_utf8_lossy(&read_sample(project_root, file)?).into_owned();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    Ok(lines
        .map(|line| {
            let row: serde_json::Map<String, Value> = header
                .iter()
                .zip(line.split(','))
                .map(|(name, value)| {
                    let value = value.parse::<f64>().map_or_else(|_| Value::from(value), Value::from);
                    ((*name).to_owned(), value)
                })
                .collect();
            Value::Object(row)
        })
        .collect())
}

async fn read_object(cloud: &LocalCloud, bucket: &str, key: &str) -> Result<Vec<u8>, DemoError> {
    let object = cloud.clients.s3.get_object().bucket(bucket).key(key).send().await;
    let object = object.map_err(|e| DemoError::Cloud(sluice_aws::error_chain(e)))?;
    Ok(object.body.collect().await.map_err(|e| DemoError::Cloud(e.to_string()))?.into_bytes().to_vec())
}

/// A queue subscribed to the operators' topic, so the demo shows what they are told.
async fn subscribe_operators(cloud: &LocalCloud) -> Result<String, DemoError> {
    let topic = cloud
        .stack
        .topics
        .iter()
        .find(|t| t.logical_id == "OperatorsTopic")
        .ok_or_else(|| DemoError::Cloud("the template has no OperatorsTopic".into()))?;
    let name = format!("{}-demo-operators", cloud.stack.name);
    let failed = |e: String| DemoError::Cloud(e);
    let created = cloud.clients.sqs.create_queue().queue_name(&name).send().await;
    let url = created.map_err(|e| failed(sluice_aws::error_chain(e)))?.queue_url.unwrap_or_default();
    let sns = aws_sdk_sns::Client::new(&cloud.clients.config);
    let arn = format!(
        "arn:aws:sqs:{}:{}:{name}",
        sluice_localcloud::template::REGION,
        sluice_localcloud::template::ACCOUNT_ID
    );
    sns.subscribe()
        .topic_arn(&topic.arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .map_err(|e| failed(sluice_aws::error_chain(e)))?;
    Ok(url)
}

/// The operators' messages received so far.
async fn operator_messages(cloud: &LocalCloud, queue: &str) -> Result<Vec<String>, DemoError> {
    let received = cloud.clients.sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await;
    let received = received.map_err(|e| DemoError::Cloud(sluice_aws::error_chain(e)))?;
    Ok(received
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m.body()?).ok())
        .map(|envelope| {
            format!("{}\n{}", envelope["Subject"].as_str().unwrap_or(""), envelope["Message"].as_str().unwrap_or(""))
        })
        .collect())
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
