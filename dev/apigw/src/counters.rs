//! Counters a test, a benchmark or the dashboard reads.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters, updated with relaxed atomics on the hot path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) posts_received: AtomicU64,
    pub(crate) posts_delivered: AtomicU64,
    pub(crate) posts_delivered_virtual: AtomicU64,
    pub(crate) rejected_gone: AtomicU64,
    pub(crate) rejected_payload_too_large: AtomicU64,
    pub(crate) rejected_throttled: AtomicU64,
    pub(crate) rejected_buffer_full: AtomicU64,
    pub(crate) injected_gone: AtomicU64,
    pub(crate) injected_throttle: AtomicU64,
    pub(crate) injected_error: AtomicU64,
    pub(crate) gets: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) management_throttled: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connects_rejected: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) messages_throttled: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) authorizer_calls: AtomicU64,
    pub(crate) authorizer_allowed: AtomicU64,
    pub(crate) authorizer_denied: AtomicU64,
    pub(crate) authorizer_unauthorized: AtomicU64,
    pub(crate) authorizer_errors: AtomicU64,
}

/// Increments a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A copy of the counters at one instant.
///
/// For `POST @connections/{id}`, once every call has been answered:
/// `posts_received == posts_delivered + rejected_total()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountersSnapshot {
    /// Posts received, whatever their outcome.
    pub posts_received: u64,
    /// Posts answered 200: queued to a socket's writer, or recorded for a virtual connection.
    pub posts_delivered: u64,
    /// The part of `posts_delivered` that went to virtual connections.
    pub posts_delivered_virtual: u64,
    /// 410 for an unknown or closed id.
    pub rejected_gone: u64,
    /// 413 for a body over the payload limit.
    pub rejected_payload_too_large: u64,
    /// 429 from the token bucket.
    pub rejected_throttled: u64,
    /// 429 because the socket's outbound buffer was full (a client not reading).
    pub rejected_buffer_full: u64,
    /// 410 injected for a connected id.
    pub injected_gone: u64,
    /// 429 injected.
    pub injected_throttle: u64,
    /// 500 injected.
    pub injected_error: u64,
    /// `GET @connections/{id}` calls.
    pub gets: u64,
    /// `DELETE @connections/{id}` calls.
    pub deletes: u64,
    /// GET and DELETE calls refused by the token bucket (posts are in `rejected_throttled`).
    pub management_throttled: u64,
    /// Successful `$connect`s (WebSocket handshakes accepted).
    pub connects: u64,
    /// `$connect`s refused by the handler (or failed in it); authorizer refusals, where
    /// `$connect` never runs, are in the `authorizer_*` counters.
    pub connects_rejected: u64,
    /// Client data messages (text or binary) received.
    pub messages_received: u64,
    /// The part of `messages_received` not routed because the connection's message queue
    /// was full: the client got a "Too Many Requests" error frame instead.
    pub messages_throttled: u64,
    /// `$disconnect` events emitted.
    pub disconnects: u64,
    /// Calls of the `$connect` authorizer. Each handshake it decides is counted once in
    /// `authorizer_allowed`, `_denied`, `_unauthorized` or `_errors`, including those refused
    /// with 401 before any call (a missing identity source).
    pub authorizer_calls: u64,
    /// Handshakes the authorizer allowed (`$connect` then ran).
    pub authorizer_allowed: u64,
    /// 403: the policy did not allow `$connect`.
    pub authorizer_denied: u64,
    /// 401: an identity source missing (no call), or the authorizer failed with `Unauthorized`.
    pub authorizer_unauthorized: u64,
    /// 500: the authorizer failed otherwise, or answered something malformed.
    pub authorizer_errors: u64,
}

impl CountersSnapshot {
    /// All posts answered with an error, injected or not.
    pub fn rejected_total(&self) -> u64 {
        self.rejected_gone
            + self.rejected_payload_too_large
            + self.rejected_throttled
            + self.rejected_buffer_full
            + self.injected_gone
            + self.injected_throttle
            + self.injected_error
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            posts_received: get(&self.posts_received),
            posts_delivered: get(&self.posts_delivered),
            posts_delivered_virtual: get(&self.posts_delivered_virtual),
            rejected_gone: get(&self.rejected_gone),
            rejected_payload_too_large: get(&self.rejected_payload_too_large),
            rejected_throttled: get(&self.rejected_throttled),
            rejected_buffer_full: get(&self.rejected_buffer_full),
            injected_gone: get(&self.injected_gone),
            injected_throttle: get(&self.injected_throttle),
            injected_error: get(&self.injected_error),
            gets: get(&self.gets),
            deletes: get(&self.deletes),
            management_throttled: get(&self.management_throttled),
            connects: get(&self.connects),
            connects_rejected: get(&self.connects_rejected),
            messages_received: get(&self.messages_received),
            messages_throttled: get(&self.messages_throttled),
            disconnects: get(&self.disconnects),
            authorizer_calls: get(&self.authorizer_calls),
            authorizer_allowed: get(&self.authorizer_allowed),
            authorizer_denied: get(&self.authorizer_denied),
            authorizer_unauthorized: get(&self.authorizer_unauthorized),
            authorizer_errors: get(&self.authorizer_errors),
        }
    }

    /// Zeroes every counter (between benchmark runs). Calls in flight may land on either side.
    pub(crate) fn reset(&self) {
        for counter in [
            &self.posts_received,
            &self.posts_delivered,
            &self.posts_delivered_virtual,
            &self.rejected_gone,
            &self.rejected_payload_too_large,
            &self.rejected_throttled,
            &self.rejected_buffer_full,
            &self.injected_gone,
            &self.injected_throttle,
            &self.injected_error,
            &self.gets,
            &self.deletes,
            &self.management_throttled,
            &self.connects,
            &self.connects_rejected,
            &self.messages_received,
            &self.messages_throttled,
            &self.disconnects,
            &self.authorizer_calls,
            &self.authorizer_allowed,
            &self.authorizer_denied,
            &self.authorizer_unauthorized,
            &self.authorizer_errors,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}
