//! Identifiers in API Gateway's shapes: connection, request and message ids, trace ids.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use rand::RngCore as _;

/// 11 random bytes encode to 15 base64 characters plus one `=` of padding: the 16-character
/// shape of API Gateway's connection ids (e.g. `L0SM9cOFvHcCIhw=`). 88 bits from a CSPRNG make
/// them unguessable and, in practice, unique; the connection map still refuses duplicates.
const ID_BYTES: usize = 11;

/// Length of an id produced by [`random_id`].
pub const ID_LEN: usize = 16;

/// A fresh random id in API Gateway's form (URL-safe base64, 16 characters, ending in `=`).
/// Used for connection ids, request ids and message ids alike, as API Gateway does.
pub fn random_id() -> String {
    let mut bytes = [0u8; ID_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE.encode(bytes)
}

/// Whether `id` has the shape of an API Gateway connection id.
pub fn is_connection_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id.ends_with('=')
        && id[..ID_LEN - 1]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An `X-Amzn-Trace-Id` value: `Root=1-{epoch seconds, hex}-{96 random bits, hex}`.
pub(crate) fn trace_id(epoch_ms: i64) -> String {
    let mut random = [0u8; 12];
    rand::rng().fill_bytes(&mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("Root=1-{:08x}-{hex}", epoch_ms / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_have_api_gateway_shape_and_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| is_connection_id(id)), "{ids:?}");
    }

    #[test]
    fn rejects_other_shapes() {
        assert!(is_connection_id("L0SM9cOFvHcCIhw="));
        assert!(!is_connection_id("L0SM9cOFvHcCIhw"));
        assert!(!is_connection_id("L0SM9cOFvHcCIhw=="));
        assert!(!is_connection_id("L0SM9cOF/HcCIhw="));
    }

    #[test]
    fn trace_id_shape() {
        let id = trace_id(1_764_104_603_000);
        assert!(id.starts_with("Root=1-6926199b-"), "{id}");
        assert_eq!(id.len(), "Root=1-".len() + 8 + 1 + 24);
    }
}
