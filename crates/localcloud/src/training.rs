//! SageMaker training jobs, run locally. The emulator records a job and reports it
//! completed at once without running anything; this runner notices each new job, runs the
//! trainer as a process on a temporary `/opt/ml` (channels downloaded from the emulator's
//! S3, hyperparameters as strings), uploads `model.tar.gz` where SageMaker would put it, and
//! delivers the "SageMaker Training Job State Change" event to the functions whose
//! EventBridge rules match, with Lambda's asynchronous retries.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_sagemaker::types::TrainingJobStatus;
use serde_json::{Value, json};
use sluice_aws::AwsClients;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinHandle;

use crate::Functions;
use crate::events::{dead_letter_url, invoke_with_retries};
use crate::template::{ACCOUNT_ID, REGION, Stack};

/// Runs the stack's training jobs until dropped.
pub struct TrainingRunner {
    task: JoinHandle<()>,
}

impl Drop for TrainingRunner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The trainer binary: `SLUICE_TRAINER`, or `train` beside the running program (or one
/// folder up, where cargo puts test binaries).
pub fn trainer_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SLUICE_TRAINER") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().skip(1).take(2).map(|dir| dir.join("train")).find(|candidate| candidate.is_file())
}

impl TrainingRunner {
    pub fn start(clients: &AwsClients, stack: &Stack, functions: Arc<dyn Functions>, trainer: PathBuf) -> Self {
        let (clients, stack) = (clients.clone(), stack.clone());
        let task = tokio::spawn(async move {
            let sagemaker = aws_sdk_sagemaker::Client::new(&clients.config);
            // Jobs that existed before this runner started belong to someone else.
            let mut seen: HashSet<String> = list_jobs(&sagemaker).await.into_iter().collect();
            loop {
                for job in list_jobs(&sagemaker).await {
                    if seen.insert(job.clone()) {
                        run_job(&clients, &sagemaker, &stack, functions.as_ref(), &trainer, &job).await;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        Self { task }
    }
}

async fn list_jobs(sagemaker: &aws_sdk_sagemaker::Client) -> Vec<String> {
    match sagemaker.list_training_jobs().max_results(100).send().await {
        Ok(output) => output
            .training_job_summaries()
            .iter()
            .map(|s| s.training_job_name().unwrap_or_default().to_owned())
            .collect(),
        Err(err) => {
            tracing::warn!(error = %sluice_aws::error_chain(err), "cannot list training jobs");
            Vec::new()
        }
    }
}

async fn run_job(
    clients: &AwsClients,
    sagemaker: &aws_sdk_sagemaker::Client,
    stack: &Stack,
    functions: &dyn Functions,
    trainer: &Path,
    job: &str,
) {
    let described = match sagemaker.describe_training_job().training_job_name(job).send().await {
        Ok(described) => described,
        Err(err) => {
            tracing::warn!(%job, error = %sluice_aws::error_chain(err), "cannot describe training job");
            return;
        }
    };
    if described.training_job_status() == Some(&TrainingJobStatus::Stopped) {
        return;
    }
    let hyperparameters = described.hyper_parameters().cloned().unwrap_or_default();
    let output_path = described
        .output_data_config()
        .and_then(|o| o.s3_output_path())
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let root = std::env::temp_dir().join(format!("sluice-training-{}-{job}", std::process::id()));
    let result = async {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("input/config")).map_err(|e| e.to_string())?;
        std::fs::write(root.join("input/config/hyperparameters.json"), json!(hyperparameters).to_string())
            .map_err(|e| e.to_string())?;
        let resources = json!({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "lo"});
        std::fs::write(root.join("input/config/resourceconfig.json"), resources.to_string())
            .map_err(|e| e.to_string())?;
        for channel in described.input_data_config() {
            let uri =
                channel.data_source().and_then(|d| d.s3_data_source()).and_then(|s| s.s3_uri()).unwrap_or_default();
            download(clients, uri, &root.join("input/data").join(channel.channel_name().unwrap_or("train"))).await?;
        }
        let output = tokio::process::Command::new(trainer)
            .env("SLUICE_SAGEMAKER_ROOT", &root)
            .env("TRAINING_JOB_NAME", job)
            .output()
            .await
            .map_err(|e| format!("cannot run the trainer {}: {e}", trainer.display()))?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            tracing::info!(%job, "{line}");
        }
        if !output.status.success() {
            let reason = std::fs::read_to_string(root.join("output/failure"))
                .unwrap_or_else(|_| String::from_utf8_lossy(&output.stderr).into_owned());
            return Err(reason);
        }
        let bundle = tar_gz(&root.join("model")).map_err(|e| format!("cannot pack the model: {e}"))?;
        let (bucket, prefix) = split_s3(&output_path)?;
        let key = format!(
            "{}{job}/output/model.tar.gz",
            if prefix.is_empty() { String::new() } else { format!("{prefix}/") }
        );
        clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(bundle.into())
            .send()
            .await
            .map_err(sluice_aws::error_chain)?;
        Ok(format!("s3://{bucket}/{key}"))
    }
    .await;
    let _ = std::fs::remove_dir_all(&root);

    let arn = described.training_job_arn().unwrap_or_default().to_owned();
    let mut detail = json!({
        "TrainingJobName": job,
        "TrainingJobArn": arn,
        "HyperParameters": hyperparameters,
        "OutputDataConfig": { "S3OutputPath": output_path },
    });
    match &result {
        Ok(bundle) => {
            tracing::info!(%job, %bundle, "training job completed");
            detail["TrainingJobStatus"] = "Completed".into();
            detail["SecondaryStatus"] = "Completed".into();
            detail["ModelArtifacts"] = json!({ "S3ModelArtifacts": bundle });
        }
        Err(reason) => {
            tracing::warn!(%job, %reason, "training job failed");
            detail["TrainingJobStatus"] = "Failed".into();
            detail["SecondaryStatus"] = "Failed".into();
            detail["FailureReason"] = reason.trim().into();
        }
    }
    let event = json!({
        "version": "0",
        "id": uuid::Uuid::now_v7().to_string(),
        "detail-type": "SageMaker Training Job State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT_ID,
        "time": OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC times format"),
        "region": REGION,
        "resources": [arn],
        "detail": detail,
    });
    for function in &stack.functions {
        if function.event_patterns.iter().any(|pattern| matches(pattern, &event)) {
            let dead_letter = dead_letter_url(&clients.sqs, &function.async_invoke).await.ok().flatten();
            invoke_with_retries(
                &function.logical_id,
                &function.async_invoke,
                &event,
                dead_letter.as_deref(),
                &clients.sqs,
                functions,
            )
            .await;
        }
    }
}

/// Downloads every object under an `s3://bucket/prefix` into `dir`, keeping relative paths.
async fn download(clients: &AwsClients, uri: &str, dir: &Path) -> Result<(), String> {
    let (bucket, prefix) = split_s3(uri)?;
    let pages = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(sluice_aws::error_chain)?;
    for key in pages.iter().flat_map(|p| p.contents()).filter_map(|o| o.key()) {
        let relative = key.strip_prefix(prefix).unwrap_or(key).trim_start_matches('/');
        let path = dir.join(relative);
        let body = clients.s3.get_object().bucket(bucket).key(key).send().await.map_err(sluice_aws::error_chain)?;
        let bytes = body.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
        std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(|e| e.to_string())?;
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())
}

fn split_s3(uri: &str) -> Result<(&str, &str), String> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| format!("{uri} is not an s3:// URI"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

/// The folder's files at the archive root, as SageMaker packs `/opt/ml/model`.
fn tar_gz(dir: &Path) -> std::io::Result<Vec<u8>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut archive = tar::Builder::new(encoder);
    archive.append_dir_all(".", dir)?;
    archive.into_inner()?.finish()
}

/// EventBridge pattern matching: every key of the pattern must match; a list matches any
/// of its values, an object matches recursively.
pub fn matches(pattern: &Value, event: &Value) -> bool {
    let Some(fields) = pattern.as_object() else { return false };
    fields.iter().all(|(key, expected)| {
        let actual = &event[key];
        match expected {
            Value::Array(allowed) => allowed.iter().any(|v| v == actual),
            Value::Object(_) => matches(expected, actual),
            other => other == actual,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_eventbridge() {
        let pattern = json!({
            "source": ["aws.sagemaker"],
            "detail-type": ["SageMaker Training Job State Change"],
            "detail": { "TrainingJobStatus": ["Completed", "Failed"] }
        });
        let mut event = json!({
            "source": "aws.sagemaker",
            "detail-type": "SageMaker Training Job State Change",
            "detail": { "TrainingJobStatus": "Completed", "TrainingJobName": "x" }
        });
        assert!(matches(&pattern, &event));
        event["detail"]["TrainingJobStatus"] = "InProgress".into();
        assert!(!matches(&pattern, &event));
        event["detail"]["TrainingJobStatus"] = "Failed".into();
        event["source"] = "aws.s3".into();
        assert!(!matches(&pattern, &event));
    }

    #[test]
    fn bundles_hold_the_model_folder_at_their_root() {
        let dir = std::env::temp_dir().join(format!("sluice-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("metrics.json"), "{}").unwrap();
        let bytes = tar_gz(&dir).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.iter().any(|n| n.trim_start_matches("./") == "metrics.json"), "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
