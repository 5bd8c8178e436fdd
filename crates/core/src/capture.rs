//! The prediction capture: one JSON line per predicted row and per piece of ground truth,
//! delivered in batches to the capture bucket (Firehose in AWS) under
//! `capture/date=YYYY-MM-DD/hour=HH/`. `predict` writes these lines and `monitor` reads
//! them, so both use these types (schema: `docs/serving.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// A row's prediction id: `<request id>-<row>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictionId {
    /// 32 hex digits.
    pub request_id: String,
    pub row: usize,
}

impl PredictionId {
    pub fn parse(id: &str) -> Option<Self> {
        let (request_id, row) = id.rsplit_once('-')?;
        let valid = request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Self { request_id: request_id.to_owned(), row: row.parse().ok().filter(|_| valid)? })
    }
}

impl std::fmt::Display for PredictionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.request_id, self.row)
    }
}

/// One line of the capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaptureRecord {
    Prediction(CapturedPrediction),
    Feedback(CapturedFeedback),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedPrediction {
    pub prediction_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub model: String,
    pub version: i64,
    /// The row as the client sent it (an image as its pixels: what the model saw).
    pub input: Value,
    /// The answer: `prediction`, and `probabilities` for classifiers.
    pub output: Value,
    pub latency_ms: f64,
    /// During a rollout, what the candidate did with this row (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<CandidateRun>,
}

/// The candidate's part in one row during a rollout (`sluice_model::rollout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRun {
    /// The candidate's version.
    pub candidate: i64,
    pub route: CandidateRoute,
    /// The candidate's answer on a shadowed row (on a canary row it is `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Why the candidate failed; production answered instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The candidate's own time on the request (shadow; a canary's is `latency_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl CandidateRun {
    /// A canary row: the candidate answered, or failed with `error` and production did.
    pub fn canary(candidate: i64, error: Option<String>) -> Self {
        Self { candidate, route: CandidateRoute::Canary, output: None, error, latency_ms: None }
    }

    /// A shadowed row the candidate answered with `output`.
    pub fn shadow(candidate: i64, output: impl Serialize, latency_ms: f64) -> Self {
        Self {
            candidate,
            route: CandidateRoute::Shadow,
            output: Some(serde_json::to_value(output).expect("answers serialise")),
            error: None,
            latency_ms: Some(latency_ms),
        }
    }

    /// A shadowed row the candidate could not answer.
    pub fn failed_shadow(candidate: i64, error: String) -> Self {
        Self { candidate, route: CandidateRoute::Shadow, output: None, error: Some(error), latency_ms: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateRoute {
    /// Production answered; the candidate ran beside it.
    Shadow,
    /// The candidate was to answer (and did, unless it failed).
    Canary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedFeedback {
    pub prediction_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub model: String,
    /// The version that made the prediction.
    pub version: i64,
    pub truth: Value,
    /// The prediction's answer, so live accuracy needs no join.
    pub output: Option<Value>,
}

impl CaptureRecord {
    pub fn model(&self) -> &str {
        match self {
            Self::Prediction(p) => &p.model,
            Self::Feedback(f) => &f.model,
        }
    }

    /// The line as delivered: JSON and a newline (Firehose adds no separator).
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("capture records serialise");
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_ids_round_trip_and_refuse_anything_else() {
        let id = PredictionId { request_id: "0192f5c47d3e7a109c1b5e2f8a9d0c11".into(), row: 7 };
        assert_eq!(PredictionId::parse(&id.to_string()), Some(id));
        for bad in ["", "abc-1", "0192f5c47d3e7a109c1b5e2f8a9d0c11", "0192f5c47d3e7a109c1b5e2f8a9d0c1z-1", "../x-1"] {
            assert_eq!(PredictionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_are_tagged_json_ending_in_a_newline() {
        let record = CaptureRecord::Feedback(CapturedFeedback {
            prediction_id: "p".into(),
            time: time::macros::datetime!(2026-11-22 04:05:06 UTC),
            model: "iris".into(),
            version: 2,
            truth: "setosa".into(),
            output: None,
        });
        let line = record.to_line();
        assert!(line.ends_with("}\n"));
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!((value["kind"].as_str(), value["time"].as_str()), (Some("feedback"), Some("2026-11-22T04:05:06Z")));
        assert_eq!(serde_json::from_value::<CaptureRecord>(value).unwrap(), record);
    }
}
