use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use predict::Predict;
use sluice_aws::AwsClients;
use sluice_aws::settings::ProcessEnv;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let predict = Predict::from_settings(&AwsClients::from_env().await, &ProcessEnv)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| async {
        Ok::<_, Error>(predict.handle(event.payload).await)
    }))
    .await
}
