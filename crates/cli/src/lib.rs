//! The `sluice` command's library: Sluice's functions wired into the local cloud, and the
//! client commands that use the API.

pub mod client;
pub mod commands;
pub mod dashboard;
pub mod demo;
mod progress;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sns::SnsEvent;
use aws_lambda_events::sqs::SqsEvent;
use batch::Batch;
use etl::Etl;
use ingest::Ingest;
use models::Models;
use monitor::Monitor;
use predict::Predict;
use register::Register;
use remediate::Remediate;
use sluice_aws::AwsClients;
use sluice_localcloud::alarms::AlarmEvaluator;
use sluice_localcloud::api::ApiServer;
use sluice_localcloud::clock::Clock;
use sluice_localcloud::events::EventDelivery;
use sluice_localcloud::firehose::FirehoseDelivery;
use sluice_localcloud::moto::MotoServer;
use sluice_localcloud::queues::QueueSources;
use sluice_localcloud::schedule::Schedules;
use sluice_localcloud::template::Stack;
use sluice_localcloud::topics::SnsDelivery;
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
    // Boxed: by far the largest; the handlers live as long as the cloud anyway.
    Etl(Box<Etl>),
    Models(Models),
    Register(Register),
    Predict(Predict),
    Stream(Stream),
    Batch(Batch),
    Monitor(Monitor),
    Remediate(Remediate),
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
                "etl" => Handler::Etl(Box::new(
                    Etl::from_settings(clients.clone(), &function.environment)
                        .map_err(|err| failed(err.to_string()))?,
                )),
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
                "monitor" => Handler::Monitor(
                    Monitor::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
                ),
                "remediate" => Handler::Remediate(
                    Remediate::from_settings(clients, &function.environment).map_err(|err| failed(err.to_string()))?,
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
                Some(Handler::Etl(etl)) => match etl.handle_event(event).await {
                    Ok(()) => Ok(serde_json::Value::Null),
                    Err(err) => Err(InvokeError::Failed {
                        function: function.clone(),
                        error_type: "EtlFailure".into(),
                        message: err.to_string(),
                    }),
                },
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
                Some(Handler::Monitor(monitor)) => {
                    Box::pin(monitor.handle(&event)).await.map_err(|err| InvokeError::Failed {
                        function: function.clone(),
                        error_type: "MonitorFailure".into(),
                        message: err.to_string(),
                    })
                }
                Some(Handler::Remediate(remediate)) => {
                    let event: SnsEvent = serde_json::from_value(event).map_err(bad_event)?;
                    match Box::pin(remediate.handle(event)).await {
                        Ok(outcomes) => serde_json::to_value(outcomes).map_err(bad_event),
                        Err(err) => Err(InvokeError::Failed {
                            function: function.clone(),
                            error_type: "RemediateFailure".into(),
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
    /// Template parameters to set, as `sam deploy --parameter-overrides` sets them.
    pub parameters: BTreeMap<String, String>,
    /// How fast schedules, alarm periods and delivery buffers run.
    pub clock: Clock,
    /// The endpoint evaluates CloudWatch alarms itself (LocalStack); moto does not.
    pub endpoint_evaluates_alarms: bool,
}

impl LocalOptions {
    /// A private moto server, real time, the template's defaults, API on `api_address`.
    pub fn new(project_root: PathBuf, stack_name: &str, api_address: SocketAddr) -> Self {
        Self {
            project_root,
            endpoint: None,
            stack_name: stack_name.to_owned(),
            api_address,
            parameters: BTreeMap::new(),
            clock: Clock::default(),
            endpoint_evaluates_alarms: false,
        }
    }

    /// The template's stack as this local cloud runs it: the local defaults
    /// ([`LOCAL_PARAMETERS`]) under the parameters given.
    pub fn stack(&self) -> Result<Stack, LocalError> {
        let mut parameters = LOCAL_PARAMETERS
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect::<BTreeMap<_, _>>();
        parameters.extend(self.parameters.clone());
        Ok(Stack::load_with(&self.project_root.join("template.yaml"), &self.stack_name, &parameters)?)
    }
}

/// Template parameters the local cloud sets unless told otherwise. Capture is delivered
/// locally the moment the deliverer writes it, so the monitor need not wait for S3 to list
/// in-flight Firehose objects; and that wait, in real seconds, would outlast the alarm
/// periods of an accelerated clock.
const LOCAL_PARAMETERS: [(&str, &str); 1] = [("CaptureSettleSeconds", "0")];

/// Where the functions' CloudWatch metrics (EMF lines) are also written locally, for people.
pub const METRICS_FILE: &str = ".local/metrics.ndjson";

/// A running local cloud: the AWS endpoint, the stack's resources on it, its API and the
/// delivery of its events.
pub struct LocalCloud {
    pub endpoint: String,
    pub clients: AwsClients,
    pub stack: Stack,
    pub api: ApiServer,
    pub clock: Clock,
    _events: EventDelivery,
    _training: Option<TrainingRunner>,
    _schedules: Schedules,
    _queues: QueueSources,
    _topics: SnsDelivery,
    _alarms: Option<AlarmEvaluator>,
    _firehose: FirehoseDelivery,
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
        let stack = options.stack()?;
        provision::provision(&clients, &stack).await?;
        forward_metrics(&endpoint, &options.project_root);
        let functions: Arc<dyn Functions> = Arc::new(LocalFunctions::for_stack(&clients, &stack)?);
        let api = ApiServer::start(options.api_address, &stack, Arc::clone(&functions)).await?;
        let events = EventDelivery::start(&clients, &stack, Arc::clone(&functions)).await?;
        let clock = options.clock;
        let schedules = Schedules::start(&clients, &stack, Arc::clone(&functions), &clock);
        let queues = QueueSources::start(&clients, &stack, Arc::clone(&functions)).await?;
        // Subscribed before any alarm can publish: the emulator drops messages to a topic
        // without subscribers.
        let topics = SnsDelivery::start(&clients, &stack, Arc::clone(&functions)).await?;
        let alarms = (!options.endpoint_evaluates_alarms).then(|| AlarmEvaluator::start(&clients, &stack, &clock));
        let firehose = FirehoseDelivery::start(&clients, &stack, &clock);
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
            clock,
            _events: events,
            _training: training,
            _schedules: schedules,
            _queues: queues,
            _topics: topics,
            _alarms: alarms,
            _firehose: firehose,
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

/// Sends the functions' EMF metric lines to the endpoint's CloudWatch (so local alarms
/// see them) and to [`METRICS_FILE`]. Once per process: tests start several clouds on one
/// endpoint.
fn forward_metrics(endpoint: &str, project_root: &Path) {
    let path = project_root.join(METRICS_FILE);
    let file = std::fs::create_dir_all(path.parent().expect("the file is in a folder"))
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path));
    if let Err(err) = &file {
        tracing::warn!(path = %path.display(), error = %err, "metrics file not written");
    }
    sluice_localcloud::emf::forward(endpoint, file.ok());
}

/// The project root, found from the working directory up, like cargo finds its workspace.
pub fn project_root() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    sluice_localcloud::moto::find_project_root(&cwd)
        .or_else(|| sluice_localcloud::moto::find_project_root(Path::new(env!("CARGO_MANIFEST_DIR"))))
}
