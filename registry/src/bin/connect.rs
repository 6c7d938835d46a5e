//! The `$connect` route Lambda: see [`registry::handlers::connect`].
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    registry::runtime::serve_route(|registry, event| async move {
        registry::handlers::connect(&registry, &event).await
    })
    .await
}
