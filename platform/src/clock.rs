//! Wall-clock time in the units the table stores.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (`connectedAt`, `lastSeenAt`, message timestamps).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
