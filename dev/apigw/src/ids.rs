//! Identifiers in API Gateway's shapes: connection, request and message ids, the management
//! API's request ids (UUIDs), trace ids.

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

/// A random (version 4) UUID, lowercase and hyphenated: the shape of the `x-amzn-RequestId`
/// that API Gateway returns from the management API.
pub fn request_uuid() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Whether `id` is a lowercase hyphenated UUID (8-4-4-4-12 hex digits).
pub fn is_request_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
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
    fn request_uuids_are_version_4_and_do_not_repeat() {
        let ids: HashSet<String> = (0..10_000).map(|_| request_uuid()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            assert!(is_request_uuid(id), "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!("89ab".contains(&id[19..20]), "{id}");
        }
        assert!(!is_request_uuid("L0SM9cOFvHcCIhw="));
        assert!(!is_request_uuid("9983A360-03E2-4F58-9F19-7145AAAAAAAA"));
    }

    #[test]
    fn trace_id_shape() {
        let id = trace_id(1_764_104_603_000);
        assert!(id.starts_with("Root=1-6926199b-"), "{id}");
        assert_eq!(id.len(), "Root=1-".len() + 8 + 1 + 24);
    }
}
