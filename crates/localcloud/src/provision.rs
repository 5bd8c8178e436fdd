//! Creates a stack's buckets, tables, topics, queues and delivery streams on the local
//! endpoint. Safe to run again: what already exists is left as it is.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use sluice_aws::AwsClients;

use aws_sdk_firehose::types::ExtendedS3DestinationConfiguration;

use crate::firehose::staging_prefix;
use crate::template::{ACCOUNT_ID, DeliveryStream, Stack, Table};

#[derive(Debug, thiserror::Error)]
#[error("could not create {resource}: {message}")]
pub struct ProvisionError {
    pub resource: String,
    pub message: String,
}

fn failed(resource: &str, err: impl std::error::Error) -> ProvisionError {
    ProvisionError { resource: resource.to_owned(), message: sluice_aws::error_chain(err) }
}

pub async fn provision(clients: &AwsClients, stack: &Stack) -> Result<(), ProvisionError> {
    for bucket in &stack.buckets {
        let result = clients.s3.create_bucket().bucket(&bucket.name).send().await;
        if let Err(err) = result {
            let already_there = err
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists());
            if !already_there {
                return Err(failed(&format!("bucket {}", bucket.name), err));
            }
        }
        tracing::info!(logical_id = %bucket.logical_id, name = %bucket.name, "bucket ready");
    }
    for table in &stack.tables {
        create_table(clients, table).await?;
        tracing::info!(logical_id = %table.logical_id, name = %table.name, "table ready");
    }
    let sns = aws_sdk_sns::Client::new(&clients.config);
    for topic in &stack.topics {
        sns.create_topic()
            .name(&topic.name)
            .send()
            .await
            .map_err(|err| failed(&format!("topic {}", topic.name), err))?;
        tracing::info!(logical_id = %topic.logical_id, name = %topic.name, "topic ready");
    }
    for queue in &stack.queues {
        // CreateQueue returns the existing queue when the attributes match.
        clients
            .sqs
            .create_queue()
            .queue_name(&queue.name)
            .send()
            .await
            .map_err(|err| failed(&format!("queue {}", queue.name), err))?;
        tracing::info!(logical_id = %queue.logical_id, name = %queue.name, "queue ready");
    }
    let firehose = aws_sdk_firehose::Client::new(&clients.config);
    for stream in &stack.delivery_streams {
        create_delivery_stream(&firehose, stream).await?;
        tracing::info!(logical_id = %stream.logical_id, name = %stream.name, "delivery stream ready");
    }
    // Once every queue exists: a redrive policy points at another queue.
    for queue in stack.queues.iter().filter(|q| !q.attributes.is_empty()) {
        let url = clients
            .sqs
            .get_queue_url()
            .queue_name(&queue.name)
            .send()
            .await
            .map_err(|err| failed(&format!("queue {}", queue.name), err))?
            .queue_url
            .unwrap_or_default();
        let attributes = queue.attributes.iter().map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone()));
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(url)
            .set_attributes(Some(attributes.collect()))
            .send()
            .await
            .map_err(|err| failed(&format!("queue {} attributes", queue.name), err))?;
    }
    Ok(())
}

/// The emulator's stream writes each call to the staging prefix; the local cloud's
/// deliverer (`firehose`) does the buffering, naming and compression Firehose does.
async fn create_delivery_stream(
    firehose: &aws_sdk_firehose::Client,
    stream: &DeliveryStream,
) -> Result<(), ProvisionError> {
    let resource = format!("delivery stream {}", stream.name);
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/{}-firehose", stream.name))
        .bucket_arn(format!("arn:aws:s3:::{}", stream.bucket))
        .prefix(staging_prefix(stream))
        .build()
        .map_err(|err| ProvisionError { resource: resource.clone(), message: err.to_string() })?;
    let created = firehose
        .create_delivery_stream()
        .delivery_stream_name(&stream.name)
        .extended_s3_destination_configuration(destination)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(()),
        Err(err) => Err(failed(&resource, err)),
    }
}

async fn create_table(clients: &AwsClients, table: &Table) -> Result<(), ProvisionError> {
    let resource = format!("table {}", table.name);
    let invalid = |message: String| ProvisionError { resource: resource.clone(), message };
    let mut request = clients.dynamodb.create_table().table_name(&table.name).billing_mode(BillingMode::PayPerRequest);
    for (name, kind) in &table.key_schema {
        let element = KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(KeyType::from(kind.as_str()))
            .build()
            .map_err(|err| invalid(err.to_string()))?;
        request = request.key_schema(element);
    }
    for (name, kind) in &table.attributes {
        let definition = AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::from(kind.as_str()))
            .build()
            .map_err(|err| invalid(err.to_string()))?;
        request = request.attribute_definitions(definition);
    }
    match request.send().await {
        Ok(_) => {}
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => return Ok(()),
        Err(err) => return Err(failed(&resource, err)),
    }
    if let Some(attribute) = &table.ttl_attribute {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(|err| invalid(err.to_string()))?;
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(&table.name)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(|err| failed(&resource, err))?;
    }
    Ok(())
}
