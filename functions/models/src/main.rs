use lambda_runtime::{Error, LambdaEvent, service_fn};
use models::Models;
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let models = Models::from_settings(&AwsClients::from_env().await, &ProcessEnv)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        // Boxed: inside the runtime's future, the handler's would nest past the compiler's
        // type-layout depth limit.
        Ok::<_, Error>(Box::pin(models.handle_event(event.payload)).await?)
    }))
    .await
}
