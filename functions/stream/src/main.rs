use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;
use stream::Stream;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let stream = Stream::from_settings(&AwsClients::from_env().await, &ProcessEnv)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(stream.handle(event.payload).await)
    }))
    .await
}
