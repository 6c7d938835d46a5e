//! The `@connections` management API, as aws-sdk-apigatewaymanagement calls it with
//! `endpoint_url = http://HOST:PORT/{stage}`. Requests are SigV4-signed by the SDK; the
//! signature is not checked.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use tracing::{debug, info};

use super::Shared;
use super::counters::bump;
use super::events;
use super::faults::InjectedFault;
use super::ids;
use super::table::{CloseReason, ConnKind, Offer};

pub(crate) fn routes(stage: &str) -> Router<Arc<Shared>> {
    Router::new()
        .route(
            &format!("/{stage}/@connections/{{id}}"),
            post(post_to_connection)
                .get(get_connection)
                .delete(delete_connection)
                // PUT, PATCH...: what API Gateway answers for a method it has no route for.
                .fallback(missing_authentication_token),
        )
        // Another stage of the same API: API Gateway answers 403 for what it cannot route.
        .route("/{stage}/@connections/{id}", any(forbidden))
}

/// The errors of the management API, with the `x-amzn-ErrorType` the SDK maps to its types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiError {
    Gone,
    PayloadTooLarge,
    LimitExceeded,
    Forbidden,
    MissingAuthenticationToken,
    Internal,
}

impl ApiError {
    fn status(self) -> StatusCode {
        match self {
            Self::Gone => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden | Self::MissingAuthenticationToken => StatusCode::FORBIDDEN,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_type(self) -> &'static str {
        match self {
            Self::Gone => "GoneException",
            Self::PayloadTooLarge => "PayloadTooLargeException",
            Self::LimitExceeded => "LimitExceededException",
            Self::Forbidden => "ForbiddenException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::Internal => "InternalServerErrorException",
        }
    }

    /// The body's `message`; `None` for an empty body (API Gateway's 410 has none: SDKs
    /// report its message as missing, or as the status code).
    fn message(self) -> Option<&'static str> {
        match self {
            Self::Gone => None,
            Self::PayloadTooLarge => Some("Request payload exceeds the maximum allowed size"),
            Self::LimitExceeded => Some("Too Many Requests"),
            Self::Forbidden => Some("Forbidden"),
            Self::MissingAuthenticationToken => Some("Missing Authentication Token"),
            Self::Internal => Some("Internal server error"),
        }
    }

    fn into_response(self) -> Response {
        let body = self.message().map_or_else(String::new, |message| {
            serde_json::json!({ "message": message }).to_string()
        });
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.error_type()),
        );
        stamp_request_ids(headers);
        response
    }

    /// The error for a request whose body was not read to its end: hyper cannot reuse the
    /// connection, so the client is told so rather than finding out on its next request.
    fn closing(self) -> Response {
        let mut response = self.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// The ids API Gateway puts on every answer: `x-amzn-RequestId` (`$context.requestId`, a
/// UUID) and `x-amz-apigw-id` (`$context.extendedRequestId`, 16 base64 characters).
fn stamp_request_ids(headers: &mut HeaderMap) {
    for (name, id) in [
        ("x-amzn-requestid", ids::request_uuid()),
        ("x-amz-apigw-id", ids::random_id()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(name, value);
        }
    }
}

fn empty(status: StatusCode) -> Response {
    let mut response = status.into_response();
    stamp_request_ids(response.headers_mut());
    response
}

async fn forbidden() -> Response {
    ApiError::Forbidden.into_response()
}

/// A method other than POST, GET and DELETE: 403 MissingAuthenticationTokenException, as
/// API Gateway answers a method it has no route for. The body is read (bounded) so that the
/// connection stays usable.
async fn missing_authentication_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
) -> Response {
    match read_limited(request, shared.config.max_payload_bytes).await {
        Some(_) => ApiError::MissingAuthenticationToken.into_response(),
        None => ApiError::MissingAuthenticationToken.closing(),
    }
}

/// Reads the body up to `limit` bytes; `None` if it is larger (or cannot be read). A declared
/// length over the limit is refused without reading.
async fn read_limited(request: Request, limit: usize) -> Option<Bytes> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return None;
    }
    axum::body::to_bytes(request.into_body(), limit).await.ok()
}

/// `POST /{stage}/@connections/{id}`: the body becomes one message on the socket. An empty
/// body is accepted and delivered as an empty message, as API Gateway does.
async fn post_to_connection(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let counters = &shared.counters;
    bump(&counters.posts_received);
    shared.knobs.delay().await;
    let admitted = shared.knobs.admit();
    // Read even when throttled, so that a 429 leaves the connection usable.
    let Some(data) = read_limited(request, shared.config.max_payload_bytes).await else {
        bump(&counters.rejected_payload_too_large);
        debug!(connection_id = %id, "post over the payload limit");
        return ApiError::PayloadTooLarge.closing();
    };
    if !admitted {
        bump(&counters.rejected_throttled);
        return ApiError::LimitExceeded.into_response();
    }
    if let Some(error) = injected_fault(&shared, &id) {
        return error.into_response();
    }
    deliver(&shared, &id, data)
}

/// The fault drawn for a post to `id`, counted, as the error to answer.
fn injected_fault(shared: &Shared, id: &str) -> Option<ApiError> {
    let counters = &shared.counters;
    match shared.knobs.draw(shared.connections.contains(id))? {
        InjectedFault::Error => {
            bump(&counters.injected_error);
            Some(ApiError::Internal)
        }
        InjectedFault::Throttle => {
            bump(&counters.injected_throttle);
            Some(ApiError::LimitExceeded)
        }
        InjectedFault::Gone => {
            bump(&counters.injected_gone);
            Some(ApiError::Gone)
        }
    }
}

/// Queues the post on the connection's socket (or records it for a virtual connection).
fn deliver(shared: &Shared, id: &str, data: Bytes) -> Response {
    let counters = &shared.counters;
    let offer = shared
        .connections
        .offer(id, || match Utf8Bytes::try_from(data.clone()) {
            Ok(text) => Message::Text(text),
            // API Gateway's `Data` is a blob; what is not UTF-8 cannot go out as a text frame.
            Err(_) => Message::Binary(data.clone()),
        });
    match offer {
        Offer::Queued | Offer::Virtual => {
            bump(&counters.posts_delivered);
            if offer == Offer::Virtual {
                bump(&counters.posts_delivered_virtual);
            }
            empty(StatusCode::OK)
        }
        Offer::BufferFull => {
            bump(&counters.rejected_buffer_full);
            debug!(connection_id = %id, "client buffer full");
            ApiError::LimitExceeded.into_response()
        }
        Offer::Gone => {
            bump(&counters.rejected_gone);
            ApiError::Gone.into_response()
        }
    }
}

/// Common prologue of GET and DELETE: latency, then the throttle.
async fn admit_management_call(shared: &Shared) -> Result<(), Response> {
    shared.knobs.delay().await;
    if shared.knobs.admit() {
        Ok(())
    } else {
        bump(&shared.counters.management_throttled);
        Err(ApiError::LimitExceeded.into_response())
    }
}

/// `GET /{stage}/@connections/{id}`: connectedAt, identity, lastActiveAt.
async fn get_connection(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    bump(&shared.counters.gets);
    if let Err(response) = admit_management_call(&shared).await {
        return response;
    }
    let Some(conn) = shared.connections.get(&id) else {
        return ApiError::Gone.into_response();
    };
    let body = serde_json::json!({
        "connectedAt": events::iso8601(conn.info.connected_at_ms),
        "identity": {
            "sourceIp": conn.info.source_ip,
            "userAgent": conn.info.user_agent,
        },
        "lastActiveAt": events::iso8601(conn.last_active_ms()),
    });
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    stamp_request_ids(response.headers_mut());
    response
}

/// `DELETE /{stage}/@connections/{id}`: closes the socket; `$disconnect` follows.
async fn delete_connection(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    bump(&shared.counters.deletes);
    if let Err(response) = admit_management_call(&shared).await {
        return response;
    }
    // Removed before answering, so that a post right after the 204 gets 410.
    let Some(conn) = shared.connections.remove(&id) else {
        return ApiError::Gone.into_response();
    };
    info!(connection_id = %id, "connection deleted through the management API");
    match &conn.kind {
        ConnKind::Socket(link) => link.request_close(CloseReason::Deleted),
        ConnKind::Virtual(_) => {
            let reason = CloseReason::Deleted;
            shared.spawn_disconnect(conn.info.clone(), reason.code(), reason.text());
        }
    }
    empty(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_sdk_error_type() {
        let response = ApiError::Gone.into_response();
        assert_eq!(response.status(), StatusCode::GONE);
        assert_eq!(response.headers()["x-amzn-ErrorType"], "GoneException");
        let request_id = response.headers()["x-amzn-RequestId"].to_str().unwrap();
        assert!(ids::is_request_uuid(request_id), "{request_id}");
        for (error, status) in [
            (ApiError::PayloadTooLarge, 413),
            (ApiError::LimitExceeded, 429),
            (ApiError::Forbidden, 403),
            (ApiError::MissingAuthenticationToken, 403),
            (ApiError::Internal, 500),
        ] {
            assert_eq!(error.status().as_u16(), status);
            assert!(error.error_type().ends_with("Exception"));
        }
    }
}
