//! The model registry's rules, written once: which version is production, and whether a
//! new version is approved without a person (the gate). The AWS side (SageMaker's model
//! registry, the catalog's record of production) lives in `sluice-aws-ml` and asks these.

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// A version's state in the registry (SageMaker's `ModelApprovalStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Approval {
    Approved,
    Rejected,
    PendingManualApproval,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "Approved",
            Self::Rejected => "Rejected",
            Self::PendingManualApproval => "PendingManualApproval",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Approved, Self::Rejected, Self::PendingManualApproval].into_iter().find(|a| a.as_str() == text)
    }
}

/// What the production rule needs to know of a version.
pub trait Versioned {
    fn version(&self) -> i64;
    fn approval(&self) -> Approval;
}

/// **The** production rule: the approved version with the highest version number. Approving
/// an older version by hand does not roll production back; rejecting production does.
pub fn production<T: Versioned>(versions: &[T]) -> Option<&T> {
    versions.iter().filter(|v| v.approval() == Approval::Approved).max_by_key(|v| v.version())
}

/// The gate's answer for a new version, with the reason people see in the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct GateDecision {
    /// `Approved` or `PendingManualApproval`: the gate never rejects, a person does.
    pub approval: Approval,
    pub reason: String,
}

impl GateDecision {
    fn approve(reason: String) -> Self {
        Self { approval: Approval::Approved, reason }
    }

    fn wait(reason: String) -> Self {
        Self { approval: Approval::PendingManualApproval, reason }
    }
}

/// Approves `candidate` automatically only when the model has no production version, or
/// when the candidate beats the current production version by `margin` on the primary
/// metric **measured on the same rows** (the candidate's validation split, which the
/// trainer also scores production on). Anything else — production not scored, scored as
/// another version than today's production, scoring failed, the metric missing or not a
/// number — waits for a person.
pub fn gate(candidate: &Metrics, current_production: Option<i64>, margin: f64) -> GateDecision {
    let primary = &candidate.primary_metric;
    let name = &primary.name;
    if !primary.value.is_finite() {
        return GateDecision::wait(format!("the candidate's {name} is not a number"));
    }
    let Some(production) = current_production else {
        return GateDecision::approve(format!("first version of the model ({name} {:.4})", primary.value));
    };
    let Some(score) = &candidate.production else {
        return GateDecision::wait(format!(
            "version {production} (production) was not scored on this version's validation rows, so the two cannot be compared"
        ));
    };
    if score.version != production {
        return GateDecision::wait(format!(
            "compared with version {} at training time, but production is now version {production}",
            score.version
        ));
    }
    if let Some(error) = &score.error {
        return GateDecision::wait(format!("version {production} (production) could not be scored: {error}"));
    }
    let Some(&current) = score.validation.get(name).filter(|v| v.is_finite()) else {
        return GateDecision::wait(format!("version {production} (production) has no {name} on the same rows"));
    };
    let (better, comparison) = if primary.higher_is_better {
        (primary.value > current + margin, "higher")
    } else {
        (primary.value < current - margin, "lower")
    };
    let figures = format!(
        "{name} {:.4} vs {current:.4} for version {production} (production) on the same validation rows; \
         {comparison} is better, margin {margin}",
        primary.value
    );
    if better {
        GateDecision::approve(format!("beats production: {figures}"))
    } else {
        GateDecision::wait(format!("does not beat production: {figures}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metrics::{PrimaryMetric, ProductionScore};

    struct Version(i64, Approval);

    impl Versioned for Version {
        fn version(&self) -> i64 {
            self.0
        }
        fn approval(&self) -> Approval {
            self.1
        }
    }

    #[test]
    fn production_is_the_highest_approved_version() {
        use Approval::*;
        let versions = [Version(3, PendingManualApproval), Version(1, Approved), Version(2, Approved)];
        assert_eq!(production(&versions).map(|v| v.0), Some(2));
        assert_eq!(production(&[Version(4, Rejected), Version(1, Approved)]).map(|v| v.0), Some(1));
        assert!(production(&[Version(1, Rejected)]).is_none());
        assert!(production::<Version>(&[]).is_none());
    }

    #[test]
    fn approvals_round_trip() {
        for approval in [Approval::Approved, Approval::Rejected, Approval::PendingManualApproval] {
            assert_eq!(Approval::parse(approval.as_str()), Some(approval));
        }
        assert_eq!(Approval::parse("approved"), None);
    }

    fn candidate(value: f64, production: Option<ProductionScore>) -> Metrics {
        Metrics {
            primary_metric: PrimaryMetric { name: "accuracy".into(), value, higher_is_better: true },
            validation: BTreeMap::from([("accuracy".into(), value)]),
            train: BTreeMap::new(),
            rows: None,
            training: None,
            onnx_max_abs_difference: None,
            production,
        }
    }

    fn scored(version: i64, accuracy: f64) -> Option<ProductionScore> {
        Some(ProductionScore { version, validation: BTreeMap::from([("accuracy".into(), accuracy)]), error: None })
    }

    #[test]
    fn the_first_version_is_approved() {
        let decision = gate(&candidate(0.7, None), None, 0.0);
        assert_eq!(decision.approval, Approval::Approved, "{}", decision.reason);
    }

    #[test]
    fn a_candidate_must_beat_production_on_the_same_rows_by_the_margin() {
        let approved = gate(&candidate(0.95, scored(2, 0.90)), Some(2), 0.01);
        assert_eq!(approved.approval, Approval::Approved, "{}", approved.reason);
        assert!(approved.reason.contains("0.9500 vs 0.9000"), "{}", approved.reason);
        let within_margin = gate(&candidate(0.905, scored(2, 0.90)), Some(2), 0.01);
        assert_eq!(within_margin.approval, Approval::PendingManualApproval);
        let worse = gate(&candidate(0.85, scored(2, 0.90)), Some(2), 0.0);
        assert_eq!(worse.approval, Approval::PendingManualApproval);
        assert!(worse.reason.starts_with("does not beat production"), "{}", worse.reason);
        let tie = gate(&candidate(0.90, scored(2, 0.90)), Some(2), 0.0);
        assert_eq!(tie.approval, Approval::PendingManualApproval, "a tie is not better");
    }

    #[test]
    fn lower_is_better_metrics_compare_the_other_way() {
        let mut metrics = candidate(1.0, None);
        metrics.primary_metric = PrimaryMetric { name: "rmse".into(), value: 1.0, higher_is_better: false };
        metrics.production =
            Some(ProductionScore { version: 1, validation: BTreeMap::from([("rmse".into(), 2.0)]), error: None });
        assert_eq!(gate(&metrics, Some(1), 0.5).approval, Approval::Approved);
        assert_eq!(gate(&metrics, Some(1), 1.0).approval, Approval::PendingManualApproval);
    }

    #[test]
    fn without_a_comparison_on_the_same_rows_a_person_decides() {
        let cases = [
            (candidate(0.99, None), "was not scored"),
            (candidate(0.99, scored(1, 0.5)), "production is now version 2"),
            (
                candidate(
                    0.99,
                    Some(ProductionScore {
                        version: 2,
                        validation: BTreeMap::new(),
                        error: Some("column x missing".into()),
                    }),
                ),
                "column x missing",
            ),
            (
                candidate(
                    0.99,
                    Some(ProductionScore {
                        version: 2,
                        validation: BTreeMap::from([("rmse".into(), 0.1)]),
                        error: None,
                    }),
                ),
                "has no accuracy",
            ),
            (candidate(f64::NAN, scored(2, 0.5)), "not a number"),
        ];
        for (metrics, words) in cases {
            let decision = gate(&metrics, Some(2), 0.0);
            assert_eq!(decision.approval, Approval::PendingManualApproval, "{words}");
            assert!(decision.reason.contains(words), "{:?} should say {words:?}", decision.reason);
        }
    }
}
