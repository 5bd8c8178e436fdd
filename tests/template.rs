//! `template.yaml` passes the linters CI and `sam deploy` rely on, and keeps the security
//! properties every deployment must have.

use std::process::Command;

use serde_json::Value;
use sluice_tests::project_root;

fn run(tool: &str, args: &[&str]) {
    let root = project_root();
    let program = root.join(".venv/bin").join(tool);
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
    run("cfn-lint", &["template.yaml"]);
}

#[test]
fn sam_validate_lint_passes() {
    run("sam", &["validate", "--lint", "--template", "template.yaml", "--region", "us-east-1"]);
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
