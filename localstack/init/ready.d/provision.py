"""LocalStack init hook: creates the S3 buckets, DynamoDB tables and SQS queues declared in
template.yaml.

It follows the naming of `sluice local provision` (crates/localcloud/src/template.rs):
a bucket without BucketName is `<stack>-<logical id, lowercase>`, a table without TableName
and a queue without QueueName are `<stack>-<LogicalId>`. tests/template.rs runs this script against moto and checks that
the Rust runner finds exactly these resources, so the two cannot drift apart.
"""

import os
import sys

import boto3
import yaml

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class CloudFormationLoader(yaml.SafeLoader):
    """Reads short-form intrinsics (!Ref, !Sub, ...) as {'Ref': ...} / {'Fn::Sub': ...}."""


def _intrinsic(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def resolve_name(value, stack):
    """Explicit names may be plain strings or !Sub over the pseudo parameters."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return (
            value["Fn::Sub"]
            .replace("${AWS::StackName}", stack)
            .replace("${AWS::AccountId}", ACCOUNT_ID)
            .replace("${AWS::Region}", REGION)
        )
    raise SystemExit(f"cannot resolve resource name {value!r} in the init hook")


def main():
    stack = os.environ.get("SLUICE_STACK_NAME", "sluice")
    template_path = os.environ.get("SLUICE_TEMPLATE", "/etc/sluice/template.yaml")
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")
    with open(template_path, encoding="utf-8") as f:
        template = yaml.load(f, Loader=CloudFormationLoader)

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    s3 = session.client("s3", endpoint_url=endpoint)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)

    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::S3::Bucket":
            name = resolve_name(properties.get("BucketName", f"{stack}-{logical_id.lower()}"), stack)
            try:
                s3.create_bucket(Bucket=name)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            print(f"sluice: bucket {name} ready", file=sys.stderr)
        elif resource["Type"] == "AWS::DynamoDB::Table":
            name = resolve_name(properties.get("TableName", f"{stack}-{logical_id}"), stack)
            try:
                dynamodb.create_table(
                    TableName=name,
                    BillingMode="PAY_PER_REQUEST",
                    KeySchema=properties["KeySchema"],
                    AttributeDefinitions=properties["AttributeDefinitions"],
                )
            except dynamodb.exceptions.ResourceInUseException:
                print(f"sluice: table {name} exists", file=sys.stderr)
                continue
            ttl = properties.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
            print(f"sluice: table {name} ready", file=sys.stderr)
        elif resource["Type"] == "AWS::SQS::Queue":
            name = resolve_name(properties.get("QueueName", f"{stack}-{logical_id}"), stack)
            sqs.create_queue(QueueName=name)
            print(f"sluice: queue {name} ready", file=sys.stderr)


if __name__ == "__main__":
    main()
