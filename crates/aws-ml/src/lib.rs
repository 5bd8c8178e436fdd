//! SageMaker (training jobs, the model registry) and SNS (operator notifications), behind
//! types that speak Sluice's terms. Kept apart from `sluice-aws` so functions that never
//! train (ingest, ETL) do not carry the SageMaker SDK.

use std::collections::HashMap;

use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, CategoricalParameterRange, Channel, ContinuousParameterRange, DataSource,
    HyperParameterAlgorithmSpecification, HyperParameterScalingType, HyperParameterTrainingJobDefinition,
    HyperParameterTuningJobConfig, HyperParameterTuningJobObjective, HyperParameterTuningJobObjectiveType,
    HyperParameterTuningJobStrategyType, InferenceSpecification, IntegerParameterRange, MetricDefinition,
    ModelApprovalStatus, ModelPackageContainerDefinition, ModelPackageSortBy, OutputDataConfig, ParameterRanges,
    ResourceConfig, ResourceLimits, S3DataDistribution, S3DataSource, S3DataType, SortOrder, StoppingCondition, Tag,
    TrainingInputMode, TrainingInstanceType,
};
use sluice_aws::{AwsClients, StoreError};
use sluice_model::tuning::{Range, TuningPlan};

fn failed(operation: &'static str, err: impl std::error::Error) -> StoreError {
    StoreError { service: "SageMaker", operation, message: sluice_aws::error_chain(err) }
}

/// What a training job (or each trial of a tuning job) needs from Sluice.
#[derive(Debug, Clone)]
pub struct TrainingSpec {
    pub image: String,
    pub role_arn: String,
    /// `s3://…` prefixes by channel name.
    pub channels: Vec<(String, String)>,
    pub output_path: String,
    pub instance_type: String,
    pub instance_count: i32,
    pub max_runtime_seconds: i32,
    pub hyperparameters: HashMap<String, String>,
    pub metric_regexes: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
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
            .map(|(name, uri)| {
                let source = S3DataSource::builder()
                    .s3_data_type(S3DataType::S3Prefix)
                    .s3_uri(uri)
                    .s3_data_distribution_type(S3DataDistribution::FullyReplicated)
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
            .build()
    }

    fn stopping_condition(&self) -> StoppingCondition {
        StoppingCondition::builder().max_runtime_in_seconds(self.max_runtime_seconds).build()
    }

    fn tags(&self) -> Vec<Tag> {
        self.tags.iter().map(|(key, value)| Tag::builder().key(key).value(value).build()).collect()
    }
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPackage {
    pub arn: String,
    pub version: i64,
    pub approval: String,
    pub model_data_url: Option<String>,
    pub metadata: HashMap<String, String>,
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
}

impl SageMaker {
    pub fn new(clients: &AwsClients) -> Self {
        Self { client: aws_sdk_sagemaker::Client::new(&clients.config) }
    }

    pub async fn start_training(&self, job_name: &str, spec: &TrainingSpec) -> Result<String, StoreError> {
        let algorithm = AlgorithmSpecification::builder()
            .training_image(&spec.image)
            .training_input_mode(TrainingInputMode::File)
            .set_metric_definitions(Some(spec.metric_definitions()))
            .build();
        let output = self
            .client
            .create_training_job()
            .training_job_name(job_name)
            .algorithm_specification(algorithm)
            .role_arn(&spec.role_arn)
            .set_input_data_config(Some(spec.channels()))
            .output_data_config(OutputDataConfig::builder().s3_output_path(&spec.output_path).build())
            .resource_config(spec.resources())
            .stopping_condition(spec.stopping_condition())
            .set_hyper_parameters(Some(spec.hyperparameters.clone()))
            .set_tags(Some(spec.tags()))
            .send()
            .await
            .map_err(|e| failed("CreateTrainingJob", e))?;
        Ok(output.training_job_arn.unwrap_or_default())
    }

    /// Starts a random-search tuning job whose trials are `spec` with `plan`'s ranges varied.
    pub async fn start_tuning(
        &self,
        job_name: &str,
        spec: &TrainingSpec,
        plan: &TuningPlan,
    ) -> Result<String, StoreError> {
        let algorithm = HyperParameterAlgorithmSpecification::builder()
            .training_image(&spec.image)
            .training_input_mode(TrainingInputMode::File)
            .set_metric_definitions(Some(spec.metric_definitions()))
            .build();
        let definition = HyperParameterTrainingJobDefinition::builder()
            .algorithm_specification(algorithm)
            .role_arn(&spec.role_arn)
            .set_input_data_config(Some(spec.channels()))
            .output_data_config(OutputDataConfig::builder().s3_output_path(&spec.output_path).build())
            .resource_config(spec.resources())
            .stopping_condition(spec.stopping_condition())
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
        let output = self
            .client
            .create_hyper_parameter_tuning_job()
            .hyper_parameter_tuning_job_name(job_name)
            .hyper_parameter_tuning_job_config(config)
            .training_job_definition(definition)
            .set_tags(Some(spec.tags()))
            .send()
            .await
            .map_err(|e| failed("CreateHyperParameterTuningJob", e))?;
        Ok(output.hyper_parameter_tuning_job_arn.unwrap_or_default())
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
        })
    }

    /// Creates the model's package group unless it exists.
    pub async fn ensure_group(&self, group: &str, description: &str) -> Result<(), StoreError> {
        let exists = self.client.describe_model_package_group().model_package_group_name(group).send().await.is_ok();
        if !exists {
            self.client
                .create_model_package_group()
                .model_package_group_name(group)
                .model_package_group_description(description)
                .send()
                .await
                .map_err(|e| failed("CreateModelPackageGroup", e))?;
        }
        Ok(())
    }

    /// Registers a version of a model: the bundle, the image that can serve it, its metadata.
    pub async fn register(
        &self,
        group: &str,
        image: &str,
        bundle_uri: &str,
        approved: bool,
        metadata: HashMap<String, String>,
    ) -> Result<String, StoreError> {
        let container = ModelPackageContainerDefinition::builder().image(image).model_data_url(bundle_uri).build();
        let inference = InferenceSpecification::builder()
            .containers(container)
            .supported_content_types("application/json")
            .supported_response_mime_types("application/json")
            .build();
        let status = if approved { ModelApprovalStatus::Approved } else { ModelApprovalStatus::PendingManualApproval };
        let output = self
            .client
            .create_model_package()
            .model_package_group_name(group)
            .inference_specification(inference)
            .model_approval_status(status)
            .set_customer_metadata_properties(Some(metadata))
            .send()
            .await
            .map_err(|e| failed("CreateModelPackage", e))?;
        Ok(output.model_package_arn.unwrap_or_default())
    }

    /// Every version in a group, newest first.
    pub async fn packages(&self, group: &str) -> Result<Vec<ModelPackage>, StoreError> {
        let listed = self
            .client
            .list_model_packages()
            .model_package_group_name(group)
            .sort_by(ModelPackageSortBy::CreationTime)
            .sort_order(SortOrder::Descending)
            .max_results(100)
            .send()
            .await
            .map_err(|e| failed("ListModelPackages", e))?;
        let mut packages = Vec::new();
        for arn in listed.model_package_summary_list().iter().filter_map(|s| s.model_package_arn()) {
            packages.push(self.package(arn).await?);
        }
        packages.sort_by_key(|p| std::cmp::Reverse(p.version));
        Ok(packages)
    }

    /// The production version of a group: its newest approved package (two requests,
    /// however many versions there are).
    pub async fn production_package(&self, group: &str) -> Result<Option<ModelPackage>, StoreError> {
        let listed = self
            .client
            .list_model_packages()
            .model_package_group_name(group)
            .model_approval_status(ModelApprovalStatus::Approved)
            .sort_by(ModelPackageSortBy::CreationTime)
            .sort_order(SortOrder::Descending)
            .max_results(1)
            .send()
            .await
            .map_err(|e| failed("ListModelPackages", e))?;
        let Some(arn) = listed.model_package_summary_list().first().and_then(|s| s.model_package_arn()) else {
            return Ok(None);
        };
        self.package(arn).await.map(Some)
    }

    async fn package(&self, arn: &str) -> Result<ModelPackage, StoreError> {
        let described = self
            .client
            .describe_model_package()
            .model_package_name(arn)
            .send()
            .await
            .map_err(|e| failed("DescribeModelPackage", e))?;
        Ok(ModelPackage {
            version: described.model_package_version().map(i64::from).unwrap_or_default(),
            approval: described.model_approval_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            model_data_url: described
                .inference_specification()
                .and_then(|i| i.containers().first())
                .and_then(|c| c.model_data_url())
                .map(str::to_owned),
            metadata: described.customer_metadata_properties().cloned().unwrap_or_default(),
            arn: arn.to_owned(),
        })
    }

    pub async fn set_approval(&self, arn: &str, approved: bool) -> Result<(), StoreError> {
        let status = if approved { ModelApprovalStatus::Approved } else { ModelApprovalStatus::Rejected };
        self.client
            .update_model_package()
            .model_package_arn(arn)
            .model_approval_status(status)
            .send()
            .await
            .map_err(|e| failed("UpdateModelPackage", e))?;
        Ok(())
    }

    pub async fn groups(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let listed = self
            .client
            .list_model_package_groups()
            .name_contains(prefix)
            .max_results(100)
            .send()
            .await
            .map_err(|e| failed("ListModelPackageGroups", e))?;
        Ok(listed
            .model_package_group_summary_list()
            .iter()
            .filter_map(|g| g.model_package_group_name().map(str::to_owned))
            .collect())
    }
}

/// A bundle's `metrics.json` as registry metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionMetrics {
    pub primary_metric: String,
    pub value: f64,
    pub higher_is_better: bool,
    /// `primary_metric`, `higher_is_better`, and `metric:<name>` per validation metric.
    pub metadata: HashMap<String, String>,
}

impl VersionMetrics {
    pub fn from_json(metrics: &serde_json::Value) -> Result<Self, String> {
        let primary = &metrics["primary_metric"];
        let primary_metric = primary["name"]
            .as_str()
            .filter(|name| !name.is_empty())
            .ok_or("metrics.json has no primary_metric.name")?
            .to_owned();
        let value = primary["value"].as_f64().ok_or("metrics.json has no primary_metric.value")?;
        let higher_is_better = primary["higher_is_better"].as_bool().unwrap_or(true);
        let mut metadata = HashMap::from([
            ("primary_metric".to_owned(), primary_metric.clone()),
            ("higher_is_better".to_owned(), higher_is_better.to_string()),
        ]);
        for (metric, number) in metrics["validation"].as_object().into_iter().flatten() {
            if let Some(number) = number.as_f64() {
                metadata.insert(format!("metric:{metric}"), number.to_string());
            }
        }
        Ok(Self { primary_metric, value, higher_is_better, metadata })
    }
}

/// Messages to the operators' topic.
#[derive(Debug, Clone)]
pub struct Operators {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Operators {
    pub fn new(clients: &AwsClients, topic_arn: impl Into<String>) -> Self {
        Self { client: aws_sdk_sns::Client::new(&clients.config), topic_arn: topic_arn.into() }
    }

    pub async fn notify(&self, subject: &str, message: &str) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject.chars().take(100).collect::<String>())
            .message(message)
            .send()
            .await
            .map_err(|e| StoreError { service: "SNS", operation: "Publish", message: sluice_aws::error_chain(e) })?;
        Ok(())
    }
}
