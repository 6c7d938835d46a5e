//! The dashboard page, served on the gateway's listener: `/`, `/app.js`, `/style.css`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../static/index.html");
const APP: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/style.css");

/// The page's routes; `stage` is where it opens its WebSocket (`/{stage}`).
pub fn routes(stage: &str) -> Router {
    let index = INDEX.replace(
        r#"<meta name="ws-path" content="/local">"#,
        &format!(r#"<meta name="ws-path" content="/{stage}">"#),
    );
    Router::new()
        .route(
            "/",
            get(move || {
                let index = index.clone();
                async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], index) }
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP,
                )
                    .into_response()
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
            }),
        )
}
