//! Identity sources: the request parameters API Gateway requires before it calls a REQUEST
//! authorizer. A listed source that is missing or empty refuses the handshake with 401 and the
//! authorizer is not called.

use std::fmt;
use std::str::FromStr;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use http::HeaderName;

const HEADER_PREFIX: &str = "route.request.header.";
const QUERY_PREFIX: &str = "route.request.querystring.";

/// One identity source, written as in the API's configuration:
/// `route.request.header.NAME` (case-insensitive name) or `route.request.querystring.NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    Header(HeaderName),
    QueryString(String),
}

/// An identity source this emulator does not know (`stageVariables.*` and `context.*` are not
/// emulated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported identity source {0:?}: expected route.request.header.NAME or route.request.querystring.NAME"
)]
pub struct InvalidIdentitySource(String);

impl FromStr for IdentitySource {
    type Err = InvalidIdentitySource;

    fn from_str(source: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidIdentitySource(source.to_owned());
        if let Some(name) = source.strip_prefix(HEADER_PREFIX) {
            return HeaderName::from_str(name)
                .map(Self::Header)
                .map_err(|_| invalid());
        }
        match source.strip_prefix(QUERY_PREFIX) {
            Some(name) if !name.is_empty() => Ok(Self::QueryString(name.to_owned())),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "{HEADER_PREFIX}{name}"),
            Self::QueryString(name) => write!(f, "{QUERY_PREFIX}{name}"),
        }
    }
}

impl IdentitySource {
    /// Whether the handshake carries a non-empty value here (read from its `$connect` event,
    /// which holds the request's headers and query string).
    pub(crate) fn is_present(&self, connect: &ApiGatewayWebsocketProxyRequest) -> bool {
        let value = match self {
            Self::Header(name) => connect.headers.get(name).and_then(|v| v.to_str().ok()),
            Self::QueryString(name) => connect.query_string_parameters.first(name),
        };
        value.is_some_and(|v| !v.is_empty())
    }
}

/// The first of `sources` that the handshake lacks.
pub(crate) fn first_missing<'a>(
    sources: &'a [IdentitySource],
    connect: &ApiGatewayWebsocketProxyRequest,
) -> Option<&'a IdentitySource> {
    sources.iter().find(|source| !source.is_present(connect))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    use http::HeaderValue;

    fn event(header: Option<&str>, query: &[(&str, &str)]) -> ApiGatewayWebsocketProxyRequest {
        let mut event = ApiGatewayWebsocketProxyRequest::default();
        if let Some(value) = header {
            event.headers.insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let query: HashMap<String, String> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        event.query_string_parameters = query.into();
        event
    }

    #[test]
    fn parses_and_prints_the_configuration_form() {
        let header: IdentitySource = "route.request.header.Sec-WebSocket-Protocol"
            .parse()
            .unwrap();
        assert_eq!(
            header,
            IdentitySource::Header(HeaderName::from_static("sec-websocket-protocol"))
        );
        let query: IdentitySource = "route.request.querystring.token".parse().unwrap();
        assert_eq!(query, IdentitySource::QueryString("token".to_owned()));
        assert_eq!(query.to_string(), "route.request.querystring.token");
        for bad in [
            "stageVariables.x",
            "context.x",
            "route.request.querystring.",
            "route.request.header.bad header",
        ] {
            assert!(bad.parse::<IdentitySource>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_source_is_present_only_with_a_non_empty_value() {
        let header = IdentitySource::Header(HeaderName::from_static("sec-websocket-protocol"));
        let query = IdentitySource::QueryString("token".to_owned());
        assert!(header.is_present(&event(Some("bearer, abc"), &[])));
        assert!(!header.is_present(&event(Some(""), &[])));
        assert!(!header.is_present(&event(None, &[])));
        assert!(query.is_present(&event(None, &[("token", "abc")])));
        assert!(!query.is_present(&event(None, &[("token", "")])));
        assert!(!query.is_present(&event(None, &[("other", "abc")])));

        let both = [header, query];
        let missing = first_missing(&both, &event(Some("p"), &[("x", "1")]));
        assert_eq!(missing, Some(&both[1]));
        assert_eq!(
            first_missing(&both, &event(Some("p"), &[("token", "t")])),
            None
        );
        assert_eq!(first_missing(&[], &event(None, &[])), None);
    }
}
