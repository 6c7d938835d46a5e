use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use serde_json::json;

use super::*;
use crate::test_support::*;
use crate::verify::{ClaimRules, Verifier};

fn jwk(value: serde_json::Value) -> Jwk {
    serde_json::from_value(value).unwrap()
}

fn rsa_jwk() -> serde_json::Value {
    serde_json::to_value(&jwks_keys()[0]).unwrap()
}

#[tokio::test(start_paused = true)]
async fn known_kid_is_served_from_the_cache() {
    let source = MemoryJwks::new(jwks_keys());
    let cache = cache(&source);
    for _ in 0..5 {
        assert_eq!(
            cache.key("rsa-1").await.unwrap().algorithm(),
            Algorithm::RS256
        );
    }
    assert_eq!(
        cache.key("ec-1").await.unwrap().algorithm(),
        Algorithm::ES256
    );
    assert_eq!(source.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_kid_appears_after_a_refresh_within_the_rate_limit() {
    let source = MemoryJwks::new(jwks_keys());
    let cache = cache(&source);
    assert!(cache.key("rsa-1").await.is_ok());

    // The issuer rotates: rsa-2 is published after our first fetch.
    source.publish(vec![renamed("rsa-1", "rsa-1"), renamed("rsa-1", "rsa-2")]);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        cache.key("rsa-2").await.unwrap_err(),
        KeyLookupError::UnknownKid,
        "within the interval, no refetch"
    );
    assert_eq!(source.fetches(), 1);

    tokio::time::advance(MIN_INTERVAL).await;
    assert!(cache.key("rsa-2").await.is_ok());
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_random_kids_fetches_once_per_interval() {
    let source = MemoryJwks::new(jwks_keys());
    let cache = cache(&source);
    for i in 0..200 {
        let err = cache.key(&format!("random-{i}")).await.unwrap_err();
        assert_eq!(err, KeyLookupError::UnknownKid);
    }
    assert_eq!(source.fetches(), 1);
    tokio::time::advance(MIN_INTERVAL).await;
    for i in 0..200 {
        let _ = cache.key(&format!("again-{i}")).await;
    }
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn stale_keys_are_refetched_and_kept_if_the_issuer_is_down() {
    let source = MemoryJwks::new(jwks_keys());
    let cache = cache(&source);
    assert!(cache.key("rsa-1").await.is_ok());
    tokio::time::advance(MAX_AGE).await;
    source.set_down(true);
    assert!(cache.key("rsa-1").await.is_ok(), "stale key still verifies");
    assert_eq!(source.fetches(), 2);

    // A key the issuer has removed stops verifying at the next refetch.
    source.set_down(false);
    source.publish(vec![renamed("ec-1", "ec-1")]);
    tokio::time::advance(MAX_AGE).await;
    assert_eq!(
        cache.key("rsa-1").await.unwrap_err(),
        KeyLookupError::UnknownKid
    );
}

#[tokio::test(start_paused = true)]
async fn issuer_down_at_cold_start_is_unavailable_and_rate_limited() {
    let source = MemoryJwks::new(jwks_keys());
    source.set_down(true);
    let cache = cache(&source);
    assert_eq!(
        cache.key("rsa-1").await.unwrap_err(),
        KeyLookupError::Unavailable(JwksError::Status(503))
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(
        cache.key("rsa-1").await.unwrap_err(),
        KeyLookupError::Unavailable(JwksError::NotLoaded(Duration::from_secs(20)))
    );
    assert_eq!(source.fetches(), 1);

    source.set_down(false);
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(cache.key("rsa-1").await.is_ok());
}

#[test]
fn usable_keys_follow_type_curve_alg_and_use() {
    let ec = serde_json::to_value(&jwks_keys()[1]).unwrap();
    let with = |base: &serde_json::Value, field: &str, value: serde_json::Value| {
        let mut key = base.clone();
        key[field] = value;
        jwk(key)
    };
    let without = |base: &serde_json::Value, field: &str| {
        let mut key = base.clone();
        key.as_object_mut().unwrap().remove(field);
        jwk(key)
    };
    let alg = |key: &Jwk| usable_key(key).map(|(_, k)| k.algorithm());

    assert_eq!(alg(&jwk(rsa_jwk())), Some(Algorithm::RS256));
    assert_eq!(alg(&jwk(ec.clone())), Some(Algorithm::ES256));
    assert_eq!(alg(&without(&rsa_jwk(), "alg")), Some(Algorithm::RS256));
    assert_eq!(alg(&with(&rsa_jwk(), "alg", json!("PS256"))), None);
    assert_eq!(alg(&with(&rsa_jwk(), "alg", json!("ES256"))), None);
    assert_eq!(alg(&with(&rsa_jwk(), "use", json!("enc"))), None);
    assert_eq!(alg(&without(&rsa_jwk(), "kid")), None);
    assert_eq!(alg(&with(&ec, "crv", json!("P-384"))), None);
    let oct = jwk(json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"}));
    assert_eq!(alg(&oct), None, "a JWKS never supplies an HMAC secret");
}

#[test]
fn parse_skips_unreadable_keys_and_refuses_non_sets() {
    let body = json!({"keys": [rsa_jwk(), {"kty": "RSA", "kid": 7}, "junk"]}).to_string();
    assert_eq!(parse_jwks(body.as_bytes()).unwrap().len(), 1);
    assert!(matches!(parse_jwks(b"<html>"), Err(JwksError::Parse(_))));
    assert!(matches!(
        parse_jwks(b"{\"nokeys\":[]}"),
        Err(JwksError::Parse(_))
    ));
}

#[tokio::test]
async fn http_source_fetches_from_a_loopback_server() {
    let (url, server) = http_server("200 OK", JWKS.to_owned()).await;
    let source = HttpJwksSource::new(&url, Duration::from_secs(2)).unwrap();
    let keys = source.fetch().await.unwrap();
    assert_eq!(keys.len(), 2);

    let policy = RefreshPolicy {
        min_interval: MIN_INTERVAL,
        max_age: MAX_AGE,
    };
    let verifier = Verifier::new(
        None,
        Some(JwksCache::new(Box::new(source), policy)),
        ClaimRules::default(),
    );
    let identity = verifier
        .verify(&rs256("rsa-1", &claims("alice")))
        .await
        .unwrap();
    assert_eq!(identity.subject, "alice");
    server.abort();
}

#[tokio::test]
async fn http_error_status_and_oversized_bodies_are_errors() {
    let (url, server) = http_server("500 Internal Server Error", "{}".into()).await;
    let source = HttpJwksSource::new(&url, Duration::from_secs(2)).unwrap();
    assert_eq!(source.fetch().await.unwrap_err(), JwksError::Status(500));
    server.abort();

    let (url, server) = http_server("200 OK", " ".repeat(MAX_JWKS_BYTES + 1)).await;
    let source = HttpJwksSource::new(&url, Duration::from_secs(2)).unwrap();
    assert_eq!(source.fetch().await.unwrap_err(), JwksError::TooLarge);
    server.abort();
}

#[tokio::test]
async fn a_hanging_jwks_endpoint_fails_within_the_timeout() {
    let (url, server) = hanging_server().await;
    let timeout = Duration::from_millis(200);
    let source = HttpJwksSource::new(&url, timeout).unwrap();
    let started = std::time::Instant::now();
    // The outer bound only keeps a broken client from hanging the test run.
    let result = tokio::time::timeout(Duration::from_secs(5), source.fetch())
        .await
        .expect("the client's own timeout fired");
    assert_eq!(result.unwrap_err(), JwksError::Timeout(timeout));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.abort();
}
