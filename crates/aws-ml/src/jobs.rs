//! SageMaker training and tuning jobs, in Sluice's terms.

use std::collections::HashMap;

use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, CategoricalParameterRange, Channel, ContinuousParameterRange, DataSource,
    HyperParameterAlgorithmSpecification, HyperParameterScalingType, HyperParameterTrainingJobDefinition,
    HyperParameterTuningJobConfig, HyperParameterTuningJobObjective, HyperParameterTuningJobObjectiveType,
    HyperParameterTuningJobStrategyType, IntegerParameterRange, MetricDefinition, OutputDataConfig, ParameterRanges,
    ResourceConfig, ResourceLimits, S3DataDistribution, S3DataSource, S3DataType, StoppingCondition, Tag,
    TrainingInputMode, TrainingInstanceType, VpcConfig,
};
use sluice_aws::{AwsClients, StoreError};
use sluice_model::tuning::{Range, TuningPlan};
use time::OffsetDateTime;

use crate::failed;

/// Where a channel's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSource {
    /// Every object under an `s3://bucket/prefix`.
    Prefix(String),
    /// The objects a manifest file lists (`[{"prefix": "s3://…/"}, "key/below/prefix", …]`).
    Manifest(String),
}

/// The channel of the data a job trains on; with several instances it is the one they split
/// between them.
pub const TRAIN_CHANNEL: &str = "train";

/// What a training job (or each trial of a tuning job) needs from Sluice.
#[derive(Debug, Clone)]
pub struct TrainingSpec {
    pub image: String,
    pub role_arn: String,
    /// Channels by name.
    pub channels: Vec<(String, ChannelSource)>,
    pub output_path: String,
    pub instance_type: String,
    pub instance_count: i32,
    pub max_runtime_seconds: i32,
    pub hyperparameters: HashMap<String, String>,
    pub metric_regexes: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Encrypts the instance's volume and the job's output (`None`: SageMaker's defaults).
    pub kms_key_arn: Option<String>,
    pub network: JobNetwork,
}

/// Where a job's instances run: SageMaker's own network (no subnets), or the subnets and
/// security groups given. Either way the container has no network of its own (network
/// isolation): the trainer reads its channels and writes its model as files, and
/// SageMaker moves them to and from S3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobNetwork {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

impl JobNetwork {
    fn vpc_config(&self) -> Option<VpcConfig> {
        (!self.subnets.is_empty()).then(|| {
            VpcConfig::builder()
                .set_subnets(Some(self.subnets.clone()))
                .set_security_group_ids(Some(self.security_groups.clone()))
                .build()
        })
    }
}

impl TrainingSpec {
    fn metric_definitions(&self) -> Vec<MetricDefinition> {
        self.metric_regexes
            .iter()
            .map(|(name, regex)| MetricDefinition::builder().name(name).regex(regex).build())
            .collect()
    }

    fn channels(&self) -> Vec<Channel> {
        self.channels
            .iter()
            .map(|(name, source)| {
                let (kind, uri) = match source {
                    ChannelSource::Prefix(uri) => (S3DataType::S3Prefix, uri),
                    ChannelSource::Manifest(uri) => (S3DataType::ManifestFile, uri),
                };
                // Several instances split the training data, each taking whole objects; the
                // production bundle every instance gets whole.
                let distribution = if name == TRAIN_CHANNEL && self.instance_count > 1 {
                    S3DataDistribution::ShardedByS3Key
                } else {
                    S3DataDistribution::FullyReplicated
                };
                let source = S3DataSource::builder()
                    .s3_data_type(kind)
                    .s3_uri(uri)
                    .s3_data_distribution_type(distribution)
                    .build();
                Channel::builder()
                    .channel_name(name)
                    .data_source(DataSource::builder().s3_data_source(source).build())
                    .build()
            })
            .collect()
    }

    fn resources(&self) -> ResourceConfig {
        ResourceConfig::builder()
            .instance_type(TrainingInstanceType::from(self.instance_type.as_str()))
            .instance_count(self.instance_count)
            .volume_size_in_gb(10)
            .set_volume_kms_key_id(self.kms_key_arn.clone())
            .build()
    }

    fn output(&self) -> OutputDataConfig {
        OutputDataConfig::builder().s3_output_path(&self.output_path).set_kms_key_id(self.kms_key_arn.clone()).build()
    }

    fn stopping_condition(&self) -> StoppingCondition {
        StoppingCondition::builder().max_runtime_in_seconds(self.max_runtime_seconds).build()
    }

    fn tags(&self) -> Vec<Tag> {
        self.tags.iter().map(|(key, value)| Tag::builder().key(key).value(value).build()).collect()
    }
}

#[derive(Debug, Clone)]
pub struct SageMaker {
    client: aws_sdk_sagemaker::Client,
}

/// What a finished (or failed) training job says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingJob {
    pub name: String,
    pub status: String,
    pub model_artifacts: Option<String>,
    pub failure_reason: Option<String>,
    pub hyperparameters: HashMap<String, String>,
    pub tuning_job_arn: Option<String>,
    pub created_at: Option<OffsetDateTime>,
}

impl SageMaker {
    pub fn new(clients: &AwsClients) -> Self {
        Self { client: aws_sdk_sagemaker::Client::new(&clients.config) }
    }

    /// Starts a training job; `false` when a job of that name exists already (SageMaker's
    /// names are unique, so a repeated start of one deterministic name starts nothing).
    pub async fn start_training(&self, job_name: &str, spec: &TrainingSpec) -> Result<bool, StoreError> {
        let algorithm = AlgorithmSpecification::builder()
            .training_image(&spec.image)
            .training_input_mode(TrainingInputMode::File)
            .set_metric_definitions(Some(spec.metric_definitions()))
            .build();
        let created = self
            .client
            .create_training_job()
            .training_job_name(job_name)
            .algorithm_specification(algorithm)
            .role_arn(&spec.role_arn)
            .set_input_data_config(Some(spec.channels()))
            .output_data_config(spec.output())
            .resource_config(spec.resources())
            .stopping_condition(spec.stopping_condition())
            .enable_network_isolation(true)
            // The hosts of a multi-instance job exchange column statistics (category values
            // among them) and gradients.
            .enable_inter_container_traffic_encryption(spec.instance_count > 1)
            .set_vpc_config(spec.network.vpc_config())
            .set_hyper_parameters(Some(spec.hyperparameters.clone()))
            .set_tags(Some(spec.tags()))
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use()) => Ok(false),
            Err(err) => Err(failed("CreateTrainingJob", err)),
        }
    }

    /// Starts a random-search tuning job whose trials are `spec` with `plan`'s ranges varied;
    /// `false` when a tuning job of that name exists already.
    pub async fn start_tuning(
        &self,
        job_name: &str,
        spec: &TrainingSpec,
        plan: &TuningPlan,
    ) -> Result<bool, StoreError> {
        let algorithm = HyperParameterAlgorithmSpecification::builder()
            .training_image(&spec.image)
            .training_input_mode(TrainingInputMode::File)
            .set_metric_definitions(Some(spec.metric_definitions()))
            .build();
        let definition = HyperParameterTrainingJobDefinition::builder()
            .algorithm_specification(algorithm)
            .role_arn(&spec.role_arn)
            .set_input_data_config(Some(spec.channels()))
            .output_data_config(spec.output())
            .resource_config(spec.resources())
            .stopping_condition(spec.stopping_condition())
            .enable_network_isolation(true)
            .enable_inter_container_traffic_encryption(spec.instance_count > 1)
            .set_vpc_config(spec.network.vpc_config())
            .set_static_hyper_parameters(Some(spec.hyperparameters.clone()))
            .build();
        let objective = HyperParameterTuningJobObjective::builder()
            .metric_name(&plan.objective.metric)
            .r#type(if plan.objective.maximize {
                HyperParameterTuningJobObjectiveType::Maximize
            } else {
                HyperParameterTuningJobObjectiveType::Minimize
            })
            .build();
        let mut ranges = ParameterRanges::builder();
        for (name, range) in &plan.ranges {
            ranges = match range {
                Range::Continuous { min, max, scaling } => ranges.continuous_parameter_ranges(
                    ContinuousParameterRange::builder()
                        .name(name)
                        .min_value(min.to_string())
                        .max_value(max.to_string())
                        .scaling_type(HyperParameterScalingType::from(scaling.sagemaker_name()))
                        .build(),
                ),
                Range::Integer { min, max, scaling } => ranges.integer_parameter_ranges(
                    IntegerParameterRange::builder()
                        .name(name)
                        .min_value(min.to_string())
                        .max_value(max.to_string())
                        .scaling_type(HyperParameterScalingType::from(scaling.sagemaker_name()))
                        .build(),
                ),
                Range::Categorical(values) => ranges.categorical_parameter_ranges(
                    CategoricalParameterRange::builder().name(name).set_values(Some(values.clone())).build(),
                ),
            };
        }
        let config = HyperParameterTuningJobConfig::builder()
            .strategy(HyperParameterTuningJobStrategyType::Random)
            .hyper_parameter_tuning_job_objective(objective)
            .resource_limits(
                ResourceLimits::builder()
                    .max_number_of_training_jobs(plan.max_jobs as i32)
                    .max_parallel_training_jobs(plan.parallel_jobs as i32)
                    .build(),
            )
            .parameter_ranges(ranges.build())
            .build();
        let created = self
            .client
            .create_hyper_parameter_tuning_job()
            .hyper_parameter_tuning_job_name(job_name)
            .hyper_parameter_tuning_job_config(config)
            .training_job_definition(definition)
            .set_tags(Some(spec.tags()))
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use()) => Ok(false),
            Err(err) => Err(failed("CreateHyperParameterTuningJob", err)),
        }
    }

    /// The name of a tuning job's best training job so far, if any trial has finished.
    pub async fn best_training_job(&self, tuning_job: &str) -> Result<Option<String>, StoreError> {
        let described = self
            .client
            .describe_hyper_parameter_tuning_job()
            .hyper_parameter_tuning_job_name(tuning_job)
            .send()
            .await
            .map_err(|e| failed("DescribeHyperParameterTuningJob", e))?;
        Ok(described.best_training_job().and_then(|b| b.training_job_name()).map(str::to_owned))
    }

    pub async fn training_job(&self, name: &str) -> Result<TrainingJob, StoreError> {
        let job = self
            .client
            .describe_training_job()
            .training_job_name(name)
            .send()
            .await
            .map_err(|e| failed("DescribeTrainingJob", e))?;
        Ok(TrainingJob {
            name: name.to_owned(),
            status: job.training_job_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            model_artifacts: job.model_artifacts().and_then(|a| a.s3_model_artifacts()).map(str::to_owned),
            failure_reason: job.failure_reason().map(str::to_owned),
            hyperparameters: job.hyper_parameters().cloned().unwrap_or_default(),
            tuning_job_arn: job.tuning_job_arn().map(str::to_owned),
            created_at: job.creation_time().and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
        })
    }
}
