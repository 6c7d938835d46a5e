//! The fanout queue as both functions see it.

use platform::env::{ConfigError, Env};

/// SQS's default (and largest) message size.
pub const DEFAULT_QUEUE_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// `FANOUT_QUEUE_URL`: the processor sends jobs there, and fanout requeues there.
    pub url: String,
    /// `QUEUE_MAX_MESSAGE_BYTES`: the queue's MaximumMessageSize (1 MiB; 256 KiB on old
    /// queues). A message, and a batch in total, stays under it.
    pub max_message_bytes: usize,
}

impl QueueSettings {
    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.required("FANOUT_QUEUE_URL", "the fanout queue's URL")?,
            max_message_bytes: env.number_or(
                "QUEUE_MAX_MESSAGE_BYTES",
                DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
                1024..=DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
            )?,
        })
    }

    /// A queue at `url` with SQS's default size (the local stack, tests).
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_message_bytes: DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::env::pairs_env;

    #[test]
    fn url_is_required_and_size_is_bounded() {
        let err = QueueSettings::read(&pairs_env(&[])).unwrap_err();
        assert!(err.to_string().contains("FANOUT_QUEUE_URL"), "{err}");
        let s = QueueSettings::read(&pairs_env(&[("FANOUT_QUEUE_URL", "http://q")])).unwrap();
        assert_eq!(s, QueueSettings::for_url("http://q"));
        let err = QueueSettings::read(&pairs_env(&[
            ("FANOUT_QUEUE_URL", "http://q"),
            ("QUEUE_MAX_MESSAGE_BYTES", "2000000"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("QUEUE_MAX_MESSAGE_BYTES"), "{err}");
    }
}
