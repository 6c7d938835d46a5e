//! Finding the token in a `$connect` request.
//!
//! Browsers cannot set headers on a WebSocket, so a dashboard sends its JWT either as
//! `?token=` or as one of the subprotocols it offers (`new WebSocket(url, [jwt])`). In the
//! second case the `$connect` answer must name that same value in `Sec-WebSocket-Protocol`,
//! or the browser drops the handshake; [`ExtractedToken::protocol`] gives it.

use std::fmt;

use aws_lambda_events::query_map::QueryMap;
use http::HeaderMap;
use http::header::SEC_WEBSOCKET_PROTOCOL;

/// The query string parameter that carries the token.
pub const QUERY_PARAMETER: &str = "token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    QueryString,
    Subprotocol,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::QueryString => "query",
            TokenSource::Subprotocol => "subprotocol",
        }
    }
}

/// A token and where it came from; `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtractedToken {
    token: String,
    source: TokenSource,
}

impl ExtractedToken {
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// The exact `Sec-WebSocket-Protocol` value the `$connect` response must echo, when the
    /// token was offered as a subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        (self.source == TokenSource::Subprotocol).then_some(self.token.as_str())
    }
}

impl fmt::Debug for ExtractedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractedToken")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The token from `?token=`, else the first offered subprotocol shaped like a JWT.
pub fn extract(headers: &HeaderMap, query: &QueryMap) -> Option<ExtractedToken> {
    from_query(query).or_else(|| from_subprotocols(headers))
}

fn from_query(query: &QueryMap) -> Option<ExtractedToken> {
    let token = query.first(QUERY_PARAMETER)?.trim();
    (!token.is_empty()).then(|| ExtractedToken {
        token: token.to_owned(),
        source: TokenSource::QueryString,
    })
}

fn from_subprotocols(headers: &HeaderMap) -> Option<ExtractedToken> {
    let token = offered_protocols(headers).find(|p| looks_like_jwt(p))?;
    Some(ExtractedToken {
        token: token.to_owned(),
        source: TokenSource::Subprotocol,
    })
}

/// Every subprotocol the client offered, in order (one header or several, comma-separated).
/// `HeaderMap` lookups ignore the header name's case.
pub fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// Three non-empty base64url segments separated by dots (a JWS in compact form).
pub fn looks_like_jwt(value: &str) -> bool {
    let segments: Vec<&str> = value.split('.').collect();
    segments.len() == 3 && segments.iter().all(|s| is_base64url(s))
}

fn is_base64url(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    const OTHER_JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiIn0.c2ln";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn query(pairs: &[(&str, &str)]) -> QueryMap {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        QueryMap::from(map)
    }

    #[test]
    fn token_from_query_string() {
        let found = extract(&HeaderMap::new(), &query(&[("token", JWT)])).unwrap();
        assert_eq!(found.token(), JWT);
        assert_eq!(found.source(), TokenSource::QueryString);
        assert_eq!(found.protocol(), None);
    }

    #[test]
    fn token_from_the_first_jwt_shaped_subprotocol() {
        let offered = format!("graphql-ws, v1.metrics , {JWT}, {OTHER_JWT}");
        let found = extract(
            &headers(&[("Sec-WebSocket-Protocol", &offered)]),
            &query(&[]),
        )
        .unwrap();
        assert_eq!(found.token(), JWT);
        assert_eq!(found.source(), TokenSource::Subprotocol);
        assert_eq!(found.protocol(), Some(JWT));
    }

    #[test]
    fn subprotocols_across_repeated_headers_and_any_name_case() {
        let map = headers(&[
            ("sec-websocket-protocol", "chat"),
            ("SEC-WEBSOCKET-PROTOCOL", OTHER_JWT),
        ]);
        assert_eq!(
            offered_protocols(&map).collect::<Vec<_>>(),
            ["chat", OTHER_JWT]
        );
        assert_eq!(
            extract(&map, &query(&[])).unwrap().protocol(),
            Some(OTHER_JWT)
        );
    }

    #[test]
    fn query_string_wins_over_subprotocol() {
        let found = extract(
            &headers(&[("Sec-WebSocket-Protocol", OTHER_JWT)]),
            &query(&[("token", JWT)]),
        )
        .unwrap();
        assert_eq!(found.token(), JWT);
        assert_eq!(found.source(), TokenSource::QueryString);
    }

    #[test]
    fn empty_query_token_falls_back_to_subprotocol() {
        let found = extract(
            &headers(&[("Sec-WebSocket-Protocol", JWT)]),
            &query(&[("token", "  ")]),
        )
        .unwrap();
        assert_eq!(found.source(), TokenSource::Subprotocol);
    }

    #[test]
    fn no_token_anywhere() {
        let map = headers(&[("Sec-WebSocket-Protocol", "chat, v2.json")]);
        assert_eq!(extract(&map, &query(&[("other", "x")])), None);
        assert_eq!(extract(&HeaderMap::new(), &query(&[])), None);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt(JWT));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."));
        assert!(!looks_like_jwt("a+b.c/d.e="));
    }

    #[test]
    fn debug_hides_the_token() {
        let found = extract(&HeaderMap::new(), &query(&[("token", JWT)])).unwrap();
        assert!(!format!("{found:?}").contains(JWT));
    }
}
