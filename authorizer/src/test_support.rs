//! Test helpers: the test-only keys under `tests/keys/` (they protect nothing), token
//! signing, an in-memory key source, loopback HTTP servers and a log capture.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::jwks::{JwksCache, JwksError, JwksSource, RefreshPolicy, parse_jwks};
use crate::verify::{ClaimRules, Verifier, VerifyingKey};

pub const SECRET: &[u8] = b"test-only-secret-0123456789abcdef";
pub const RSA_PRIVATE: &str = include_str!("../tests/keys/rsa-private.pem");
pub const RSA_PUBLIC: &str = include_str!("../tests/keys/rsa-public.pem");
pub const RSA_OTHER_PRIVATE: &str = include_str!("../tests/keys/rsa-other-private.pem");
pub const EC_PRIVATE: &str = include_str!("../tests/keys/ec-private.pem");
pub const JWKS: &str = include_str!("../tests/keys/jwks.json");
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);
pub const MAX_AGE: Duration = Duration::from_secs(3600);

pub fn now() -> u64 {
    crate::mint::now_epoch_secs()
}

/// Valid claims for `sub`: issued now, five minutes to live.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iat": now(), "exp": now() + 300})
}

pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

pub fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET).unwrap(),
        claims,
    )
}

pub fn rs256(kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    sign(Algorithm::RS256, Some(kid), &key, claims)
}

pub fn es256(kid: &str, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    sign(Algorithm::ES256, Some(kid), &key, claims)
}

/// A token with a hand-made header and signature segment (for `alg: none` and the like).
pub fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

/// The key set of `tests/keys/jwks.json`: `rsa-1` (RS256) and `ec-1` (ES256).
pub fn jwks_keys() -> Vec<Jwk> {
    parse_jwks(JWKS.as_bytes()).unwrap()
}

/// A key of `jwks.json` published under another kid (a rotation, as the cache sees it).
pub fn renamed(kid: &str, new_kid: &str) -> Jwk {
    let mut key = jwks_keys()
        .into_iter()
        .find(|k| k.common.key_id.as_deref() == Some(kid))
        .unwrap();
    key.common.key_id = Some(new_kid.to_owned());
    key
}

/// An in-memory issuer that counts fetches and can be switched off.
#[derive(Default)]
pub struct MemoryJwks {
    keys: Mutex<Vec<Jwk>>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

impl MemoryJwks {
    pub fn new(keys: Vec<Jwk>) -> Arc<Self> {
        let source = Self::default();
        *source.keys.lock().unwrap() = keys;
        Arc::new(source)
    }

    pub fn publish(&self, keys: Vec<Jwk>) {
        *self.keys.lock().unwrap() = keys;
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl JwksSource for Arc<MemoryJwks> {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Jwk>, JwksError>> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let result = if self.down.load(Ordering::SeqCst) {
            Err(JwksError::Status(503))
        } else {
            Ok(self.keys.lock().unwrap().clone())
        };
        Box::pin(async move { result })
    }
}

pub fn cache(source: &Arc<MemoryJwks>) -> JwksCache {
    let policy = RefreshPolicy {
        min_interval: MIN_INTERVAL,
        max_age: MAX_AGE,
    };
    JwksCache::new(Box::new(Arc::clone(source)), policy)
}

pub fn hs256_verifier(rules: ClaimRules) -> Verifier {
    Verifier::new(Some(VerifyingKey::hs256(SECRET).unwrap()), None, rules)
}

/// A verifier over `source`, with the HS256 secret too when `with_secret`.
pub fn jwks_verifier(source: &Arc<MemoryJwks>, with_secret: bool) -> Verifier {
    let secret = with_secret.then(|| VerifyingKey::hs256(SECRET).unwrap());
    Verifier::new(secret, Some(cache(source)), ClaimRules::default())
}

/// Serves `status` and `body` to every connection on 127.0.0.1; returns the URL.
pub async fn http_server(status: &'static str, body: String) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 8192];
            let _ = socket.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, task)
}

/// Accepts connections on 127.0.0.1 and never answers; returns the URL.
pub async fn hanging_server() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// Log capture for the current thread. A global subscriber routes each event to the
/// capture of the thread that emitted it: scoped (`set_default`) subscribers race with other
/// test threads over tracing's per-callsite interest cache and can miss events.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<String>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<LogCapture>> = const { std::cell::RefCell::new(None) };
}

impl LogCapture {
    /// Captures this thread's events from now on (a test's thread ends with the test).
    pub fn start() -> Self {
        static ROUTER: std::sync::Once = std::sync::Once::new();
        ROUTER.call_once(|| tracing::subscriber::set_global_default(LogRouter).unwrap());
        let capture = Self::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(capture.clone()));
        capture
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

struct LogRouter;

struct FieldWriter<'a>(&'a mut String);

impl tracing::field::Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for LogRouter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        CAPTURE.with(|capture| {
            let Some(capture) = capture.borrow().clone() else {
                return;
            };
            let mut text = capture.0.lock().unwrap();
            let _ = write!(text, "{} ", event.metadata().level());
            event.record(&mut FieldWriter(&mut text));
            text.push('\n');
        });
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
