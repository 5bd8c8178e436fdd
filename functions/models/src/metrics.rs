//! A model's serving metrics over time, read back from CloudWatch: requests, inference
//! latency (average and maximum) per version, and the error rate, as `predict` publishes
//! them (`sluice_core::monitoring`).

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat};
use serde::Serialize;
use sluice_aws::{AwsClients, StoreError};
use sluice_core::monitoring::{INFERENCE_LATENCY, MODEL_DIMENSION, REQUESTS, SERVER_ERRORS};
use time::OffsetDateTime;

/// What is read, and with which statistic: requests are counted, latency averaged and its
/// worst kept, and the 0/1 error indicator summed and counted, so that an error rate over
/// any span is the failures over the answered requests, not an average of averages.
const READ: [(&str, &str); 5] = [
    (REQUESTS, "Sum"),
    (INFERENCE_LATENCY, "Average"),
    (INFERENCE_LATENCY, "Maximum"),
    (SERVER_ERRORS, "Sum"),
    (SERVER_ERRORS, "SampleCount"),
];

/// GetMetricData takes at most 500 queries a call.
const QUERIES_PER_CALL: usize = 500;

/// One metric of one dimension set (the version that answered, the function), over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub metric: String,
    pub stat: String,
    /// Dimensions besides `Model` (e.g. `Version`, `Function`).
    pub dimensions: BTreeMap<String, String>,
    /// `[unix seconds, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

pub struct ModelMetrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

fn failed(operation: &'static str, err: impl std::error::Error) -> StoreError {
    StoreError::new("CloudWatch", operation, err)
}

impl ModelMetrics {
    pub fn new(clients: &AwsClients, namespace: String) -> Self {
        Self { client: aws_sdk_cloudwatch::Client::new(&clients.config), namespace }
    }

    /// Every series of `model` from `start` to `end` at `period` seconds.
    pub async fn series(
        &self,
        model: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        period: i32,
    ) -> Result<Vec<Series>, StoreError> {
        let model_filter = DimensionFilter::builder().name(MODEL_DIMENSION).value(model).build();
        let mut listed = Vec::new();
        for name in [REQUESTS, INFERENCE_LATENCY, SERVER_ERRORS] {
            let mut pages = self
                .client
                .list_metrics()
                .namespace(&self.namespace)
                .metric_name(name)
                .dimensions(model_filter.clone())
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                listed.extend(page.map_err(|e| failed("ListMetrics", e))?.metrics.unwrap_or_default());
            }
        }
        // Each metric once: moto lists a metric again for every datum it holds.
        let mut seen = std::collections::BTreeSet::new();
        listed.retain(|metric| {
            let mut dimensions: Vec<_> = metric.dimensions().iter().map(|d| (d.name(), d.value())).collect();
            dimensions.sort();
            seen.insert(format!("{:?}{dimensions:?}", metric.metric_name()))
        });
        let wanted: Vec<(Metric, &str)> = listed
            .iter()
            .flat_map(|metric| {
                READ.iter()
                    .filter(|(name, _)| metric.metric_name() == Some(*name))
                    .map(|(_, stat)| (metric.clone(), *stat))
            })
            .collect();
        let mut series = Vec::new();
        for chunk in wanted.chunks(QUERIES_PER_CALL) {
            let queries = chunk
                .iter()
                .enumerate()
                .map(|(index, (metric, stat))| {
                    MetricDataQuery::builder()
                        .id(format!("q{index}"))
                        .metric_stat(MetricStat::builder().metric(metric.clone()).period(period).stat(*stat).build())
                        .build()
                })
                .collect();
            let mut pages = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries))
                .start_time(DateTime::from_secs(start.unix_timestamp()))
                .end_time(DateTime::from_secs(end.unix_timestamp()))
                .into_paginator()
                .send();
            let mut points: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            while let Some(page) = pages.next().await {
                for result in page.map_err(|e| failed("GetMetricData", e))?.metric_data_results.unwrap_or_default() {
                    let times = result.timestamps().iter().map(DateTime::secs);
                    points
                        .entry(result.id().unwrap_or_default().to_owned())
                        .or_default()
                        .extend(times.zip(result.values().iter().copied()));
                }
            }
            for (index, (metric, stat)) in chunk.iter().enumerate() {
                let mut values = points.remove(&format!("q{index}")).unwrap_or_default();
                values.sort_by_key(|(time, _)| *time);
                series.push(Series {
                    metric: metric.metric_name().unwrap_or_default().to_owned(),
                    stat: (*stat).to_owned(),
                    dimensions: metric
                        .dimensions()
                        .iter()
                        .filter(|d| d.name() != Some(MODEL_DIMENSION))
                        .filter_map(|d: &Dimension| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                        .collect(),
                    points: values,
                });
            }
        }
        series.sort_by(|a, b| (&a.metric, &a.stat, &a.dimensions).cmp(&(&b.metric, &b.stat, &b.dimensions)));
        Ok(series)
    }
}
