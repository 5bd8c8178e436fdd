//! Reads `template.yaml` into the resources the local cloud creates and serves. The template
//! is the single source of truth: nothing here names a bucket, table or route.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_yaml::{Mapping, Value};

pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "us-east-1";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(message.into())
}

/// The resources of one stack, with the physical names they get locally.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub name: String,
    pub buckets: Vec<Bucket>,
    pub tables: Vec<Table>,
    pub queues: Vec<Queue>,
    pub topics: Vec<Topic>,
    pub delivery_streams: Vec<DeliveryStream>,
    pub functions: Vec<Function>,
}

/// A Firehose delivery stream to S3 (`ExtendedS3DestinationConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStream {
    pub logical_id: String,
    pub name: String,
    pub bucket: String,
    /// With Firehose's `!{timestamp:…}` and `!{firehose:…}` expressions.
    pub prefix: String,
    pub error_prefix: String,
    pub gzip: bool,
    pub buffer_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub logical_id: String,
    pub name: String,
    /// SQS attributes from the template (`VisibilityTimeout`, `RedrivePolicy` as JSON, …).
    pub attributes: Vec<(String, String)>,
}

/// An SQS queue a function consumes (a Lambda event source mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSource {
    pub queue: String,
    pub queue_arn: String,
    pub batch_size: u32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`: only the failed messages return.
    pub report_failures: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub logical_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub logical_id: String,
    pub name: String,
    /// `(attribute, HASH | RANGE)`
    pub key_schema: Vec<(String, String)>,
    /// `(attribute, S | N | B)`
    pub attributes: Vec<(String, String)>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`): which crate implements it.
    pub binary: String,
    pub environment: HashMap<String, String>,
    pub http_routes: Vec<HttpRoute>,
    pub s3_triggers: Vec<S3Trigger>,
    /// `EventBridgeRule` event patterns, as JSON.
    pub event_patterns: Vec<serde_json::Value>,
    /// `Schedule` expressions (`rate(1 day)`, `cron(…)`).
    pub schedules: Vec<String>,
    /// `SQS` event source mappings.
    pub queue_sources: Vec<QueueSource>,
    /// ARNs of the topics of its `SNS` events: each message published to one invokes it.
    pub sns_topics: Vec<String>,
    pub async_invoke: AsyncInvoke,
}

/// An `S3` event: objects created in `bucket` invoke the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Trigger {
    pub bucket: String,
    /// S3 event types, e.g. `s3:ObjectCreated:*`.
    pub events: Vec<String>,
    /// `Filter.S3Key.Rules` prefix: only keys starting with it trigger.
    pub prefix: Option<String>,
}

/// How Lambda handles a failed asynchronous invocation (`EventInvokeConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncInvoke {
    pub maximum_retry_attempts: u32,
    /// Queue name of the `OnFailure` SQS destination.
    pub on_failure_queue: Option<String>,
}

impl Default for AsyncInvoke {
    /// Lambda's defaults: two retries, no destination.
    fn default() -> Self {
        Self { maximum_retry_attempts: 2, on_failure_queue: None }
    }
}

/// An `HttpApi` event: `METHOD /path/{param}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: String,
    pub path: String,
}

impl HttpRoute {
    /// API Gateway's `routeKey`, e.g. `POST /datasets/{dataset}/records`.
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Stack {
    pub fn load(path: &Path, stack_name: &str) -> Result<Self, TemplateError> {
        Self::load_with(path, stack_name, &BTreeMap::new())
    }

    /// The stack with some parameters set (`sam deploy --parameter-overrides`); a name the
    /// template does not declare is an error.
    pub fn load_with(
        path: &Path,
        stack_name: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?;
        Self::from_yaml_with(&text, stack_name, parameters)
    }

    pub fn from_yaml(text: &str, stack_name: &str) -> Result<Self, TemplateError> {
        Self::from_yaml_with(text, stack_name, &BTreeMap::new())
    }

    pub fn from_yaml_with(
        text: &str,
        stack_name: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, TemplateError> {
        let document: Value = serde_yaml::from_str(text)?;
        let document = long_form(document);
        let resources = document
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| invalid("template has no Resources"))?;
        let mut context = Context::new(stack_name, &document, parameters)?;

        let mut buckets = Vec::new();
        let mut tables = Vec::new();
        let mut queues = Vec::new();
        let mut topics = Vec::new();
        for (id, resource) in resources {
            let id = id.as_str().ok_or_else(|| invalid("resource ids must be strings"))?;
            let properties = resource.get("Properties").cloned().unwrap_or(Value::Mapping(Mapping::new()));
            match resource_type(resource)? {
                "AWS::S3::Bucket" => {
                    let name = match properties.get("BucketName") {
                        Some(name) => context.string(name)?,
                        None => format!("{stack_name}-{}", id.to_ascii_lowercase()),
                    };
                    context.names.insert(id.to_owned(), name.clone());
                    buckets.push(Bucket { logical_id: id.to_owned(), name });
                }
                "AWS::DynamoDB::Table" => {
                    let name = match properties.get("TableName") {
                        Some(name) => context.string(name)?,
                        None => format!("{stack_name}-{id}"),
                    };
                    context.names.insert(id.to_owned(), name.clone());
                    tables.push(table(id, name, &properties)?);
                }
                "AWS::SQS::Queue" => {
                    let name = match properties.get("QueueName") {
                        Some(name) => context.string(name)?,
                        None => format!("{stack_name}-{id}"),
                    };
                    context.names.insert(id.to_owned(), name.clone());
                    queues.push(Queue { logical_id: id.to_owned(), name, attributes: Vec::new() });
                }
                "AWS::SNS::Topic" => {
                    let name = match properties.get("TopicName") {
                        Some(name) => context.string(name)?,
                        None => format!("{stack_name}-{id}"),
                    };
                    let arn = format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}");
                    // Ref on a topic is its ARN.
                    context.names.insert(id.to_owned(), arn.clone());
                    topics.push(Topic { logical_id: id.to_owned(), name, arn });
                }
                "AWS::KinesisFirehose::DeliveryStream" => {
                    let name = match properties.get("DeliveryStreamName") {
                        Some(name) => context.string(name)?,
                        None => format!("{stack_name}-{id}"),
                    };
                    context.names.insert(id.to_owned(), name);
                }
                "AWS::IAM::Role" => {
                    // Not created locally (the emulator checks no permissions), but named.
                    context.names.insert(id.to_owned(), format!("{stack_name}-{id}"));
                }
                _ => {}
            }
        }

        // After every name is known: a redrive policy names another queue.
        for queue in &mut queues {
            let properties = resources.get(queue.logical_id.as_str()).and_then(|r| r.get("Properties"));
            queue.attributes = queue_attributes(&queue.logical_id, properties, &context)?;
        }
        // After every name is known: a stream names its bucket.
        let mut delivery_streams = Vec::new();
        for (id, resource) in resources {
            if resource_type(resource)? == "AWS::KinesisFirehose::DeliveryStream" {
                let id = id.as_str().expect("checked above");
                delivery_streams.push(delivery_stream(id, resource.get("Properties"), &context)?);
            }
        }
        let globals = document.get("Globals").and_then(|g| g.get("Function"));
        let mut functions = Vec::new();
        for (id, resource) in resources {
            if resource_type(resource)? != "AWS::Serverless::Function" {
                continue;
            }
            let id = id.as_str().expect("checked above");
            functions.push(function(id, resource, globals, &context)?);
        }
        Ok(Self { name: stack_name.to_owned(), buckets, tables, queues, topics, delivery_streams, functions })
    }

    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }
}

fn queue_attributes(
    id: &str,
    properties: Option<&Value>,
    context: &Context,
) -> Result<Vec<(String, String)>, TemplateError> {
    let mut attributes = Vec::new();
    let Some(properties) = properties else { return Ok(attributes) };
    for name in ["VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"] {
        if let Some(value) = properties.get(name) {
            attributes.push((name.to_owned(), context.string(value)?));
        }
    }
    if let Some(redrive) = properties.get("RedrivePolicy") {
        let target = redrive
            .get("deadLetterTargetArn")
            .ok_or_else(|| invalid(format!("queue {id}: RedrivePolicy needs deadLetterTargetArn")))?;
        let count = redrive
            .get("maxReceiveCount")
            .ok_or_else(|| invalid(format!("queue {id}: RedrivePolicy needs maxReceiveCount")))?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": context.string(target)?,
            "maxReceiveCount": context.string(count)?.parse::<u32>().map_err(|e| invalid(format!("queue {id}: maxReceiveCount: {e}")))?,
        });
        attributes.push(("RedrivePolicy".to_owned(), policy.to_string()));
    }
    Ok(attributes)
}

fn delivery_stream(id: &str, properties: Option<&Value>, context: &Context) -> Result<DeliveryStream, TemplateError> {
    let destination = properties.and_then(|p| p.get("ExtendedS3DestinationConfiguration")).ok_or_else(|| {
        invalid(format!("delivery stream {id}: only ExtendedS3DestinationConfiguration is run locally"))
    })?;
    let text = |name: &str| destination.get(name).map(|v| context.string(v)).transpose();
    let bucket_arn = text("BucketARN")?.ok_or_else(|| invalid(format!("delivery stream {id} needs a BucketARN")))?;
    let buffer_seconds = match destination.get("BufferingHints").and_then(|h| h.get("IntervalInSeconds")) {
        Some(seconds) => context
            .string(seconds)?
            .parse()
            .map_err(|e| invalid(format!("delivery stream {id}: IntervalInSeconds: {e}")))?,
        None => 300,
    };
    Ok(DeliveryStream {
        logical_id: id.to_owned(),
        name: context.reference(id)?,
        bucket: bucket_arn.rsplit(':').next().unwrap_or_default().to_owned(),
        prefix: text("Prefix")?.unwrap_or_default(),
        error_prefix: text("ErrorOutputPrefix")?.unwrap_or_default(),
        gzip: text("CompressionFormat")?.as_deref() == Some("GZIP"),
        buffer_seconds,
    })
}

fn resource_type(resource: &Value) -> Result<&str, TemplateError> {
    resource.get("Type").and_then(Value::as_str).ok_or_else(|| invalid("every resource needs a Type"))
}

fn table(id: &str, name: String, properties: &Value) -> Result<Table, TemplateError> {
    let pairs = |list: &str, first: &str, second: &str| -> Result<Vec<(String, String)>, TemplateError> {
        properties
            .get(list)
            .and_then(Value::as_sequence)
            .ok_or_else(|| invalid(format!("table {id} has no {list}")))?
            .iter()
            .map(|entry| {
                let field = |name: &str| {
                    entry
                        .get(name)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(format!("table {id}: every {list} entry needs {name}")))
                };
                Ok((field(first)?, field(second)?))
            })
            .collect()
    };
    let ttl = properties.get("TimeToLiveSpecification");
    let ttl_attribute = ttl
        .filter(|spec| spec.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
        .and_then(|spec| spec.get("AttributeName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Table {
        logical_id: id.to_owned(),
        name,
        key_schema: pairs("KeySchema", "AttributeName", "KeyType")?,
        attributes: pairs("AttributeDefinitions", "AttributeName", "AttributeType")?,
        ttl_attribute,
    })
}

fn function(id: &str, resource: &Value, globals: Option<&Value>, context: &Context) -> Result<Function, TemplateError> {
    let binary = resource
        .get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("function {id} needs Metadata.BuildProperties.Binary (the cargo binary)")))?
        .to_owned();
    let properties = resource.get("Properties");
    let mut environment = HashMap::new();
    for source in [globals, properties] {
        let variables =
            source.and_then(|s| s.get("Environment")).and_then(|e| e.get("Variables")).and_then(Value::as_mapping);
        for (name, value) in variables.into_iter().flatten() {
            let name =
                name.as_str().ok_or_else(|| invalid(format!("function {id}: variable names must be strings")))?;
            let value =
                context.string(value).map_err(|err| invalid(format!("function {id}, variable {name}: {err}")))?;
            environment.insert(name.to_owned(), value);
        }
    }
    // Lambda tells a function its memory; functions size their caps by it.
    let memory = [properties, globals].into_iter().flatten().find_map(|source| source.get("MemorySize"));
    if let Some(memory) = memory {
        environment.insert("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".to_owned(), context.string(memory)?);
    }
    let mut http_routes = Vec::new();
    let mut s3_triggers = Vec::new();
    let mut event_patterns = Vec::new();
    let mut schedules = Vec::new();
    let mut queue_sources = Vec::new();
    let mut sns_topics = Vec::new();
    let events = properties.and_then(|p| p.get("Events")).and_then(Value::as_mapping);
    for (_, event) in events.into_iter().flatten() {
        let event_properties = event.get("Properties");
        let field = |name: &str| {
            event_properties
                .and_then(|p| p.get(name))
                .ok_or_else(|| invalid(format!("function {id}: its events need {name}")))
        };
        match event.get("Type").and_then(Value::as_str) {
            Some("HttpApi") => {
                let text = |name: &str| {
                    field(name)?.as_str().ok_or_else(|| invalid(format!("function {id}: {name} must be a string")))
                };
                http_routes
                    .push(HttpRoute { method: text("Method")?.to_ascii_uppercase(), path: text("Path")?.to_owned() });
            }
            Some("S3") => {
                let events = match field("Events")? {
                    Value::Sequence(items) => items.iter().map(|i| context.string(i)).collect::<Result<_, _>>()?,
                    single => vec![context.string(single)?],
                };
                let rules = event_properties
                    .and_then(|p| p.get("Filter"))
                    .and_then(|f| f.get("S3Key"))
                    .and_then(|k| k.get("Rules"))
                    .and_then(Value::as_sequence);
                let prefix = rules
                    .into_iter()
                    .flatten()
                    .find(|rule| rule.get("Name").and_then(Value::as_str) == Some("prefix"))
                    .and_then(|rule| rule.get("Value"))
                    .map(|value| context.string(value))
                    .transpose()?;
                s3_triggers.push(S3Trigger { bucket: context.string(field("Bucket")?)?, events, prefix });
            }
            Some("EventBridgeRule") => {
                // A pattern may name the stack (`!Ref AWS::StackName`): matched as deployed.
                let pattern = serde_json::to_value(context.resolved(field("Pattern")?)?)
                    .map_err(|e| invalid(format!("function {id}: event pattern: {e}")))?;
                event_patterns.push(pattern);
            }
            Some("Schedule") => schedules.push(context.string(field("Schedule")?)?),
            Some("SQS") => {
                let arn = context.string(field("Queue")?)?;
                let batch_size = match event_properties.and_then(|p| p.get("BatchSize")) {
                    Some(size) => {
                        context.string(size)?.parse().map_err(|e| invalid(format!("function {id}: BatchSize: {e}")))?
                    }
                    None => 10,
                };
                let report_failures = event_properties
                    .and_then(|p| p.get("FunctionResponseTypes"))
                    .and_then(Value::as_sequence)
                    .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")));
                queue_sources.push(QueueSource {
                    queue: arn.rsplit(':').next().unwrap_or_default().to_owned(),
                    queue_arn: arn,
                    batch_size,
                    report_failures,
                });
            }
            // `Ref` on a topic is its ARN, which is what a subscription needs.
            Some("SNS") => sns_topics.push(context.string(field("Topic")?)?),
            _ => {}
        }
    }
    let async_invoke = match properties.and_then(|p| p.get("EventInvokeConfig")) {
        None => AsyncInvoke::default(),
        Some(config) => AsyncInvoke {
            maximum_retry_attempts: config
                .get("MaximumRetryAttempts")
                .and_then(Value::as_u64)
                .map_or(AsyncInvoke::default().maximum_retry_attempts, |n| n as u32),
            on_failure_queue: config
                .get("DestinationConfig")
                .and_then(|d| d.get("OnFailure"))
                .filter(|f| f.get("Type").and_then(Value::as_str) == Some("SQS"))
                .and_then(|f| f.get("Destination"))
                .map(|destination| context.string(destination))
                .transpose()?
                .map(|arn| arn.rsplit(':').next().unwrap_or_default().to_owned()),
        },
    };
    Ok(Function {
        logical_id: id.to_owned(),
        binary,
        environment,
        http_routes,
        s3_triggers,
        event_patterns,
        schedules,
        queue_sources,
        sns_topics,
        async_invoke,
    })
}

/// Rewrites short-form intrinsics (`!Ref X`, `!Sub ...`) into their long form
/// (`{Ref: X}`, `{Fn::Sub: ...}`), so resolution handles one shape.
fn long_form(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let key = if name == "Ref" { "Ref".to_owned() } else { format!("Fn::{name}") };
            let mut inner = long_form(tagged.value);
            if name == "GetAtt"
                && let Value::String(dotted) = &inner
                && let Some((resource, attribute)) = dotted.split_once('.')
            {
                inner = Value::Sequence(vec![resource.into(), attribute.into()]);
            }
            let mut mapping = Mapping::new();
            mapping.insert(key.into(), inner);
            Value::Mapping(mapping)
        }
        Value::Mapping(mapping) => Value::Mapping(mapping.into_iter().map(|(k, v)| (k, long_form(v))).collect()),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(long_form).collect()),
        other => other,
    }
}

/// What `Ref`, `Fn::Sub` and `Fn::GetAtt` resolve against locally.
struct Context {
    /// Parameters (their defaults) and pseudo parameters.
    parameters: BTreeMap<String, String>,
    /// Physical names of the resources created locally, by logical id.
    names: BTreeMap<String, String>,
    resource_types: BTreeMap<String, String>,
}

impl Context {
    fn new(stack_name: &str, document: &Value, overrides: &BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let mut parameters = BTreeMap::from([
            ("AWS::StackName".to_owned(), stack_name.to_owned()),
            ("AWS::AccountId".to_owned(), ACCOUNT_ID.to_owned()),
            ("AWS::Region".to_owned(), REGION.to_owned()),
            ("AWS::Partition".to_owned(), "aws".to_owned()),
            ("AWS::URLSuffix".to_owned(), "amazonaws.com".to_owned()),
        ]);
        for (name, spec) in document.get("Parameters").and_then(Value::as_mapping).into_iter().flatten() {
            let name = name.as_str().ok_or_else(|| invalid("parameter names must be strings"))?;
            if let Some(default) = spec.get("Default") {
                parameters.insert(
                    name.to_owned(),
                    scalar(default).ok_or_else(|| invalid(format!("parameter {name}: default must be a scalar")))?,
                );
            }
        }
        let declared = document.get("Parameters").and_then(Value::as_mapping);
        for (name, value) in overrides {
            if !declared.is_some_and(|d| d.contains_key(name.as_str())) {
                return Err(invalid(format!("the template has no parameter {name}")));
            }
            parameters.insert(name.clone(), value.clone());
        }
        let resource_types = document
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(id, r)| Some((id.as_str()?.to_owned(), r.get("Type")?.as_str()?.to_owned())))
            .collect();
        Ok(Self { parameters, names: BTreeMap::new(), resource_types })
    }

    fn reference(&self, name: &str) -> Result<String, TemplateError> {
        self.parameters
            .get(name)
            .or_else(|| self.names.get(name))
            .cloned()
            .ok_or_else(|| invalid(format!("cannot resolve Ref {name} locally")))
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<String, TemplateError> {
        let name = self.reference(resource)?;
        match (self.resource_types.get(resource).map(String::as_str), attribute) {
            (Some("AWS::S3::Bucket"), "Arn") => Ok(format!("arn:aws:s3:::{name}")),
            (Some("AWS::DynamoDB::Table"), "Arn") => Ok(format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}")),
            (Some("AWS::SQS::Queue"), "Arn") => Ok(format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}")),
            (Some("AWS::SQS::Queue"), "QueueName") => Ok(name),
            (Some("AWS::IAM::Role"), "Arn") => Ok(format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}")),
            (Some("AWS::SNS::Topic"), "TopicArn") => Ok(name),
            (Some("AWS::KinesisFirehose::DeliveryStream"), "Arn") => {
                Ok(format!("arn:aws:firehose:{REGION}:{ACCOUNT_ID}:deliverystream/{name}"))
            }
            _ => Err(invalid(format!("cannot resolve GetAtt {resource}.{attribute} locally"))),
        }
    }

    /// Resolves a property value to the string it becomes at deploy time.
    fn string(&self, value: &Value) -> Result<String, TemplateError> {
        if let Some(text) = scalar(value) {
            return Ok(text);
        }
        let mapping = value
            .as_mapping()
            .filter(|m| m.len() == 1)
            .ok_or_else(|| invalid(format!("expected a string, found {value:?}")))?;
        let (function, argument) = mapping.iter().next().expect("one entry");
        match function.as_str().unwrap_or_default() {
            "Ref" => self.reference(argument.as_str().ok_or_else(|| invalid("Ref takes a name"))?),
            "Fn::GetAtt" => {
                let parts: Vec<&str> = argument.as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
                match parts.as_slice() {
                    [resource, attribute] => self.attribute(resource, attribute),
                    _ => Err(invalid("GetAtt takes [resource, attribute]")),
                }
            }
            "Fn::Sub" => match argument {
                Value::String(text) => self.substitute(text, &BTreeMap::new()),
                Value::Sequence(items) if items.len() == 2 => {
                    let text = items[0].as_str().ok_or_else(|| invalid("Sub takes a string"))?;
                    let mut variables = BTreeMap::new();
                    for (name, value) in items[1].as_mapping().into_iter().flatten() {
                        variables.insert(name.as_str().unwrap_or_default().to_owned(), self.string(value)?);
                    }
                    self.substitute(text, &variables)
                }
                _ => Err(invalid("Sub takes a string or [string, variables]")),
            },
            "Fn::Join" => {
                let items = argument
                    .as_sequence()
                    .filter(|i| i.len() == 2)
                    .ok_or_else(|| invalid("Join takes [separator, list]"))?;
                let separator = items[0].as_str().unwrap_or_default();
                let parts = items[1].as_sequence().ok_or_else(|| invalid("Join takes a list"))?;
                Ok(parts.iter().map(|p| self.string(p)).collect::<Result<Vec<_>, _>>()?.join(separator))
            }
            other => Err(invalid(format!("intrinsic {other} is not supported by the local cloud"))),
        }
    }

    /// `value` with every intrinsic in it resolved to the string it becomes at deploy time.
    fn resolved(&self, value: &Value) -> Result<Value, TemplateError> {
        match value {
            Value::Mapping(mapping) => {
                let intrinsic = mapping.len() == 1
                    && mapping
                        .keys()
                        .next()
                        .and_then(Value::as_str)
                        .is_some_and(|k| k == "Ref" || k.starts_with("Fn::"));
                if intrinsic {
                    return self.string(value).map(Value::String);
                }
                mapping
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolved(v)?)))
                    .collect::<Result<_, _>>()
                    .map(Value::Mapping)
            }
            Value::Sequence(items) => {
                items.iter().map(|v| self.resolved(v)).collect::<Result<_, _>>().map(Value::Sequence)
            }
            other => Ok(other.clone()),
        }
    }

    fn substitute(&self, text: &str, variables: &BTreeMap<String, String>) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| invalid(format!("unclosed ${{ in Sub {text:?}")))? + start;
            let name = &rest[start + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(value);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(resource, attribute)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  MaxBody:
    Type: Number
    Default: 1024
Globals:
  Function:
    Environment:
      Variables:
        SHARED: !Sub "${AWS::StackName}-${AWS::Region}"
Resources:
  Raw:
    Type: AWS::S3::Bucket
  Named:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${AWS::StackName}-named-${AWS::AccountId}"
  Catalog:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - { AttributeName: pk, AttributeType: S }
        - { AttributeName: sk, AttributeType: S }
      KeySchema:
        - { AttributeName: pk, KeyType: HASH }
        - { AttributeName: sk, KeyType: RANGE }
      TimeToLiveSpecification: { AttributeName: expires_at, Enabled: true }
  Dlq:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: { Binary: ingest }
    Properties:
      EventInvokeConfig:
        MaximumRetryAttempts: 1
        DestinationConfig:
          OnFailure: { Type: SQS, Destination: !GetAtt Dlq.Arn }
      Environment:
        Variables:
          RAW_BUCKET: !Ref Raw
          TABLE_ARN: !GetAtt Catalog.Arn
          MAX: !Ref MaxBody
          JOINED: !Join ["/", [!Ref Named, "x"]]
          LITERAL: !Sub "${!NotAVariable}"
      Events:
        Post:
          Type: HttpApi
          Properties: { Path: "/datasets/{dataset}/records", Method: post }
        Nightly:
          Type: Schedule
          Properties: { Schedule: rate(1 day) }
        Created:
          Type: S3
          Properties: { Bucket: !Ref Raw, Events: s3:ObjectCreated:* }
"#;

    #[test]
    fn resolves_resources_names_and_environment() {
        let stack = Stack::from_yaml(TEMPLATE, "demo").unwrap();
        assert_eq!(
            stack.buckets,
            vec![
                Bucket { logical_id: "Raw".into(), name: "demo-raw".into() },
                Bucket { logical_id: "Named".into(), name: "demo-named-123456789012".into() },
            ]
        );
        let table = &stack.tables[0];
        assert_eq!(table.name, "demo-Catalog");
        assert_eq!(table.key_schema, vec![("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]);
        assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));

        let function = stack.function("Fn").unwrap();
        assert_eq!(function.binary, "ingest");
        let env = &function.environment;
        assert_eq!(env["RAW_BUCKET"], "demo-raw");
        assert_eq!(env["TABLE_ARN"], "arn:aws:dynamodb:us-east-1:123456789012:table/demo-Catalog");
        assert_eq!(env["MAX"], "1024");
        assert_eq!(env["SHARED"], "demo-us-east-1");
        assert_eq!(env["JOINED"], "demo-named-123456789012/x");
        assert_eq!(env["LITERAL"], "${NotAVariable}");
        assert_eq!(
            function.http_routes,
            vec![HttpRoute { method: "POST".into(), path: "/datasets/{dataset}/records".into() }]
        );
        assert_eq!(function.http_routes[0].route_key(), "POST /datasets/{dataset}/records");
        assert_eq!(
            function.s3_triggers,
            vec![S3Trigger { bucket: "demo-raw".into(), events: vec!["s3:ObjectCreated:*".into()], prefix: None }]
        );
        assert_eq!(
            function.async_invoke,
            AsyncInvoke { maximum_retry_attempts: 1, on_failure_queue: Some("demo-Dlq".into()) }
        );
        assert_eq!(stack.queues, vec![Queue { logical_id: "Dlq".into(), name: "demo-Dlq".into(), attributes: vec![] }]);
    }

    #[test]
    fn unresolvable_references_are_errors_not_guesses() {
        let template = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: x}}\n    Properties:\n      Environment:\n        Variables:\n          A: !Ref Missing\n";
        let err = Stack::from_yaml(template, "s").unwrap_err().to_string();
        assert!(err.contains("Missing") && err.contains("variable A"), "{err}");
    }

    #[test]
    fn event_rules_topics_and_roles_resolve() {
        let template = r#"
Resources:
  Topic:
    Type: AWS::SNS::Topic
  Role:
    Type: AWS::IAM::Role
  F:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: register } }
    Properties:
      Environment:
        Variables:
          TOPIC: !Ref Topic
          ROLE: !GetAtt Role.Arn
      Events:
        Done:
          Type: EventBridgeRule
          Properties:
            Pattern:
              source: [aws.sagemaker]
              detail: { TrainingJobStatus: [Completed], HyperParameters: { stack: [!Ref AWS::StackName] } }
        Daily:
          Type: Schedule
          Properties:
            Schedule: !Ref Every
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            FunctionResponseTypes: [ReportBatchItemFailures]
        Alarm:
          Type: SNS
          Properties:
            Topic: !Ref Topic
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dead.Arn
        maxReceiveCount: 3
  Dead:
    Type: AWS::SQS::Queue
Parameters:
  Every:
    Type: String
    Default: rate(1 day)
"#;
        let stack = Stack::from_yaml(template, "s").unwrap();
        let function = stack.function("F").unwrap();
        assert_eq!(function.environment["TOPIC"], "arn:aws:sns:us-east-1:123456789012:s-Topic");
        assert_eq!(function.environment["ROLE"], "arn:aws:iam::123456789012:role/s-Role");
        assert_eq!(
            function.event_patterns,
            vec![serde_json::json!({"source": ["aws.sagemaker"],
                                    "detail": {"TrainingJobStatus": ["Completed"], "HyperParameters": {"stack": ["s"]}}})]
        );
        assert_eq!(stack.topics[0].arn, "arn:aws:sns:us-east-1:123456789012:s-Topic");
        assert_eq!(function.schedules, ["rate(1 day)"]);
        assert_eq!(function.sns_topics, ["arn:aws:sns:us-east-1:123456789012:s-Topic"]);
        assert_eq!(
            function.queue_sources,
            [QueueSource {
                queue: "s-Work".into(),
                queue_arn: "arn:aws:sqs:us-east-1:123456789012:s-Work".into(),
                batch_size: 10,
                report_failures: true,
            }]
        );
        let work = stack.queues.iter().find(|q| q.logical_id == "Work").unwrap();
        assert_eq!(work.attributes[0], ("VisibilityTimeout".to_owned(), "60".to_owned()));
        let redrive: serde_json::Value = serde_json::from_str(&work.attributes[1].1).unwrap();
        assert_eq!(
            redrive,
            serde_json::json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:s-Dead", "maxReceiveCount": 3})
        );
    }

    #[test]
    fn the_project_template_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let stack = Stack::load(&path, "sluice").unwrap();
        assert!(stack.function("IngestFunction").is_some_and(|f| !f.http_routes.is_empty()));
    }
}
