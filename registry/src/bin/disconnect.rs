//! The `$disconnect` route Lambda: see [`registry::handlers::disconnect`].
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    registry::runtime::serve_route(|registry, event| async move {
        registry::handlers::disconnect(&registry, &event).await
    })
    .await
}
