//! `template.yaml` passes the linters CI and `sam deploy` rely on, and keeps the security
//! properties every deployment must have.

use std::process::Command;

use serde_json::Value;
use sluice_tests::project_root;

/// Runs the tool at `tool`, a path inside `.venv` (where scripts/setup.sh installs it), in
/// the project root; fails the test with its output unless it succeeds.
fn run(tool: &str, args: &[&str]) {
    let root = project_root();
    let program = root.join(".venv").join(tool);
    assert!(program.exists(), "{} is missing: run scripts/setup.sh", program.display());
    let output = Command::new(&program)
        .args(args)
        .current_dir(&root)
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap_or_else(|err| panic!("{tool}: {err}"));
    assert!(
        output.status.success(),
        "{tool} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn cfn_lint_passes() {
    run("bin/cfn-lint", &["template.yaml"]);
}

#[test]
fn sam_validate_lint_passes() {
    run("bin/sam", &["validate", "--lint", "--template", "template.yaml", "--region", "us-east-1"]);
}

fn resources() -> Value {
    let text = std::fs::read_to_string(project_root().join("template.yaml")).unwrap();
    // Short-form intrinsics are YAML tags; the properties checked here hold none.
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    serde_json::to_value(yaml).map(|v| v["Resources"].clone()).unwrap_or(Value::Null)
}

#[test]
fn data_lake_buckets_are_encrypted_private_and_tls_only() {
    let resources = resources();
    for bucket in ["RawBucket", "CuratedBucket"] {
        let properties = &resources[bucket]["Properties"];
        let encryption = &properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
        assert!(encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"].is_string(), "{bucket}");
        for setting in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
            assert_eq!(properties["PublicAccessBlockConfiguration"][setting], true, "{bucket} {setting}");
        }
        let statement = &resources[format!("{bucket}Policy")]["Properties"]["PolicyDocument"]["Statement"][0];
        assert_eq!(statement["Effect"], "Deny", "{bucket}");
        assert_eq!(statement["Condition"]["Bool"]["aws:SecureTransport"], "false", "{bucket}");
    }
}

#[test]
fn catalog_table_is_on_demand_with_point_in_time_recovery() {
    let resources = resources();
    let table = &resources["CatalogTable"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
}

#[test]
fn api_requires_iam_authentication() {
    let resources = resources();
    assert_eq!(resources["Api"]["Properties"]["Auth"]["DefaultAuthorizer"], "AWS_IAM");
}

/// The LocalStack init hook (Python, run inside the container) and the Rust runner must
/// agree on every resource name, or `sluice local up --endpoint` would create a second set.
#[tokio::test]
async fn localstack_init_hook_creates_what_the_runner_expects() {
    let root = project_root();
    let stack_name = sluice_tests::unique_stack_name();
    let output = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("localstack/init/ready.d/provision.py"))
        .env("AWS_ENDPOINT_URL", sluice_tests::moto_endpoint())
        .env("SLUICE_STACK_NAME", &stack_name)
        .env("SLUICE_TEMPLATE", root.join("template.yaml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let clients = sluice_aws::AwsClients::for_local_endpoint(sluice_tests::moto_endpoint()).await;
    let stack = sluice_localcloud::template::Stack::load(&root.join("template.yaml"), &stack_name).unwrap();
    assert!(!stack.buckets.is_empty() && !stack.tables.is_empty() && !stack.queues.is_empty());
    for bucket in &stack.buckets {
        clients.s3.head_bucket().bucket(&bucket.name).send().await.unwrap_or_else(|e| panic!("{}: {e:?}", bucket.name));
    }
    for table in &stack.tables {
        let ttl = clients.dynamodb.describe_time_to_live().table_name(&table.name).send().await.unwrap();
        let attribute = ttl.time_to_live_description().and_then(|d| d.attribute_name()).map(str::to_owned);
        assert_eq!(attribute, table.ttl_attribute, "{}", table.name);
    }
    for queue in &stack.queues {
        clients
            .sqs
            .get_queue_url()
            .queue_name(&queue.name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", queue.name));
    }
}

#[test]
fn etl_has_a_dead_letter_queue_and_bounded_retries() {
    let resources = resources();
    let config = &resources["EtlFunction"]["Properties"]["EventInvokeConfig"];
    assert_eq!(config["MaximumRetryAttempts"], 2);
    assert_eq!(config["DestinationConfig"]["OnFailure"]["Type"], "SQS");
    assert_eq!(resources["EtlFunction"]["Properties"]["Events"]["RawObjectCreated"]["Type"], "S3");
    assert_eq!(resources["EtlDeadLetterQueue"]["Type"], "AWS::SQS::Queue");
}

#[test]
fn the_monitor_lists_where_firehose_delivers_the_capture() {
    let stack = sluice_localcloud::template::Stack::load(&project_root().join("template.yaml"), "sluice").unwrap();
    let stream = stack.delivery_streams.iter().find(|s| s.logical_id == "CaptureStream").expect("the capture stream");
    assert_eq!(stream.bucket, stack.buckets.iter().find(|b| b.logical_id == "CaptureBucket").unwrap().name);
    for at in [time::macros::datetime!(2026-11-22 00:00:00 UTC), time::macros::datetime!(2026-12-31 23:59:59 UTC)] {
        // The object Firehose writes for records arriving at `at` is under the partition the
        // monitor lists for an object delivered then.
        let key = sluice_localcloud::firehose::object_key(stream, at, "id");
        let partitions = monitor::hour_prefixes(at, at);
        assert!(partitions.iter().any(|p| key.starts_with(p)), "{key} is not under {partitions:?}");
    }
}

// --- Least privilege, cost guards, alarms, storage: read from the template as written. ---

/// `template.yaml` as YAML; short-form intrinsics (`!Sub …`, `!GetAtt …`) stay tagged.
fn template() -> serde_yaml::Value {
    let text = std::fs::read_to_string(project_root().join("template.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn resources_of(template: &serde_yaml::Value) -> Vec<(String, &serde_yaml::Value)> {
    let resources = template["Resources"].as_mapping().expect("the template has resources");
    resources.iter().map(|(id, resource)| (id.as_str().unwrap().to_owned(), resource)).collect()
}

fn of_type<'a>(template: &'a serde_yaml::Value, kind: &str) -> Vec<(String, &'a serde_yaml::Value)> {
    resources_of(template).into_iter().filter(|(_, r)| r["Type"].as_str() == Some(kind)).collect()
}

/// The plain strings of a string-or-list value (intrinsics, which name something specific,
/// are left out).
fn strings(value: &serde_yaml::Value) -> Vec<&str> {
    match value {
        serde_yaml::Value::String(text) => vec![text.as_str()],
        serde_yaml::Value::Sequence(items) => items.iter().filter_map(serde_yaml::Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `(tag, argument)` of a short-form intrinsic such as `!GetAtt CatalogTable.Arn`.
fn intrinsic(value: &serde_yaml::Value) -> Option<(String, &serde_yaml::Value)> {
    match value {
        serde_yaml::Value::Tagged(tagged) => Some((tagged.tag.to_string(), &tagged.value)),
        _ => None,
    }
}

/// Whether `value` is `!If [HasDataKey, …]`: the optional customer-managed key.
fn takes_the_data_key(value: &serde_yaml::Value) -> bool {
    intrinsic(value).is_some_and(|(tag, argument)| tag == "!If" && argument[0].as_str() == Some("HasDataKey"))
}

/// One statement of an identity policy, and where it is.
struct PolicyStatement<'a> {
    place: String,
    statement: &'a serde_yaml::Value,
}

/// Every statement of every identity policy the template declares: functions' `Policies`,
/// roles' inline policies, managed policies. A policy this cannot read (a SAM policy
/// template, a managed policy by name) is returned as an error: nobody would have
/// reviewed what it grants.
fn identity_statements(template: &serde_yaml::Value) -> (Vec<PolicyStatement<'_>>, Vec<String>) {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for (id, resource) in resources_of(template) {
        let properties = &resource["Properties"];
        let documents: Vec<(String, &serde_yaml::Value)> = match resource["Type"].as_str().unwrap_or_default() {
            "AWS::Serverless::Function" => {
                let policies = properties["Policies"].as_sequence().map(Vec::as_slice).unwrap_or_default();
                policies
                    .iter()
                    .enumerate()
                    .filter_map(|(n, policy)| {
                        if policy.get("Statement").is_some() {
                            Some((format!("{id} Policies[{n}]"), policy))
                        } else {
                            unreadable.push(format!("{id} Policies[{n}]: {policy:?}"));
                            None
                        }
                    })
                    .collect()
            }
            "AWS::IAM::Role" => {
                for arn in properties["ManagedPolicyArns"].as_sequence().map(Vec::as_slice).unwrap_or_default() {
                    let name = intrinsic(arn).and_then(|(_, a)| a.as_str().map(str::to_owned)).unwrap_or_default();
                    let name = name.rsplit('/').next().unwrap_or_default();
                    if !AWS_MANAGED_POLICIES.iter().any(|(allowed, _)| *allowed == name) {
                        unreadable.push(format!("{id} ManagedPolicyArns: {arn:?}"));
                    }
                }
                let policies = properties["Policies"].as_sequence().map(Vec::as_slice).unwrap_or_default();
                policies
                    .iter()
                    .map(|p| (format!("{id} {}", p["PolicyName"].as_str().unwrap_or("?")), &p["PolicyDocument"]))
                    .collect()
            }
            "AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy" => vec![(id.clone(), &properties["PolicyDocument"])],
            _ => Vec::new(),
        };
        for (place, document) in documents {
            for statement in document["Statement"].as_sequence().map(Vec::as_slice).unwrap_or_default() {
                let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
                found.push(PolicyStatement { place: format!("{place} {sid}"), statement });
            }
        }
    }
    (found, unreadable)
}

/// AWS managed policies a role of this template may carry, and why: what SAM attaches to
/// the roles it makes for functions, attached by hand where a function has its own role.
const AWS_MANAGED_POLICIES: &[(&str, &str)] = &[
    ("AWSLambdaBasicExecutionRole", "a function writes its logs (what SAM gives every function's role)"),
    ("AWSXrayWriteOnlyAccess", "a function with Tracing: Active sends X-Ray segments (as SAM's roles do)"),
];

/// Actions that may be granted on `Resource: "*"`: IAM has no resource type for them, so
/// `"*"` is the only way to grant them. Each with why it is needed and, where a condition
/// key scopes it, the key every such statement must use.
const WILDCARD_RESOURCE_ACTIONS: &[(&str, &str, Option<&str>)] = &[
    ("sagemaker:ListModelPackageGroups", "lists the stack's models; List calls have no resource type", None),
    ("sagemaker:ListModelPackages", "lists a model's versions; List calls have no resource type", None),
    ("ecr:GetAuthorizationToken", "SageMaker signs in to ECR to pull the trainer; no resource type", None),
    (
        "cloudwatch:PutMetricData",
        "metrics have no resource type: a namespace condition scopes them",
        Some("cloudwatch:namespace"),
    ),
    ("cloudwatch:ListMetrics", "the models API lists a model's serving metrics; no resource type", None),
    ("cloudwatch:GetMetricData", "the models API reads a model's serving metrics; no resource type", None),
    ("ec2:DescribeNetworkInterfaces", "training in a VPC; EC2 Describe calls have no resource type", None),
    ("ec2:DescribeVpcs", "training in a VPC; EC2 Describe calls have no resource type", None),
    ("ec2:DescribeDhcpOptions", "training in a VPC; EC2 Describe calls have no resource type", None),
    ("ec2:DescribeSubnets", "training in a VPC; EC2 Describe calls have no resource type", None),
    ("ec2:DescribeSecurityGroups", "training in a VPC; EC2 Describe calls have no resource type", None),
];

fn condition_keys(statement: &serde_yaml::Value) -> Vec<&str> {
    let operators = statement["Condition"].as_mapping().into_iter().flatten();
    operators.flat_map(|(_, keys)| keys.as_mapping().into_iter().flatten().filter_map(|(k, _)| k.as_str())).collect()
}

#[test]
fn no_policy_grants_every_resource_except_where_iam_offers_nothing_narrower() {
    let template = template();
    let (statements, unreadable) = identity_statements(&template);
    assert!(unreadable.is_empty(), "policies this test cannot review: {unreadable:#?}");
    assert!(statements.len() > 50, "only {} statements found: is the walker reading the template?", statements.len());
    let mut problems = Vec::new();
    for PolicyStatement { place, statement } in &statements {
        if statement["Effect"].as_str() != Some("Allow") {
            continue;
        }
        for inverted in ["NotAction", "NotResource"] {
            if statement.get(inverted).is_some() {
                problems.push(format!("{place}: {inverted} grants everything it does not name"));
            }
        }
        let actions = strings(&statement["Action"]);
        for action in &actions {
            if *action == "*" || action.ends_with(":*") {
                problems.push(format!("{place}: {action} grants every action of a service"));
            }
        }
        if !strings(&statement["Resource"]).contains(&"*") {
            continue;
        }
        for action in actions {
            match WILDCARD_RESOURCE_ACTIONS.iter().find(|(allowed, _, _)| *allowed == action) {
                None => problems.push(format!("{place}: {action} on \"*\" is not on the allow-list")),
                Some((_, _, Some(key))) if !condition_keys(statement).contains(key) => {
                    problems.push(format!("{place}: {action} on \"*\" needs a {key} condition"));
                }
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // SAM gives a function with an SQS event source AWSLambdaSQSQueueExecutionRole, which
    // receives and deletes the messages of every queue: such a function needs its own role.
    for (id, function) in of_type(&template, "AWS::Serverless::Function") {
        let mut events = function["Properties"]["Events"].as_mapping().into_iter().flatten();
        if events.any(|(_, event)| event["Type"].as_str() == Some("SQS")) {
            assert!(function["Properties"].get("Role").is_some(), "{id} polls a queue with SAM's role");
            assert!(function["Properties"].get("Policies").is_none(), "{id}: Policies are ignored with a Role");
        }
    }
}

#[test]
fn catalog_access_is_limited_to_the_partitions_each_function_uses() {
    use sluice_aws::partitions;
    let datasets = format!("{}*", partitions::DATASET_PREFIX);
    let models = format!("{}*", partitions::MODEL_PREFIX);
    // Ingest and ETL above all: the retraining plans and model records start paid jobs and
    // decide what is served.
    let expected: [(&str, Vec<&str>); 6] = [
        ("IngestFunction ", vec![&datasets]),
        ("EtlFunctionRole ", vec![&datasets]),
        ("PredictFunction ", vec![partitions::PRODUCTION]),
        ("StreamFunctionRole ", vec![partitions::PRODUCTION]),
        ("BatchFunction ", vec![partitions::PRODUCTION]),
        ("RegisterFunction ", vec![&models, partitions::PRODUCTION]),
    ];
    let template = template();
    let (statements, _) = identity_statements(&template);
    for (owner, partitions) in expected {
        let on_catalog: Vec<&PolicyStatement> = statements
            .iter()
            .filter(|s| s.place.starts_with(owner))
            .filter(|s| {
                intrinsic(&s.statement["Resource"])
                    .is_some_and(|(_, target)| target.as_str().is_some_and(|t| t.starts_with("CatalogTable")))
            })
            .collect();
        assert!(!on_catalog.is_empty(), "{owner}has no catalog statement");
        for PolicyStatement { place, statement } in on_catalog {
            let operators = statement["Condition"].as_mapping().into_iter().flatten();
            let leading_keys: Vec<&str> = operators
                .filter(|(operator, _)| operator.as_str().is_some_and(|o| o.starts_with("ForAllValues:String")))
                .flat_map(|(_, keys)| strings(&keys["dynamodb:LeadingKeys"]))
                .collect();
            assert_eq!(leading_keys, partitions, "{place}");
        }
    }
}

#[test]
fn the_register_rules_match_this_stacks_jobs_only() {
    use sluice_localcloud::training::matches;
    let stack = sluice_localcloud::template::Stack::load(&project_root().join("template.yaml"), "prod").unwrap();
    let patterns = &stack.function("RegisterFunction").unwrap().event_patterns;
    let training = |stack: Option<&str>| {
        let mut hyperparameters = serde_json::json!({ "model_name": "iris" });
        if let Some(stack) = stack {
            hyperparameters[sluice_model::hyperparameters::STACK] = stack.into();
        }
        serde_json::json!({
            "source": "aws.sagemaker",
            "detail-type": "SageMaker Training Job State Change",
            "detail": { "TrainingJobName": "iris-1", "TrainingJobStatus": "Completed", "HyperParameters": hyperparameters },
        })
    };
    let tuning = |stack: &str| {
        serde_json::json!({
            "source": "aws.sagemaker",
            "detail-type": "SageMaker HyperParameter Tuning Job State Change",
            "detail": { "HyperParameterTuningJobName": "iris-t", "HyperParameterTuningJobStatus": "Completed",
                        "TrainingJobDefinition": { "StaticHyperParameters": { sluice_model::hyperparameters::STACK: stack } } },
        })
    };
    let delivered = |event: &serde_json::Value| patterns.iter().any(|pattern| matches(pattern, event));
    assert!(delivered(&training(Some("prod"))) && delivered(&tuning("prod")), "{patterns:#?}");
    assert!(!delivered(&training(Some("dev"))) && !delivered(&tuning("dev")), "another stack's jobs");
    assert!(!delivered(&training(None)), "a job no Sluice stack started");
}

#[test]
fn training_starts_are_cost_guarded() {
    let template = template();
    let (statements, _) = identity_statements(&template);
    let starts: Vec<&PolicyStatement> = statements
        .iter()
        .filter(|s| {
            let actions = strings(&s.statement["Action"]);
            actions.contains(&"sagemaker:CreateTrainingJob")
                || actions.contains(&"sagemaker:CreateHyperParameterTuningJob")
        })
        .collect();
    assert_eq!(starts.len(), 1, "one statement starts jobs: {:?}", starts.iter().map(|s| &s.place).collect::<Vec<_>>());
    let condition = &starts[0].statement["Condition"];
    let instance_types = &condition["ForAllValues:StringEquals"]["sagemaker:InstanceTypes"];
    assert!(
        intrinsic(instance_types).is_some_and(|(tag, argument)| tag == "!Split"
            && intrinsic(&argument[1]).is_some_and(|(_, name)| name.as_str() == Some("TrainingInstanceTypes"))),
        "{instance_types:?}"
    );
    assert_eq!(condition["Null"]["sagemaker:InstanceTypes"].as_str(), Some("false"), "requests must name them");
    assert_eq!(condition["Bool"]["sagemaker:NetworkIsolation"].as_str(), Some("true"));

    let resources = &template["Resources"];
    for function in ["EtlFunction", "ModelsFunction", "RemediateFunction"] {
        let reserved = &resources[function]["Properties"]["ReservedConcurrentExecutions"];
        assert!(reserved.as_u64().is_some() || intrinsic(reserved).is_some(), "{function} has no reserved concurrency");
    }
    let api = &resources["Api"]["Properties"];
    let train = &api["RouteSettings"]["POST /models/{model}/train"];
    let default = &api["DefaultRouteSettings"];
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        assert!(train[limit].as_f64().unwrap() < default[limit].as_f64().unwrap(), "training's {limit}");
    }

    // The functions that start jobs get the allow-list the IAM condition enforces, and the
    // default type is on it.
    let stack = sluice_localcloud::template::Stack::load(&project_root().join("template.yaml"), "sluice").unwrap();
    for function in ["ModelsFunction", "RemediateFunction"] {
        let settings =
            sluice_aws_ml::TrainingSettings::from_vars(&stack.function(function).unwrap().environment).unwrap();
        assert!(settings.allowed_instance_types.contains(&settings.instance_type), "{function}");
        assert_eq!(settings.stack_name, "sluice");
        assert!(settings.tuning_budget.max_jobs <= sluice_model::tuning::MAX_TRAINING_JOBS, "{function}");
    }
}

#[test]
fn every_queue_asynchronous_source_and_function_alarms_to_the_operators() {
    let template = template();
    let alarms = of_type(&template, "AWS::CloudWatch::Alarm");
    // (metric, dimension value as written: `!GetAtt X.QueueName` or `!Ref X`)
    let watched: Vec<(&str, String)> = alarms
        .iter()
        .map(|(id, alarm)| {
            let properties = &alarm["Properties"];
            let actions = properties["AlarmActions"].as_sequence().unwrap_or_else(|| panic!("{id} has no actions"));
            assert!(
                actions.iter().any(|a| intrinsic(a).is_some_and(|(_, t)| t.as_str() == Some("OperatorsTopic"))),
                "{id} does not tell the operators"
            );
            let dimension =
                intrinsic(&properties["Dimensions"][0]["Value"]).and_then(|(_, t)| t.as_str().map(str::to_owned));
            (properties["MetricName"].as_str().unwrap_or_default(), dimension.unwrap_or_default())
        })
        .collect();
    let has = |metrics: &[&str], target: &str| watched.iter().any(|(m, t)| metrics.contains(m) && t == target);
    for (queue, _) in of_type(&template, "AWS::SQS::Queue") {
        assert!(
            has(
                &["ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"],
                &format!("{queue}.QueueName")
            ),
            "{queue} has no depth or age alarm"
        );
    }
    for (function, resource) in of_type(&template, "AWS::Serverless::Function") {
        assert!(has(&["Errors"], &function), "{function} has no error alarm");
        let asynchronous = resource["Properties"].get("EventInvokeConfig").is_some();
        assert!(!asynchronous || has(&["AsyncEventAge"], &function), "{function} has no event-age alarm");
    }
}

#[test]
fn buckets_log_access_keep_versions_a_while_and_abort_abandoned_uploads() {
    let template = template();
    for (bucket, resource) in of_type(&template, "AWS::S3::Bucket") {
        let properties = &resource["Properties"];
        let rules = properties["LifecycleConfiguration"]["Rules"].as_sequence().map(Vec::as_slice).unwrap_or_default();
        assert!(rules.iter().any(|r| r.get("AbortIncompleteMultipartUpload").is_some()), "{bucket}");
        if properties["VersioningConfiguration"]["Status"].as_str() == Some("Enabled") {
            assert!(
                rules.iter().any(|r| r.get("NoncurrentVersionExpiration").is_some()),
                "{bucket} keeps versions forever"
            );
        }
        if bucket == "AccessLogsBucket" {
            continue;
        }
        let destination = &properties["LoggingConfiguration"]["DestinationBucketName"];
        assert!(
            intrinsic(destination).is_some_and(|(_, target)| target.as_str() == Some("AccessLogsBucket")),
            "{bucket} does not log access"
        );
        let encryption = &properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0];
        assert!(takes_the_data_key(&encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]), "{bucket}");
    }
    for (table, resource) in of_type(&template, "AWS::DynamoDB::Table") {
        assert!(takes_the_data_key(&resource["Properties"]["SSESpecification"]["KMSMasterKeyId"]), "{table}");
    }
    for (queue, resource) in of_type(&template, "AWS::SQS::Queue") {
        assert!(takes_the_data_key(&resource["Properties"]["KmsMasterKeyId"]), "{queue}");
    }
    for (topic, resource) in of_type(&template, "AWS::SNS::Topic") {
        assert!(takes_the_data_key(&resource["Properties"]["KmsMasterKeyId"]), "{topic}");
    }
}

/// checkov (in its own virtualenv, see scripts/setup.sh) finds nothing, and every check the
/// template skips says why in the resource's metadata.
#[test]
fn checkov_finds_no_failed_check_and_every_skip_says_why() {
    // Offline: no guidelines or policies from the vendor's service.
    run(
        "checkov/bin/checkov",
        &["--file", "template.yaml", "--framework", "cloudformation", "--quiet", "--compact", "--skip-download"],
    );
    for (id, resource) in resources_of(&template()) {
        for skip in resource["Metadata"]["checkov"]["skip"].as_sequence().map(Vec::as_slice).unwrap_or_default() {
            let reason = skip["comment"].as_str().unwrap_or_default();
            assert!(reason.split_whitespace().count() >= 5, "{id} skips {:?} without a reason", skip["id"]);
        }
    }
}

/// docs/security.md gives every route of the template to some role, by its exact ARN path.
#[test]
fn every_route_has_a_documented_access_policy() {
    let docs = std::fs::read_to_string(project_root().join("docs/security.md")).unwrap();
    let stack = sluice_localcloud::template::Stack::load(&project_root().join("template.yaml"), "sluice").unwrap();
    let routes: Vec<_> = stack.functions.iter().flat_map(|f| &f.http_routes).collect();
    assert!(routes.len() > 10, "{routes:?}");
    for route in routes {
        let path: Vec<&str> =
            route.path.split('/').map(|segment| if segment.starts_with('{') { "*" } else { segment }).collect();
        let resource = format!("$default/{}{}\"", route.method, path.join("/"));
        assert!(docs.contains(&resource), "{} has no policy in docs/security.md", route.route_key());
    }
}
