//! One training run: hyperparameters and channels in, model bundle out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sluice_model::metrics::{
    PREDICTION_COLUMN, PrimaryMetric, ProductionScore, RowCounts, TrainingRun, finite_metrics,
};
use sluice_model::pipeline::ColumnSummary;
use sluice_model::{
    Baseline, Bundle, BundleLimits, Column, Contents, FeaturePipeline, Frame, FrameSummary, MANIFEST_FORMAT_VERSION,
    Manifest, Metrics, Moments, NullNumbers, Task,
};
use sluice_profile::ColumnProfile;
use sluice_serving::{Prediction, Predictor};

use crate::cluster::Cluster;
use crate::contract::Contract;
use crate::data::{parquet_files, read_frame};
use crate::metrics::{classification, regression, stratified_split};
use crate::model::Model;
use crate::network::{Head, Network, TrainOptions};
use crate::onnx::{self, INPUT};
use crate::rng::Rng;
use crate::{ONNX_TOLERANCE, TrainError, gbt, linear};
use sluice_model::hyperparameters::{Algorithm, Hyperparameters};

/// A training instance's memory is gigabytes; a production bundle read to be scored may
/// take a good part of it.
const PRODUCTION_BUNDLE_MEMORY: u64 = 4 << 30;

/// What a run produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Trained {
        primary_metric: (String, f64),
        metrics: Box<Metrics>,
    },
    /// Not the first host of a multi-instance job: it trained on its shard with the others;
    /// the first host evaluates and writes the model.
    TrainedShare(String),
}

/// Class labels as text: numbers without a needless `.0`.
fn label_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{}", value as i64) } else { value.to_string() }
}

fn target_values(frame: &Frame, target: &str) -> Result<Vec<Option<TargetValue>>, TrainError> {
    match frame.column(target) {
        Some(Column::Numeric(values)) => Ok(values.iter().map(|v| v.map(TargetValue::Number)).collect()),
        Some(Column::Categorical(values)) => Ok(values.iter().map(|v| v.clone().map(TargetValue::Text)).collect()),
        Some(Column::Vector(_)) => {
            Err(TrainError::Input(format!("target column {target:?} is a vector; it cannot be predicted")))
        }
        None => {
            let columns: Vec<&str> = frame.columns.iter().map(|(n, _)| n.as_str()).collect();
            Err(TrainError::Input(format!(
                "target column {target:?} is not in the training data (columns: {})",
                columns.join(", ")
            )))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TargetValue {
    Number(f64),
    Text(String),
}

impl TargetValue {
    fn label(&self) -> String {
        match self {
            Self::Number(v) => label_text(*v),
            Self::Text(t) => t.clone(),
        }
    }
}

/// One host's share of what the hosts of a job must agree on before training: the feature
/// columns' statistics, the target's and the training data, over its training rows.
#[derive(Debug, Serialize, Deserialize)]
struct Share {
    features: FrameSummary,
    target: Moments,
    rows: u64,
    without_target: u64,
    files: Vec<String>,
}

impl Share {
    fn merge(self, other: Self) -> Result<Self, TrainError> {
        Ok(Self {
            features: self.features.merge(other.features).map_err(|e| TrainError::Input(e.to_string()))?,
            target: self.target.merge(other.target),
            rows: self.rows + other.rows,
            without_target: self.without_target + other.without_target,
            files: [self.files, other.files].concat(),
        })
    }
}

/// Every host's `part`, merged in host order: the same value on every host.
fn merged<T: Serialize + DeserializeOwned>(
    cluster: &mut Cluster,
    part: T,
    merge: impl Fn(T, T) -> Result<T, TrainError>,
) -> Result<T, TrainError> {
    if cluster.hosts() == 1 {
        return Ok(part);
    }
    let encoded = serde_json::to_vec(&part).expect("shares serialise");
    let mut parts = cluster.gather(encoded)?.into_iter().map(|bytes| {
        serde_json::from_slice::<T>(&bytes)
            .map_err(|e| TrainError::Data(format!("a host sent an unreadable share: {e}")))
    });
    let first = parts.next().expect("one part per host")?;
    parts.try_fold(first, |all, part| merge(all, part?))
}

/// `frame` with every host's columns, in the same order on every host: a column only some
/// hosts' files have is null on the others, as in [`Frame::append`] across one host's files.
fn with_every_hosts_columns(cluster: &mut Cluster, frame: Frame) -> Result<Frame, TrainError> {
    if cluster.hosts() == 1 {
        return Ok(frame);
    }
    let names: Vec<String> = frame.columns.iter().map(|(name, _)| name.clone()).collect();
    let kinds = FrameSummary::of(&frame.take(&[]), &names).map_err(|e| TrainError::Data(e.to_string()))?;
    let every = merged(cluster, kinds, |a, b| {
        a.merge(b).map_err(|e| TrainError::Data(format!("the hosts' files disagree on a column's type: {e}")))
    })?;
    let mut padded = Frame {
        columns: every
            .columns
            .into_iter()
            .map(|(name, kind)| {
                let empty = match kind {
                    ColumnSummary::Numeric(_) => Column::Numeric(Vec::new()),
                    ColumnSummary::Categorical { .. } => Column::Categorical(Vec::new()),
                    ColumnSummary::Vector { .. } => Column::Vector(Vec::new()),
                };
                (name, empty)
            })
            .collect(),
    };
    padded.append(frame).map_err(TrainError::Data)?;
    Ok(padded)
}

/// Trains on this host's data, with the job's other hosts if there are any; a host that gives
/// up tells the others why.
pub fn run(contract: &Contract) -> Result<Outcome, TrainError> {
    let hp = Hyperparameters::parse(contract.hyperparameters()?).map_err(TrainError::Input)?;
    let mut cluster = contract.cluster()?;
    let outcome = train(contract, &hp, &mut cluster);
    if let Err(err) = &outcome {
        cluster.abort(&err.to_string());
    }
    outcome
}

fn train(contract: &Contract, hp: &Hyperparameters, cluster: &mut Cluster) -> Result<Outcome, TrainError> {
    if let Some(reason) = hp.algorithm.instances_refused(u32::try_from(cluster.hosts()).unwrap_or(u32::MAX)) {
        return Err(TrainError::Input(reason));
    }
    let train_dir = contract.channel("train");
    if !train_dir.is_dir() {
        return Err(TrainError::Input(format!("channel train is missing ({})", train_dir.display())));
    }
    let train_files = parquet_files(&train_dir)?;
    let mut frame = read_frame(&train_files)?;
    if frame.rows() == 0 {
        let shards = if cluster.hosts() > 1 {
            " (each of the job's instances gets whole S3 objects: train on no more instances than the data set has objects)"
        } else {
            ""
        };
        return Err(TrainError::Input(format!(
            "channel train of {} has no rows (no Parquet files, or only empty ones){shards}",
            cluster.host()
        )));
    }
    // The first host holds out the validation rows; the others train on all their rows.
    let validation_dir = contract.channel("validation");
    let validation_files =
        if validation_dir.is_dir() && cluster.is_first() { parquet_files(&validation_dir)? } else { Vec::new() };
    let has_validation_channel = !validation_files.is_empty();
    let train_rows = frame.rows();
    if has_validation_channel {
        frame.append(read_frame(&validation_files)?).map_err(TrainError::Data)?;
    }

    let frame = with_every_hosts_columns(cluster, frame)?;

    // Rows without a target teach nothing.
    let targets = target_values(&frame, &hp.target)?;
    let labelled: Vec<usize> = (0..frame.rows()).filter(|&r| targets[r].is_some()).collect();
    let task = hp.task.unwrap_or(match frame.column(&hp.target) {
        Some(Column::Categorical(_)) => Task::Classification,
        _ => Task::Regression,
    });
    let features: Vec<String> =
        frame.columns.iter().map(|(n, _)| n.clone()).filter(|n| *n != hp.target && !hp.exclude.contains(n)).collect();
    if features.is_empty() {
        return Err(TrainError::Input("no feature columns besides the target".into()));
    }

    let class_labels: Vec<String> = match task {
        Task::Classification => {
            let labels: BTreeSet<String> = targets.iter().flatten().map(TargetValue::label).collect();
            let labels = merged(cluster, labels, |mut all, more| {
                all.extend(more);
                Ok(all)
            })?;
            if labels.len() < 2 {
                return Err(TrainError::Input(format!("classification needs at least two classes in {:?}", hp.target)));
            }
            labels.into_iter().collect()
        }
        Task::Regression => {
            if targets.iter().flatten().any(|t| matches!(t, TargetValue::Text(_))) {
                return Err(TrainError::Input(format!("regression needs a numeric target; {:?} is text", hp.target)));
            }
            Vec::new()
        }
    };
    let class_of = |r: usize| class_labels.binary_search(&targets[r].as_ref().expect("labelled").label()).unwrap_or(0);

    let mut rng = Rng::new(hp.seed);
    let (train_index, validation_index): (Vec<usize>, Vec<usize>) = if !cluster.is_first() {
        (labelled.clone(), Vec::new())
    } else if has_validation_channel {
        labelled.iter().partition(|&&r| r < train_rows)
    } else {
        let strata: Vec<usize> = match task {
            Task::Classification => labelled.iter().map(|&r| class_of(r)).collect(),
            Task::Regression => vec![0; labelled.len()],
        };
        let (train, validation) = stratified_split(&strata, hp.validation_fraction, &mut rng);
        (train.iter().map(|&i| labelled[i]).collect(), validation.iter().map(|&i| labelled[i]).collect())
    };
    if cluster.is_first() && (train_index.is_empty() || validation_index.is_empty()) {
        return Err(TrainError::Input(format!(
            "too few labelled rows to train and validate ({} for training, {} for validation)",
            train_index.len(),
            validation_index.len()
        )));
    }

    let train_frame = frame.take(&train_index);
    let validation_frame = frame.take(&validation_index);
    let null_numbers = match hp.algorithm {
        Algorithm::Gbt => NullNumbers::Missing,
        Algorithm::Linear | Algorithm::Mlp => NullNumbers::Mean,
    };
    let number_of = |r: usize| match &targets[r] {
        Some(TargetValue::Number(v)) => *v,
        _ => 0.0,
    };
    let share = Share {
        features: FrameSummary::of(&train_frame, &features).map_err(|e| TrainError::Input(e.to_string()))?,
        target: match task {
            Task::Regression => Moments::of(&train_index.iter().map(|&r| number_of(r)).collect::<Vec<_>>()),
            Task::Classification => Moments::default(),
        },
        rows: train_index.len() as u64,
        without_target: (frame.rows() - labelled.len()) as u64,
        files: train_files
            .iter()
            .chain(&validation_files)
            .map(|p| p.strip_prefix(contract.root()).unwrap_or(p).display().to_string())
            .collect(),
    };
    let all = merged(cluster, share, Share::merge)?;
    let pipeline = FeaturePipeline::from_summary(&all.features, hp.max_categories, null_numbers)
        .map_err(|e| TrainError::Input(e.to_string()))?;
    let x_train = pipeline.transform(&train_frame).map_err(|e| TrainError::Input(e.to_string()))?;
    let x_validation = pipeline.transform(&validation_frame).map_err(|e| TrainError::Input(e.to_string()))?;

    // Models learn class indices, or the target standardised with the training rows' mean
    // and spread (the head turns outputs back into target units).
    let (head, standardisation) = match task {
        Task::Classification => (Head::Classes(class_labels.len()), None),
        Task::Regression => {
            let (mean, std) = (all.target.mean, all.target.std().max(1e-12));
            (Head::Regression { mean: mean as f32, std: std as f32 }, Some((mean, std)))
        }
    };
    let learned = |index: &[usize]| -> Vec<f32> {
        index
            .iter()
            .map(|&r| match standardisation {
                None => class_of(r) as f32,
                Some((mean, std)) => ((number_of(r) - mean) / std) as f32,
            })
            .collect()
    };
    let y_train = learned(&train_index);
    let rows = train_index.len();
    let (model, report) = match hp.algorithm {
        Algorithm::Linear => {
            let l2 = hp.l2.map_or(1.0 / all.rows as f64, f64::from);
            let solve = linear::Solve { l2, max_iterations: hp.epochs, tolerance: hp.tolerance };
            let (network, report) = linear::fit(&x_train, &y_train, pipeline.width(), head, solve, cluster)?;
            (Model::Network(network), report)
        }
        Algorithm::Mlp => {
            let mut network = Network::new(pipeline.width(), &hp.hidden_units, head, &mut rng);
            network.start_as_the_first_host(cluster)?;
            let options = TrainOptions {
                learning_rate: hp.learning_rate,
                l2: hp.l2.unwrap_or(1e-4),
                max_epochs: hp.epochs,
                batch_size: hp.batch_size.unwrap_or(32),
                tolerance: hp.tolerance,
                patience: hp.patience,
            };
            let report = network.train(&x_train, &y_train, rows, &options, &mut rng, cluster)?;
            (Model::Network(network), report)
        }
        Algorithm::Gbt => {
            let options = gbt::Options {
                rounds: hp.epochs,
                learning_rate: f64::from(hp.learning_rate),
                l2: hp.l2.map_or(0.0, f64::from),
                max_leaf_nodes: hp.max_leaf_nodes,
                max_depth: hp.max_depth,
                min_samples_leaf: hp.min_samples_leaf,
                max_bins: hp.max_bins,
                tolerance: hp.tolerance,
                patience: hp.patience,
            };
            let y_validation = learned(&validation_index);
            let train = gbt::Rows { features: &x_train, targets: &y_train };
            let validation = gbt::Rows { features: &x_validation, targets: &y_validation };
            let (ensemble, report) = gbt::fit(train, validation, &gbt::layout(&pipeline), head, &options, &mut rng);
            (Model::Trees(ensemble), report)
        }
    };

    if !cluster.is_first() {
        return Ok(Outcome::TrainedShare(cluster.host().to_owned()));
    }
    let evaluate = |predictions: &[f32], index: &[usize]| -> BTreeMap<String, f64> {
        match task {
            Task::Classification => {
                let truth: Vec<usize> = index.iter().map(|&r| class_of(r)).collect();
                named(classification(predictions, &truth, class_labels.len()))
            }
            Task::Regression => {
                let truth: Vec<f64> = index.iter().map(|&r| number_of(r)).collect();
                named(regression(predictions, &truth))
            }
        }
    };
    let validation_predictions = model.predict(&x_validation, validation_index.len());
    let validation_metrics = evaluate(&validation_predictions, &validation_index);
    let train_metrics = evaluate(&model.predict(&x_train, train_index.len()), &train_index);
    let (primary, higher_is_better) = match task {
        Task::Classification => ("accuracy", true),
        Task::Regression => ("rmse", false),
    };
    let primary_value = validation_metrics.get(primary).copied().unwrap_or(f64::NAN);
    // The lines SageMaker metric definitions read, e.g. `validation:rmse=([-0-9.eE+]+)`. In
    // full (shortest round-trip) rather than to fixed decimals: an RMSE of targets in the
    // ten-thousandths would otherwise print as 0.000000 and give tuning nothing to compare.
    for (split, metrics) in [("train", &train_metrics), ("validation", &validation_metrics)] {
        for (name, value) in metrics {
            println!("{split}:{name}={value}");
        }
    }
    println!("train:loss={}", report.final_loss);
    println!("train:epochs={}", report.epochs);

    let graph = model.export(env!("CARGO_PKG_VERSION"));
    let checked = onnx::check_sample(&x_validation, pipeline.width());
    let check = onnx::check_export(&model, &graph, &checked, checked.len() / pipeline.width())
        .map_err(|e| TrainError::Export(format!("tract cannot run the exported model: {e}")))?;
    if !check.within(ONNX_TOLERANCE) {
        return Err(TrainError::Export(format!(
            "the exported model differs from the trained one by {} ({:.2e} of the outputs' scale {}, more than {ONNX_TOLERANCE:e})",
            check.max_abs_difference,
            check.relative_difference(),
            check.scale
        )));
    }

    let production = hp.production_version.map(|version| {
        let truth = Truth {
            classes: (task == Task::Classification).then(|| validation_index.iter().map(|&r| class_of(r)).collect()),
            values: validation_index.iter().map(|&r| number_of(r)).collect(),
        };
        let score = score_production(&contract.channel("production"), &validation_frame, &class_labels, &truth);
        match &score {
            Ok(metrics) => println!("production:{primary}={}", metrics.get(primary).copied().unwrap_or(f64::NAN)),
            Err(error) => println!("production: version {version} could not be scored: {error}"),
        }
        match score {
            Ok(validation) => ProductionScore { version, validation, error: None },
            Err(error) => ProductionScore { version, validation: BTreeMap::new(), error: Some(error) },
        }
    });
    let metrics = Metrics {
        primary_metric: PrimaryMetric { name: primary.into(), value: primary_value, higher_is_better },
        validation: validation_metrics,
        train: train_metrics,
        rows: Some(RowCounts {
            train: all.rows,
            validation: validation_index.len() as u64,
            without_target: all.without_target,
        }),
        training: Some(TrainingRun {
            epochs: report.epochs as u64,
            converged: report.converged,
            final_loss: report.final_loss,
        }),
        onnx_max_abs_difference: Some(f64::from(check.max_abs_difference)),
        production,
    };
    let predictions = match task {
        Task::Classification => {
            let mut frequencies = BTreeMap::new();
            for probabilities in validation_predictions.chunks(class_labels.len()) {
                let best = probabilities.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
                *frequencies.entry(class_labels[best].clone()).or_insert(0) += 1;
            }
            ColumnProfile::categorical(PREDICTION_COLUMN, "string", frequencies, 0, 0)
        }
        Task::Regression => {
            let values: Vec<f64> = validation_predictions.iter().map(|&v| f64::from(v)).collect();
            ColumnProfile::numeric(PREDICTION_COLUMN, "float", &values, 0)
        }
    };
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        model_name: hp.model_name.clone(),
        model_version: hp.model_version.clone(),
        task,
        algorithm: hp.algorithm.name().into(),
        target: hp.target.clone(),
        onnx_input: INPUT.into(),
        onnx_outputs: vec![onnx::output_name(head).into()],
        class_labels,
        pipeline,
        training_data: all.files,
        hyperparameters: hp.raw.clone(),
        seed: hp.seed,
        library_versions: BTreeMap::from([("sluice-trainer".into(), env!("CARGO_PKG_VERSION").into())]),
    };
    let bundle = Bundle {
        manifest,
        onnx: graph,
        metrics: Some(metrics.clone()),
        baseline: Some(Baseline { data: Baseline::profile(&train_frame), predictions: Some(predictions) }),
    };
    bundle.write_to(&contract.model_dir()).map_err(|e| TrainError::Output(e.to_string()))?;
    Ok(Outcome::Trained { primary_metric: (primary.into(), primary_value), metrics: Box::new(metrics) })
}

/// Metrics by name, without the undefined ones.
fn named(metrics: impl serde::Serialize) -> BTreeMap<String, f64> {
    let value = serde_json::to_value(metrics).expect("metrics serialise");
    finite_metrics(value.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))))
}

/// The validation rows' true classes (classification) or values (regression).
struct Truth {
    classes: Option<Vec<usize>>,
    values: Vec<f64>,
}

/// The production version (its bundle in `channel`) scored on the candidate's validation
/// rows with the candidate's metrics. Its class probabilities are put in the candidate's
/// class order (a class only production knows gets no share); accuracy is counted on the
/// labels themselves, so a row production gives a class the candidate does not know is
/// wrong, not its next-best guess.
fn score_production(
    channel: &Path,
    validation: &Frame,
    class_labels: &[String],
    truth: &Truth,
) -> Result<BTreeMap<String, f64>, String> {
    let bundle_path = production_bundle(channel)?;
    let bytes = fs::read(&bundle_path).map_err(|e| format!("{}: {e}", bundle_path.display()))?;
    let bundle = Bundle::from_tar_gz(&bytes, BundleLimits::for_memory(PRODUCTION_BUNDLE_MEMORY), Contents::All)
        .map_err(|e| e.to_string())?;
    let predictor = Predictor::load(&bundle).map_err(|e| e.to_string())?;
    let predictions = predictor.predict_frame(validation).map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    match &truth.classes {
        Some(classes) => {
            let probabilities: Vec<f32> = predictions
                .iter()
                .flat_map(|row| {
                    let given = row.probabilities.clone().unwrap_or_default();
                    class_labels.iter().map(move |label| given.get(label).copied().unwrap_or(0.0))
                })
                .collect();
            let mut metrics = named(classification(&probabilities, classes, class_labels.len()));
            let right = predictions
                .iter()
                .zip(classes)
                .filter(|&(row, &class)| matches!(&row.prediction, Prediction::Label(l) if *l == class_labels[class]))
                .count();
            metrics.insert("accuracy".into(), right as f64 / classes.len().max(1) as f64);
            Ok(metrics)
        }
        None => {
            let values: Vec<f32> = predictions
                .iter()
                .map(|row| match row.prediction {
                    Prediction::Value(value) => value as f32,
                    Prediction::Label(_) => f32::NAN,
                })
                .collect();
            Ok(named(regression(&values, &truth.values)))
        }
    }
}

/// The one bundle in the production channel.
fn production_bundle(channel: &Path) -> Result<std::path::PathBuf, String> {
    let entries = fs::read_dir(channel).map_err(|e| format!("channel production ({}): {e}", channel.display()))?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(".tar.gz"))
        .ok_or_else(|| format!("channel production ({}) holds no model.tar.gz", channel.display()))
}
