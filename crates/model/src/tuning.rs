//! Hyperparameter tuning: which hyperparameters vary over which ranges, the objective the
//! best trial is chosen by, and the budget. A request is checked with the trainer's own
//! hyperparameter parsing at both ends of every range, so a tuning job that would start
//! failing trials is refused before it starts.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::hyperparameters::{Algorithm, Hyperparameters, Tunable, tunable};
use crate::manifest::Task;

/// The metric lines the trainer prints (`name=value`), and whether higher is better.
pub const REPORTED_METRICS: [(&str, bool); 10] = [
    ("validation:accuracy", true),
    ("validation:f1_macro", true),
    ("validation:log_loss", false),
    ("validation:roc_auc", true),
    ("validation:rmse", false),
    ("validation:mae", false),
    ("validation:r2", true),
    ("train:loss", false),
    ("train:accuracy", true),
    ("train:rmse", false),
];

/// Hyperparameters that take one of a list of values rather than a number in a range.
const CATEGORICAL: [&str; 2] = ["algorithm", "hidden_units"];

pub const MAX_TRAINING_JOBS: u32 = 100;
/// A request's trials and parallel trials when it does not say, if the stack's budget allows.
const DEFAULT_MAX_JOBS: u32 = 10;
const DEFAULT_PARALLEL_JOBS: u32 = 2;

/// How many trials, and how many at once, one tuning job of this stack may run: each trial is
/// a paid training job, so the stack caps them (`MaxTuningJobs`, `MaxParallelTrainingJobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TuningBudget {
    pub max_jobs: u32,
    pub parallel_jobs: u32,
}

impl TuningBudget {
    /// Whether a plan stays within the budget; otherwise which limit it passes.
    pub fn admits(&self, plan: &TuningPlan) -> Result<(), String> {
        if plan.max_jobs > self.max_jobs {
            return Err(format!(
                "tuning max_jobs {} is over this stack's limit of {} trials (MaxTuningJobs)",
                plan.max_jobs, self.max_jobs
            ));
        }
        if plan.parallel_jobs > self.parallel_jobs {
            return Err(format!(
                "tuning parallel_jobs {} is over this stack's limit of {} trials at once (MaxParallelTrainingJobs)",
                plan.parallel_jobs, self.parallel_jobs
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    Auto,
    Linear,
    Logarithmic,
}

impl Scaling {
    /// SageMaker's name for the scaling type.
    pub fn sagemaker_name(self) -> &'static str {
        match self {
            Self::Auto => "Auto",
            Self::Linear => "Linear",
            Self::Logarithmic => "Logarithmic",
        }
    }

    pub fn from_sagemaker_name(name: &str) -> Self {
        match name {
            "Logarithmic" => Self::Logarithmic,
            "Linear" => Self::Linear,
            _ => Self::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    Continuous { min: f64, max: f64, scaling: Scaling },
    Integer { min: i64, max: i64, scaling: Scaling },
    Categorical(Vec<String>),
}

impl Range {
    /// The value for a uniform draw `u` in [0, 1), as a hyperparameter string.
    pub fn sample(&self, u: f64) -> String {
        let between = |min: f64, max: f64, scaling: Scaling| match scaling {
            Scaling::Logarithmic => (min.ln() + u * (max.ln() - min.ln())).exp(),
            Scaling::Auto | Scaling::Linear => min + u * (max - min),
        };
        match self {
            Self::Continuous { min, max, scaling } => format!("{}", between(*min, *max, *scaling).clamp(*min, *max)),
            Self::Integer { min, max, scaling } => {
                // Widened by one so the top value is as likely as the others.
                let (low, high) = (*min as f64, *max as f64 + 1.0);
                let value = match scaling {
                    Scaling::Logarithmic => between(low, high, *scaling),
                    Scaling::Auto | Scaling::Linear => low + u * (high - low),
                };
                format!("{}", (value.floor() as i64).clamp(*min, *max))
            }
            Self::Categorical(values) => values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone(),
        }
    }

    /// The values a range can reach at its ends, to check with the trainer's parsing.
    fn extremes(&self) -> Vec<String> {
        match self {
            Self::Continuous { min, max, .. } => vec![min.to_string(), max.to_string()],
            Self::Integer { min, max, .. } => vec![min.to_string(), max.to_string()],
            Self::Categorical(values) => values.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub metric: String,
    pub maximize: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TuningPlan {
    pub objective: Objective,
    pub max_jobs: u32,
    pub parallel_jobs: u32,
    pub ranges: BTreeMap<String, Range>,
}

impl TuningPlan {
    /// Why trials of `instances` instances each cannot run this plan, if they cannot: every
    /// algorithm its `algorithm` range holds must train on that many (the rule of
    /// [`Algorithm::instances_refused`]), or those trials would only fail.
    pub fn instances_refused(&self, instances: u32) -> Option<String> {
        let Some(Range::Categorical(names)) = self.ranges.get("algorithm") else { return None };
        let reason =
            names.iter().filter_map(|name| Algorithm::named(name)).find_map(|a| a.instances_refused(instances))?;
        Some(format!("the tuning range of algorithm would run trials that fail: {reason}"))
    }
}

/// The `tuning` block of a training request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningRequest {
    #[serde(default)]
    objective: Option<String>,
    #[serde(default)]
    max_jobs: Option<u32>,
    #[serde(default)]
    parallel_jobs: Option<u32>,
    ranges: BTreeMap<String, RangeRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RangeRequest {
    Values { values: Vec<serde_json::Value> },
    Bounds { min: serde_json::Number, max: serde_json::Number, scaling: Option<Scaling> },
}

impl TuningRequest {
    /// Checks the request against the fixed hyperparameters it will be combined with. What
    /// it leaves out is defaulted within `budget`; whether what it asks for is within it is
    /// [`TuningBudget::admits`]'s question.
    pub fn plan(self, fixed: &BTreeMap<String, String>, budget: TuningBudget) -> Result<TuningPlan, String> {
        let objective = match self.objective {
            Some(name) => {
                let qualified = if name.contains(':') { name } else { format!("validation:{name}") };
                let &(metric, maximize) =
                    REPORTED_METRICS.iter().find(|(metric, _)| *metric == qualified).ok_or_else(|| {
                        let known: Vec<&str> = REPORTED_METRICS.iter().map(|(m, _)| *m).collect();
                        format!(
                            "tuning objective {qualified:?} is not a metric the trainer reports ({})",
                            known.join(", ")
                        )
                    })?;
                Objective { metric: metric.to_owned(), maximize }
            }
            None => match Hyperparameters::parse(fixed.clone())?.task {
                Some(Task::Classification) => Objective { metric: "validation:accuracy".into(), maximize: true },
                Some(Task::Regression) => Objective { metric: "validation:rmse".into(), maximize: false },
                None => return Err("tuning objective is required when the task is not given".into()),
            },
        };
        let max_jobs = self.max_jobs.unwrap_or(DEFAULT_MAX_JOBS.min(budget.max_jobs));
        let parallel_jobs = self.parallel_jobs.unwrap_or(DEFAULT_PARALLEL_JOBS.min(budget.parallel_jobs).min(max_jobs));
        if !(1..=MAX_TRAINING_JOBS).contains(&max_jobs) {
            return Err(format!("tuning max_jobs must be between 1 and {MAX_TRAINING_JOBS}"));
        }
        if !(1..=max_jobs).contains(&parallel_jobs) {
            return Err("tuning parallel_jobs must be between 1 and max_jobs".into());
        }
        if self.ranges.is_empty() {
            return Err("tuning ranges must name at least one hyperparameter".into());
        }
        let mut ranges = BTreeMap::new();
        for (name, request) in self.ranges {
            if fixed.contains_key(&name) {
                return Err(format!("hyperparameter {name} is both fixed and tuned; give it one way only"));
            }
            let range = range(&name, request)?;
            for value in range.extremes() {
                let mut trial = fixed.clone();
                trial.insert(name.clone(), value);
                Hyperparameters::parse(trial).map_err(|err| format!("tuning range of {name}: {err}"))?;
            }
            ranges.insert(name, range);
        }
        Ok(TuningPlan { objective, max_jobs, parallel_jobs, ranges })
    }
}

fn range(name: &str, request: RangeRequest) -> Result<Range, String> {
    match request {
        RangeRequest::Values { values } => {
            if !CATEGORICAL.contains(&name) && tunable(name).is_none() {
                return Err(format!("hyperparameter {name} cannot be tuned"));
            }
            if values.is_empty() {
                return Err(format!("tuning range of {name} has no values"));
            }
            let values = values.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
            Ok(Range::Categorical(values))
        }
        RangeRequest::Bounds { min, max, scaling } => {
            let scaling = scaling.unwrap_or(Scaling::Auto);
            let (low, high) = (min.as_f64().unwrap_or(f64::NAN), max.as_f64().unwrap_or(f64::NAN));
            if low.is_nan() || high.is_nan() || low > high {
                return Err(format!("tuning range of {name}: min {min} is greater than max {max}"));
            }
            if scaling == Scaling::Logarithmic && low <= 0.0 {
                return Err(format!("tuning range of {name}: logarithmic scaling needs min > 0"));
            }
            match tunable(name) {
                Some(Tunable::Continuous) => Ok(Range::Continuous { min: low, max: high, scaling }),
                Some(Tunable::Integer) => match (min.as_i64(), max.as_i64()) {
                    (Some(min), Some(max)) => Ok(Range::Integer { min, max, scaling }),
                    _ => Err(format!("tuning range of {name} needs whole-number bounds")),
                },
                None if CATEGORICAL.contains(&name) => {
                    Err(format!("hyperparameter {name} is tuned over a list: give \"values\""))
                }
                None => Err(format!("hyperparameter {name} cannot be tuned")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> BTreeMap<String, String> {
        BTreeMap::from([("target".to_owned(), "y".to_owned()), ("task".to_owned(), "classification".to_owned())])
    }

    const ROOMY: TuningBudget = TuningBudget { max_jobs: MAX_TRAINING_JOBS, parallel_jobs: MAX_TRAINING_JOBS };

    fn plan_within(request: serde_json::Value, budget: TuningBudget) -> Result<TuningPlan, String> {
        serde_json::from_value::<TuningRequest>(request).map_err(|e| e.to_string())?.plan(&fixed(), budget)
    }

    fn plan(request: serde_json::Value) -> Result<TuningPlan, String> {
        plan_within(request, ROOMY)
    }

    #[test]
    fn a_request_becomes_a_plan_with_defaults() {
        let plan = plan(serde_json::json!({
            "ranges": {
                "learning_rate": {"min": 0.001, "max": 0.1, "scaling": "logarithmic"},
                "epochs": {"min": 50, "max": 200},
                "algorithm": {"values": ["linear", "mlp"]},
            }
        }))
        .unwrap();
        assert_eq!(plan.objective, Objective { metric: "validation:accuracy".into(), maximize: true });
        assert_eq!((plan.max_jobs, plan.parallel_jobs), (10, 2));
        assert_eq!(plan.ranges["epochs"], Range::Integer { min: 50, max: 200, scaling: Scaling::Auto });
        assert_eq!(plan.ranges["algorithm"], Range::Categorical(vec!["linear".into(), "mlp".into()]));
    }

    #[test]
    fn a_range_with_trees_needs_one_instance_per_trial() {
        let with_trees = plan(serde_json::json!({"ranges": {"algorithm": {"values": ["linear", "gbt"]}}})).unwrap();
        assert_eq!(with_trees.instances_refused(1), None);
        let refused = with_trees.instances_refused(2).expect("gbt trains on one instance");
        assert!(refused.contains("tuning range of algorithm") && refused.contains("gbt"), "{refused}");
        let without = plan(serde_json::json!({"ranges": {"algorithm": {"values": ["linear", "mlp"]}}})).unwrap();
        assert_eq!(without.instances_refused(4), None);
        let no_algorithm = plan(serde_json::json!({"ranges": {"l2": {"min": 0.0, "max": 1.0}}})).unwrap();
        assert_eq!(no_algorithm.instances_refused(4), None);
    }

    #[test]
    fn trees_are_tuned_like_the_other_algorithms() {
        let tuned = plan(serde_json::json!({
            "ranges": {
                "algorithm": {"values": ["linear", "gbt"]},
                "max_depth": {"min": 2, "max": 8},
                "max_leaf_nodes": {"min": 4, "max": 63, "scaling": "logarithmic"},
                "min_samples_leaf": {"min": 1, "max": 50},
            }
        }))
        .unwrap();
        assert_eq!(tuned.ranges["max_depth"], Range::Integer { min: 2, max: 8, scaling: Scaling::Auto });
        assert_eq!(tuned.ranges["algorithm"], Range::Categorical(vec!["linear".into(), "gbt".into()]));
        let too_many_bins = plan(serde_json::json!({"ranges": {"max_bins": {"min": 16, "max": 512}}}));
        assert!(too_many_bins.unwrap_err().contains("max_bins"), "a range end the trainer refuses");
    }

    #[test]
    fn bad_requests_are_refused_by_name() {
        let refused = [
            (serde_json::json!({"ranges": {"l2": {"min": 1.0, "max": 0.1}}}), "min 1.0 is greater than max 0.1"),
            (serde_json::json!({"ranges": {"epochs": {"min": 1.5, "max": 9}}}), "whole-number bounds"),
            (serde_json::json!({"ranges": {"target": {"values": ["a"]}}}), "both fixed and tuned"),
            (serde_json::json!({"ranges": {"seed": {"min": 1, "max": 9}}}), "seed cannot be tuned"),
            (serde_json::json!({"ranges": {"algorithm": {"values": ["linear", "forest"]}}}), "algorithm"),
            (serde_json::json!({"ranges": {"l2": {"min": 0, "max": 1, "scaling": "logarithmic"}}}), "min > 0"),
            (serde_json::json!({"ranges": {"l2": {"min": 0, "max": 1}}, "max_jobs": 0}), "max_jobs"),
            (
                serde_json::json!({"ranges": {"l2": {"min": 0, "max": 1}}, "max_jobs": 2, "parallel_jobs": 3}),
                "parallel",
            ),
            (serde_json::json!({"ranges": {"l2": {"min": 0, "max": 1}}, "objective": "speed"}), "validation:speed"),
            (serde_json::json!({"ranges": {}}), "at least one"),
            (serde_json::json!({"ranges": {"learning_rate": {"min": -1, "max": 1}}}), "learning_rate"),
        ];
        for (request, words) in refused {
            let message = plan(request.clone()).unwrap_err();
            assert!(message.contains(words), "{request}: {message:?} should mention {words:?}");
        }
    }

    #[test]
    fn an_objective_is_needed_when_the_task_is_unknown() {
        let request: TuningRequest =
            serde_json::from_value(serde_json::json!({"ranges": {"l2": {"min": 0, "max": 1}}})).unwrap();
        let fixed = BTreeMap::from([("target".to_owned(), "y".to_owned())]);
        assert!(request.plan(&fixed, ROOMY).unwrap_err().contains("objective is required"));
    }

    #[test]
    fn defaults_fit_the_budget_and_requests_over_it_are_refused_by_limit() {
        let budget = TuningBudget { max_jobs: 6, parallel_jobs: 1 };
        let ranges = serde_json::json!({"l2": {"min": 0, "max": 1}});
        let defaulted = plan_within(serde_json::json!({ "ranges": ranges }), budget).unwrap();
        assert_eq!((defaulted.max_jobs, defaulted.parallel_jobs), (6, 1));
        assert_eq!(budget.admits(&defaulted), Ok(()));

        let greedy = plan_within(serde_json::json!({ "ranges": ranges, "max_jobs": 100 }), budget).unwrap();
        let refusal = budget.admits(&greedy).unwrap_err();
        assert!(refusal.contains("max_jobs 100") && refusal.contains("MaxTuningJobs"), "{refusal}");
        let hasty = plan_within(serde_json::json!({ "ranges": ranges, "max_jobs": 4, "parallel_jobs": 4 }), budget);
        let refusal = budget.admits(&hasty.unwrap()).unwrap_err();
        assert!(refusal.contains("parallel_jobs 4") && refusal.contains("MaxParallelTrainingJobs"), "{refusal}");
    }

    #[test]
    fn samples_stay_in_range_and_reach_both_ends() {
        let draws: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let integer = Range::Integer { min: 2, max: 4, scaling: Scaling::Auto };
        let values: Vec<i64> = draws.iter().map(|&u| integer.sample(u).parse().unwrap()).collect();
        assert_eq!((values.iter().min(), values.iter().max()), (Some(&2), Some(&4)));
        let logarithmic = Range::Continuous { min: 0.001, max: 0.1, scaling: Scaling::Logarithmic };
        let values: Vec<f64> = draws.iter().map(|&u| logarithmic.sample(u).parse().unwrap()).collect();
        assert!(values.iter().all(|v| (0.001..=0.1).contains(v)));
        // Log scaling spends as many draws below 0.01 as above it.
        let below = values.iter().filter(|&&v| v < 0.01).count();
        assert!((450..=550).contains(&below), "{below}");
        let categorical = Range::Categorical(vec!["a".into(), "b".into()]);
        assert_eq!((categorical.sample(0.0), categorical.sample(0.999)), ("a".into(), "b".into()));
    }
}
