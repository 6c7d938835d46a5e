//! The port to the API Gateway Management API: post one message to one connection, and what
//! the answer means for delivery.

use std::future::Future;

/// What became of one PostToConnection call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// 410: the connection is closed; its row must go.
    Gone,
    /// 429: the account throttle, or the client's buffer is full.
    Throttled,
    /// 5xx, a timeout, or no answer at all.
    Unavailable(String),
    /// 403: the function may not manage this API's connections (configuration).
    Forbidden,
    /// 413: the message is over 128 KB (the processor should have prevented it).
    PayloadTooLarge,
    /// Any other 4xx: the request itself is wrong; retrying cannot help.
    Rejected(u16),
    /// Not sent: the posting budget had no room before the invocation's deadline.
    OutOfBudget,
}

impl PostOutcome {
    /// Retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled | Self::Unavailable(_) | Self::OutOfBudget
        )
    }

    /// The meaning of an HTTP status from the management API, error type aside (API Gateway
    /// sometimes answers a bare 410 without `x-amzn-ErrorType`).
    pub fn from_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Delivered,
            403 => Self::Forbidden,
            410 => Self::Gone,
            413 => Self::PayloadTooLarge,
            429 => Self::Throttled,
            500..=599 => Self::Unavailable(format!("HTTP {status}")),
            other => Self::Rejected(other),
        }
    }
}

/// The port: posting to one connection. [`crate::management::ManagementApi`] is the real one.
pub trait Poster: Send + Sync {
    fn post(&self, connection_id: &str, data: &[u8]) -> impl Future<Output = PostOutcome> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(PostOutcome::from_status(200), PostOutcome::Delivered);
        assert_eq!(PostOutcome::from_status(410), PostOutcome::Gone);
        assert_eq!(PostOutcome::from_status(403), PostOutcome::Forbidden);
        assert_eq!(PostOutcome::from_status(413), PostOutcome::PayloadTooLarge);
        assert_eq!(PostOutcome::from_status(400), PostOutcome::Rejected(400));
        assert!(PostOutcome::from_status(429).is_retryable());
        assert!(PostOutcome::from_status(502).is_retryable());
        assert!(!PostOutcome::from_status(410).is_retryable());
        assert!(!PostOutcome::from_status(403).is_retryable());
    }
}
