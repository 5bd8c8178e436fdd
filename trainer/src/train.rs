//! One training run: hyperparameters and channels in, model bundle out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use serde_json::json;
use sluice_model::{Column, FeaturePipeline, Frame, MANIFEST_FORMAT_VERSION, Manifest, Task};
use sluice_profile::{ColumnProfile, Profile};

use crate::contract::Contract;
use crate::data::{parquet_files, read_frame};
use crate::metrics::{classification, regression, stratified_split};
use crate::network::{Head, Network, TrainOptions};
use crate::onnx::{self, INPUT};
use crate::rng::Rng;
use crate::{ONNX_TOLERANCE, TrainError};
use sluice_model::hyperparameters::{Algorithm, Hyperparameters};

/// What a run produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    Trained {
        primary_metric: (String, f64),
        metrics: serde_json::Value,
    },
    /// Not the first host of a multi-instance job: nothing to do (see the README).
    SkippedOnSecondaryHost(String),
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

pub fn run(contract: &Contract) -> Result<Outcome, TrainError> {
    let hp = Hyperparameters::parse(contract.hyperparameters()?).map_err(TrainError::Input)?;
    if let Some(resources) = contract.resource_config()? {
        let first = resources.hosts.iter().min().cloned().unwrap_or_default();
        if resources.hosts.len() > 1 && resources.current_host != first {
            return Ok(Outcome::SkippedOnSecondaryHost(resources.current_host));
        }
    }
    let train_dir = contract.channel("train");
    if !train_dir.is_dir() {
        return Err(TrainError::Input(format!("channel train is missing ({})", train_dir.display())));
    }
    let train_files = parquet_files(&train_dir)?;
    let mut frame = read_frame(&train_files)?;
    if frame.rows() == 0 {
        return Err(TrainError::Input("channel train has no rows (no Parquet files, or only empty ones)".into()));
    }
    let validation_dir = contract.channel("validation");
    let validation_files = if validation_dir.is_dir() { parquet_files(&validation_dir)? } else { Vec::new() };
    let has_validation_channel = !validation_files.is_empty();
    let train_rows = frame.rows();
    if has_validation_channel {
        frame.append(read_frame(&validation_files)?).map_err(TrainError::Data)?;
    }

    // Rows without a target teach nothing.
    let targets = target_values(&frame, &hp.target)?;
    let labelled: Vec<usize> = (0..frame.rows()).filter(|&r| targets[r].is_some()).collect();
    let task = hp.task.unwrap_or(match targets.iter().flatten().next() {
        Some(TargetValue::Text(_)) => Task::Classification,
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
    let (train_index, validation_index): (Vec<usize>, Vec<usize>) = if has_validation_channel {
        labelled.iter().partition(|&&r| r < train_rows)
    } else {
        let strata: Vec<usize> = match task {
            Task::Classification => labelled.iter().map(|&r| class_of(r)).collect(),
            Task::Regression => vec![0; labelled.len()],
        };
        let (train, validation) = stratified_split(&strata, hp.validation_fraction, &mut rng);
        (train.iter().map(|&i| labelled[i]).collect(), validation.iter().map(|&i| labelled[i]).collect())
    };
    if train_index.is_empty() || validation_index.is_empty() {
        return Err(TrainError::Input(format!(
            "too few labelled rows to train and validate ({} for training, {} for validation)",
            train_index.len(),
            validation_index.len()
        )));
    }

    let train_frame = frame.take(&train_index);
    let validation_frame = frame.take(&validation_index);
    let pipeline = FeaturePipeline::fit(&train_frame, &features, hp.max_categories)
        .map_err(|e| TrainError::Input(e.to_string()))?;
    let x_train = pipeline.transform(&train_frame).map_err(|e| TrainError::Input(e.to_string()))?;
    let x_validation = pipeline.transform(&validation_frame).map_err(|e| TrainError::Input(e.to_string()))?;
    let number_of = |r: usize| match &targets[r] {
        Some(TargetValue::Number(v)) => *v,
        _ => 0.0,
    };

    let (head, y_train): (Head, Vec<f32>) = match task {
        Task::Classification => {
            (Head::Classes(class_labels.len()), train_index.iter().map(|&r| class_of(r) as f32).collect())
        }
        Task::Regression => {
            let values: Vec<f64> = train_index.iter().map(|&r| number_of(r)).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt().max(1e-12);
            let standardised = values.iter().map(|v| ((v - mean) / std) as f32).collect();
            (Head::Regression { mean: mean as f32, std: std as f32 }, standardised)
        }
    };
    let hidden: &[usize] = match hp.algorithm {
        Algorithm::Linear => &[],
        Algorithm::Mlp => &hp.hidden_units,
    };
    let mut network = Network::new(pipeline.width(), hidden, head, &mut rng);
    let rows = train_index.len();
    let options = TrainOptions {
        learning_rate: hp.learning_rate,
        l2: hp.l2.unwrap_or(match hp.algorithm {
            Algorithm::Linear => 1.0 / rows as f32,
            Algorithm::Mlp => 1e-4,
        }),
        max_epochs: hp.epochs,
        batch_size: hp.batch_size.unwrap_or(match hp.algorithm {
            Algorithm::Linear => rows,
            Algorithm::Mlp => 32,
        }),
        tolerance: hp.tolerance,
        patience: hp.patience,
    };
    let report = network.train(&x_train, &y_train, train_index.len(), &options, &mut rng);

    let evaluate = |x: &[f32], index: &[usize]| -> serde_json::Value {
        let predictions = network.predict(x, index.len());
        match task {
            Task::Classification => {
                let truth: Vec<usize> = index.iter().map(|&r| class_of(r)).collect();
                json!(classification(&predictions, &truth, class_labels.len()))
            }
            Task::Regression => {
                let truth: Vec<f64> = index.iter().map(|&r| number_of(r)).collect();
                json!(regression(&predictions, &truth))
            }
        }
    };
    let validation_metrics = evaluate(&x_validation, &validation_index);
    let train_metrics = evaluate(&x_train, &train_index);
    let (primary, higher_is_better) = match task {
        Task::Classification => ("accuracy", true),
        Task::Regression => ("rmse", false),
    };
    let primary_value = validation_metrics[primary].as_f64().unwrap_or(f64::NAN);
    // The lines SageMaker metric definitions read, e.g. `validation:accuracy=([0-9.]+)`.
    for (split, metrics) in [("train", &train_metrics), ("validation", &validation_metrics)] {
        for (name, value) in metrics.as_object().into_iter().flatten() {
            if let Some(value) = value.as_f64() {
                println!("{split}:{name}={value:.6}");
            }
        }
    }
    println!("train:loss={:.6}", report.final_loss);
    println!("train:epochs={}", report.epochs);

    let model = onnx::export(&network, env!("CARGO_PKG_VERSION"));
    let difference = onnx::max_abs_difference(&network, &model, &x_validation, validation_index.len())
        .map_err(|e| TrainError::Export(format!("tract cannot run the exported model: {e}")))?;
    if difference > ONNX_TOLERANCE {
        return Err(TrainError::Export(format!("the exported model differs from the trained one by {difference}")));
    }

    let metrics = json!({
        "primary_metric": { "name": primary, "value": primary_value, "higher_is_better": higher_is_better },
        "validation": validation_metrics,
        "train": train_metrics,
        "rows": { "train": train_index.len(), "validation": validation_index.len(), "without_target": frame.rows() - labelled.len() },
        "training": { "epochs": report.epochs, "converged": report.converged, "final_loss": report.final_loss },
        "onnx_max_abs_difference": difference,
    });
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        model_name: hp.model_name.clone(),
        model_version: hp.model_version.clone(),
        task,
        algorithm: match hp.algorithm {
            Algorithm::Linear => "linear".into(),
            Algorithm::Mlp => "mlp".into(),
        },
        target: hp.target.clone(),
        onnx_input: INPUT.into(),
        onnx_outputs: vec![onnx::output_name(head).into()],
        class_labels,
        pipeline,
        training_data: train_files
            .iter()
            .chain(&validation_files)
            .map(|p| p.strip_prefix(contract.root()).unwrap_or(p).display().to_string())
            .collect(),
        hyperparameters: hp.raw.clone(),
        seed: hp.seed,
        library_versions: BTreeMap::from([("sluice-trainer".into(), env!("CARGO_PKG_VERSION").into())]),
    };
    let model_dir = contract.model_dir();
    let write = |name: &str, bytes: &[u8]| {
        fs::write(model_dir.join(name), bytes).map_err(|e| TrainError::Output(format!("{name}: {e}")))
    };
    fs::create_dir_all(&model_dir).map_err(|e| TrainError::Output(e.to_string()))?;
    write("model.onnx", &model)?;
    write("manifest.json", &serde_json::to_vec_pretty(&manifest).expect("serialises"))?;
    write("metrics.json", &serde_json::to_vec_pretty(&metrics).expect("serialises"))?;
    write("baseline.json", &serde_json::to_vec_pretty(&baseline(&train_frame)).expect("serialises"))?;
    Ok(Outcome::Trained { primary_metric: (primary.into(), primary_value), metrics })
}

/// The profile of the training rows: what drift is measured against.
fn baseline(frame: &Frame) -> Profile {
    let columns = frame
        .columns
        .iter()
        .map(|(name, column)| match column {
            Column::Numeric(values) => {
                let present: Vec<f64> = values.iter().flatten().copied().collect();
                ColumnProfile::numeric(name, "numeric", &present, (values.len() - present.len()) as u64)
            }
            Column::Categorical(values) => {
                let mut frequencies = BTreeMap::new();
                for value in values.iter().flatten() {
                    *frequencies.entry(value.clone()).or_insert(0) += 1;
                }
                let nulls = values.iter().filter(|v| v.is_none()).count() as u64;
                ColumnProfile::categorical(name, "string", frequencies, 0, nulls)
            }
            Column::Vector(values) => {
                // As the ETL profiles images: one mean intensity per row.
                let means: Vec<f64> = values
                    .iter()
                    .flatten()
                    .map(|v| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64)
                    .collect();
                let nulls = (values.len() - means.len()) as u64;
                ColumnProfile::numeric(&format!("{name}:mean_intensity"), "float", &means, nulls)
            }
        })
        .collect();
    Profile { rows: frame.rows() as u64, columns }
}
