use aws_lambda_events::s3::S3Event;
use batch::Batch;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let batch = Batch::from_settings(&AwsClients::from_env().await, &ProcessEnv)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| async {
        batch.handle(event.payload).await.map_err(Error::from)
    }))
    .await
}
