//! The `$default` route Lambda: see [`registry::handlers::message`].
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    registry::runtime::serve_route(|registry, event| async move {
        registry::handlers::message(&registry, &registry::handlers::NoSnapshots, &event).await
    })
    .await
}
