use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::*;
use crate::test_support::*;

fn rejected(result: Result<Identity, VerifyError>) -> Rejection {
    match result {
        Err(VerifyError::Rejected(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn alice() -> Identity {
    Identity {
        subject: "alice".into(),
        entity_types: None,
    }
}

#[tokio::test]
async fn valid_hs256() {
    let mut claims = claims("alice");
    claims["entity_types"] = json!(["stream", "batch"]);
    let identity = hs256_verifier(ClaimRules::default())
        .verify(&hs256(&claims))
        .await
        .unwrap();
    assert_eq!(identity.subject, "alice");
    assert_eq!(
        identity.entity_types,
        Some(vec!["stream".into(), "batch".into()])
    );
}

#[tokio::test]
async fn entity_types_as_comma_separated_string() {
    let mut claims = claims("alice");
    claims["entity_types"] = json!(" stream , batch ");
    let identity = hs256_verifier(ClaimRules::default())
        .verify(&hs256(&claims))
        .await
        .unwrap();
    assert_eq!(
        identity.entity_types,
        Some(vec!["stream".into(), "batch".into()])
    );
}

#[tokio::test]
async fn unusable_entity_types_are_refused() {
    let verifier = hs256_verifier(ClaimRules::default());
    for bad in [json!([]), json!(""), json!(["a,b"]), json!(42)] {
        let mut claims = claims("alice");
        claims["entity_types"] = bad.clone();
        let rejection = rejected(verifier.verify(&hs256(&claims)).await);
        assert!(
            matches!(rejection, Rejection::InvalidClaims(_)),
            "{bad}: {rejection:?}"
        );
    }
}

#[tokio::test]
async fn valid_rs256_and_es256_via_jwks() {
    let source = MemoryJwks::new(jwks_keys());
    let verifier = jwks_verifier(&source, false);
    assert_eq!(
        verifier.verify(&rs256("rsa-1", &claims("alice"))).await,
        Ok(alice())
    );
    assert_eq!(
        verifier.verify(&es256("ec-1", &claims("alice"))).await,
        Ok(alice())
    );
    assert_eq!(source.fetches(), 1, "the second token used the cached set");
}

#[tokio::test]
async fn expired_beyond_leeway_is_refused_within_leeway_accepted() {
    let verifier = hs256_verifier(ClaimRules::default());
    let mut claims = claims("alice");
    claims["exp"] = json!(now() - 120);
    assert_eq!(
        rejected(verifier.verify(&hs256(&claims)).await),
        Rejection::Expired
    );
    claims["exp"] = json!(now() - 10);
    assert!(verifier.verify(&hs256(&claims)).await.is_ok());
}

#[tokio::test]
async fn not_yet_valid_beyond_leeway_is_refused_within_leeway_accepted() {
    let verifier = hs256_verifier(ClaimRules::default());
    let mut claims = claims("alice");
    claims["nbf"] = json!(now() + 120);
    assert_eq!(
        rejected(verifier.verify(&hs256(&claims)).await),
        Rejection::NotYetValid
    );
    claims["nbf"] = json!(now() + 10);
    assert!(verifier.verify(&hs256(&claims)).await.is_ok());
}

#[tokio::test]
async fn wrong_hs256_secret_is_a_bad_signature() {
    let other = EncodingKey::from_secret(b"another-secret-0123456789abcdefgh").unwrap();
    let token = sign(Algorithm::HS256, None, &other, &claims("alice"));
    let verifier = hs256_verifier(ClaimRules::default());
    assert_eq!(
        rejected(verifier.verify(&token).await),
        Rejection::BadSignature
    );
}

#[tokio::test]
async fn rs256_signed_by_another_key_under_a_known_kid_is_a_bad_signature() {
    let other = EncodingKey::from_rsa_pem(RSA_OTHER_PRIVATE.as_bytes()).unwrap();
    let token = sign(Algorithm::RS256, Some("rsa-1"), &other, &claims("alice"));
    let verifier = jwks_verifier(&MemoryJwks::new(jwks_keys()), false);
    assert_eq!(
        rejected(verifier.verify(&token).await),
        Rejection::BadSignature
    );
}

#[tokio::test]
async fn tampered_payload_is_a_bad_signature() {
    let token = hs256(&claims("alice"));
    let forged_payload = raw_token(&json!({}), &claims("mallory"), "");
    let forged_payload = forged_payload.split('.').nth(1).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let verifier = hs256_verifier(ClaimRules::default());
    assert_eq!(
        rejected(verifier.verify(&forged).await),
        Rejection::BadSignature
    );
}

#[tokio::test]
async fn alg_none_is_refused_whatever_is_configured() {
    let verifier = jwks_verifier(&MemoryJwks::new(jwks_keys()), true);
    for signature in ["", "c2ln"] {
        let token = raw_token(
            &json!({"alg": "none", "typ": "JWT"}),
            &claims("alice"),
            signature,
        );
        assert_eq!(
            rejected(verifier.verify(&token).await),
            Rejection::AlgorithmNotAllowed("none".into())
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic confusion: the attacker HMACs with the issuer's public key as the secret.
    let public_as_secret = EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).unwrap();
    let token = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &public_as_secret,
        &claims("alice"),
    );
    let jwks_only = jwks_verifier(&MemoryJwks::new(jwks_keys()), false);
    assert_eq!(
        rejected(jwks_only.verify(&token).await),
        Rejection::AlgorithmNotAllowed("HS256".into())
    );
    // With a secret configured too, HS256 is checked against that secret only.
    let both = jwks_verifier(&MemoryJwks::new(jwks_keys()), true);
    assert_eq!(rejected(both.verify(&token).await), Rejection::BadSignature);
}

#[tokio::test]
async fn algorithms_outside_the_configuration_are_refused() {
    let source = MemoryJwks::new(jwks_keys());
    let rs_key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let ps256 = sign(Algorithm::PS256, Some("rsa-1"), &rs_key, &claims("alice"));
    let verifier = jwks_verifier(&source, true);
    assert_eq!(
        rejected(verifier.verify(&ps256).await),
        Rejection::AlgorithmNotAllowed("PS256".into())
    );
    // RS256 without a JWKS configured.
    let hs_only = hs256_verifier(ClaimRules::default());
    assert_eq!(
        rejected(hs_only.verify(&rs256("rsa-1", &claims("alice"))).await),
        Rejection::AlgorithmNotAllowed("RS256".into())
    );
}

#[tokio::test]
async fn token_alg_must_match_the_keys_own_alg() {
    let verifier = jwks_verifier(&MemoryJwks::new(jwks_keys()), false);
    let rs_under_ec_kid = rs256("ec-1", &claims("alice"));
    assert_eq!(
        rejected(verifier.verify(&rs_under_ec_kid).await),
        Rejection::KeyAlgorithmMismatch {
            kid: "ec-1".into(),
            key: Algorithm::ES256,
            token: Algorithm::RS256,
        }
    );
    let es_under_rsa_kid = es256("rsa-1", &claims("alice"));
    assert!(matches!(
        rejected(verifier.verify(&es_under_rsa_kid).await),
        Rejection::KeyAlgorithmMismatch { .. }
    ));
}

#[tokio::test]
async fn jwks_token_without_kid_is_refused() {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let token = sign(Algorithm::RS256, None, &key, &claims("alice"));
    let verifier = jwks_verifier(&MemoryJwks::new(jwks_keys()), false);
    assert_eq!(
        rejected(verifier.verify(&token).await),
        Rejection::MissingKid
    );
}

#[tokio::test]
async fn issuer_is_checked_when_configured() {
    let rules = ClaimRules {
        issuer: Some("https://issuer.example".into()),
        ..ClaimRules::default()
    };
    let verifier = hs256_verifier(rules);
    let mut claims = claims("alice");
    claims["iss"] = json!("https://evil.example");
    assert_eq!(
        rejected(verifier.verify(&hs256(&claims)).await),
        Rejection::WrongIssuer
    );
    claims.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        rejected(verifier.verify(&hs256(&claims)).await),
        Rejection::MissingClaim("iss".into())
    );
    claims["iss"] = json!("https://issuer.example");
    assert!(verifier.verify(&hs256(&claims)).await.is_ok());
}

#[tokio::test]
async fn audience_is_checked_when_configured() {
    let rules = ClaimRules {
        audiences: vec!["dashboards".into()],
        ..ClaimRules::default()
    };
    let verifier = hs256_verifier(rules);
    let mut claims = claims("alice");
    claims["aud"] = json!("billing");
    assert_eq!(
        rejected(verifier.verify(&hs256(&claims)).await),
        Rejection::WrongAudience
    );
    claims["aud"] = json!(["billing", "dashboards"]);
    assert!(verifier.verify(&hs256(&claims)).await.is_ok());
    // Unconfigured: an aud the token carries is not held against it.
    let open = hs256_verifier(ClaimRules::default());
    assert!(open.verify(&hs256(&claims)).await.is_ok());
}

#[tokio::test]
async fn sub_and_exp_are_required() {
    let verifier = hs256_verifier(ClaimRules::default());
    let no_sub = json!({"exp": now() + 300});
    assert_eq!(
        rejected(verifier.verify(&hs256(&no_sub)).await),
        Rejection::MissingClaim("sub".into())
    );
    let no_exp = json!({"sub": "alice"});
    assert_eq!(
        rejected(verifier.verify(&hs256(&no_exp)).await),
        Rejection::MissingClaim("exp".into())
    );
    let blank_sub = json!({"sub": " ", "exp": now() + 300});
    assert!(matches!(
        rejected(verifier.verify(&hs256(&blank_sub)).await),
        Rejection::InvalidClaims(_)
    ));
}

#[tokio::test]
async fn malformed_tokens() {
    let verifier = hs256_verifier(ClaimRules::default());
    for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.c2ln", "e30.e30.c2ln"] {
        assert!(
            matches!(
                rejected(verifier.verify(token).await),
                Rejection::Malformed(_)
            ),
            "{token:?}"
        );
    }
}

#[test]
fn long_attacker_text_is_clipped_in_rejections() {
    let header = header(&raw_token(
        &json!({"alg": "X".repeat(500)}),
        &json!({}),
        "c2ln",
    ))
    .unwrap();
    assert_eq!(clip(&header.alg).len(), 64);
}

#[test]
fn claimed_subject_reads_without_verifying() {
    let forged = raw_token(&json!({"alg": "none"}), &claims("mallory"), "");
    assert_eq!(claimed_subject(&forged).as_deref(), Some("mallory"));
    assert_eq!(claimed_subject("garbage"), None);
}

#[tokio::test]
async fn after_a_rotation_the_previous_secret_still_verifies_and_nothing_else_does() {
    let rotated = b"the-new-secret-after-rotation-0123456789";
    let signed_with = |secret: &[u8]| {
        sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(secret).unwrap(),
            &claims("alice"),
        )
    };
    let verifier = Verifier::new(
        Some(VerifyingKey::hs256(rotated).unwrap()),
        None,
        ClaimRules::default(),
    );
    assert_eq!(
        rejected(verifier.verify(&signed_with(SECRET)).await),
        Rejection::BadSignature,
        "without the previous secret an old token is refused"
    );
    let verifier = verifier.with_previous_secret(Some(VerifyingKey::hs256(SECRET).unwrap()));
    assert_eq!(
        verifier.verify(&signed_with(rotated)).await.unwrap(),
        alice()
    );
    assert_eq!(
        verifier.verify(&signed_with(SECRET)).await.unwrap(),
        alice()
    );
    let other = b"neither-the-new-nor-the-old-secret-0123";
    assert_eq!(
        rejected(verifier.verify(&signed_with(other)).await),
        Rejection::BadSignature
    );
}
