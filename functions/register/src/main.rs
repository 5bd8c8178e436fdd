use lambda_runtime::{Error, LambdaEvent, service_fn};
use register::Register;
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let register = Register::from_settings(&AwsClients::from_env().await, &ProcessEnv)?;
    let register = &register;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, Error>(register.handle(&event.payload).await.map(|outcome| outcome.to_string())?)
    }))
    .await
}
