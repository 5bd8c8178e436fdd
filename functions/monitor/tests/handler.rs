//! The monitor function fed with the scheduled event, against moto: capture objects as
//! Firehose delivers them, a production model with a baseline, and what the monitor
//! publishes, reports, logs and alarms on.

use std::io::Write;

use aws_sdk_cloudwatch::types::Dimension;
use monitor::Monitor;
use serde_json::{Value, json};
use sluice_aws::Catalog;
use sluice_core::capture::{CaptureRecord, CapturedPrediction};
use sluice_core::model_event::EventKind;
use sluice_model::metrics::PREDICTION_COLUMN;
use sluice_model::{Baseline, Bundle, Column, Frame};
use sluice_profile::ColumnProfile;
use sluice_serving::{Prediction, Predictor};
use sluice_tests::TestStack;
use sluice_tests::bundle::{flower_bundle, flower_classifier, register_bundle};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Deterministic "random" numbers for the traffic.
struct Noise(u64);

impl Noise {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal: the mean of four uniforms, scaled.
    fn normal(&mut self, mean: f64, std: f64) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum();
        mean + (sum - 2.0) * std * (3.0_f64).sqrt()
    }
}

fn rows(noise: &mut Noise, count: usize, petal_shift: f64) -> Vec<Value> {
    (0..count)
        .map(|_| {
            let colour = if noise.unit() < 0.5 { "red" } else { "blue" };
            json!({"petal": noise.normal(2.0 + petal_shift, 0.5), "colour": colour})
        })
        .collect()
}

struct Fixture {
    stack: TestStack,
    monitor: Monitor,
    catalog: Catalog,
    predictor: Predictor,
    since: OffsetDateTime,
}

impl Fixture {
    async fn new(environment: &[(&str, &str)]) -> Self {
        let stack = TestStack::provision().await;
        let mut variables = stack.environment("MonitorFunction");
        variables.insert("CAPTURE_SETTLE_SECONDS".into(), "0".into());
        for (name, value) in environment {
            variables.insert((*name).to_owned(), (*value).to_owned());
        }
        // A flower classifier with the baseline of its training rows and predictions.
        let (network, manifest) = flower_classifier(21);
        let mut bundle: Bundle = flower_bundle(&network, &manifest);
        let predictor = Predictor::load(&bundle).unwrap();
        let training = rows(&mut Noise(1), 2000, 0.0);
        let frame = Frame {
            columns: vec![
                ("petal".into(), Column::Numeric(training.iter().map(|r| r["petal"].as_f64()).collect())),
                (
                    "colour".into(),
                    Column::Categorical(training.iter().map(|r| r["colour"].as_str().map(str::to_owned)).collect()),
                ),
            ],
        };
        let mut labels = std::collections::BTreeMap::new();
        for prediction in predictor.predict(&training).unwrap().unwrap() {
            let Prediction::Label(label) = prediction.prediction else { panic!("a classifier") };
            *labels.entry(label).or_insert(0) += 1;
        }
        bundle.baseline = Some(Baseline {
            data: Baseline::profile(&frame),
            predictions: Some(ColumnProfile::categorical(PREDICTION_COLUMN, "string", labels, 0, 0)),
        });
        let before = OffsetDateTime::now_utc() - Duration::seconds(1);
        register_bundle(&stack.clients, &stack.stack, &bundle, true).await;
        let monitor = Monitor::from_settings(&stack.clients, &variables).unwrap();
        let catalog = Catalog::new(stack.clients.dynamodb.clone(), stack.table("CatalogTable"));
        Self { stack, monitor, catalog, predictor, since: before }
    }

    /// Delivers `rows`, predicted by the production version, as one gzip capture object.
    async fn deliver(&self, rows: &[Value]) {
        let predictions = self.predictor.predict(rows).unwrap().unwrap();
        let now = OffsetDateTime::now_utc();
        let mut lines = Vec::new();
        for (row, (input, prediction)) in rows.iter().zip(predictions).enumerate() {
            let record = CaptureRecord::Prediction(CapturedPrediction {
                prediction_id: format!("{:032x}-{row}", now.unix_timestamp_nanos()),
                time: now,
                model: "flowers".into(),
                version: 1,
                input: input.clone(),
                output: serde_json::to_value(prediction).unwrap(),
                latency_ms: 0.1,
                rollout: None,
            });
            lines.extend_from_slice(record.to_line().as_bytes());
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&lines).unwrap();
        let key =
            format!("capture/date={}/hour={:02}/stream-1-{}.gz", now.date(), now.hour(), now.unix_timestamp_nanos());
        let bucket = self.stack.bucket("CaptureBucket");
        let body = encoder.finish().unwrap();
        self.stack.clients.s3.put_object().bucket(bucket).key(key).body(body.into()).send().await.unwrap();
    }

    /// One scheduled run at `at`.
    async fn run(&self, at: OffsetDateTime) -> Value {
        let event = json!({"detail-type": "Scheduled Event", "source": "aws.events",
                           "time": at.format(&Rfc3339).unwrap(), "detail": {}});
        self.monitor.handle(&event).await.unwrap()
    }

    /// A run a second after the last delivery (S3's object times have whole seconds).
    async fn later_run(&self) -> Value {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        self.run(OffsetDateTime::now_utc()).await
    }

    async fn metric(&self, name: &str) -> Vec<f64> {
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&self.stack.clients.config);
        let namespace = &self.stack.environment("MonitorFunction")["METRICS_NAMESPACE"];
        let now = OffsetDateTime::now_utc();
        let stats = cloudwatch
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(name)
            .dimensions(Dimension::builder().name("Model").value("flowers").build())
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                (self.since - Duration::hours(1)).unix_timestamp(),
            ))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs((now + Duration::hours(1)).unix_timestamp()))
            .period(7200)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
            .send()
            .await
            .unwrap();
        stats.datapoints().iter().filter_map(|d| d.maximum()).collect()
    }

    async fn alarm_names(&self) -> Vec<String> {
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&self.stack.clients.config);
        let prefix = format!("{}-model-", self.stack.stack.name);
        let alarms = cloudwatch.describe_alarms().alarm_name_prefix(prefix).send().await.unwrap();
        let mut names: Vec<String> =
            alarms.metric_alarms().iter().filter_map(|a| a.alarm_name().map(str::to_owned)).collect();
        names.sort();
        names
    }
}

#[tokio::test]
async fn too_few_predictions_publish_nothing_and_keep_the_window_open() {
    let fixture = Fixture::new(&[]).await;
    fixture.deliver(&rows(&mut Noise(7), 40, 3.0)).await;
    let result = fixture.later_run().await;
    assert_eq!(result["models"][0]["verdict"], "insufficient_data", "{result}");
    assert!(fixture.metric("DriftDetected").await.is_empty(), "nothing an alarm could read");
    assert_eq!(fixture.catalog.monitor_state("flowers").await.unwrap(), None, "the watermark has not moved");

    // More traffic arrives: the window still holds the first rows, and now it is enough.
    fixture.deliver(&rows(&mut Noise(8), 100, 3.0)).await;
    let result = fixture.later_run().await;
    let summary = &result["models"][0];
    assert_eq!((summary["verdict"].as_str(), summary["predictions"].as_u64()), (Some("drift"), Some(140)), "{result}");
}

#[tokio::test]
async fn a_shifted_feature_is_drift_named_first_with_its_figures() {
    let fixture = Fixture::new(&[]).await;
    fixture.deliver(&rows(&mut Noise(3), 300, 0.0)).await;
    let quiet = fixture.later_run().await;
    assert_eq!(quiet["models"][0]["verdict"], "no_drift", "{quiet}");
    assert_eq!(fixture.metric("DriftDetected").await, [0.0]);

    fixture.deliver(&rows(&mut Noise(4), 300, 1.5)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let at = OffsetDateTime::now_utc();
    let drifted = fixture.run(at).await;
    let summary = &drifted["models"][0];
    assert_eq!(summary["verdict"], "drift", "{drifted}");
    assert_eq!(summary["predictions"], 300, "only the rows since the last run");
    assert_eq!(summary["drifting"], json!(["petal"]));
    let top = &summary["top_features"][0];
    assert_eq!((top["feature"].as_str(), top["test"].as_str()), (Some("petal"), Some("ks")));
    assert!(top["distance"].as_f64().unwrap() >= top["threshold"].as_f64().unwrap(), "{top}");
    assert_eq!(top["n"], 300);
    assert!(fixture.metric("DriftDetected").await.contains(&1.0));

    // The full report is in S3 where the summary says.
    let report_uri = summary["report"].as_str().unwrap();
    let report = sluice_aws::read_s3_uri(&fixture.stack.clients.s3, report_uri, 1 << 20).await.unwrap();
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["report"]["features"].as_array().unwrap().len(), 2, "every feature");

    // The same scheduled event again: the same window, no second drift entry.
    fixture.run(at).await;
    let events = fixture.catalog.events("flowers", None, 100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::DriftDetected).count(), 1);
    let history = fixture.catalog.drift_summaries("flowers", Some(fixture.since), 10).await.unwrap();
    assert_eq!(history.len(), 2, "one summary per window: {history:?}");
}

#[tokio::test]
async fn every_production_model_gets_its_alarms_and_loses_them_with_production() {
    let fixture = Fixture::new(&[]).await;
    fixture.later_run().await;
    let again = fixture.later_run().await;
    assert_eq!(again["alarms"]["put"], json!([]), "alarms as wanted are left alone");
    let prefix = format!("{}-model", fixture.stack.stack.name);
    assert_eq!(
        fixture.alarm_names().await,
        [format!("{prefix}-flowers-drift"), format!("{prefix}-flowers-errors"), format!("{prefix}-flowers-quality")]
    );
    let registry = sluice_tests::bundle::registry(&fixture.stack.clients, &fixture.stack.stack);
    let flowers = sluice_core::ModelName::parse("flowers").unwrap();
    registry.set_approval(&flowers, 1, sluice_model::registry::Approval::Rejected).await.unwrap();
    registry.publish_production(&flowers).await.unwrap();
    fixture.later_run().await;
    assert!(fixture.alarm_names().await.is_empty(), "no production, no alarms");
}
