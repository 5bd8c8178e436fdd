//! Each model's production predictor, loaded once per container and kept until production
//! changes. The source is asked again at most every `staleness`, so a newly promoted
//! version is served within that time without a redeploy; a source that cannot be reached
//! leaves the cached version serving.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_model::rollout::RolloutPolicy;
use sluice_model::{Bundle, BundleError, BundleLimits, Contents};
use tokio::sync::Mutex;

use crate::Predictor;

/// The production version of a model and where its bundle is, with the candidate of a
/// running rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Production {
    pub version: i64,
    pub bundle_uri: String,
    pub candidate: Option<Candidate>,
}

/// The version a rollout is trying beside production, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub version: i64,
    pub bundle_uri: String,
    pub policy: RolloutPolicy,
}

/// A store that could not be read (the message names the service and operation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("model {0} has no production version")]
    NoProduction(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("version {version} of {model}: {source}")]
    Bundle { model: String, version: i64, source: BundleError },
}

/// Where production versions and their bundles come from.
pub trait ModelSource: Send + Sync {
    fn production(&self, model: &str) -> impl Future<Output = Result<Option<Production>, SourceError>> + Send;
    fn bundle(&self, uri: &str) -> impl Future<Output = Result<Vec<u8>, SourceError>> + Send;
}

/// A predictor and the version it serves, with the rollout's candidate if one is running.
#[derive(Clone)]
pub struct Serving {
    pub version: i64,
    pub predictor: Arc<Predictor>,
    pub candidate: Option<CandidateServing>,
}

/// A rollout's candidate as serving holds it: a bundle that does not load is kept as its
/// reason, so the requests routed to it count as its errors (and production answers them).
#[derive(Clone)]
pub struct CandidateServing {
    pub version: i64,
    pub policy: RolloutPolicy,
    pub predictor: Result<Arc<Predictor>, String>,
}

struct Cached {
    serving: Serving,
    checked: Instant,
}

pub struct ModelCache<S> {
    source: S,
    staleness: Duration,
    limits: BundleLimits,
    models: Mutex<HashMap<String, Cached>>,
}

impl<S: ModelSource> ModelCache<S> {
    /// `limits` keep a bundle from taking more memory than the process has.
    pub fn new(source: S, staleness: Duration, limits: BundleLimits) -> Self {
        Self { source, staleness, limits, models: Mutex::new(HashMap::new()) }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub async fn get(&self, model: &str) -> Result<Serving, CacheError> {
        // One request at a time per Lambda container: holding the lock while refreshing
        // costs nothing there and keeps two refreshes from loading the same bundle.
        let mut models = self.models.lock().await;
        if let Some(cached) = models.get(model)
            && cached.checked.elapsed() < self.staleness
        {
            return Ok(cached.serving.clone());
        }
        // Whatever happens next, the cached version is not asked about again before
        // `staleness` (a failing source or bundle is not retried on every request).
        let fallback = |models: &mut HashMap<String, Cached>| {
            models.get_mut(model).map(|cached| {
                cached.checked = Instant::now();
                cached.serving.clone()
            })
        };
        let production = match self.source.production(model).await {
            Ok(production) => production,
            Err(err) => {
                tracing::warn!(%model, error = %err, "production record unreachable; serving the cached version");
                return fallback(&mut models).ok_or(err.into());
            }
        };
        let Some(production) = production else {
            models.remove(model);
            return Err(CacheError::NoProduction(model.to_owned()));
        };
        let cached = models.get(model).map(|cached| &cached.serving);
        let predictor = match cached.filter(|serving| serving.version == production.version) {
            Some(serving) => Arc::clone(&serving.predictor),
            None => match self.load(model, production.version, &production.bundle_uri).await {
                Ok(predictor) => predictor,
                // The new version cannot be loaded: the one loaded before keeps serving, and
                // the new one is tried again after `staleness`.
                Err(err) => {
                    tracing::error!(%model, version = production.version, error = %err, "new production version not loaded; serving the cached one");
                    return fallback(&mut models).ok_or(err);
                }
            },
        };
        let cached_candidate = models.get(model).and_then(|cached| cached.serving.candidate.clone());
        let candidate = match production.candidate {
            None => None,
            Some(wanted) => Some(match cached_candidate.filter(|c| c.version == wanted.version && c.predictor.is_ok()) {
                Some(loaded) => CandidateServing { policy: wanted.policy, ..loaded },
                None => CandidateServing {
                    version: wanted.version,
                    policy: wanted.policy,
                    predictor: self.load(model, wanted.version, &wanted.bundle_uri).await.map_err(|err| {
                        tracing::error!(%model, version = wanted.version, error = %err, "the rollout's candidate did not load");
                        err.to_string()
                    }),
                },
            }),
        };
        let serving = Serving { version: production.version, predictor, candidate };
        models.insert(model.to_owned(), Cached { serving: serving.clone(), checked: Instant::now() });
        Ok(serving)
    }

    async fn load(&self, model: &str, version: i64, bundle_uri: &str) -> Result<Arc<Predictor>, CacheError> {
        let bytes = self.source.bundle(bundle_uri).await?;
        let predictor = Bundle::from_tar_gz(&bytes, self.limits, Contents::All)
            .and_then(|bundle| Predictor::load(&bundle))
            .map_err(|source| CacheError::Bundle { model: model.to_owned(), version, source })?;
        tracing::info!(%model, version, "loaded a version");
        Ok(Arc::new(predictor))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// A source whose answer the test sets; `None` fails like an unreachable service.
    struct Scripted {
        production: StdMutex<Option<Option<Production>>>,
        bundle: Vec<u8>,
        fetches: StdMutex<usize>,
        /// Serve garbage instead of the bundle.
        broken: StdMutex<bool>,
    }

    impl ModelSource for Scripted {
        async fn production(&self, _model: &str) -> Result<Option<Production>, SourceError> {
            self.production.lock().unwrap().clone().ok_or(SourceError("DynamoDB GetItem failed: unreachable".into()))
        }

        async fn bundle(&self, _uri: &str) -> Result<Vec<u8>, SourceError> {
            *self.fetches.lock().unwrap() += 1;
            if *self.broken.lock().unwrap() {
                return Ok(b"not a bundle".to_vec());
            }
            Ok(self.bundle.clone())
        }
    }

    fn production(version: i64) -> Option<Option<Production>> {
        Some(Some(Production { version, bundle_uri: format!("s3://b/{version}"), candidate: None }))
    }

    #[tokio::test]
    async fn bundles_load_once_per_version_and_survive_an_unreachable_source() {
        let (network, manifest) = sluice_tests::bundle::flower_classifier(1);
        let source = Scripted {
            production: StdMutex::new(production(1)),
            bundle: sluice_tests::bundle::bundle_bytes(&network, &manifest),
            fetches: StdMutex::new(0),
            broken: StdMutex::new(false),
        };
        let cache = ModelCache::new(source, Duration::ZERO, BundleLimits::for_memory(1 << 30));
        assert_eq!(cache.get("flowers").await.unwrap().version, 1);
        assert_eq!(cache.get("flowers").await.unwrap().version, 1);
        assert_eq!(*cache.source.fetches.lock().unwrap(), 1, "the same version is not fetched again");

        *cache.source.production.lock().unwrap() = None;
        assert_eq!(cache.get("flowers").await.unwrap().version, 1, "the cached version keeps serving");
        assert!(matches!(cache.get("roses").await, Err(CacheError::Source(_))), "nothing cached to fall back on");

        *cache.source.production.lock().unwrap() = production(2);
        assert_eq!(cache.get("flowers").await.unwrap().version, 2);
        *cache.source.broken.lock().unwrap() = true;
        *cache.source.production.lock().unwrap() = production(3);
        assert_eq!(cache.get("flowers").await.unwrap().version, 2, "a broken new version leaves the old one serving");
        *cache.source.broken.lock().unwrap() = false;
        *cache.source.production.lock().unwrap() = Some(None);
        assert!(matches!(cache.get("flowers").await, Err(CacheError::NoProduction(_))), "a withdrawn model stops");
    }
}
