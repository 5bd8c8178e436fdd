//! CloudWatch Embedded Metric Format: a metric is a structured log line that CloudWatch
//! turns into a metric, so Lambda functions publish metrics without an API call.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
    /// A ratio or a score.
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Bytes => "Bytes",
            Self::Milliseconds => "Milliseconds",
            Self::None => "None",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Usually a constant; per-class counts are named at run time.
    pub name: Cow<'static, str>,
    pub unit: Unit,
    pub value: f64,
}

/// Builds one EMF document: every metric shares the one dimension set given.
pub fn emf_document(namespace: &str, dimensions: &[(&str, &str)], metrics: &[Metric], timestamp_ms: i64) -> Value {
    let mut root = Map::new();
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), Value::from(*value));
    }
    for metric in metrics {
        root.insert(metric.name.to_string(), Value::from(metric.value));
    }
    let dimension_names: Vec<&str> = dimensions.iter().map(|(name, _)| *name).collect();
    let definitions: Vec<Value> = metrics.iter().map(|m| json!({ "Name": m.name, "Unit": m.unit.as_str() })).collect();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimension_names],
                "Metrics": definitions,
            }],
        }),
    );
    Value::Object(root)
}

static REDIRECT: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

/// Sends EMF documents to `writer` instead of stdout, for processes that are not a Lambda
/// container (the local cloud keeps its terminal for people). The first call wins.
pub fn redirect(writer: Box<dyn Write + Send>) -> bool {
    REDIRECT.set(Mutex::new(writer)).is_ok()
}

/// Writes an EMF document to stdout, where the Lambda log stream picks it up.
pub fn publish(namespace: &str, dimensions: &[(&str, &str)], metrics: &[Metric]) {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let document = emf_document(namespace, dimensions, metrics, now_ms as i64);
    match REDIRECT.get() {
        Some(writer) => {
            let mut writer = writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Metrics are best effort: a full disk must not fail a request.
            let _ = writeln!(writer, "{document}");
        }
        None => println!("{document}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_follows_the_emf_specification() {
        let doc = emf_document(
            "Sluice",
            &[("Function", "ingest"), ("Dataset", "iris")],
            &[
                Metric { name: "IngestedBytes".into(), unit: Unit::Bytes, value: 42.0 },
                Metric { name: "IngestedObjects".into(), unit: Unit::Count, value: 1.0 },
            ],
            1_700_000_000_000,
        );
        assert_eq!(doc["Function"], "ingest");
        assert_eq!(doc["IngestedBytes"], 42.0);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(directive["Namespace"], "Sluice");
        assert_eq!(directive["Dimensions"], json!([["Function", "Dataset"]]));
        assert_eq!(directive["Metrics"][0], json!({"Name": "IngestedBytes", "Unit": "Bytes"}));
    }
}
