//! The `$connect` authorizer: a Lambda REQUEST authorizer that verifies a dashboard's JWT
//! (HS256 with a shared secret, or RS256 / ES256 against a JWKS) before the connection exists.
//!
//! - [`token`]: where the token is in the request (`?token=` or `Sec-WebSocket-Protocol`);
//! - [`verify`]: signature and claims, with the algorithm fixed by configuration;
//! - [`jwks`]: the issuer's keys, cached and refreshed under a rate limit;
//! - [`policy`]: the Allow / Deny answer and its context;
//! - [`handler`]: one request to one answer and one log line;
//! - [`config`]: `AUTH_*` variables; [`secret`]: the HS256 secret from Secrets Manager;
//! - [`mint`]: HS256 tokens for the local stack.

pub mod config;
pub mod handler;
pub mod jwks;
pub mod mint;
pub mod policy;
pub mod secret;
pub mod token;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use config::{AuthConfig, AuthMode, ConfigError};
pub use handler::{AuthorizerError, ConnectAuthEvent, authorize};
pub use policy::{AuthContext, AuthorizerResponse, Principal};
pub use token::{ExtractedToken, TokenSource};
pub use verify::{Identity, Verifier};
