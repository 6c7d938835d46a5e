//! The one way SDK configurations are built: from the environment in Lambda, or pinned to a
//! loopback stand-in (moto) in the local stack and tests.

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`,
/// which points the functions at the local stack).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The SDK configuration for a local stand-in (moto) at `endpoint`: static credentials and a
/// fixed region, so that nothing can reach a real AWS account by accident.
#[cfg(feature = "loopback")]
pub async fn loopback(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "local", "local", None, None, "local",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}
