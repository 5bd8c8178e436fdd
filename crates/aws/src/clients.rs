use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, RequestChecksumCalculation};

/// Every AWS client a function needs, built once per container and shared by invocations.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The loaded configuration, for the clients only some functions need (SageMaker, SNS).
    pub config: SdkConfig,
}

impl AwsClients {
    /// Loads region, credentials and `AWS_ENDPOINT_URL` the standard way.
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&aws_config::load_defaults(BehaviorVersion::latest()).await)
    }

    /// Clients for a local emulator (moto, LocalStack): dummy credentials, `us-east-1`.
    pub async fn for_local_endpoint(endpoint_url: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint_url)
            .region(Region::from_static("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "sluice-local"))
            .load()
            .await;
        Self::from_sdk_config(&config)
    }

    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            // Emulators serve one host name, so buckets must be in the path, not the host.
            .force_path_style(config.endpoint_url().is_some())
            // A presigned PUT must not carry a checksum of a body the SDK never saw.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            config: config.clone(),
        }
    }
}
