//! Safe rollout between a model's production version and a candidate, decided on model
//! signals rather than on HTTP errors alone. The rules are written once here: which version
//! answers a request (shadow, canary), whether two answers agree, and when a rollout is
//! promoted or rolled back. Serving and the rollout checker are adapters that ask these.
//!
//! - **Shadow**: production answers every request; on a sampled fraction the candidate also
//!   runs and its answer is recorded beside production's, never returned.
//! - **Canary**: a fraction of callers, sticky by a caller key (or the request id), is
//!   answered by the candidate. A caller's place is a stable hash of its key, so raising the
//!   fraction keeps every caller already on the candidate there.
//! - **Guards** ([`Guards`], defaults in [`Guards::default`]): nothing is decided before the
//!   candidate has served `min_requests`; from then on any red guard rolls back at once
//!   (a bad candidate is not kept for the rest of the window), and all guards green once
//!   `min_duration_seconds` have passed promotes.
//! - **Figures** ([`Tally`]) come from the prediction capture, where serving records the
//!   version that answered each row and what the candidate did beside it, so every
//!   container's traffic counts and the checker needs no other store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::capture::{CandidateRoute, CaptureRecord};
use time::OffsetDateTime;

use crate::Task;
use crate::monitoring::label;

/// How a candidate version reaches traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum RolloutPolicy {
    /// The candidate is production at once, for all traffic.
    Immediate,
    /// Production answers; the candidate also runs on `fraction` of the requests.
    Shadow { fraction: f64 },
    /// `fraction` of the callers are answered by the candidate.
    Canary { fraction: f64 },
}

impl RolloutPolicy {
    /// A fraction is a share of traffic above 0 and at most 1.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Immediate => Ok(()),
            Self::Shadow { fraction } | Self::Canary { fraction } if *fraction > 0.0 && *fraction <= 1.0 => Ok(()),
            Self::Shadow { fraction } | Self::Canary { fraction } => {
                Err(format!("fraction must be above 0 and at most 1, not {fraction}"))
            }
        }
    }
}

impl std::fmt::Display for RolloutPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Immediate => write!(f, "immediate"),
            Self::Shadow { fraction } => write!(f, "shadow on {}% of requests", fraction * 100.0),
            Self::Canary { fraction } => write!(f, "canary on {}% of callers", fraction * 100.0),
        }
    }
}

/// Which version answers one request during a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Production answers; the candidate does not run.
    Production,
    /// Production answers; the candidate runs too and its answer is recorded.
    ProductionAndShadow,
    /// The candidate answers.
    Candidate,
}

/// Where a request goes: a canary places the caller (its key, sticky; the request id when
/// it sends none), a shadow samples requests by their id (a caller's key would let a few
/// busy callers starve the candidate of rows).
pub fn route(policy: &RolloutPolicy, caller: Option<&str>, request_id: &str) -> Route {
    match policy {
        RolloutPolicy::Immediate => Route::Candidate,
        RolloutPolicy::Shadow { fraction } if position(request_id) < *fraction => Route::ProductionAndShadow,
        RolloutPolicy::Canary { fraction } if position(caller.unwrap_or(request_id)) < *fraction => Route::Candidate,
        RolloutPolicy::Shadow { .. } | RolloutPolicy::Canary { .. } => Route::Production,
    }
}

/// A key's stable place in `[0, 1)`: FNV-1a over its bytes, mixed by SplitMix64's finaliser
/// so that keys differing in one character land far apart. Written out rather than taken
/// from a hashing crate, so that it never changes with a dependency: a caller keeps its
/// version for the whole rollout, across deployments.
pub fn position(key: &str) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    // The top 53 bits: every value exactly representable, below 1.
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// One answer of a model, for comparing two versions on the same row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer<'a> {
    Label(&'a str),
    Value(f64),
}

/// Whether two versions' answers on one row agree: the same label, or values within
/// `relative_tolerance` of each other (relative to the larger magnitude, so it works at any
/// scale; two values both within `f64::EPSILON` of zero agree).
pub fn agree(production: Answer<'_>, candidate: Answer<'_>, relative_tolerance: f64) -> bool {
    match (production, candidate) {
        (Answer::Label(a), Answer::Label(b)) => a == b,
        (Answer::Value(a), Answer::Value(b)) => {
            let scale = a.abs().max(b.abs());
            scale <= f64::EPSILON || (a - b).abs() <= relative_tolerance * scale
        }
        _ => false,
    }
}

/// What the guards know of one version over the rollout so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub requests: u64,
    /// Requests the version failed (the service's fault, not the caller's).
    pub errors: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Rows answered by both versions (shadowed), and how many of those agreed.
    pub compared: u64,
    pub agreed: u64,
    /// Rows whose ground truth came back, and how many the version had right.
    pub feedback: u64,
    pub correct: u64,
}

impl Figures {
    pub fn error_rate(&self) -> f64 {
        ratio(self.errors, self.requests)
    }

    pub fn agreement(&self) -> f64 {
        ratio(self.agreed, self.compared)
    }

    pub fn live_accuracy(&self) -> f64 {
        ratio(self.correct, self.feedback)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    Running,
    /// The candidate became production.
    Promoted,
    /// A guard was red: the candidate was rejected.
    RolledBack,
    /// A person ended it; the candidate keeps its approval state.
    Aborted,
}

impl RolloutStatus {
    /// Its JSON name, as the catalog's conditions compare it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Promoted => "promoted",
            Self::RolledBack => "rolled_back",
            Self::Aborted => "aborted",
        }
    }
}

/// One rollout of a model, as the catalog records it and `GET /models/{model}/rollouts`
/// shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub candidate: i64,
    /// The candidate's bundle (`s3://…/model.tar.gz`), so serving loads it with no registry
    /// call.
    pub bundle: String,
    /// Production when the rollout started; the candidate is judged against it.
    pub production: i64,
    pub policy: RolloutPolicy,
    pub guards: Guards,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// `gate` (the register gate approved the candidate) or `api`.
    pub started_by: String,
    pub status: RolloutStatus,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<OffsetDateTime>,
    /// The latest decision, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<VersionFigures>,
    /// Whether everything an ending causes (the candidate's approval, production, the event
    /// log, the operators) was done; an ended rollout that is not is finished by the next
    /// check.
    #[serde(default)]
    pub applied: bool,
}

/// Both versions' figures at one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionFigures {
    pub production: Figures,
    pub candidate: Figures,
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

/// Latencies and feedback a tally keeps per version: beyond this the first ones stand for
/// the rest, so a long rollout's check stays within the checker's memory.
const MAX_TRACKED: usize = 200_000;

/// A rollout's figures, counted from the capture lines since it started (module docs).
/// Rows are counted, not requests: a request of ten rows is ten predictions, each of which
/// can agree or not.
pub struct Tally {
    task: Task,
    production: i64,
    candidate: i64,
    since: OffsetDateTime,
    relative_tolerance: f64,
    figures: [Figures; 2],
    latencies: [Vec<f64>; 2],
    /// The candidate's answers on shadowed rows, by prediction id, for their feedback.
    shadowed: HashMap<String, Value>,
    /// Per version and prediction id: whether the answer was right (feedback sent again
    /// replaces the earlier).
    feedback: [HashMap<String, bool>; 2],
}

const PRODUCTION: usize = 0;
const CANDIDATE: usize = 1;

impl Tally {
    pub fn new(rollout: &Rollout, task: Task) -> Self {
        Self {
            task,
            production: rollout.production,
            candidate: rollout.candidate,
            since: rollout.started_at,
            relative_tolerance: rollout.guards.relative_tolerance,
            figures: Default::default(),
            latencies: Default::default(),
            shadowed: HashMap::new(),
            feedback: Default::default(),
        }
    }

    /// Counts a capture line if it is about this rollout.
    pub fn add(&mut self, record: &CaptureRecord) {
        match record {
            CaptureRecord::Prediction(row) if row.time >= self.since => {
                let run = row.rollout.as_ref().filter(|run| run.candidate == self.candidate);
                if row.version == self.candidate {
                    self.answered(CANDIDATE, row.latency_ms);
                    return;
                }
                if row.version != self.production {
                    return;
                }
                self.answered(PRODUCTION, row.latency_ms);
                let Some(run) = run else { return };
                self.figures[CANDIDATE].requests += 1;
                if run.error.is_some() {
                    self.figures[CANDIDATE].errors += 1;
                    return;
                }
                if let (CandidateRoute::Shadow, Some(output)) = (run.route, &run.output) {
                    if let Some(latency) = run.latency_ms {
                        keep(&mut self.latencies[CANDIDATE], latency);
                    }
                    let agreed = self.agrees(&row.output, output);
                    let candidate = &mut self.figures[CANDIDATE];
                    candidate.compared += 1;
                    candidate.agreed += u64::from(agreed);
                    if self.shadowed.len() < MAX_TRACKED {
                        self.shadowed.insert(row.prediction_id.clone(), output.clone());
                    }
                }
            }
            CaptureRecord::Feedback(feedback) if feedback.time >= self.since => {
                let answered = feedback.output.clone();
                let side = if feedback.version == self.candidate {
                    CANDIDATE
                } else if feedback.version == self.production {
                    if let Some(shadow) = self.shadowed.get(&feedback.prediction_id).cloned() {
                        let right = self.agrees(&feedback.truth, &shadow);
                        remember(&mut self.feedback[CANDIDATE], &feedback.prediction_id, right);
                    }
                    PRODUCTION
                } else {
                    return;
                };
                if let Some(output) = answered {
                    let right = self.agrees(&feedback.truth, &output);
                    remember(&mut self.feedback[side], &feedback.prediction_id, right);
                }
            }
            CaptureRecord::Prediction(_) | CaptureRecord::Feedback(_) => {}
        }
    }

    fn answered(&mut self, side: usize, latency_ms: f64) {
        self.figures[side].requests += 1;
        keep(&mut self.latencies[side], latency_ms);
    }

    /// Whether two answers (or an answer and the ground truth) agree: the same label for
    /// classifiers, values within the relative tolerance for regressions.
    fn agrees(&self, reference: &Value, answer: &Value) -> bool {
        let (reference, answer) = (prediction_of(reference), prediction_of(answer));
        match self.task {
            Task::Classification => label(reference).zip(label(answer)).is_some_and(|(a, b)| a == b),
            Task::Regression => match (number(reference), number(answer)) {
                (Some(a), Some(b)) => agree(Answer::Value(a), Answer::Value(b), self.relative_tolerance),
                _ => false,
            },
        }
    }

    /// Production's and the candidate's figures.
    pub fn figures(&self) -> (Figures, Figures) {
        let finish = |side: usize| {
            let mut figures = self.figures[side].clone();
            let mut latencies = self.latencies[side].clone();
            latencies.sort_by(f64::total_cmp);
            figures.latency_p50_ms = quantile(&latencies, 0.5);
            figures.latency_p99_ms = quantile(&latencies, 0.99);
            figures.feedback = self.feedback[side].len() as u64;
            figures.correct = self.feedback[side].values().filter(|right| **right).count() as u64;
            figures
        };
        (finish(PRODUCTION), finish(CANDIDATE))
    }
}

/// An answer's prediction (`{"prediction": …}`), or a bare value such as ground truth.
fn prediction_of(value: &Value) -> &Value {
    value.get("prediction").unwrap_or(value)
}

/// A value as a number: ground truth may come as text ("104").
fn number(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| value.as_str()?.trim().parse().ok())
}

fn keep(latencies: &mut Vec<f64>, latency_ms: f64) {
    if latencies.len() < MAX_TRACKED && latency_ms.is_finite() {
        latencies.push(latency_ms);
    }
}

fn remember(feedback: &mut HashMap<String, bool>, prediction_id: &str, right: bool) {
    if feedback.len() < MAX_TRACKED || feedback.contains_key(prediction_id) {
        feedback.insert(prediction_id.to_owned(), right);
    }
}

/// The nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((q * sorted.len() as f64).ceil() as usize).saturating_sub(1).min(last)])
}

/// When a rollout may end, and what ends it badly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Guards {
    /// Requests the candidate must have served before anything is decided.
    pub min_requests: u64,
    /// Seconds a rollout lasts at least before it is promoted.
    pub min_duration_seconds: u64,
    /// The candidate's error rate above this rolls back.
    pub max_error_rate: f64,
    /// The candidate's p99 latency above this multiple of production's rolls back…
    pub max_latency_ratio: f64,
    /// …when it is also more than this many milliseconds above it: a ratio of two
    /// sub-millisecond figures is noise, not a regression.
    pub latency_slack_ms: f64,
    /// Shadowed rows: agreement with production below this rolls back (once `min_requests`
    /// rows were compared).
    pub min_agreement: f64,
    /// Rows with feedback each version needs before live accuracy is compared.
    pub min_feedback: u64,
    /// The candidate's live accuracy below production's by more than this rolls back.
    pub max_accuracy_drop: f64,
    /// Regression: two values (or a value and its ground truth) agree within this share of
    /// the larger one.
    pub relative_tolerance: f64,
}

impl Guards {
    /// Shares are between 0 and 1 and the latency ratio is positive.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("max_error_rate", self.max_error_rate),
            ("min_agreement", self.min_agreement),
            ("max_accuracy_drop", self.max_accuracy_drop),
            ("relative_tolerance", self.relative_tolerance),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("{name} must be between 0 and 1, not {value}"));
            }
        }
        if !(self.max_latency_ratio > 0.0 && self.max_latency_ratio.is_finite()) {
            return Err(format!("max_latency_ratio must be a positive number, not {}", self.max_latency_ratio));
        }
        if !(self.latency_slack_ms >= 0.0 && self.latency_slack_ms.is_finite()) {
            return Err(format!("latency_slack_ms must be a number of at least 0, not {}", self.latency_slack_ms));
        }
        Ok(())
    }
}

impl Default for Guards {
    /// 100 requests and 15 minutes at least; at most 1% errors, 1.5× production's p99
    /// latency (and 5 ms more), 90% agreement on shadowed rows, and 2 points of live accuracy below
    /// production once each has 30 rows with feedback; regression values agree within 5%.
    fn default() -> Self {
        Self {
            min_requests: 100,
            min_duration_seconds: 15 * 60,
            max_error_rate: 0.01,
            max_latency_ratio: 1.5,
            latency_slack_ms: 5.0,
            min_agreement: 0.9,
            min_feedback: 30,
            max_accuracy_drop: 0.02,
            relative_tolerance: 0.05,
        }
    }
}

/// What a rollout does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not enough evidence yet; says what it waits for.
    Continue(String),
    /// Every guard green for long enough: the candidate becomes production.
    Promote(String),
    /// A guard is red: the candidate is rejected, production stays.
    RollBack(String),
}

/// **The** rollout rule (module docs): the candidate's figures against production's, after
/// `elapsed_seconds` of rollout.
pub fn decide(guards: &Guards, production: &Figures, candidate: &Figures, elapsed_seconds: u64) -> Decision {
    if candidate.requests < guards.min_requests {
        return Decision::Continue(format!(
            "{} of the {} requests the candidate must serve first",
            candidate.requests, guards.min_requests
        ));
    }
    if let Some(red) = red_guard(guards, production, candidate) {
        return Decision::RollBack(red);
    }
    if elapsed_seconds < guards.min_duration_seconds {
        return Decision::Continue(format!(
            "every guard green; {elapsed_seconds} of the {} seconds a rollout lasts at least",
            guards.min_duration_seconds
        ));
    }
    Decision::Promote(format!(
        "every guard green over {} requests and {elapsed_seconds} s: error rate {:.4}{}{}{}",
        candidate.requests,
        candidate.error_rate(),
        latency_ratio(production, candidate).map(|r| format!(", p99 latency {r:.2}× production's")).unwrap_or_default(),
        if candidate.compared > 0 {
            format!(", agreement {:.4} on {} shadowed rows", candidate.agreement(), candidate.compared)
        } else {
            String::new()
        },
        compared_accuracy(guards, production, candidate)
            .map(|(p, c)| format!(", live accuracy {c:.4} vs {p:.4}"))
            .unwrap_or_default(),
    ))
}

fn latency_ratio(production: &Figures, candidate: &Figures) -> Option<f64> {
    match (production.latency_p99_ms, candidate.latency_p99_ms) {
        (Some(production), Some(candidate)) if production > 0.0 => Some(candidate / production),
        _ => None,
    }
}

/// Production's and the candidate's live accuracy, once both have enough feedback.
fn compared_accuracy(guards: &Guards, production: &Figures, candidate: &Figures) -> Option<(f64, f64)> {
    (production.feedback >= guards.min_feedback && candidate.feedback >= guards.min_feedback)
        .then(|| (production.live_accuracy(), candidate.live_accuracy()))
}

/// The first red guard, said with its figures.
fn red_guard(guards: &Guards, production: &Figures, candidate: &Figures) -> Option<String> {
    if candidate.error_rate() > guards.max_error_rate {
        return Some(format!(
            "error rate {:.4} ({} of {} requests) is over the limit {}",
            candidate.error_rate(),
            candidate.errors,
            candidate.requests,
            guards.max_error_rate
        ));
    }
    let slower_by = candidate.latency_p99_ms.unwrap_or_default() - production.latency_p99_ms.unwrap_or_default();
    if let Some(ratio) = latency_ratio(production, candidate)
        .filter(|r| *r > guards.max_latency_ratio && slower_by > guards.latency_slack_ms)
    {
        return Some(format!(
            "p99 latency {:.2} ms is {ratio:.2}× production's {:.2} ms, over the limit {}×",
            candidate.latency_p99_ms.unwrap_or_default(),
            production.latency_p99_ms.unwrap_or_default(),
            guards.max_latency_ratio
        ));
    }
    if candidate.compared >= guards.min_requests && candidate.agreement() < guards.min_agreement {
        return Some(format!(
            "agrees with production on {:.4} of {} shadowed rows, under the minimum {}",
            candidate.agreement(),
            candidate.compared,
            guards.min_agreement
        ));
    }
    if let Some((production_accuracy, candidate_accuracy)) = compared_accuracy(guards, production, candidate)
        && candidate_accuracy < production_accuracy - guards.max_accuracy_drop
    {
        return Some(format!(
            "live accuracy {candidate_accuracy:.4} ({} rows with feedback) is more than {} below production's {production_accuracy:.4}",
            candidate.feedback, guards.max_accuracy_drop
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_core::capture::{CandidateRun, CapturedFeedback, CapturedPrediction};

    use super::*;

    fn healthy(requests: u64) -> Figures {
        Figures {
            requests,
            errors: 0,
            latency_p50_ms: Some(1.0),
            latency_p99_ms: Some(2.0),
            compared: requests,
            agreed: requests,
            feedback: 0,
            correct: 0,
        }
    }

    #[test]
    fn policies_take_fractions_of_traffic_only() {
        assert!(RolloutPolicy::Canary { fraction: 0.1 }.validate().is_ok());
        assert!(RolloutPolicy::Shadow { fraction: 1.0 }.validate().is_ok());
        for fraction in [0.0, -0.5, 1.5, f64::NAN] {
            assert!(RolloutPolicy::Canary { fraction }.validate().is_err(), "{fraction}");
        }
        let parsed: RolloutPolicy = serde_json::from_str(r#"{"mode": "canary", "fraction": 0.2}"#).unwrap();
        assert_eq!(parsed, RolloutPolicy::Canary { fraction: 0.2 });
        assert!(serde_json::from_str::<RolloutPolicy>(r#"{"mode": "canary", "share": 0.2}"#).is_err());
    }

    #[test]
    fn a_canary_takes_its_fraction_of_callers_and_keeps_them() {
        let policy = RolloutPolicy::Canary { fraction: 0.1 };
        let callers = 20_000;
        let on_candidate = (0..callers)
            .filter(|i| route(&policy, Some(&format!("caller-{i}")), "request") == Route::Candidate)
            .count();
        // Within four standard deviations of 10% (sd = sqrt(0.1 * 0.9 / 20000) = 0.0021).
        let share = on_candidate as f64 / callers as f64;
        assert!((share - 0.1).abs() < 4.0 * 0.0021, "{share}");
        // Sticky: the same caller, the same version, every time.
        for i in 0..100 {
            let key = format!("caller-{i}");
            assert_eq!(route(&policy, Some(&key), "one"), route(&policy, Some(&key), "another"));
        }
        // Raising the fraction keeps every caller already on the candidate there.
        let wider = RolloutPolicy::Canary { fraction: 0.3 };
        for i in 0..callers {
            let key = format!("caller-{i}");
            if route(&policy, Some(&key), "r") == Route::Candidate {
                assert_eq!(route(&wider, Some(&key), "r"), Route::Candidate, "{key}");
            }
        }
    }

    #[test]
    fn a_shadow_never_lets_the_candidate_answer() {
        let policy = RolloutPolicy::Shadow { fraction: 0.5 };
        // Sampled by request, whoever the caller.
        let routes: Vec<Route> =
            (0..2_000).map(|i| route(&policy, Some("one caller"), &format!("request-{i}"))).collect();
        assert!(!routes.contains(&Route::Candidate));
        let shadowed = routes.iter().filter(|r| **r == Route::ProductionAndShadow).count();
        assert!((shadowed as f64 / 2_000.0 - 0.5).abs() < 0.05, "{shadowed}");
        assert_eq!(route(&RolloutPolicy::Immediate, None, "any"), Route::Candidate);
    }

    #[test]
    fn positions_are_stable_and_spread() {
        // Fixed values: a change here would move callers between versions mid-rollout.
        assert_eq!(position(""), position(""));
        let known: Vec<f64> = ["a", "b", "caller-1"].iter().map(|k| position(k)).collect();
        assert!(known.iter().all(|p| (0.0..1.0).contains(p)));
        assert!(known[0] != known[1] && known[1] != known[2]);
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            buckets[(position(&i.to_string()) * 10.0) as usize] += 1;
        }
        assert!(buckets.iter().all(|n| (850..=1150).contains(n)), "{buckets:?}");
    }

    #[test]
    fn answers_agree_on_labels_and_on_values_at_any_scale() {
        assert!(agree(Answer::Label("rose"), Answer::Label("rose"), 0.05));
        assert!(!agree(Answer::Label("rose"), Answer::Label("tulip"), 0.05));
        assert!(agree(Answer::Value(100_000.0), Answer::Value(104_000.0), 0.05));
        assert!(!agree(Answer::Value(100_000.0), Answer::Value(110_000.0), 0.05));
        assert!(agree(Answer::Value(0.0001), Answer::Value(0.000102), 0.05));
        assert!(agree(Answer::Value(0.0), Answer::Value(0.0), 0.05));
        assert!(!agree(Answer::Label("1"), Answer::Value(1.0), 0.05));
    }

    #[test]
    fn nothing_is_decided_before_the_minimum_requests() {
        let guards = Guards::default();
        let mut failing = healthy(99);
        failing.errors = 99;
        assert!(matches!(decide(&guards, &healthy(1000), &failing, 10_000), Decision::Continue(_)));
    }

    #[test]
    fn a_good_candidate_is_promoted_once_the_minimum_duration_has_passed() {
        let guards = Guards::default();
        let waiting = decide(&guards, &healthy(1000), &healthy(200), 60);
        assert!(matches!(&waiting, Decision::Continue(why) if why.contains("60 of the 900 seconds")), "{waiting:?}");
        let promoted = decide(&guards, &healthy(1000), &healthy(200), 900);
        assert!(matches!(&promoted, Decision::Promote(why) if why.contains("agreement 1.0000 on 200")), "{promoted:?}");
    }

    #[test]
    fn each_red_guard_rolls_back_at_once_with_its_figures() {
        let guards = Guards::default();
        let production = healthy(1000);
        let rolled_back = |candidate: Figures| match decide(&guards, &production, &candidate, 0) {
            Decision::RollBack(reason) => reason,
            other => panic!("{other:?}"),
        };
        let errors = Figures { errors: 5, ..healthy(200) };
        assert!(rolled_back(errors).contains("error rate 0.0250 (5 of 200 requests)"));
        let slow = Figures { latency_p99_ms: Some(20.0), ..healthy(200) };
        assert!(rolled_back(slow).contains("10.00× production's"));
        // Twice as slow, but by 2 ms: within the slack.
        let noisy = Figures { latency_p99_ms: Some(4.0), ..healthy(200) };
        assert!(matches!(decide(&guards, &production, &noisy, 0), Decision::Continue(_)));
        let disagreeing = Figures { agreed: 150, ..healthy(200) };
        assert!(rolled_back(disagreeing).contains("agrees with production on 0.7500 of 200"));
        let production = Figures { feedback: 100, correct: 95, ..healthy(1000) };
        let worse = Figures { feedback: 50, correct: 40, ..healthy(200) };
        match decide(&guards, &production, &worse, 0) {
            Decision::RollBack(reason) => assert!(reason.contains("live accuracy 0.8000"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn too_little_feedback_or_comparison_decides_nothing_by_itself() {
        let guards = Guards::default();
        // 20 rows with feedback: not enough to call the candidate worse on accuracy.
        let production = Figures { feedback: 100, correct: 95, ..healthy(1000) };
        let candidate = Figures { feedback: 20, correct: 10, compared: 0, agreed: 0, ..healthy(200) };
        assert!(matches!(decide(&guards, &production, &candidate, 900), Decision::Promote(_)));
    }

    fn rollout(policy: RolloutPolicy) -> Rollout {
        Rollout {
            candidate: 2,
            bundle: "s3://artifacts/2/model.tar.gz".into(),
            production: 1,
            policy,
            guards: Guards::default(),
            started_at: time::macros::datetime!(2026-11-23 10:00 UTC),
            started_by: "api".into(),
            status: RolloutStatus::Running,
            ended_at: None,
            reason: None,
            figures: None,
            applied: false,
        }
    }

    fn row(id: &str, version: i64, label: &str, latency_ms: f64, run: Option<CandidateRun>) -> CaptureRecord {
        CaptureRecord::Prediction(CapturedPrediction {
            prediction_id: id.into(),
            time: time::macros::datetime!(2026-11-23 10:05 UTC),
            model: "iris".into(),
            version,
            input: json!({}),
            output: json!({ "prediction": label }),
            latency_ms,
            rollout: run,
        })
    }

    fn shadow(output: Option<&str>, error: Option<&str>) -> Option<CandidateRun> {
        Some(CandidateRun {
            candidate: 2,
            route: CandidateRoute::Shadow,
            output: output.map(|label| json!({ "prediction": label })),
            error: error.map(str::to_owned),
            latency_ms: Some(3.0),
        })
    }

    fn feedback(id: &str, version: i64, truth: &str, predicted: &str) -> CaptureRecord {
        CaptureRecord::Feedback(CapturedFeedback {
            prediction_id: id.into(),
            time: time::macros::datetime!(2026-11-23 10:06 UTC),
            model: "iris".into(),
            version,
            truth: json!(truth),
            output: Some(json!({ "prediction": predicted })),
        })
    }

    #[test]
    fn a_tally_counts_shadowed_rows_errors_agreement_and_feedback_per_version() {
        let mut tally = Tally::new(&rollout(RolloutPolicy::Shadow { fraction: 1.0 }), Task::Classification);
        tally.add(&row("a-0", 1, "setosa", 1.0, shadow(Some("setosa"), None)));
        tally.add(&row("a-1", 1, "setosa", 1.0, shadow(Some("virginica"), None)));
        tally.add(&row("b-0", 1, "setosa", 2.0, shadow(None, Some("model failed"))));
        tally.add(&row("c-0", 1, "setosa", 2.0, None));
        // Another candidate's shadow, another version, and a row from before the rollout.
        tally.add(&row(
            "d-0",
            1,
            "setosa",
            2.0,
            Some(CandidateRun { candidate: 3, ..shadow(Some("x"), None).unwrap() }),
        ));
        tally.add(&row("e-0", 7, "setosa", 2.0, None));
        let CaptureRecord::Prediction(mut early) = row("f-0", 1, "setosa", 50.0, None) else { unreachable!() };
        early.time = time::macros::datetime!(2026-11-23 09:00 UTC);
        tally.add(&CaptureRecord::Prediction(early));
        // Truth for a shadowed row scores both versions; sent again, it replaces.
        tally.add(&feedback("a-1", 1, "setosa", "setosa"));
        tally.add(&feedback("a-1", 1, "virginica", "setosa"));

        let (production, candidate) = tally.figures();
        assert_eq!((production.requests, production.errors), (5, 0));
        assert_eq!((candidate.requests, candidate.errors, candidate.compared, candidate.agreed), (3, 1, 2, 1));
        assert_eq!((candidate.latency_p50_ms, candidate.latency_p99_ms), (Some(3.0), Some(3.0)));
        assert_eq!((production.latency_p50_ms, production.latency_p99_ms), (Some(2.0), Some(2.0)));
        assert_eq!((production.feedback, production.correct), (1, 0));
        assert_eq!((candidate.feedback, candidate.correct), (1, 1), "the candidate's shadow answer was right");
    }

    #[test]
    fn a_canary_row_counts_for_the_version_that_answered() {
        let mut tally = Tally::new(&rollout(RolloutPolicy::Canary { fraction: 0.5 }), Task::Regression);
        let canary = |error: Option<&str>| {
            Some(CandidateRun {
                candidate: 2,
                route: CandidateRoute::Canary,
                output: None,
                error: error.map(str::to_owned),
                latency_ms: None,
            })
        };
        tally.add(&row("a-0", 2, "ignored", 4.0, canary(None)));
        tally.add(&row("b-0", 1, "ignored", 1.0, canary(Some("bundle did not load"))));
        tally.add(&feedback("a-0", 2, "104", "100"));
        let (production, candidate) = tally.figures();
        assert_eq!((production.requests, candidate.requests, candidate.errors), (1, 2, 1));
        assert_eq!(candidate.latency_p99_ms, Some(4.0));
        assert_eq!((candidate.feedback, candidate.correct), (1, 1), "104 and 100 agree within 5%");
    }

    #[test]
    fn status_names_are_their_json_names() {
        use RolloutStatus::*;
        for status in [Running, Promoted, RolledBack, Aborted] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn guards_refuse_shares_outside_zero_to_one() {
        assert!(Guards::default().validate().is_ok());
        assert!(Guards { min_agreement: 1.5, ..Guards::default() }.validate().unwrap_err().contains("min_agreement"));
        assert!(Guards { max_latency_ratio: 0.0, ..Guards::default() }.validate().is_err());
        let rollout = rollout(RolloutPolicy::Shadow { fraction: 0.5 });
        let text = serde_json::to_string(&rollout).unwrap();
        assert_eq!(serde_json::from_str::<Rollout>(&text).unwrap(), rollout);
    }
}
