//! The API Gateway Management API adapter (aws-sdk-apigatewaymanagement).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_smithy_types::Blob;

use crate::post::{PostOutcome, Poster};

/// One client, and so one connection pool, for every post of the process.
#[derive(Clone, Debug)]
pub struct ManagementApi {
    client: Client,
}

impl ManagementApi {
    /// `endpoint` is `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` (or the
    /// local gateway's `http://127.0.0.1:PORT/{stage}`). The SDK's own retries are off: the
    /// delivery loop retries with its own budget and knows which ids already succeeded.
    pub fn new(sdk: &SdkConfig, endpoint: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        Self {
            client: Client::from_conf(config),
        }
    }
}

impl Poster for ManagementApi {
    async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await;
        match result {
            Ok(_) => PostOutcome::Delivered,
            Err(error) => classify(&error),
        }
    }
}

fn classify(error: &SdkError<PostToConnectionError, HttpResponse>) -> PostOutcome {
    if let Some(service) = error.as_service_error() {
        match service {
            PostToConnectionError::GoneException(_) => return PostOutcome::Gone,
            PostToConnectionError::LimitExceededException(_) => return PostOutcome::Throttled,
            PostToConnectionError::PayloadTooLargeException(_) => {
                return PostOutcome::PayloadTooLarge;
            }
            PostToConnectionError::ForbiddenException(_) => return PostOutcome::Forbidden,
            _ => {}
        }
    }
    if let SdkError::TimeoutError(_) = error {
        return PostOutcome::Unavailable("timeout".to_owned());
    }
    // Whatever the error type said (or did not say: a bare 410), the status decides.
    match error.raw_response() {
        Some(response) => PostOutcome::from_status(response.status().as_u16()),
        None => PostOutcome::Unavailable(DisplayErrorContext(error).to_string()),
    }
}
