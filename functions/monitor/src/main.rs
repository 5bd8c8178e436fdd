use lambda_runtime::{Error, LambdaEvent, service_fn};
use monitor::Monitor;
use serde_json::Value;
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let monitor = Monitor::from_settings(&AwsClients::from_env().await, &ProcessEnv)?;
    let monitor = &monitor;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        // Boxed: inside the runtime's future, the handler's would nest past the compiler's
        // type-layout depth limit.
        Ok::<_, Error>(Box::pin(monitor.handle(&event.payload)).await?)
    }))
    .await
}
