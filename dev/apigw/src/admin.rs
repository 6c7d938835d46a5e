//! The admin endpoint, mounted only on a loopback listener: a person (or a script) changes the
//! management API's knobs while the stack runs.
//!
//! - `GET /_admin/faults`: the live [`FaultSettings`] as JSON;
//! - `PUT /_admin/faults`: a JSON object with some of its fields ([`FaultPatch`]); the others
//!   keep their value. Answers the new settings, or 400 with `{"message": ...}`;
//! - `GET /_admin/counters`: the [`CountersSnapshot`](crate::CountersSnapshot) as JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tracing::info;

use super::Shared;
use super::settings::{FaultPatch, FaultSettings};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_admin/faults", get(get_faults).put(put_faults))
        .route("/_admin/counters", get(get_counters))
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<FaultSettings> {
    Json(shared.knobs.settings())
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: FaultPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(err) => return bad_request(&err.to_string()),
    };
    match shared.knobs.settings().patched(&patch) {
        Ok(settings) => {
            shared.knobs.apply(&settings);
            info!(?settings, "fault injection changed through /_admin/faults");
            Json(settings).into_response()
        }
        Err(err) => bad_request(&err.to_string()),
    }
}

async fn get_counters(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.counters.snapshot()).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "message": message }))).into_response()
}
