//! CloudWatch alarms on the local cloud, against a real moto server: an alarm whose metric
//! breaches goes to ALARM, its notification reaches the function subscribed to the alarm's
//! topic as the SNS event Lambda would receive, and staying in ALARM notifies no more.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic};
use serde_json::Value;
use sluice_aws::AwsClients;
use sluice_localcloud::alarms::AlarmEvaluator;
use sluice_localcloud::clock::Clock;
use sluice_localcloud::provision::provision;
use sluice_localcloud::template::Stack;
use sluice_localcloud::topics::SnsDelivery;
use sluice_localcloud::{Functions, InvokeError};
use sluice_tests::{moto_endpoint, unique_stack_name};

/// One topic and a function subscribed to it, as a SAM template declares them.
const TEMPLATE: &str = r#"
Resources:
  AlarmTopic:
    Type: AWS::SNS::Topic
  RemediateFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: remediate } }
    Properties:
      EventInvokeConfig: { MaximumRetryAttempts: 0 }
      Events:
        Alarm:
          Type: SNS
          Properties: { Topic: !Ref AlarmTopic }
"#;

/// Functions that only record the events they are invoked with.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, Value)>>>);

impl Recorder {
    fn events(&self) -> Vec<(String, Value)> {
        self.0.lock().unwrap().clone()
    }
}

impl Functions for Recorder {
    fn invoke(
        &self,
        function: &str,
        event: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, InvokeError>> + Send + '_>> {
        self.0.lock().unwrap().push((function.to_owned(), event));
        Box::pin(async { Ok(Value::Null) })
    }
}

const NAMESPACE: &str = "Sluice";
const METRIC: &str = "FeatureDrift";

async fn put_drift(cloudwatch: &aws_sdk_cloudwatch::Client, model: &str, value: f64) {
    let datum = MetricDatum::builder()
        .metric_name(METRIC)
        .dimensions(Dimension::builder().name("Model").value(model).build())
        .value(value)
        .timestamp(DateTime::from(std::time::SystemTime::now()))
        .build();
    cloudwatch.put_metric_data().namespace(NAMESPACE).metric_data(datum).send().await.expect("metric data is put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaching_metric_notifies_the_subscribed_function_once() {
    let clients = AwsClients::for_local_endpoint(moto_endpoint()).await;
    let stack = Stack::from_yaml(TEMPLATE, &unique_stack_name()).expect("template reads");
    provision(&clients, &stack).await.expect("stack provisions");
    let topic_arn = stack.topics[0].arn.clone();
    let recorder = Recorder::default();
    let _delivery = SnsDelivery::start(&clients, &stack, Arc::new(recorder.clone())).await.expect("delivery starts");

    let cloudwatch = aws_sdk_cloudwatch::Client::new(&clients.config);
    let alarm_name = format!("{}-m1-drift", stack.name);
    // The model's name is the stack's, so no other test's data can reach this alarm.
    let model = format!("{}-m1", stack.name);
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm_name)
        .namespace(NAMESPACE)
        .metric_name(METRIC)
        .dimensions(Dimension::builder().name("Model").value(&model).build())
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .datapoints_to_alarm(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data("ignore")
        .alarm_actions(&topic_arn)
        .send()
        .await
        .expect("alarm is put");
    // A 60 s period lasts 1 s.
    let _evaluator = AlarmEvaluator::start(&clients, &stack, &Clock::new(60.0).unwrap());

    put_drift(&cloudwatch, &model, 1.0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorder.events().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = recorder.events();
    assert_eq!(events.len(), 1, "one notification: {events:?}");
    let (function, event) = &events[0];
    assert_eq!(function, "RemediateFunction");
    let record = &event["Records"][0];
    assert_eq!(record["EventSource"], "aws:sns");
    assert_eq!(record["Sns"]["TopicArn"], topic_arn.as_str());
    assert_eq!(record["Sns"]["Subject"], format!("ALARM: \"{alarm_name}\" in US East (N. Virginia)").as_str());
    let message: Value = serde_json::from_str(record["Sns"]["Message"].as_str().expect("a message")).expect("JSON");
    assert_eq!(message["AlarmName"], alarm_name.as_str());
    assert_eq!(message["NewStateValue"], "ALARM");
    assert_eq!(message["OldStateValue"], "INSUFFICIENT_DATA");
    assert_eq!(message["Trigger"]["Dimensions"], serde_json::json!([{ "value": model, "name": "Model" }]));
    let reason = message["NewStateReason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("Threshold Crossed: 1 out of the last 1 datapoints [1.0 (")
            && reason.ends_with(
                "was greater than or equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition)."
            ),
        "{reason}"
    );

    // The endpoint knows the new state, as DescribeAlarms would tell in AWS.
    let described = cloudwatch.describe_alarms().alarm_names(&alarm_name).send().await.expect("alarms describe");
    assert_eq!(described.metric_alarms()[0].state_value(), Some(&StateValue::Alarm));

    // Still breaching for several more periods: no new transition, so no new notification.
    for _ in 0..4 {
        put_drift(&cloudwatch, &model, 2.0).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(recorder.events().len(), 1, "staying in ALARM notifies no more");
}
