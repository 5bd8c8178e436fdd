//! Each model's production predictor, loaded once per container and kept until production
//! changes. The registry is asked again at most every `staleness`, so a newly promoted
//! version is served within that time without a redeploy; a registry that cannot be reached
//! leaves the cached version serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_aws::settings::{SettingsError, Vars, parsed_or};
use sluice_aws::{AwsClients, StoreError};
use sluice_aws_ml::SageMaker;
use sluice_serving::{Bundle, BundleError, Predictor};
use tokio::sync::Mutex;

/// The production version of a model, as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Production {
    pub version: i64,
    pub bundle_uri: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("model {0} has no production version")]
    NoProduction(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("version {version} of {model}: {source}")]
    Bundle { model: String, version: i64, source: BundleError },
}

/// Where production versions and their bundles come from.
pub trait ModelSource: Send + Sync {
    fn production(&self, model: &str) -> impl Future<Output = Result<Option<Production>, StoreError>> + Send;
    fn bundle(&self, uri: &str) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
}

/// The model registry (SageMaker) and the bundles it points to (S3).
pub struct Registry {
    pub sagemaker: SageMaker,
    pub s3: aws_sdk_s3::Client,
    pub group_prefix: String,
}

impl ModelSource for Registry {
    async fn production(&self, model: &str) -> Result<Option<Production>, StoreError> {
        let package = self.sagemaker.production_package(&format!("{}{model}", self.group_prefix)).await?;
        Ok(package.and_then(|p| Some(Production { version: p.version, bundle_uri: p.model_data_url? })))
    }

    async fn bundle(&self, uri: &str) -> Result<Vec<u8>, StoreError> {
        sluice_aws::read_s3_uri(&self.s3, uri).await
    }
}

struct Cached {
    version: i64,
    predictor: Arc<Predictor>,
    checked: Instant,
}

/// A predictor and the version it serves.
#[derive(Clone)]
pub struct Serving {
    pub version: i64,
    pub predictor: Arc<Predictor>,
}

impl ModelCache<Registry> {
    /// The registry's production versions, refreshed every `MODEL_REFRESH_SECONDS` (30).
    pub fn from_settings(clients: &AwsClients, vars: &dyn Vars) -> Result<Self, SettingsError> {
        let registry = Registry {
            sagemaker: SageMaker::new(clients),
            s3: clients.s3.clone(),
            group_prefix: parsed_or(vars, "MODEL_GROUP_PREFIX", "sluice-".to_owned())?,
        };
        Ok(Self::new(registry, Duration::from_secs(parsed_or(vars, "MODEL_REFRESH_SECONDS", 30)?)))
    }
}

pub struct ModelCache<S> {
    source: S,
    staleness: Duration,
    models: Mutex<HashMap<String, Cached>>,
}

impl<S: ModelSource> ModelCache<S> {
    pub fn new(source: S, staleness: Duration) -> Self {
        Self { source, staleness, models: Mutex::new(HashMap::new()) }
    }

    pub async fn get(&self, model: &str) -> Result<Serving, CacheError> {
        // One request at a time per Lambda container: holding the lock while refreshing
        // costs nothing there and keeps two refreshes from loading the same bundle.
        let mut models = self.models.lock().await;
        if let Some(cached) = models.get(model)
            && cached.checked.elapsed() < self.staleness
        {
            return Ok(Serving { version: cached.version, predictor: Arc::clone(&cached.predictor) });
        }
        let production = match self.source.production(model).await {
            Ok(production) => production,
            Err(err) => match models.get_mut(model) {
                Some(cached) => {
                    tracing::warn!(%model, error = %err, "registry unreachable; serving the cached version");
                    cached.checked = Instant::now();
                    return Ok(Serving { version: cached.version, predictor: Arc::clone(&cached.predictor) });
                }
                None => return Err(err.into()),
            },
        };
        let Some(production) = production else {
            models.remove(model);
            return Err(CacheError::NoProduction(model.to_owned()));
        };
        if let Some(cached) = models.get_mut(model)
            && cached.version == production.version
        {
            cached.checked = Instant::now();
            return Ok(Serving { version: cached.version, predictor: Arc::clone(&cached.predictor) });
        }
        let bytes = self.source.bundle(&production.bundle_uri).await?;
        let bundle_error =
            |source: BundleError| CacheError::Bundle { model: model.to_owned(), version: production.version, source };
        let predictor = Bundle::from_tar_gz(&bytes).and_then(|b| Predictor::load(&b)).map_err(bundle_error)?;
        tracing::info!(%model, version = production.version, "loaded the production version");
        let predictor = Arc::new(predictor);
        models.insert(
            model.to_owned(),
            Cached { version: production.version, predictor: Arc::clone(&predictor), checked: Instant::now() },
        );
        Ok(Serving { version: production.version, predictor })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// A registry whose answer the test sets; `None` fails like an unreachable service.
    struct Scripted {
        production: StdMutex<Option<Option<Production>>>,
        bundle: Vec<u8>,
        fetches: StdMutex<usize>,
    }

    impl ModelSource for Scripted {
        async fn production(&self, _model: &str) -> Result<Option<Production>, StoreError> {
            self.production.lock().unwrap().clone().ok_or(StoreError {
                service: "SageMaker",
                operation: "ListModelPackages",
                message: "unreachable".into(),
            })
        }

        async fn bundle(&self, _uri: &str) -> Result<Vec<u8>, StoreError> {
            *self.fetches.lock().unwrap() += 1;
            Ok(self.bundle.clone())
        }
    }

    fn production(version: i64) -> Option<Option<Production>> {
        Some(Some(Production { version, bundle_uri: format!("s3://b/{version}") }))
    }

    #[tokio::test]
    async fn bundles_load_once_per_version_and_survive_an_unreachable_registry() {
        let (network, manifest) = sluice_tests::bundle::flower_classifier(1);
        let source = Scripted {
            production: StdMutex::new(production(1)),
            bundle: sluice_tests::bundle::bundle_bytes(&network, &manifest),
            fetches: StdMutex::new(0),
        };
        let cache = ModelCache::new(source, Duration::ZERO);
        assert_eq!(cache.get("flowers").await.unwrap().version, 1);
        assert_eq!(cache.get("flowers").await.unwrap().version, 1);
        assert_eq!(*cache.source.fetches.lock().unwrap(), 1, "the same version is not fetched again");

        *cache.source.production.lock().unwrap() = None;
        assert_eq!(cache.get("flowers").await.unwrap().version, 1, "the cached version keeps serving");
        assert!(matches!(cache.get("roses").await, Err(CacheError::Store(_))), "nothing cached to fall back on");

        *cache.source.production.lock().unwrap() = production(2);
        assert_eq!(cache.get("flowers").await.unwrap().version, 2);
        *cache.source.production.lock().unwrap() = Some(None);
        assert!(matches!(cache.get("flowers").await, Err(CacheError::NoProduction(_))), "a withdrawn model stops");
    }
}
