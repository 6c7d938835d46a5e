//! The design we replace, as the seed's stream processor ran it (seed README, "Real-Time Update
//! Flow"): Scan the whole connections table page by page, then post the update to every
//! connection at once, with no retry of its own, deleting the row of a connection that
//! answers 410 Gone.
//!
//! Two defaults of the seed's JavaScript SDK shape what "at once" meant, and are reproduced:
//! - its HTTP agent holds at most 50 sockets (`maxSockets`, aws-sdk-js-v3 PR #2024, as v2 did):
//!   every post is started at once, and all but 50 wait in the agent's queue;
//! - its standard retry mode makes up to 3 attempts (100 ms base backoff).
//!
//! [`SeedSettings`] changes both, e.g. to show the seed with the agent's limit raised.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::Blob;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The JS SDK's `maxSockets`.
pub const JS_SDK_MAX_SOCKETS: usize = 50;
/// The JS SDK's standard retry mode: the first try and two retries.
pub const JS_SDK_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SeedSettings {
    /// Posts in flight; `None` is no limit at all.
    pub max_sockets: Option<usize>,
    /// SDK attempts per post (1 = no retry).
    pub attempts: u32,
}

impl Default for SeedSettings {
    fn default() -> Self {
        Self {
            max_sockets: Some(JS_SDK_MAX_SOCKETS),
            attempts: JS_SDK_ATTEMPTS,
        }
    }
}

/// What one seed broadcast did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SeedStats {
    pub scanned: u64,
    pub scan_pages: u64,
    pub scan_s: f64,
    pub delivered: u64,
    /// 410s, whose rows were then deleted.
    pub gone_deleted: u64,
    /// Posts still refused with 429 after the SDK's attempts: those connections miss the update.
    pub throttled: u64,
    /// Posts that failed otherwise (5xx, timeouts, connection errors).
    pub failed: u64,
    /// `failed` by cause: what went wrong, as the SDK reported it.
    pub failures: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("Scan of {table} failed: {detail}")]
    Scan { table: String, detail: String },
}

#[derive(Default)]
struct Tally {
    delivered: AtomicU64,
    gone_deleted: AtomicU64,
    throttled: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, cause: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cause)
            .or_default() += 1;
    }
}

type PostError = SdkError<PostToConnectionError, HttpResponse>;

/// A short cause: the SDK error's kind and its innermost source (e.g. "Connection refused").
fn cause(error: &PostError) -> String {
    let kind = match error {
        SdkError::ConstructionFailure(_) => "construction",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(e) if e.is_timeout() => "dispatch timeout",
        SdkError::DispatchFailure(e) if e.is_io() => "dispatch io",
        SdkError::DispatchFailure(_) => "dispatch",
        SdkError::ResponseError(_) => "response",
        SdkError::ServiceError(_) => "service",
        _ => "other",
    };
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let status = error
        .raw_response()
        .map(|r| format!(" HTTP {}", r.status().as_u16()))
        .unwrap_or_default();
    format!("{kind}{status}: {innermost}")
}

/// The seed's broadcast function, its clients built once as a Lambda would.
#[derive(Clone)]
pub struct SeedBroadcast {
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    api: aws_sdk_apigatewaymanagement::Client,
    settings: SeedSettings,
}

impl SeedBroadcast {
    pub fn new(sdk: &SdkConfig, table: &str, endpoint: &str, settings: SeedSettings) -> Self {
        let retry = if settings.attempts <= 1 {
            RetryConfig::disabled()
        } else {
            RetryConfig::standard()
                .with_max_attempts(settings.attempts)
                .with_initial_backoff(Duration::from_millis(100))
        };
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .retry_config(retry)
            .build();
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            table: table.to_owned(),
            api: aws_sdk_apigatewaymanagement::Client::from_conf(config),
            settings,
        }
    }

    /// Scans, then posts `message` to every connection found; returns when every post is done.
    pub async fn run(&self, message: &str) -> Result<SeedStats, BaselineError> {
        let started = Instant::now();
        let (ids, scan_pages) = self.scan().await?;
        let mut stats = SeedStats {
            scanned: ids.len() as u64,
            scan_pages,
            scan_s: started.elapsed().as_secs_f64(),
            ..SeedStats::default()
        };
        let tally = self.post_all(ids, Blob::new(message)).await;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        stats.delivered = get(&tally.delivered);
        stats.gone_deleted = get(&tally.gone_deleted);
        stats.throttled = get(&tally.throttled);
        stats.failed = get(&tally.failed);
        stats.failures = std::mem::take(
            &mut tally
                .failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        Ok(stats)
    }

    /// Every connection id, Scan page after Scan page (whole items, as the seed read them).
    async fn scan(&self) -> Result<(Vec<String>, u64), BaselineError> {
        let mut ids = Vec::new();
        let mut pages = 0;
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| BaselineError::Scan {
                    table: self.table.clone(),
                    detail: DisplayErrorContext(&e).to_string(),
                })?;
            pages += 1;
            ids.extend(
                page.items
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|mut item| match item.remove("connectionId") {
                        Some(AttributeValue::S(id)) => Some(id),
                        _ => None,
                    }),
            );
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok((ids, pages)),
            }
        }
    }

    /// `Promise.all(ids.map(post))`: every post started at once, queued behind the agent's
    /// sockets.
    async fn post_all(&self, ids: Vec<String>, message: Blob) -> Arc<Tally> {
        let sockets = Arc::new(Semaphore::new(
            self.settings.max_sockets.unwrap_or(Semaphore::MAX_PERMITS),
        ));
        let tally = Arc::new(Tally::default());
        let mut posts = JoinSet::new();
        for id in ids {
            let (seed, sockets, tally, message) = (
                self.clone(),
                sockets.clone(),
                tally.clone(),
                message.clone(),
            );
            posts.spawn(async move {
                let socket = sockets.acquire_owned().await;
                let result = seed
                    .api
                    .post_to_connection()
                    .connection_id(&id)
                    .data(message)
                    .send()
                    .await;
                drop(socket);
                seed.settle(&id, result.err(), &tally).await;
            });
        }
        while posts.join_next().await.is_some() {}
        tally
    }

    async fn settle(&self, id: &str, error: Option<PostError>, tally: &Tally) {
        let bump = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        let Some(error) = error else {
            bump(&tally.delivered);
            return;
        };
        match error.as_service_error() {
            Some(PostToConnectionError::GoneException(_)) => {
                // The seed's stale-connection clean-up.
                let deleted = self
                    .dynamo
                    .delete_item()
                    .table_name(&self.table)
                    .key("connectionId", AttributeValue::S(id.to_owned()))
                    .send()
                    .await;
                match deleted {
                    Ok(_) => bump(&tally.gone_deleted),
                    Err(e) => tally.fail(format!("DeleteItem: {}", DisplayErrorContext(&e))),
                }
            }
            Some(PostToConnectionError::LimitExceededException(_)) => {
                bump(&tally.throttled);
            }
            _ => tally.fail(cause(&error)),
        }
    }
}
