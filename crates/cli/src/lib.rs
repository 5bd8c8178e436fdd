//! The `sluice` command's library: Sluice's functions wired into the local cloud.

pub mod demo;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::SqsEvent;
use batch::Batch;
use etl::Etl;
use ingest::Ingest;
use models::Models;
use predict::Predict;
use register::Register;
use sluice_aws::AwsClients;
use sluice_localcloud::api::ApiServer;
use sluice_localcloud::events::EventDelivery;
use sluice_localcloud::moto::MotoServer;
use sluice_localcloud::queues::QueueSources;
use sluice_localcloud::schedule::Schedules;
use sluice_localcloud::template::Stack;
use sluice_localcloud::training::{TrainingRunner, trainer_binary};
use sluice_localcloud::{Functions, InvokeError, provision};
use stream::Stream;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Moto(#[from] sluice_localcloud::moto::MotoError),
    #[error(transparent)]
    Template(#[from] sluice_localcloud::template::TemplateError),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error("function {function}: {message}")]
    Function { function: String, message: String },
    #[error("cannot serve the API: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Events(#[from] sluice_localcloud::events::DeliveryError),
}

/// One Lambda function's handler, built as its container would build it.
enum Handler {
    Ingest(Ingest),
    Etl(Etl),
    Models(Models),
    Register(Register),
    Predict(Predict),
    Stream(Stream),
    Batch(Batch),
}

/// Every function of a stack, invoked in process.
pub struct LocalFunctions(HashMap<String, Handler>);

impl LocalFunctions {
    /// Builds each function from its template environment, as Lambda would configure it.
    pub fn for_stack(clients: &AwsClients, stack: &Stack) -> Result<Self, LocalError> {
        let mut handlers = HashMap::new();
        for function in &stack.functions {
            let failed = |message: String| LocalError::Function { function: function.logical_id.clone(), message };
            let handler = match function.binary.as_str() {
                "ingest" => Handler::Ingest(
                    Ingest::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
                ),
                "etl" => Handler::Etl(
                    Etl::from_settings(clients.clone(), &function.environment)
                        .map_err(|err| failed(err.to_string()))?,
                ),
                "models" => Handler::Models(
                    Models::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
                ),
                "register" => Handler::Register(
                    Register::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
                ),
                "predict" => Handler::Predict(
                    Predict::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
                ),
                "stream" => Handler::Stream(
                    Stream::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
                ),
                "batch" => Handler::Batch(
                    Batch::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
                ),
                other => return Err(failed(format!("binary {other} has no local implementation"))),
            };
            handlers.insert(function.logical_id.clone(), handler);
        }
        Ok(Self(handlers))
    }
}

impl Functions for LocalFunctions {
    fn invoke(
        &self,
        function: &str,
        event: serde_json::Value,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, InvokeError>> + Send + '_>> {
        let function = function.to_owned();
        Box::pin(async move {
            let bad_event =
                |err: serde_json::Error| InvokeError::BadEvent { function: function.clone(), message: err.to_string() };
            match self.0.get(&function) {
                Some(Handler::Ingest(ingest)) => {
                    let request: ApiGatewayV2httpRequest = serde_json::from_value(event).map_err(bad_event)?;
                    serde_json::to_value(ingest.handle(request).await).map_err(bad_event)
                }
                Some(Handler::Etl(etl)) => {
                    let event: S3Event = serde_json::from_value(event).map_err(bad_event)?;
                    match etl.handle(event).await {
                        Ok(()) => Ok(serde_json::Value::Null),
                        Err(err) => Err(InvokeError::Failed {
                            function: function.clone(),
                            error_type: "EtlFailure".into(),
                            message: err.to_string(),
                        }),
                    }
                }
                Some(Handler::Models(models)) => models.handle_event(event).await.map_err(|err| InvokeError::Failed {
                    function: function.clone(),
                    error_type: "ModelsFailure".into(),
                    message: err.to_string(),
                }),
                Some(Handler::Predict(predict)) => {
                    let request: ApiGatewayV2httpRequest = serde_json::from_value(event).map_err(bad_event)?;
                    serde_json::to_value(predict.handle(request).await).map_err(bad_event)
                }
                Some(Handler::Stream(stream)) => {
                    let event: SqsEvent = serde_json::from_value(event).map_err(bad_event)?;
                    serde_json::to_value(stream.handle(event).await).map_err(bad_event)
                }
                Some(Handler::Batch(batch)) => {
                    let event: S3Event = serde_json::from_value(event).map_err(bad_event)?;
                    match batch.handle(event).await {
                        Ok(()) => Ok(serde_json::Value::Null),
                        Err(err) => Err(InvokeError::Failed {
                            function: function.clone(),
                            error_type: "BatchFailure".into(),
                            message: err.to_string(),
                        }),
                    }
                }
                Some(Handler::Register(register)) => match register.handle(&event).await {
                    Ok(outcome) => Ok(serde_json::Value::String(outcome.to_string())),
                    Err(err) => Err(InvokeError::Failed {
                        function: function.clone(),
                        error_type: "RegisterFailure".into(),
                        message: err.to_string(),
                    }),
                },
                None => Err(InvokeError::UnknownFunction(function)),
            }
        })
    }
}

/// Where the local cloud runs and what it reads.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub project_root: PathBuf,
    /// An AWS endpoint to use (LocalStack, a running moto); `None` starts a private moto server.
    pub endpoint: Option<String>,
    pub stack_name: String,
    pub api_address: SocketAddr,
}

/// A running local cloud: the AWS endpoint, the stack's resources on it, its API and the
/// delivery of its events.
pub struct LocalCloud {
    pub endpoint: String,
    pub clients: AwsClients,
    pub stack: Stack,
    pub api: ApiServer,
    _events: EventDelivery,
    _training: Option<TrainingRunner>,
    _schedules: Schedules,
    _queues: QueueSources,
    // Dropped last: the server outlives the clients and API that use it.
    _moto: Option<MotoServer>,
}

impl LocalCloud {
    pub async fn start(options: &LocalOptions) -> Result<Self, LocalError> {
        let moto = match &options.endpoint {
            Some(_) => None,
            None => Some(MotoServer::start(&options.project_root)?),
        };
        let endpoint =
            options.endpoint.clone().unwrap_or_else(|| moto.as_ref().expect("started above").endpoint().to_owned());
        let clients = AwsClients::for_local_endpoint(&endpoint).await;
        let stack = Stack::load(&options.project_root.join("template.yaml"), &options.stack_name)?;
        provision::provision(&clients, &stack).await?;
        let functions: Arc<dyn Functions> = Arc::new(LocalFunctions::for_stack(&clients, &stack)?);
        let api = ApiServer::start(options.api_address, &stack, Arc::clone(&functions)).await?;
        let events = EventDelivery::start(&clients, &stack, Arc::clone(&functions)).await?;
        let schedules = Schedules::start(&clients, &stack, Arc::clone(&functions));
        let queues = QueueSources::start(&clients, &stack, Arc::clone(&functions)).await?;
        let training = match trainer_binary() {
            Some(trainer) => Some(TrainingRunner::start(&clients, &stack, functions, trainer)),
            None => {
                tracing::warn!(
                    "no trainer binary found (build it: cargo build -p sluice-trainer); training jobs will not run"
                );
                None
            }
        };
        Ok(Self {
            endpoint,
            clients,
            stack,
            api,
            _events: events,
            _training: training,
            _schedules: schedules,
            _queues: queues,
            _moto: moto,
        })
    }

    /// Whether SageMaker training jobs are run (the trainer binary was found).
    pub fn runs_training(&self) -> bool {
        self._training.is_some()
    }

    /// The physical name of a resource by its logical id in `template.yaml`.
    pub fn resource_name(&self, logical_id: &str) -> Option<&str> {
        self.stack
            .buckets
            .iter()
            .map(|b| (&b.logical_id, &b.name))
            .chain(self.stack.tables.iter().map(|t| (&t.logical_id, &t.name)))
            .chain(self.stack.queues.iter().map(|q| (&q.logical_id, &q.name)))
            .find(|(id, _)| *id == logical_id)
            .map(|(_, name)| name.as_str())
    }
}

/// The project root, found from the working directory up, like cargo finds its workspace.
pub fn project_root() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    sluice_localcloud::moto::find_project_root(&cwd)
        .or_else(|| sluice_localcloud::moto::find_project_root(Path::new(env!("CARGO_MANIFEST_DIR"))))
}
