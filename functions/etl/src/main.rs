use etl::Etl;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let etl = Etl::from_settings(AwsClients::from_env().await, &ProcessEnv)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(etl.handle_event(event.payload).await?)
    }))
    .await
}
