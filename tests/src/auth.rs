//! Authentication in the local stack: the configuration of `AUTH_MODE=jwt` with a test
//! secret, tokens signed with it (or not), and what the registry stored about who connected.

use std::time::Duration;

use authorizer::mint::{MintRequest, mint_hs256, now_epoch_secs};
use futures::TryStreamExt;
use stack::Stack;

/// The HS256 secret of the tests' stacks (test-only).
pub const SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789";

/// `AUTH_MODE=jwt` with [`SECRET`], as the authorizer reads it from the environment.
pub fn config() -> authorizer::AuthConfig {
    let env = platform::env::pairs_env(&[("AUTH_MODE", "jwt"), ("AUTH_JWT_SECRET", SECRET)]);
    authorizer::config::load(&env).expect("a valid test auth config")
}

/// A valid token for `subject`, limited to `entity_types` when given.
pub fn token(subject: &str, entity_types: Option<&[&str]>) -> String {
    sign(
        SECRET,
        subject,
        entity_types,
        now_epoch_secs(),
        Duration::from_secs(600),
    )
}

/// A token that expired an hour ago.
pub fn expired_token(subject: &str) -> String {
    sign(
        SECRET,
        subject,
        None,
        now_epoch_secs() - 7200,
        Duration::from_secs(3600),
    )
}

/// A well-formed token signed with another secret.
pub fn forged_token(subject: &str) -> String {
    let other = "not-the-stack-secret-0123456789abcdefghij";
    sign(
        other,
        subject,
        None,
        now_epoch_secs(),
        Duration::from_secs(600),
    )
}

fn sign(
    secret: &str,
    subject: &str,
    entity_types: Option<&[&str]>,
    issued_at: u64,
    ttl: Duration,
) -> String {
    let request = MintRequest {
        subject: subject.to_owned(),
        entity_types: entity_types
            .unwrap_or_default()
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        ttl,
        issuer: None,
        audience: None,
    };
    mint_hs256(secret.as_bytes(), &request, issued_at).expect("a signed token")
}

/// The subject of every registered connection, sorted ("" for a row without one).
pub async fn subjects(stack: &Stack) -> Vec<String> {
    let pages: Vec<registry::Page> = stack
        .registry
        .live_connections(None)
        .try_collect()
        .await
        .expect("paging the registry");
    let mut subjects = Vec::new();
    for id in pages.into_iter().flat_map(|p| p.connection_ids) {
        let row = stack.registry.get(&id).await.expect("GetItem");
        subjects.extend(row.map(|r| r.subject.unwrap_or_default()));
    }
    subjects.sort();
    subjects
}
