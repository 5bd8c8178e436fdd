//! The monitor's CloudWatch side: its metrics (with the window's end as their time), and
//! the alarms that cover every production model. Models come and go at run time, so each
//! run reconciles the alarms with the production models (`sluice_core::monitoring::alarms`
//! says which), creating what is missing or changed and deleting the alarms of models that
//! left production; IAM scopes this function to alarms named with the stack's prefix.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, MetricDatum, StandardUnit, Statistic};
use sluice_aws::{AwsClients, StoreError};
use sluice_core::monitoring::{AlarmSpec, COMPARISON, MODEL_DIMENSION};
use time::OffsetDateTime;

fn failed(operation: &'static str, err: impl std::error::Error) -> StoreError {
    StoreError::new("CloudWatch", operation, err)
}

pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
    alarm_prefix: String,
    alarm_topic: String,
}

impl CloudWatch {
    pub fn new(clients: &AwsClients, namespace: String, alarm_prefix: String, alarm_topic: String) -> Self {
        Self { client: aws_sdk_cloudwatch::Client::new(&clients.config), namespace, alarm_prefix, alarm_topic }
    }

    pub fn alarm_prefix(&self) -> &str {
        &self.alarm_prefix
    }

    /// Publishes `metrics` (name → value) for `model`, timed at `at`.
    pub async fn publish(&self, model: &str, at: OffsetDateTime, metrics: &[(&str, f64)]) -> Result<(), StoreError> {
        if metrics.is_empty() {
            return Ok(());
        }
        let dimension = Dimension::builder().name(MODEL_DIMENSION).value(model).build();
        let timestamp = aws_sdk_cloudwatch::primitives::DateTime::from_secs(at.unix_timestamp());
        let data = metrics
            .iter()
            .map(|(name, value)| {
                MetricDatum::builder()
                    .metric_name(*name)
                    .dimensions(dimension.clone())
                    .timestamp(timestamp)
                    .value(*value)
                    .unit(StandardUnit::None)
                    .build()
            })
            .collect();
        self.client
            .put_metric_data()
            .namespace(&self.namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .map_err(|e| failed("PutMetricData", e))?;
        Ok(())
    }

    /// Makes the stack's model alarms exactly `wanted` (by model): creates or updates what
    /// differs, deletes the model alarms of models not in `keep`. Alarms of models whose
    /// specs could not be worked out this run are in `keep` but not in `wanted`, and stay.
    pub async fn reconcile(
        &self,
        wanted: &BTreeMap<String, Vec<AlarmSpec>>,
        keep: &[String],
    ) -> Result<AlarmChanges, StoreError> {
        let existing = self.alarms().await?;
        let mut changes = AlarmChanges::default();
        for (model, specs) in wanted {
            for spec in specs {
                if existing.get(&spec.name).is_some_and(|alarm| self.same(alarm, spec, model)) {
                    continue;
                }
                self.put(model, spec).await?;
                changes.put.push(spec.name.clone());
            }
        }
        let stale: Vec<String> = existing
            .iter()
            .filter(|(_, alarm)| {
                let model = alarm_model(alarm);
                // Only the model alarms this function makes.
                model.is_some()
                    && alarm.namespace() == Some(self.namespace.as_str())
                    && !keep.iter().any(|k| Some(k.as_str()) == model)
            })
            .map(|(name, _)| name.clone())
            .collect();
        // DeleteAlarms takes at most 100 names.
        for names in stale.chunks(100) {
            self.client
                .delete_alarms()
                .set_alarm_names(Some(names.to_vec()))
                .send()
                .await
                .map_err(|e| failed("DeleteAlarms", e))?;
        }
        changes.deleted = stale;
        Ok(changes)
    }

    async fn alarms(&self) -> Result<HashMap<String, MetricAlarm>, StoreError> {
        let pages = self
            .client
            .describe_alarms()
            .alarm_name_prefix(&self.alarm_prefix)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| failed("DescribeAlarms", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.metric_alarms())
            .filter_map(|alarm| Some((alarm.alarm_name()?.to_owned(), alarm.clone())))
            .collect())
    }

    async fn put(&self, model: &str, spec: &AlarmSpec) -> Result<(), StoreError> {
        self.client
            .put_metric_alarm()
            .alarm_name(&spec.name)
            .alarm_description(&spec.description)
            .namespace(&self.namespace)
            .metric_name(spec.metric)
            .dimensions(Dimension::builder().name(MODEL_DIMENSION).value(model).build())
            .statistic(Statistic::from(spec.statistic.as_str()))
            .period(spec.period_seconds)
            .evaluation_periods(spec.evaluation_periods)
            .datapoints_to_alarm(spec.datapoints_to_alarm)
            .threshold(spec.threshold)
            .comparison_operator(ComparisonOperator::from(COMPARISON))
            .treat_missing_data(spec.treat_missing_data)
            .alarm_actions(&self.alarm_topic)
            .actions_enabled(true)
            .send()
            .await
            .map_err(|e| failed("PutMetricAlarm", e))?;
        Ok(())
    }
}

/// What a reconciliation changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AlarmChanges {
    pub put: Vec<String>,
    pub deleted: Vec<String>,
}

/// The model an alarm watches, from its `Model` dimension.
fn alarm_model(alarm: &MetricAlarm) -> Option<&str> {
    alarm.dimensions().iter().find(|d| d.name() == Some(MODEL_DIMENSION)).and_then(|d| d.value())
}

impl CloudWatch {
    /// Whether an alarm is already as `spec` would put it (every setting, the action too:
    /// a replaced alarm topic must reach existing alarms).
    fn same(&self, alarm: &MetricAlarm, spec: &AlarmSpec, model: &str) -> bool {
        alarm.metric_name() == Some(spec.metric)
            && alarm.namespace() == Some(self.namespace.as_str())
            && alarm_model(alarm) == Some(model)
            && alarm.alarm_description() == Some(spec.description.as_str())
            && alarm.statistic().map(|s| s.as_str()) == Some(spec.statistic.as_str())
            && alarm.period() == Some(spec.period_seconds)
            && alarm.evaluation_periods() == Some(spec.evaluation_periods)
            && alarm.datapoints_to_alarm() == Some(spec.datapoints_to_alarm)
            && alarm.threshold() == Some(spec.threshold)
            && alarm.comparison_operator().map(|c| c.as_str()) == Some(COMPARISON)
            && alarm.treat_missing_data() == Some(spec.treat_missing_data)
            && alarm.alarm_actions() == [self.alarm_topic.clone()]
    }
}
