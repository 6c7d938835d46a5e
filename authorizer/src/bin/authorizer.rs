//! The `$connect` REQUEST authorizer Lambda: see [`authorizer::handler::authorize`].
//! Deployed only when `AUTH_MODE=jwt`; anything else fails at start with the reason.

use std::sync::Arc;

use authorizer::{ConnectAuthEvent, Verifier, config, secret};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    platform::telemetry::init_function()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let secret = match secret::arn_to_fetch(&config::process_env())? {
        Some(arn) => {
            let sdk = platform::aws::sdk_config().await;
            let client = aws_sdk_secretsmanager::Client::new(&sdk);
            Some(secret::fetch_both(&client, &arn).await.inspect_err(|e| {
                tracing::error!(error = %e, "the JWT secret could not be read");
            })?)
        }
        None => None,
    };
    let config = config::load(&secret::env_with_secret(secret)).inspect_err(|e| {
        tracing::error!(error = %e, "authorizer configuration refused");
    })?;
    let verifier = Arc::new(Verifier::from_config(&config)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ConnectAuthEvent>| {
        let verifier = Arc::clone(&verifier);
        async move { authorizer::authorize(&verifier, &event.payload).await }
    }))
    .await
}
