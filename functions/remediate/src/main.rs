use aws_lambda_events::sns::SnsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use remediate::Remediate;
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let remediate = Remediate::from_settings(&AwsClients::from_env().await, &ProcessEnv)?;
    let remediate = &remediate;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SnsEvent>| async move {
        // Boxed: inside the runtime's future, the handler's would nest past the compiler's
        // type-layout depth limit.
        Box::pin(remediate.handle(event.payload)).await.map_err(Error::from)
    }))
    .await
}
