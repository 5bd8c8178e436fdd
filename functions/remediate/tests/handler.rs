//! The remediate function fed with real SNS events carrying CloudWatch's alarm notification,
//! against moto: the episode lock under concurrent duplicates and flapping alarms, waiting
//! for data, and what the operators are told.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::sns::SnsEvent;
use remediate::{Outcome, Remediate};
use serde_json::{Value, json};
use sluice_aws::{Catalog, TrainingJobRecord};
use sluice_core::model_event::EventKind;
use sluice_core::schema::{ColumnType, Field, Schema};
use sluice_core::{CatalogEntry, DatasetName, IngestId, IngestSource, IngestStatus, ModelName, Processing};
use sluice_model::registry::Approval;
use sluice_tests::TestStack;
use sluice_tests::bundle::registry;
use time::{Duration, OffsetDateTime};

struct Fixture {
    stack: TestStack,
    remediate: Arc<Remediate>,
    catalog: Catalog,
    operators: String,
}

fn flowers() -> ModelName {
    ModelName::parse("flowers").unwrap()
}

fn dataset() -> DatasetName {
    DatasetName::parse("flowers").unwrap()
}

impl Fixture {
    /// A stack whose `flowers` model has a production version trained two days ago from
    /// the recorded request, and an SQS queue subscribed to the operators' topic.
    async fn new(environment: &[(&str, &str)]) -> Self {
        let stack = TestStack::provision().await;
        let mut variables = stack.environment("RemediateFunction");
        for (name, value) in environment {
            variables.insert((*name).to_owned(), (*value).to_owned());
        }
        let remediate = Arc::new(Remediate::from_settings(&stack.clients, &variables).unwrap());
        let catalog = Catalog::new(stack.clients.dynamodb.clone(), stack.table("CatalogTable"));
        let schema = Schema {
            fields: vec![
                Field { name: "x1".into(), column_type: ColumnType::Float },
                Field { name: "kind".into(), column_type: ColumnType::String },
            ],
        };
        assert!(catalog.save_schema(&dataset(), &schema, None).await.unwrap());

        let trained_at = OffsetDateTime::now_utc() - Duration::days(2);
        let job = "flowers-20261120-080000-abcd";
        catalog
            .put_training_job(&TrainingJobRecord {
                model: "flowers".into(),
                job_name: job.into(),
                kind: "training".into(),
                dataset: dataset(),
                started_at: trained_at,
                request: json!({"dataset": "flowers", "target": "kind", "retrain_every_days": 7}).to_string(),
                trigger: "api".into(),
            })
            .await
            .unwrap();
        let registry = registry(&stack.clients, &stack.stack);
        let metadata = HashMap::from([
            ("training_job".to_owned(), job.to_owned()),
            ("dataset".to_owned(), "flowers".to_owned()),
            ("trained_at".to_owned(), trained_at.format(&time::format_description::well_known::Rfc3339).unwrap()),
        ]);
        let bundle = format!("s3://{}/training/flowers/{job}/output/model.tar.gz", stack.bucket("ArtifactsBucket"));
        registry.register(&flowers(), &bundle, Approval::Approved, "the first version", metadata, None).await.unwrap();
        registry.publish_production(&flowers()).await.unwrap();

        let operators = subscribe_queue(&stack, "OperatorsTopic").await;
        Self { stack, remediate, catalog, operators }
    }

    /// A processed ingest of the model's dataset at `at`.
    async fn data_arrives(&self, at: OffsetDateTime) {
        let id = IngestId::generate();
        let entry = CatalogEntry {
            dataset: dataset(),
            ingest_id: id,
            bucket: "raw".into(),
            key: format!("flowers/ingest_date=2026-11-22/{id}.csv"),
            content_type: "text/csv".into(),
            status: IngestStatus::Processed,
            source: IngestSource::Api,
            received_at: at,
            size_bytes: Some(100),
            sha256: None,
            row_count: Some(10),
            label: None,
            processing: Some(Processing {
                processed_at: at,
                rows_in: Some(10),
                rows_out: Some(10),
                rows_rejected: Some(0),
                curated_key: Some(format!("data/flowers/ingest_date=2026-11-22/{id}.parquet")),
                rejected_key: None,
                profile_key: None,
                failure_reason: None,
            }),
        };
        self.catalog.record(&entry, None).await.unwrap();
    }

    async fn events(&self, kind: EventKind) -> usize {
        self.catalog.events("flowers", None, 500).await.unwrap().iter().filter(|e| e.kind == kind).count()
    }

    /// The subjects of the messages the operators received.
    async fn operator_subjects(&self) -> Vec<String> {
        let mut subjects = Vec::new();
        loop {
            let received = self
                .stack
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.operators)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return subjects;
            }
            for message in messages {
                let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
                subjects.push(envelope["Subject"].as_str().unwrap_or_default().to_owned());
                self.stack
                    .clients
                    .sqs
                    .delete_message()
                    .queue_url(&self.operators)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

/// A queue subscribed to one of the stack's topics (moto delivers SNS to SQS).
async fn subscribe_queue(stack: &TestStack, topic: &str) -> String {
    let topic = stack.stack.topics.iter().find(|t| t.logical_id == topic).unwrap();
    let name = format!("{}-listener", topic.name);
    let url = stack.clients.sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    let sns = aws_sdk_sns::Client::new(&stack.clients.config);
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    sns.subscribe().topic_arn(&topic.arn).protocol("sqs").endpoint(arn).send().await.unwrap();
    url
}

/// The SNS event Lambda receives for an alarm on `metric` going from `old` to `new` at
/// `changed` (a distinct time is a distinct state change).
fn alarm(new: &str, old: &str, changed: &str, metric: &str) -> SnsEvent {
    let dir = format!("{}/tests/events", env!("CARGO_MANIFEST_DIR"));
    let mut notification: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/alarm-notification.json")).unwrap()).unwrap();
    notification["NewStateValue"] = new.into();
    notification["OldStateValue"] = old.into();
    notification["StateChangeTime"] = changed.into();
    notification["Trigger"]["MetricName"] = metric.into();
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/sns-alarm.json")).unwrap()).unwrap();
    event["Records"][0]["Sns"]["Message"] = notification.to_string().into();
    serde_json::from_value(event).unwrap()
}

const FIRST_CHANGE: &str = "2026-11-22T10:16:03.207+0000";

async fn handle(fixture: &Fixture, event: SnsEvent) -> Outcome {
    let mut outcomes = fixture.remediate.handle(event).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

#[tokio::test]
async fn fifty_concurrent_duplicates_and_a_flapping_alarm_start_exactly_one_training_job() {
    let fixture = Fixture::new(&[]).await;
    fixture.data_arrives(OffsetDateTime::now_utc() - Duration::hours(1)).await;

    let mut deliveries = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let remediate = Arc::clone(&fixture.remediate);
        let event = alarm("ALARM", "OK", FIRST_CHANGE, "DriftDetected");
        deliveries.spawn(async move { remediate.handle(event).await.unwrap().remove(0) });
    }
    let outcomes = deliveries.join_all().await;
    let started: Vec<&Outcome> = outcomes.iter().filter(|o| matches!(o, Outcome::RetrainingStarted { .. })).collect();
    assert_eq!(started.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::RetrainingStarted { .. } | Outcome::Duplicate { .. })));

    // The alarm flaps: back to OK, into ALARM again within the cooldown.
    assert!(matches!(
        handle(&fixture, alarm("OK", "ALARM", "2026-11-22T10:31:03.000+0000", "DriftDetected")).await,
        Outcome::Ignored { .. }
    ));
    let again = handle(&fixture, alarm("ALARM", "OK", "2026-11-22T10:46:03.000+0000", "AccuracyDrop")).await;
    assert!(matches!(again, Outcome::Duplicate { .. }), "{again:?}");

    assert_eq!(fixture.events(EventKind::RetrainingStarted).await, 1);
    assert_eq!(fixture.events(EventKind::TrainingStarted).await, 1, "exactly one training job");
    assert_eq!(fixture.events(EventKind::Alarm).await, 1, "the alarm acted on is logged, not its duplicates");
    let Outcome::RetrainingStarted { job, .. } = started[0] else { unreachable!() };
    let sagemaker = aws_sdk_sagemaker::Client::new(&fixture.stack.clients.config);
    let described = sagemaker.describe_training_job().training_job_name(job).send().await.unwrap();
    let hyperparameters = described.hyper_parameters().unwrap();
    assert_eq!(hyperparameters["production_version"], "1", "production is scored beside the candidate");
    let channels: Vec<&str> = described.input_data_config().iter().filter_map(|c| c.channel_name()).collect();
    assert_eq!(channels, ["train", "production"]);
    let subjects = fixture.operator_subjects().await;
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(subjects[0].starts_with("Sluice: retraining flowers"), "{subjects:?}");
}

/// Puts the fixture notification's alarm on the emulator, in ALARM; its state afterwards.
async fn alarm_in_alarm(fixture: &Fixture) -> impl AsyncFnOnce() -> String {
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&fixture.stack.clients.config);
    let name = "sluice-flowers-drift";
    cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("Sluice/test")
        .metric_name("DriftDetected")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .period(900)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap();
    cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    async move || {
        let described = cloudwatch.describe_alarms().alarm_names(name).send().await.unwrap();
        described.metric_alarms()[0].state_value().unwrap().as_str().to_owned()
    }
}

#[tokio::test]
async fn without_new_data_nothing_retrains_until_data_arrives() {
    let fixture = Fixture::new(&[]).await;
    fixture.data_arrives(OffsetDateTime::now_utc() - Duration::days(3)).await;
    let state = alarm_in_alarm(&fixture).await;

    let waiting = handle(&fixture, alarm("ALARM", "OK", FIRST_CHANGE, "DriftDetected")).await;
    assert!(
        matches!(&waiting, Outcome::WaitingForData { reason, .. } if reason.contains("no curated data arrived")),
        "{waiting:?}"
    );
    assert_eq!(fixture.events(EventKind::TrainingStarted).await, 0);
    assert_eq!(fixture.events(EventKind::RetrainingSkipped).await, 1);
    let subjects = fixture.operator_subjects().await;
    assert!(subjects.len() == 1 && subjects[0].contains("needs new data"), "{subjects:?}");
    assert_eq!(state().await, "OK", "re-armed: a lasting breach calls again");

    // The same state change again: already decided.
    let duplicate = handle(&fixture, alarm("ALARM", "OK", FIRST_CHANGE, "DriftDetected")).await;
    assert!(matches!(duplicate, Outcome::Duplicate { .. }), "{duplicate:?}");

    // New data arrives and the alarm fires again: now it retrains, once.
    fixture.data_arrives(OffsetDateTime::now_utc()).await;
    let retrained = handle(&fixture, alarm("ALARM", "OK", "2026-11-22T11:16:03.000+0000", "DriftDetected")).await;
    assert!(matches!(retrained, Outcome::RetrainingStarted { .. }), "{retrained:?}");
    assert_eq!(fixture.events(EventKind::TrainingStarted).await, 1);
}

#[tokio::test]
async fn error_alarms_notify_once_and_malformed_messages_fail() {
    let fixture = Fixture::new(&[]).await;
    fixture.data_arrives(OffsetDateTime::now_utc()).await;
    for _ in 0..3 {
        let outcome = handle(&fixture, alarm("ALARM", "OK", FIRST_CHANGE, "ServerErrors")).await;
        assert!(matches!(outcome, Outcome::Notified { .. } | Outcome::Duplicate { .. }), "{outcome:?}");
    }
    assert_eq!(fixture.events(EventKind::TrainingStarted).await, 0, "errors are not fixed by retraining");
    assert_eq!(fixture.operator_subjects().await.len(), 1, "told once");

    let mut malformed = alarm("ALARM", "OK", FIRST_CHANGE, "DriftDetected");
    malformed.records[0].sns.message = "{\"AlarmName\": 42}".into();
    let failure = fixture.remediate.handle(malformed).await.unwrap_err();
    assert!(failure.to_string().contains("not a CloudWatch alarm notification"), "{failure}");
}
