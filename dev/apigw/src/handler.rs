//! The route integrations: what API Gateway would invoke as Lambda functions.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use futures::future::BoxFuture;

/// A handler's failure: what a Lambda function returning `Err` amounts to.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a route integration returns.
pub type HandlerResult = Result<ApiGatewayProxyResponse, HandlerError>;

/// The route integrations of the WebSocket API. One value receives every route; it tells them
/// apart by `request_context.route_key` (`$connect`, `$disconnect`, `$default` or a configured
/// route key) or `request_context.event_type` (`CONNECT`, `DISCONNECT`, `MESSAGE`).
///
/// As on AWS: a `$connect` answer outside 2xx (or an `Err`) refuses the handshake with that
/// status (500 for an `Err`); a message route's response body is sent back to the client; an
/// `Err` on a message route sends the client API Gateway's "Internal server error" message;
/// `$disconnect`'s answer is ignored.
pub trait RouteHandler: Send + Sync + 'static {
    fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> BoxFuture<'_, HandlerResult>;
}

struct FnHandler<F>(F);

impl<F, Fut> RouteHandler for FnHandler<F>
where
    F: Fn(ApiGatewayWebsocketProxyRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> BoxFuture<'_, HandlerResult> {
        Box::pin((self.0)(event))
    }
}

/// A [`RouteHandler`] from an async closure.
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn RouteHandler>
where
    F: Fn(ApiGatewayWebsocketProxyRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Arc::new(FnHandler(f))
}

/// A proxy response with `status` and an optional text body (the struct is `non_exhaustive`).
pub fn proxy_response(status: u16, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.body = body.map(Body::Text);
    response
}
