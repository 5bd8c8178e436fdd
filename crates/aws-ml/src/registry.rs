//! The model registry: SageMaker model package groups (one per model, named
//! `<prefix><model>`), their versions, approvals, and **the** production version, which is
//! recorded in the catalog whenever it changes so serving finds it with one read. Every
//! function that registers, approves, lists or promotes goes through [`ModelRegistry`]; the
//! rules themselves (production, the gate) are `sluice_model::registry`'s.

use std::collections::HashMap;

use aws_sdk_sagemaker::types::{
    InferenceSpecification, ModelApprovalStatus, ModelPackageContainerDefinition, ModelPackageSortBy, SortOrder,
};
use serde_json::json;
use sluice_aws::{AwsClients, Catalog, ProductionRecord, StoreError};
use sluice_core::model_event::{EventKind, ModelEvent};
use sluice_core::{DatasetName, ModelName};
use sluice_model::Metrics;
use sluice_model::registry::{Approval, Versioned, production};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::failed;

fn approval_of(status: Option<&ModelApprovalStatus>) -> Approval {
    status.and_then(|s| Approval::parse(s.as_str())).unwrap_or(Approval::PendingManualApproval)
}

/// Names of the version metadata Sluice keeps in the registry (`CustomerMetadataProperties`).
pub mod metadata {
    pub const SOURCE: &str = "source";
    pub const TRAINING_JOB: &str = "training_job";
    pub const TUNING_JOB: &str = "tuning_job";
    pub const DATASET: &str = "dataset";
    /// When the training job started (RFC 3339): the newest data the version can have seen.
    pub const TRAINED_AT: &str = "trained_at";
    pub const PRIMARY_METRIC: &str = "primary_metric";
    pub const HIGHER_IS_BETTER: &str = "higher_is_better";
    /// Prefix of each validation metric: `metric:accuracy`.
    pub const METRIC_PREFIX: &str = "metric:";
    pub const IMPORTED_VERSION: &str = "imported_version";
}

/// SageMaker's limits on `CustomerMetadataProperties`: 50 entries, keys of 1–128 and values
/// of 1–256 characters from letters, digits, white space and `_.:/=+-@`.
const MAX_METADATA_ENTRIES: usize = 50;
const MAX_METADATA_KEY: usize = 128;
const MAX_METADATA_VALUE: usize = 256;
/// SageMaker's limit on `ModelPackageDescription`, where the gate's reason goes.
const MAX_DESCRIPTION: usize = 1024;

/// `text` as SageMaker accepts it in metadata: other characters become `_`, and it is cut
/// to `max` characters.
fn metadata_text(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c) { c } else { '_' })
        .take(max)
        .collect()
}

/// Metadata SageMaker accepts: each key and value made to fit, empty values left out, at
/// most 50 entries (Sluice's own first, then metrics by name).
fn fitted(metadata: HashMap<String, String>) -> HashMap<String, String> {
    let mut entries: Vec<(String, String)> = metadata
        .into_iter()
        .map(|(k, v)| (metadata_text(&k, MAX_METADATA_KEY), metadata_text(&v, MAX_METADATA_VALUE)))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect();
    entries.sort_by(|a, b| {
        let metric = |k: &str| k.starts_with(metadata::METRIC_PREFIX);
        metric(&a.0).cmp(&metric(&b.0)).then_with(|| a.0.cmp(&b.0))
    });
    entries.into_iter().take(MAX_METADATA_ENTRIES).collect()
}

/// A registered version of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    pub arn: String,
    pub version: i64,
    pub approval: Approval,
    pub bundle_uri: Option<String>,
    /// Why the gate decided as it did (the package's description).
    pub description: Option<String>,
    pub metadata: HashMap<String, String>,
}

/// What a registry listing says of a version: enough for the production rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSummary {
    pub arn: String,
    pub version: i64,
    pub approval: Approval,
}

impl Versioned for VersionSummary {
    fn version(&self) -> i64 {
        self.version
    }

    fn approval(&self) -> Approval {
        self.approval
    }
}

impl ModelVersion {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.metadata.get(name).map(String::as_str)
    }

    /// Validation metrics by name, as registered.
    pub fn metrics(&self) -> impl Iterator<Item = (&str, f64)> {
        self.metadata.iter().filter_map(|(k, v)| Some((k.strip_prefix(metadata::METRIC_PREFIX)?, v.parse().ok()?)))
    }

    fn production_record(&self, model: &ModelName, since: OffsetDateTime) -> Option<ProductionRecord> {
        Some(ProductionRecord {
            model: model.to_string(),
            version: self.version,
            bundle_uri: self.bundle_uri.clone()?,
            package_arn: self.arn.clone(),
            training_job: self.get(metadata::TRAINING_JOB).map(str::to_owned),
            dataset: self.get(metadata::DATASET).and_then(|d| DatasetName::parse(d).ok()),
            trained_at: self.get(metadata::TRAINED_AT).and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
            since,
        })
    }
}

/// Registry metadata for a version's metrics: the primary metric, its direction, and each
/// validation metric.
pub fn metrics_metadata(metrics: &Metrics) -> HashMap<String, String> {
    let mut entries = HashMap::from([
        (metadata::PRIMARY_METRIC.to_owned(), metrics.primary_metric.name.clone()),
        (metadata::HIGHER_IS_BETTER.to_owned(), metrics.primary_metric.higher_is_better.to_string()),
    ]);
    for (name, value) in &metrics.validation {
        entries.insert(format!("{}{name}", metadata::METRIC_PREFIX), value.to_string());
    }
    entries
}

/// What production became after a registry change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductionChange {
    pub production: Option<ProductionRecord>,
    /// Whether this call changed the recorded production version (and logged it).
    pub changed: bool,
}

#[derive(Debug, Clone)]
pub struct ModelRegistry {
    client: aws_sdk_sagemaker::Client,
    catalog: Catalog,
    group_prefix: String,
    /// The image registered as the container that can serve a version.
    serving_image: String,
}

impl ModelRegistry {
    pub fn new(clients: &AwsClients, catalog: Catalog, group_prefix: &str, serving_image: &str) -> Self {
        Self {
            client: aws_sdk_sagemaker::Client::new(&clients.config),
            catalog,
            group_prefix: group_prefix.to_owned(),
            serving_image: serving_image.to_owned(),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The model's package group: `<prefix><model>`.
    pub fn group(&self, model: &ModelName) -> String {
        format!("{}{model}", self.group_prefix)
    }

    /// Every model with a package group, by name.
    pub async fn models(&self) -> Result<Vec<ModelName>, StoreError> {
        let pages = self
            .client
            .list_model_package_groups()
            .name_contains(&self.group_prefix)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| failed("ListModelPackageGroups", e))?;
        let mut models: Vec<ModelName> = pages
            .iter()
            .flat_map(|page| page.model_package_group_summary_list())
            .filter_map(|group| group.model_package_group_name()?.strip_prefix(&self.group_prefix))
            .filter_map(|name| ModelName::parse(name).ok())
            .collect();
        models.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(models)
    }

    async fn group_exists(&self, group: &str) -> Result<bool, StoreError> {
        match self.client.describe_model_package_group().model_package_group_name(group).send().await {
            Ok(_) => Ok(true),
            // SageMaker answers a missing group with a ValidationException "… does not exist".
            Err(err) if err.as_service_error().and_then(|e| e.meta().code()) == Some("ValidationException") => {
                Ok(false)
            }
            Err(err) => Err(failed("DescribeModelPackageGroup", err)),
        }
    }

    /// Every version of `model` in full (one describe each), newest first; `None` when the
    /// model has never had one.
    pub async fn versions(&self, model: &ModelName) -> Result<Option<Vec<ModelVersion>>, StoreError> {
        let Some(summaries) = self.summaries(model).await? else { return Ok(None) };
        let mut versions = Vec::new();
        for summary in summaries {
            versions.push(self.describe(&summary.arn).await?);
        }
        Ok(Some(versions))
    }

    /// Every version of `model` as the listing gives it (paging through all of them, no
    /// describe calls), newest first; `None` when the model has never had one.
    pub async fn summaries(&self, model: &ModelName) -> Result<Option<Vec<VersionSummary>>, StoreError> {
        let group = self.group(model);
        if !self.group_exists(&group).await? {
            return Ok(None);
        }
        let pages = self
            .client
            .list_model_packages()
            .model_package_group_name(&group)
            .sort_by(ModelPackageSortBy::CreationTime)
            .sort_order(SortOrder::Descending)
            .into_paginator()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| failed("ListModelPackages", e))?;
        let mut summaries: Vec<VersionSummary> = pages
            .iter()
            .flat_map(|page| page.model_package_summary_list())
            .map(|summary| VersionSummary {
                arn: summary.model_package_arn().unwrap_or_default().to_owned(),
                version: summary.model_package_version().map(i64::from).unwrap_or_default(),
                approval: approval_of(summary.model_approval_status()),
            })
            .collect();
        summaries.sort_by_key(|v| std::cmp::Reverse(v.version));
        Ok(Some(summaries))
    }

    async fn describe(&self, arn: &str) -> Result<ModelVersion, StoreError> {
        let described = self
            .client
            .describe_model_package()
            .model_package_name(arn)
            .send()
            .await
            .map_err(|e| failed("DescribeModelPackage", e))?;
        Ok(ModelVersion {
            arn: arn.to_owned(),
            version: described.model_package_version().map(i64::from).unwrap_or_default(),
            approval: approval_of(described.model_approval_status()),
            description: described.model_package_description().map(str::to_owned),
            bundle_uri: described
                .inference_specification()
                .and_then(|i| i.containers().first())
                .and_then(|c| c.model_data_url())
                .map(str::to_owned),
            metadata: described.customer_metadata_properties().cloned().unwrap_or_default(),
        })
    }

    /// Registers a version of `model` (creating its group the first time) and returns it.
    /// `description` says why it has its approval; `idempotency_key` (say, the training job)
    /// makes a repeated call return the version the first one created.
    pub async fn register(
        &self,
        model: &ModelName,
        bundle_uri: &str,
        approval: Approval,
        description: &str,
        metadata: HashMap<String, String>,
        idempotency_key: Option<&str>,
    ) -> Result<ModelVersion, StoreError> {
        let group = self.group(model);
        if !self.group_exists(&group).await? {
            let created = self
                .client
                .create_model_package_group()
                .model_package_group_name(&group)
                .model_package_group_description(format!("Sluice model {model}"))
                .send()
                .await;
            // A concurrent first registration may have created it meanwhile.
            if let Err(err) = created
                && !self.group_exists(&group).await?
            {
                return Err(failed("CreateModelPackageGroup", err));
            }
        }
        let container =
            ModelPackageContainerDefinition::builder().image(&self.serving_image).model_data_url(bundle_uri).build();
        let inference = InferenceSpecification::builder()
            .containers(container)
            .supported_content_types("application/json")
            .supported_response_mime_types("application/json")
            .build();
        let output = self
            .client
            .create_model_package()
            .model_package_group_name(&group)
            .inference_specification(inference)
            .model_approval_status(ModelApprovalStatus::from(approval.as_str()))
            .model_package_description(description.chars().take(MAX_DESCRIPTION).collect::<String>())
            .set_customer_metadata_properties(Some(fitted(metadata)))
            // SageMaker's client tokens are at most 36 characters.
            .set_client_token(
                idempotency_key.map(|key| sluice_core::Sha256Digest::of(key.as_bytes()).hex[..32].to_owned()),
            )
            .send()
            .await
            .map_err(|e| failed("CreateModelPackage", e))?;
        self.describe(&output.model_package_arn.unwrap_or_default()).await
    }

    /// Sets a version's approval; `None` when the model has no such version.
    pub async fn set_approval(
        &self,
        model: &ModelName,
        version: i64,
        approval: Approval,
    ) -> Result<Option<ModelVersion>, StoreError> {
        let Some(current) = self.version(model, version).await? else { return Ok(None) };
        self.client
            .update_model_package()
            .model_package_arn(&current.arn)
            .model_approval_status(ModelApprovalStatus::from(approval.as_str()))
            // Sent back unchanged: AWS keeps a version's metadata (its metrics, job, dataset)
            // when an update leaves it out, but moto's UpdateModelPackage clears it; sending
            // the same properties is right for both.
            .set_customer_metadata_properties(Some(current.metadata).filter(|metadata| !metadata.is_empty()))
            .send()
            .await
            .map_err(|e| failed("UpdateModelPackage", e))?;
        self.describe(&current.arn).await.map(Some)
    }

    /// One version of `model` in full; `None` when the model has no such version.
    pub async fn version(&self, model: &ModelName, version: i64) -> Result<Option<ModelVersion>, StoreError> {
        let Some(summaries) = self.summaries(model).await? else { return Ok(None) };
        match summaries.into_iter().find(|v| v.version == version) {
            Some(summary) => self.describe(&summary.arn).await.map(Some),
            None => Ok(None),
        }
    }

    /// Applies the production rule to the registry as it is now and records the answer in
    /// the catalog. Called after every change that can move production (a registration, an
    /// approval, a rejection); a change is logged once in the model's event log however many
    /// callers see it.
    pub async fn publish_production(&self, model: &ModelName) -> Result<ProductionChange, StoreError> {
        let read_at = OffsetDateTime::now_utc();
        let previous = self.catalog.production(model.as_str()).await?;
        let summaries = self.summaries(model).await?.unwrap_or_default();
        let production = match production(&summaries) {
            Some(summary) => self.describe(&summary.arn).await?.production_record(model, read_at),
            None => None,
        };
        let changed = self.catalog.record_production(model.as_str(), production.as_ref(), read_at).await?;
        if changed {
            let was = previous.as_ref().map(|p| p.version);
            let event = match &production {
                Some(now) => ModelEvent::new(
                    EventKind::Promoted,
                    match was {
                        Some(was) => format!("version {} is production (was version {was})", now.version),
                        None => format!("version {} is production", now.version),
                    },
                )
                .version(now.version)
                .details(json!({ "previous_version": was, "bundle": now.bundle_uri })),
                None => ModelEvent::new(EventKind::Withdrawn, "no version is production; predictions stop")
                    .details(json!({ "previous_version": was })),
            };
            self.catalog.append_event(model.as_str(), &event, None).await?;
            tracing::info!(%model, version = ?production.as_ref().map(|p| p.version), ?was, "production changed");
        }
        Ok(ProductionChange { production, changed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_made_to_fit_sagemakers_limits() {
        let mut metadata = HashMap::from([
            ("source".to_owned(), "import".to_owned()),
            ("imported_version".to_owned(), "v1 (final!)".to_owned()),
            ("empty".to_owned(), String::new()),
            ("trained_at".to_owned(), "2026-11-22T10:00:00Z".to_owned()),
        ]);
        for i in 0..60 {
            metadata.insert(format!("metric:m{i:02}"), "0.5".to_owned());
        }
        metadata.insert("metric:long".to_owned(), "9".repeat(300));
        let fitted = fitted(metadata);
        assert_eq!(fitted.len(), MAX_METADATA_ENTRIES);
        assert_eq!(fitted["imported_version"], "v1 _final__");
        assert_eq!(fitted["trained_at"], "2026-11-22T10:00:00Z", "RFC 3339 times fit as they are");
        assert!(!fitted.contains_key("empty"));
        assert!(fitted.contains_key("source"), "Sluice's own entries come before metrics");
        assert!(fitted.values().all(|v| v.chars().count() <= MAX_METADATA_VALUE));
    }
}
