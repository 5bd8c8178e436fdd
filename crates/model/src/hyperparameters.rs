//! The trainer's hyperparameters, parsed from the strings SageMaker passes. Shared with the
//! API that starts training, so a bad value is refused before any job is started.

use std::collections::BTreeMap;

use crate::manifest::Task;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Linear,
    Mlp,
    /// Gradient-boosted trees.
    Gbt,
}

impl Algorithm {
    const ALL: [Self; 3] = [Self::Linear, Self::Mlp, Self::Gbt];

    /// The algorithm `name` names.
    pub(crate) fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|algorithm| algorithm.name() == name)
    }

    /// The name `algorithm` takes and the manifest records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Mlp => "mlp",
            Self::Gbt => "gbt",
        }
    }

    /// Why a job of `instances` instances cannot train this algorithm, if it cannot: linear
    /// models and MLPs share their gradients between hosts; trees do not share their
    /// histograms yet.
    pub fn instances_refused(self, instances: u32) -> Option<String> {
        match (self, instances) {
            (_, 0) => Some("instance_count must be at least 1".into()),
            (Self::Gbt, 2..) => Some(format!(
                "algorithm gbt trains on one instance (its histograms are not shared between hosts yet), not {instances}"
            )),
            _ => None,
        }
    }
}

/// Hyperparameters, parsed from SageMaker's strings.
#[derive(Debug, Clone)]
pub struct Hyperparameters {
    pub target: String,
    pub task: Option<Task>,
    pub algorithm: Algorithm,
    pub exclude: Vec<String>,
    /// `None`: 1 / training rows for a linear model (scikit-learn's `C = 1`), 1e-4 for an MLP,
    /// 0 for trees (the penalty on leaf values, scikit-learn's `l2_regularization`).
    pub l2: Option<f32>,
    /// Adam's initial rate (MLP), or the shrinkage of each tree's values (trees).
    pub learning_rate: f32,
    /// The most iterations (linear), passes over the data (MLP) or boosting rounds (trees).
    pub epochs: usize,
    /// `None`: 32. The MLP's; a linear model is solved on all rows at once.
    pub batch_size: Option<usize>,
    pub hidden_units: Vec<usize>,
    pub tolerance: f64,
    pub patience: usize,
    /// Trees only: the most leaves per tree (grown best first), the deepest a leaf may be
    /// (`None`: no limit), the fewest training rows in a leaf, and the most bins a number
    /// is sorted into before the splits are searched.
    pub max_leaf_nodes: usize,
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub max_bins: usize,
    pub seed: u64,
    pub validation_fraction: f64,
    pub max_categories: usize,
    pub model_name: String,
    pub model_version: String,
    /// The registry version of production when the job started; its bundle arrives in the
    /// `production` channel and is scored on the same validation rows (for the gate).
    pub production_version: Option<i64>,
    pub raw: BTreeMap<String, String>,
}

/// The hyperparameter naming the stack that started the job: the register rule's event
/// pattern matches it, so a stack registers its own jobs only. The trainer ignores it.
pub const STACK: &str = "stack";

pub const KNOWN: [&str; 23] = [
    "dataset",
    "target",
    "task",
    "algorithm",
    "exclude",
    "l2",
    "learning_rate",
    "epochs",
    "batch_size",
    "hidden_units",
    "tolerance",
    "patience",
    "max_leaf_nodes",
    "max_depth",
    "min_samples_leaf",
    "max_bins",
    "seed",
    "validation_fraction",
    "max_categories",
    "model_name",
    "model_version",
    "production_version",
    STACK,
];

/// Trees sort a number into at most this many bins, so a bin (or the missing-value bin after
/// the last one) fits a byte.
pub const MAX_BINS: usize = 255;

fn invalid(name: &str, value: &str, expected: &str) -> String {
    format!("hyperparameter {name} = {value:?} is not {expected}")
}

impl Hyperparameters {
    pub fn parse(raw: BTreeMap<String, String>) -> Result<Self, String> {
        // SageMaker adds its own (`_tuning_objective_metric`, `sagemaker_…`); anything else
        // unknown is most likely a typo that would otherwise be silently ignored.
        if let Some(unknown) =
            raw.keys().find(|k| !KNOWN.contains(&k.as_str()) && !k.starts_with('_') && !k.starts_with("sagemaker"))
        {
            return Err(format!("unknown hyperparameter {unknown:?}; known: {}", KNOWN.join(", ")));
        }
        let get = |name: &str| raw.get(name).map(String::as_str).filter(|v| !v.is_empty());
        fn number<T: std::str::FromStr>(
            value: Option<&str>,
            name: &str,
            default: T,
            expected: &str,
        ) -> Result<T, String> {
            value.map_or(Ok(default), |v| v.parse().map_err(|_| invalid(name, v, expected)))
        }
        let named = get("algorithm").unwrap_or(Algorithm::Linear.name());
        let algorithm = Algorithm::named(named).ok_or_else(|| invalid("algorithm", named, "linear, mlp or gbt"))?;
        let task = match get("task") {
            None => None,
            Some("classification") => Some(Task::Classification),
            Some("regression") => Some(Task::Regression),
            Some(other) => return Err(invalid("task", other, "classification or regression")),
        };
        let hidden_units = match get("hidden_units") {
            None => vec![64],
            Some(text) => text
                .split(',')
                .map(|part| part.trim().parse::<usize>().ok().filter(|&n| n > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("hidden_units", text, "a comma-separated list of positive whole numbers"))?,
        };
        // A linear model is solved by L-BFGS: `epochs` bounds its iterations, `tolerance` its
        // largest gradient component. The batch size is Adam's, for the MLP only. Trees take
        // scikit-learn's HistGradientBoosting defaults: 100 rounds of shrinkage 0.1, stopped
        // after 10 rounds without improvement.
        let (default_epochs, default_learning_rate, default_patience) = match algorithm {
            Algorithm::Linear => (1000, 0.01, 20),
            Algorithm::Mlp => (500, 0.01, 20),
            Algorithm::Gbt => (100, 0.1, 10),
        };
        let parsed = Self {
            target: get("target")
                .ok_or_else(|| "hyperparameter target (the column to predict) is required".to_owned())?
                .to_owned(),
            task,
            algorithm,
            exclude: get("exclude").map(|t| t.split(',').map(|c| c.trim().to_owned()).collect()).unwrap_or_default(),
            l2: get("l2")
                .map(|v| v.parse::<f32>().map_err(|_| invalid("l2", v, "a non-negative number")))
                .transpose()?,
            learning_rate: number(get("learning_rate"), "learning_rate", default_learning_rate, "a positive number")?,
            epochs: number(get("epochs"), "epochs", default_epochs, "a whole number")?,
            batch_size: get("batch_size")
                .map(|v| v.parse::<usize>().map_err(|_| invalid("batch_size", v, "a whole number")))
                .transpose()?,
            hidden_units,
            tolerance: number(get("tolerance"), "tolerance", 1e-6, "a positive number")?,
            patience: number(get("patience"), "patience", default_patience, "a whole number")?,
            max_leaf_nodes: number(get("max_leaf_nodes"), "max_leaf_nodes", 31, "a whole number")?,
            max_depth: get("max_depth")
                .map(|v| v.parse::<usize>().map_err(|_| invalid("max_depth", v, "a whole number")))
                .transpose()?,
            min_samples_leaf: number(get("min_samples_leaf"), "min_samples_leaf", 20, "a whole number")?,
            max_bins: number(get("max_bins"), "max_bins", MAX_BINS, "a whole number")?,
            seed: number(get("seed"), "seed", 42, "a whole number")?,
            validation_fraction: number(get("validation_fraction"), "validation_fraction", 0.2, "a number")?,
            max_categories: number(get("max_categories"), "max_categories", 50, "a whole number")?,
            model_name: get("model_name").unwrap_or("model").to_owned(),
            model_version: get("model_version")
                .map(str::to_owned)
                .or_else(|| std::env::var("TRAINING_JOB_NAME").ok())
                .unwrap_or_else(|| "local".into()),
            production_version: get("production_version")
                .map(|v| v.parse::<i64>().map_err(|_| invalid("production_version", v, "a version number")))
                .transpose()?,
            raw: raw.clone(),
        };
        // Written so that NaN fails too.
        if parsed.l2.is_some_and(|l2| l2.is_nan() || l2 < 0.0) {
            return Err(invalid("l2", get("l2").unwrap_or_default(), "a non-negative number"));
        }
        if parsed.learning_rate.is_nan() || parsed.learning_rate <= 0.0 {
            return Err(invalid("learning_rate", get("learning_rate").unwrap_or_default(), "a positive number"));
        }
        if !(0.0..0.9).contains(&parsed.validation_fraction) {
            return Err(invalid("validation_fraction", get("validation_fraction").unwrap_or_default(), "in [0, 0.9)"));
        }
        if parsed.epochs == 0 || parsed.batch_size == Some(0) || parsed.max_categories == 0 {
            return Err("epochs, batch_size and max_categories must be at least 1".into());
        }
        if parsed.max_leaf_nodes < 2 {
            return Err(invalid("max_leaf_nodes", get("max_leaf_nodes").unwrap_or_default(), "at least 2"));
        }
        if parsed.max_depth == Some(0) {
            return Err(invalid("max_depth", get("max_depth").unwrap_or_default(), "at least 1"));
        }
        if parsed.min_samples_leaf == 0 {
            return Err(invalid("min_samples_leaf", get("min_samples_leaf").unwrap_or_default(), "at least 1"));
        }
        if !(2..=MAX_BINS).contains(&parsed.max_bins) {
            return Err(invalid("max_bins", get("max_bins").unwrap_or_default(), "between 2 and 255"));
        }
        Ok(parsed)
    }
}

/// How a hyperparameter may be tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunable {
    Continuous,
    Integer,
}

/// The hyperparameters a tuning job may vary, and how.
pub fn tunable(name: &str) -> Option<Tunable> {
    match name {
        "l2" | "learning_rate" | "tolerance" => Some(Tunable::Continuous),
        "epochs" | "batch_size" | "patience" | "max_categories" | "max_leaf_nodes" | "max_depth"
        | "min_samples_leaf" | "max_bins" => Some(Tunable::Integer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Hyperparameters, String> {
        Hyperparameters::parse(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn strings_become_typed_values_with_defaults() {
        let hp = parse(&[("target", "y"), ("algorithm", "mlp"), ("hidden_units", "32,16"), ("l2", "0.01")]).unwrap();
        assert_eq!((hp.algorithm, hp.hidden_units.as_slice(), hp.l2), (Algorithm::Mlp, &[32, 16][..], Some(0.01)));
        assert_eq!(hp.seed, 42);
    }

    #[test]
    fn bad_values_and_unknown_names_are_refused_by_name() {
        assert_eq!(parse(&[("epochs", "5")]).unwrap_err(), "hyperparameter target (the column to predict) is required");
        assert_eq!(
            parse(&[("target", "y"), ("l2", "-1")]).unwrap_err(),
            "hyperparameter l2 = \"-1\" is not a non-negative number"
        );
        assert!(parse(&[("target", "y"), ("hidden_units", "4,x")]).unwrap_err().contains("hidden_units"));
        assert!(parse(&[("target", "y"), ("learnin_rate", "1")]).unwrap_err().contains("unknown hyperparameter"));
        assert!(parse(&[("target", "y"), ("_tuning_objective_metric", "x"), ("sagemaker_program", "x")]).is_ok());
    }

    #[test]
    fn trees_take_their_own_defaults_and_limits() {
        let hp = parse(&[("target", "y"), ("algorithm", "gbt")]).unwrap();
        assert_eq!(hp.algorithm, Algorithm::Gbt);
        assert_eq!((hp.epochs, hp.learning_rate, hp.patience, hp.l2), (100, 0.1, 10, None));
        assert_eq!((hp.max_leaf_nodes, hp.max_depth, hp.min_samples_leaf, hp.max_bins), (31, None, 20, 255));
        let mlp = parse(&[("target", "y"), ("algorithm", "mlp")]).unwrap();
        assert_eq!((mlp.epochs, mlp.learning_rate, mlp.patience), (500, 0.01, 20), "the MLP's defaults stay");

        let tuned = parse(&[
            ("target", "y"),
            ("algorithm", "gbt"),
            ("max_depth", "3"),
            ("max_leaf_nodes", "8"),
            ("min_samples_leaf", "1"),
            ("max_bins", "16"),
        ])
        .unwrap();
        assert_eq!(
            (tuned.max_leaf_nodes, tuned.max_depth, tuned.min_samples_leaf, tuned.max_bins),
            (8, Some(3), 1, 16)
        );

        for (name, value, words) in [
            ("max_leaf_nodes", "1", "at least 2"),
            ("max_depth", "0", "at least 1"),
            ("max_depth", "deep", "a whole number"),
            ("min_samples_leaf", "0", "at least 1"),
            ("max_bins", "256", "between 2 and 255"),
            ("max_bins", "1", "between 2 and 255"),
        ] {
            let message = parse(&[("target", "y"), ("algorithm", "gbt"), (name, value)]).unwrap_err();
            assert!(message.contains(name) && message.contains(words), "{name} = {value}: {message}");
        }
        assert!(parse(&[("target", "y"), ("algorithm", "forest")]).unwrap_err().contains("linear, mlp or gbt"));
        for name in ["max_leaf_nodes", "max_depth", "min_samples_leaf", "max_bins"] {
            assert_eq!(tunable(name), Some(Tunable::Integer), "{name}");
        }
    }

    #[test]
    fn trees_train_on_one_instance_and_networks_on_several() {
        assert_eq!(Algorithm::Linear.instances_refused(4), None);
        assert_eq!(Algorithm::Mlp.instances_refused(2), None);
        assert_eq!(Algorithm::Gbt.instances_refused(1), None);
        assert!(Algorithm::Gbt.instances_refused(2).is_some_and(|reason| reason.contains("one instance")));
        assert!(Algorithm::Mlp.instances_refused(0).is_some());
    }
}
