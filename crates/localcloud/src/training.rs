//! SageMaker training jobs, run locally. The emulator records a job and reports it
//! completed at once without running anything; this runner notices each new job, runs the
//! trainer as a process on a temporary `/opt/ml` (channels downloaded from the emulator's
//! S3, hyperparameters as strings), uploads `model.tar.gz` where SageMaker would put it, and
//! delivers the "SageMaker Training Job State Change" event to the functions whose
//! EventBridge rules match, with Lambda's asynchronous retries. Tuning jobs (also reported
//! completed at once by the emulator) get their trials run here too, by random search.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, Channel, HyperParameterScalingType, HyperParameterTrainingJobDefinition,
    HyperParameterTuningJobObjectiveType, ParameterRanges, ResourceConfig, S3DataDistribution, S3DataType,
    TrainingJobStatus,
};
use serde_json::{Value, json};
use sluice_aws::AwsClients;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinHandle;

use sluice_model::tuning::{Range, Scaling};

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
        let runner = Arc::new(Runner {
            clients: clients.clone(),
            sagemaker: aws_sdk_sagemaker::Client::new(&clients.config),
            stack: stack.clone(),
            functions,
            trainer,
        });
        let task = tokio::spawn(async move {
            // Jobs that existed before this runner started belong to someone else.
            let mut seen_jobs: HashSet<String> = runner.training_jobs().await.into_iter().collect();
            let mut seen_tuning: HashSet<String> = runner.tuning_jobs().await.into_iter().collect();
            loop {
                // Tuning first: the trials it creates are marked seen before the training
                // jobs are listed, so no trial runs twice.
                for tuning in runner.tuning_jobs().await {
                    if seen_tuning.insert(tuning.clone()) {
                        runner.clone().run_tuning_job(&tuning, &mut seen_jobs).await;
                    }
                }
                for job in runner.training_jobs().await {
                    if seen_jobs.insert(job.clone()) {
                        runner.run_training_job(&job).await;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        });
        Self { task }
    }
}

struct Runner {
    clients: AwsClients,
    sagemaker: aws_sdk_sagemaker::Client,
    stack: Stack,
    functions: Arc<dyn Functions>,
    trainer: PathBuf,
}

/// What a training job needs to run, from `DescribeTrainingJob` or a tuning job's definition.
#[derive(Clone)]
struct JobInput {
    hyperparameters: HashMap<String, String>,
    channels: Vec<Channel>,
    output_path: String,
    /// `ResourceConfig.InstanceCount`: the trainer processes that run the job together.
    instances: usize,
}

/// A job's instance count, as SageMaker reads it (at least one).
fn instances(config: Option<&ResourceConfig>) -> usize {
    config.and_then(ResourceConfig::instance_count).map_or(1, |count| usize::try_from(count).unwrap_or(1).max(1))
}

/// A finished training run: where its bundle went and what it printed.
struct Trained {
    bundle: String,
    stdout: String,
}

impl Runner {
    async fn training_jobs(&self) -> Vec<String> {
        match self.sagemaker.list_training_jobs().max_results(100).send().await {
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

    async fn tuning_jobs(&self) -> Vec<String> {
        match self.sagemaker.list_hyper_parameter_tuning_jobs().max_results(100).send().await {
            Ok(output) => output
                .hyper_parameter_tuning_job_summaries()
                .iter()
                .map(|s| s.hyper_parameter_tuning_job_name().unwrap_or_default().to_owned())
                .collect(),
            Err(err) => {
                tracing::warn!(error = %sluice_aws::error_chain(err), "cannot list tuning jobs");
                Vec::new()
            }
        }
    }

    /// Whether a job writes into this stack's buckets. Other stacks on the same emulator
    /// (another test, another `sluice local up`) run their own jobs.
    fn owns(&self, output_path: &str) -> bool {
        split_s3(output_path).is_ok_and(|(bucket, _)| self.stack.buckets.iter().any(|b| b.name == bucket))
    }

    async fn run_training_job(&self, job: &str) {
        let described = match self.sagemaker.describe_training_job().training_job_name(job).send().await {
            Ok(described) => described,
            Err(err) => {
                tracing::warn!(%job, error = %sluice_aws::error_chain(err), "cannot describe training job");
                return;
            }
        };
        if described.training_job_status() == Some(&TrainingJobStatus::Stopped) {
            return;
        }
        let input = JobInput {
            hyperparameters: described.hyper_parameters().cloned().unwrap_or_default(),
            channels: described.input_data_config().to_vec(),
            output_path: described.output_data_config().and_then(|o| o.s3_output_path()).unwrap_or_default().to_owned(),
            instances: instances(described.resource_config()),
        };
        if !self.owns(&input.output_path) {
            return;
        }
        let result = self.train(job, &input).await;
        let mut detail = json!({
            "TrainingJobName": job,
            "TrainingJobArn": described.training_job_arn().unwrap_or_default(),
            "HyperParameters": input.hyperparameters,
            "OutputDataConfig": { "S3OutputPath": input.output_path },
        });
        match &result {
            Ok(trained) => {
                tracing::info!(%job, bundle = %trained.bundle, "training job completed");
                detail["TrainingJobStatus"] = "Completed".into();
                detail["SecondaryStatus"] = "Completed".into();
                detail["ModelArtifacts"] = json!({ "S3ModelArtifacts": trained.bundle });
            }
            Err(reason) => {
                tracing::warn!(%job, %reason, "training job failed");
                detail["TrainingJobStatus"] = "Failed".into();
                detail["SecondaryStatus"] = "Failed".into();
                detail["FailureReason"] = reason.trim().into();
            }
        }
        let arn = described.training_job_arn().unwrap_or_default();
        self.deliver("SageMaker Training Job State Change", arn, detail).await;
    }

    /// Runs a tuning job's trials (random search, `MaxParallelTrainingJobs` at a time), each
    /// recorded on the emulator as a training job, then reports the best trial by the
    /// objective in the tuning job's state change event. Trials' own state changes are not
    /// delivered: the emulator cannot mark them as belonging to the tuning job.
    async fn run_tuning_job(self: Arc<Self>, tuning: &str, seen_jobs: &mut HashSet<String>) {
        let described = match self
            .sagemaker
            .describe_hyper_parameter_tuning_job()
            .hyper_parameter_tuning_job_name(tuning)
            .send()
            .await
        {
            Ok(described) => described,
            Err(err) => {
                tracing::warn!(%tuning, error = %sluice_aws::error_chain(err), "cannot describe tuning job");
                return;
            }
        };
        let (Some(config), Some(definition)) =
            (described.hyper_parameter_tuning_job_config(), described.training_job_definition())
        else {
            tracing::warn!(%tuning, "tuning job without a config and a single training job definition");
            return;
        };
        if !self.owns(definition.output_data_config().and_then(|o| o.s3_output_path()).unwrap_or_default()) {
            return;
        }
        let objective = config.hyper_parameter_tuning_job_objective();
        let metric = objective.and_then(|o| o.metric_name()).unwrap_or_default().to_owned();
        let maximize = objective.and_then(|o| o.r#type()) != Some(&HyperParameterTuningJobObjectiveType::Minimize);
        let limits = config.resource_limits();
        let max_jobs = limits.and_then(|l| l.max_number_of_training_jobs()).unwrap_or(1).max(1) as usize;
        let parallel = limits.and_then(|l| l.max_parallel_training_jobs()).unwrap_or(1).max(1) as usize;
        let ranges = config.parameter_ranges().map(ranges).unwrap_or_default();
        let static_hyperparameters = definition.static_hyper_parameters().cloned().unwrap_or_default();

        let mut random = SplitMix64(
            tuning.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)),
        );
        let mut trials = Vec::new();
        for number in 1..=max_jobs {
            let name = format!("{tuning}-{number:03}-{:08x}", random.next() as u32);
            let mut hyperparameters = static_hyperparameters.clone();
            for (parameter, range) in &ranges {
                hyperparameters.insert(parameter.clone(), range.sample(random.unit()));
            }
            hyperparameters.insert("_tuning_objective_metric".into(), metric.clone());
            seen_jobs.insert(name.clone());
            trials.push((name, hyperparameters));
        }
        let mut results = Vec::new();
        for batch in trials.chunks(parallel) {
            let mut running = tokio::task::JoinSet::new();
            for (name, hyperparameters) in batch.iter().cloned() {
                let input = JobInput {
                    hyperparameters,
                    channels: definition.input_data_config().to_vec(),
                    output_path: definition
                        .output_data_config()
                        .and_then(|o| o.s3_output_path())
                        .unwrap_or_default()
                        .to_owned(),
                    instances: instances(definition.resource_config()),
                };
                let runner = Arc::clone(&self);
                let definition = definition.clone();
                let metric = metric.clone();
                running.spawn(async move {
                    let result = runner.trial(&name, &definition, &input, &metric).await;
                    (name, input.hyperparameters, result)
                });
            }
            results.extend(running.join_all().await);
        }

        let objective_value = |value: f64| if maximize { value } else { -value };
        let best = results
            .iter()
            .filter_map(|(name, hyperparameters, result)| {
                result.as_ref().ok().map(|value| (name, hyperparameters, *value))
            })
            .max_by(|a, b| objective_value(a.2).total_cmp(&objective_value(b.2)));
        for (name, _, result) in &results {
            if let Err(reason) = result {
                tracing::warn!(%tuning, trial = %name, %reason, "trial failed");
            }
        }
        let failed = results.iter().filter(|(_, _, result)| result.is_err()).count();
        let arn = described.hyper_parameter_tuning_job_arn().unwrap_or_default().to_owned();
        let mut detail = json!({
            "HyperParameterTuningJobName": tuning,
            "HyperParameterTuningJobArn": arn,
            "TrainingJobDefinition": { "StaticHyperParameters": static_hyperparameters },
            "TrainingJobStatusCounters": { "Completed": results.len() - failed, "NonRetryableError": failed },
        });
        match best {
            Some((name, hyperparameters, value)) => {
                let tuned: HashMap<&String, &String> =
                    hyperparameters.iter().filter(|(k, _)| ranges.contains_key(*k)).collect();
                tracing::info!(%tuning, best = %name, %metric, value, "tuning job completed");
                detail["HyperParameterTuningJobStatus"] = "Completed".into();
                detail["BestTrainingJob"] = json!({
                    "TrainingJobName": name,
                    "TrainingJobStatus": "Completed",
                    "TunedHyperParameters": tuned,
                    "FinalHyperParameterTuningJobObjectiveMetric": {
                        "Type": if maximize { "Maximize" } else { "Minimize" },
                        "MetricName": metric,
                        "Value": value,
                    },
                    "ObjectiveStatus": "Succeeded",
                });
            }
            None => {
                let first_reason = results.iter().find_map(|(_, _, r)| r.as_ref().err()).cloned().unwrap_or_default();
                tracing::warn!(%tuning, %first_reason, "every trial failed");
                detail["HyperParameterTuningJobStatus"] = "Failed".into();
                detail["FailureReason"] =
                    format!("every training job failed; the first: {}", first_reason.trim()).into();
            }
        }
        self.deliver("SageMaker HyperParameter Tuning Job State Change", &arn, detail).await;
    }

    /// One tuning trial: recorded on the emulator (so it can be described like any training
    /// job), trained, and scored by the objective line it printed.
    async fn trial(
        &self,
        name: &str,
        definition: &HyperParameterTrainingJobDefinition,
        input: &JobInput,
        metric: &str,
    ) -> Result<f64, String> {
        let algorithm = definition.algorithm_specification().map(|a| {
            AlgorithmSpecification::builder()
                .set_training_image(a.training_image().map(str::to_owned))
                .set_training_input_mode(a.training_input_mode().cloned())
                .set_metric_definitions(Some(a.metric_definitions().to_vec()))
                .build()
        });
        self.sagemaker
            .create_training_job()
            .training_job_name(name)
            .set_algorithm_specification(algorithm)
            .set_role_arn(definition.role_arn().map(str::to_owned))
            .set_input_data_config(Some(input.channels.clone()))
            .set_output_data_config(definition.output_data_config().cloned())
            .set_resource_config(definition.resource_config().cloned())
            .set_stopping_condition(definition.stopping_condition().cloned())
            .set_hyper_parameters(Some(input.hyperparameters.clone()))
            .send()
            .await
            .map_err(sluice_aws::error_chain)?;
        let trained = self.train(name, input).await?;
        objective_value(&trained.stdout, metric).ok_or_else(|| format!("the trainer printed no {metric}= line"))
    }

    /// Runs the trainer on a temporary `/opt/ml` per instance and uploads the first host's
    /// bundle where SageMaker would: `<output path>/<job>/output/model.tar.gz`. A job of N
    /// instances is N trainer processes on loopback, each with its shard of the
    /// `ShardedByS3Key` channels, that find each other through `SLUICE_CLUSTER_LEADER`.
    async fn train(&self, job: &str, input: &JobInput) -> Result<Trained, String> {
        let run = uuid::Uuid::now_v7().simple();
        let hosts: Vec<String> = (1..=input.instances).map(|i| format!("algo-{i}")).collect();
        let roots: Vec<PathBuf> =
            hosts.iter().map(|host| std::env::temp_dir().join(format!("sluice-training-{job}-{run}-{host}"))).collect();
        let result = async {
            let leader = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map_err(|e| format!("no free port on loopback for the job's hosts: {e}"))?;
            // Every instance's data first: a host started early would wait for one that never comes.
            for (index, (host, root)) in hosts.iter().zip(&roots).enumerate() {
                self.prepare(root, host, &hosts, input, index).await?;
            }
            let mut processes = Vec::new();
            for root in &roots {
                let process = tokio::process::Command::new(&self.trainer)
                    .env("SLUICE_SAGEMAKER_ROOT", root)
                    .env("TRAINING_JOB_NAME", job)
                    .env("SLUICE_CLUSTER_LEADER", leader.to_string())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("cannot run the trainer {}: {e}", self.trainer.display()))?;
                // Each process's pipes are drained at once: a host blocked on a full pipe would
                // hold up the others waiting for it.
                processes.push(tokio::spawn(process.wait_with_output()));
            }
            // The metric lines are the first host's: it evaluates.
            let mut stdout = String::new();
            for ((host, root), process) in hosts.iter().zip(&roots).zip(processes) {
                let output = process
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|output| output.map_err(|e| e.to_string()))
                    .map_err(|e| format!("the trainer of {host} did not finish: {e}"))?;
                let printed = String::from_utf8_lossy(&output.stdout).into_owned();
                for line in printed.lines() {
                    tracing::info!(%job, %host, "{line}");
                }
                if !output.status.success() {
                    // Every host records the first cause; the first failing host's record is the job's.
                    return Err(std::fs::read_to_string(root.join("output/failure"))
                        .unwrap_or_else(|_| String::from_utf8_lossy(&output.stderr).into_owned()));
                }
                if *host == hosts[0] {
                    stdout = printed;
                }
            }
            let bundle = sluice_model::bundle::pack_dir(&roots[0].join("model"))
                .map_err(|e| format!("cannot pack the model: {e}"))?;
            let (bucket, prefix) = split_s3(input.output_path.trim_end_matches('/'))?;
            let key = format!(
                "{}{job}/output/model.tar.gz",
                if prefix.is_empty() { String::new() } else { format!("{prefix}/") }
            );
            self.clients
                .s3
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(bundle.into())
                .send()
                .await
                .map_err(sluice_aws::error_chain)?;
            Ok(Trained { bundle: format!("s3://{bucket}/{key}"), stdout })
        }
        .await;
        for root in &roots {
            let _ = std::fs::remove_dir_all(root);
        }
        result
    }

    /// One instance's `/opt/ml`: its configuration and its channels, a `ShardedByS3Key`
    /// channel holding every `hosts.len()`-th object (by key) from the `index`-th.
    async fn prepare(
        &self,
        root: &Path,
        host: &str,
        hosts: &[String],
        input: &JobInput,
        index: usize,
    ) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root.join("input/config")).map_err(|e| e.to_string())?;
        std::fs::write(root.join("input/config/hyperparameters.json"), json!(input.hyperparameters).to_string())
            .map_err(|e| e.to_string())?;
        let resources = json!({"current_host": host, "hosts": hosts, "network_interface_name": "lo"});
        std::fs::write(root.join("input/config/resourceconfig.json"), resources.to_string())
            .map_err(|e| e.to_string())?;
        for channel in &input.channels {
            let source = channel.data_source().and_then(|d| d.s3_data_source());
            let uri = source.and_then(|s| s.s3_uri()).unwrap_or_default();
            let dir = root.join("input/data").join(channel.channel_name().unwrap_or("train"));
            let shard = match source.and_then(|s| s.s3_data_distribution_type()) {
                Some(S3DataDistribution::ShardedByS3Key) => Shard { index, of: hosts.len() },
                _ => Shard { index: 0, of: 1 },
            };
            match source.and_then(|s| s.s3_data_type()) {
                Some(S3DataType::ManifestFile) => download_manifest(&self.clients, uri, &dir, shard).await?,
                _ => download(&self.clients, uri, &dir, shard).await?,
            }
        }
        Ok(())
    }

    /// Delivers an EventBridge event from SageMaker to the functions whose rules match, with
    /// Lambda's asynchronous retries.
    async fn deliver(&self, detail_type: &str, resource: &str, detail: Value) {
        let event = json!({
            "version": "0",
            "id": uuid::Uuid::now_v7().to_string(),
            "detail-type": detail_type,
            "source": "aws.sagemaker",
            "account": ACCOUNT_ID,
            "time": OffsetDateTime::now_utc().format(&Rfc3339).expect("UTC times format"),
            "region": REGION,
            "resources": [resource],
            "detail": detail,
        });
        for function in &self.stack.functions {
            if function.event_patterns.iter().any(|pattern| matches(pattern, &event)) {
                let dead_letter = dead_letter_url(&self.clients.sqs, &function.async_invoke).await.ok().flatten();
                invoke_with_retries(
                    &function.logical_id,
                    &function.async_invoke,
                    &event,
                    dead_letter.as_deref(),
                    &self.clients.sqs,
                    self.functions.as_ref(),
                )
                .await;
            }
        }
    }
}

/// The last `metric=value` line the trainer printed for `metric`, as SageMaker's metric
/// definition (`metric=([-0-9.eE+]+)`) reads it.
fn objective_value(stdout: &str, metric: &str) -> Option<f64> {
    stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix(metric)?.strip_prefix('=')?.trim().parse().ok())
        .next_back()
}

/// A tuning job's parameter ranges, by hyperparameter.
fn ranges(ranges: &ParameterRanges) -> BTreeMap<String, Range> {
    let number = |text: Option<&str>| text.and_then(|t| t.parse::<f64>().ok()).unwrap_or_default();
    let scaling =
        |s: Option<&HyperParameterScalingType>| Scaling::from_sagemaker_name(s.map_or("Auto", |s| s.as_str()));
    let mut all = BTreeMap::new();
    for range in ranges.continuous_parameter_ranges() {
        let (min, max) = (number(range.min_value()), number(range.max_value()));
        all.insert(
            range.name().unwrap_or_default().to_owned(),
            Range::Continuous { min, max, scaling: scaling(range.scaling_type()) },
        );
    }
    for range in ranges.integer_parameter_ranges() {
        let (min, max) = (number(range.min_value()) as i64, number(range.max_value()) as i64);
        all.insert(
            range.name().unwrap_or_default().to_owned(),
            Range::Integer { min, max, scaling: scaling(range.scaling_type()) },
        );
    }
    for range in ranges.categorical_parameter_ranges() {
        all.insert(range.name().unwrap_or_default().to_owned(), Range::Categorical(range.values().to_vec()));
    }
    all.retain(|_, range| !matches!(range, Range::Categorical(values) if values.is_empty()));
    all
}

/// A small seeded generator: the same tuning job name always draws the same trials.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Downloads every object under an `s3://bucket/prefix` into `dir`, keeping relative paths.
/// The objects of a channel one instance gets: the `index`-th of every `of` (by key).
#[derive(Clone, Copy)]
struct Shard {
    index: usize,
    of: usize,
}

impl Shard {
    fn holds(self, position: usize) -> bool {
        position % self.of == self.index
    }
}

async fn download(clients: &AwsClients, uri: &str, dir: &Path, shard: Shard) -> Result<(), String> {
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
    let mut keys: Vec<&str> = pages.iter().flat_map(|p| p.contents()).filter_map(|o| o.key()).collect();
    keys.sort_unstable();
    for key in keys.into_iter().enumerate().filter(|&(position, _)| shard.holds(position)).map(|(_, key)| key) {
        let relative = key.strip_prefix(prefix).unwrap_or(key).trim_start_matches('/');
        // A prefix that is a whole key (one file as a channel) keeps the file's name.
        let relative = if relative.is_empty() { key.rsplit('/').next().unwrap_or(key) } else { relative };
        let path = dir.join(relative);
        let body = clients.s3.get_object().bucket(bucket).key(key).send().await.map_err(sluice_aws::error_chain)?;
        let bytes = body.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
        std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(|e| e.to_string())?;
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())
}

/// Downloads the objects a SageMaker manifest file lists (`[{"prefix": "s3://bucket/p/"},
/// "relative/key", …]`) into `dir`, keeping their paths below the prefix.
async fn download_manifest(clients: &AwsClients, uri: &str, dir: &Path, shard: Shard) -> Result<(), String> {
    let (bucket, key) = split_s3(uri)?;
    let object = clients.s3.get_object().bucket(bucket).key(key).send().await.map_err(sluice_aws::error_chain)?;
    let bytes = object.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
    let entries: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| format!("manifest {uri}: {e}"))?;
    let prefix = entries
        .first()
        .and_then(|first| first["prefix"].as_str())
        .ok_or_else(|| format!("manifest {uri} does not start with {{\"prefix\": …}}"))?;
    let (bucket, prefix) = split_s3(prefix)?;
    let listed = entries.iter().skip(1).filter_map(Value::as_str).enumerate();
    for relative in listed.filter(|&(position, _)| shard.holds(position)).map(|(_, relative)| relative) {
        let object = clients
            .s3
            .get_object()
            .bucket(bucket)
            .key(format!("{prefix}{relative}"))
            .send()
            .await
            .map_err(sluice_aws::error_chain)?;
        let bytes = object.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(|e| e.to_string())?;
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())
}

fn split_s3(uri: &str) -> Result<(&str, &str), String> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| format!("{uri} is not an s3:// URI"))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
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
    fn the_objective_is_the_last_line_for_the_metric() {
        let stdout =
            "validation:accuracy=0.5\nvalidation:accuracy_top=0.9\ntrain:accuracy=0.99\nvalidation:accuracy=0.75\n";
        assert_eq!(objective_value(stdout, "validation:accuracy"), Some(0.75));
        assert_eq!(objective_value(stdout, "validation:rmse"), None);
    }

    #[test]
    fn draws_are_uniform_and_repeatable() {
        let draws: Vec<f64> = {
            let mut r = SplitMix64(7);
            (0..10_000).map(|_| r.unit()).collect()
        };
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert_eq!(SplitMix64(7).next(), SplitMix64(7).next());
    }
}
