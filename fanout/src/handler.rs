//! One fanout invocation: `SqsEvent` in, `SqsBatchResponse` out.
//!
//! Decode every record (a bad one is reported in `batchItemFailures`, never failing the rest),
//! deliver, delete the gone connections, requeue what is still failing, and account for
//! everything in an [`InvocationReport`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use jobs::{FanoutJob, JobQueue};
use platform::clock::now_ms;
use platform::telemetry::Metrics;
use registry::Registry;
use serde_json::json;
use tokio::time::Instant;

use crate::budget::{Paced, Pacer, PostBudget};
use crate::deliver::{JobResult, deliver};
use crate::policy::RetryPolicy;
use crate::post::Poster;
use rounds::{Coordinator, Ended};

/// Time kept back from the Lambda deadline for deletes, requeues and the response.
pub const RESERVE: Duration = Duration::from_secs(3);

/// The function's collaborators, built once per process.
pub struct Fanout<P> {
    pub poster: P,
    pub registry: Registry,
    pub queue: JobQueue,
    pub policy: RetryPolicy,
    pub concurrency: usize,
    /// `POST_BUDGET_PER_SECOND`, shared with every other invocation; `None` posts unpaced.
    pub budget: Option<PostBudget>,
    /// Where jobs of broadcast rounds are counted done (`STATE_TABLE_NAME`, `TICK_QUEUE_URL`).
    pub rounds: Option<Coordinator>,
}

/// What one invocation did; becomes one log line and one EMF document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationReport {
    pub broadcast_ids: BTreeSet<String>,
    pub jobs: u64,
    pub delivered: u64,
    pub gone: u64,
    pub throttled: u64,
    pub retried: u64,
    pub requeued: u64,
    pub failed: u64,
    pub forbidden: u64,
    pub payload_too_large: u64,
    pub malformed: u64,
    /// Posts made, whatever their answer (against the posting budget).
    pub posts: u64,
    /// ms the posts waited for the posting budget, summed.
    pub budget_wait_ms: u64,
    /// Budget slots left because the posts reached them too late (log only).
    pub budget_missed: u64,
    /// Claims of budget slots sent (log only).
    pub budget_claims: u64,
    /// Rounds this invocation ended (it finished their last job).
    pub rounds_ended: Vec<Ended>,
    /// Per job: ms from first enqueue to its last delivery.
    pub latencies_ms: Vec<i64>,
    /// Messages handed back to SQS.
    pub failed_messages: Vec<String>,
}

/// The end of the posting budget of an invocation with `left` to run: all of it but a reserve
/// for deletes and requeues ([`RESERVE`], or a third of a short invocation, so that a function
/// with a timeout of a few seconds still posts).
pub fn budget(left: Duration) -> Instant {
    Instant::now() + left.saturating_sub(RESERVE.min(left / 3))
}

/// [`budget`] for a Lambda deadline given in epoch ms.
pub fn budget_until(deadline_epoch_ms: u64) -> Instant {
    let left = i64::try_from(deadline_epoch_ms).unwrap_or(i64::MAX) - now_ms();
    budget(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

impl<P: Poster> Fanout<P> {
    pub async fn handle(
        &self,
        event: SqsEvent,
        deadline: Instant,
    ) -> (SqsBatchResponse, InvocationReport) {
        let mut report = InvocationReport::default();
        let mut failures = Vec::new();
        let mut jobs = Vec::new();
        let mut message_ids = Vec::new();
        for record in event.records {
            let message_id = record.message_id.unwrap_or_default();
            match FanoutJob::decode(record.body.as_deref().unwrap_or_default()) {
                Ok(job) => {
                    report.broadcast_ids.insert(job.broadcast_id.clone());
                    jobs.push(job);
                    message_ids.push(message_id);
                }
                Err(error) => {
                    tracing::error!(message_id, %error, "unusable fanout job; it goes back to the queue and on to the DLQ");
                    report.malformed += 1;
                    failures.push(message_id);
                }
            }
        }
        report.jobs = jobs.len() as u64;

        let expected_posts = jobs
            .iter()
            .map(|job| (job.connections.len() * job.parts.len()) as u64)
            .sum();
        let pacer = self
            .budget
            .as_ref()
            .map(|budget| Pacer::new(budget, expected_posts, self.concurrency, deadline));
        let poster = Paced::new(&self.poster, pacer);
        let results = deliver(&poster, &jobs, &self.policy, self.concurrency, deadline).await;
        report.posts = poster.posts();
        report.budget_wait_ms = poster.waited_ms();
        (report.budget_missed, report.budget_claims) = poster.missed_and_claims();
        self.remove_gone(&results).await;
        for ((job, result), message_id) in jobs.iter().zip(&results).zip(message_ids) {
            if !self.settle(job, result, &mut report).await {
                failures.push(message_id);
            }
        }
        report.failed_messages.clone_from(&failures);
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures
            .into_iter()
            .map(|id| {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failure
            })
            .collect();
        (response, report)
    }

    /// Deletes every gone connection's row. A failure is logged, not fatal: the rows go on
    /// the next broadcast's 410, or by TTL.
    async fn remove_gone(&self, results: &[JobResult]) {
        let gone: Vec<String> = results
            .iter()
            .flat_map(|r| r.gone.iter().cloned())
            .collect();
        if gone.is_empty() {
            return;
        }
        // Read before the delete: the rows are what still knows who the connections were.
        let connections = self.with_subjects(&gone).await;
        match self.registry.remove_many(&gone).await {
            Ok(()) => {
                tracing::info!(count = gone.len(), ?connections, "removed gone connections")
            }
            Err(error) => {
                tracing::error!(%error, ?connections, "could not remove gone connections")
            }
        }
    }

    /// `(connection id, subject)` pairs for a log line ("" where none is known); a failed read
    /// costs the subjects, not the line.
    async fn with_subjects(&self, ids: &[String]) -> Vec<(String, String)> {
        let subjects = self.registry.subjects(ids).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "could not read the subjects of connections for the log");
            Default::default()
        });
        ids.iter()
            .map(|id| (id.clone(), subjects.get(id).cloned().unwrap_or_default()))
            .collect()
    }

    /// Accounts for one job, counts it done in its round and requeues what is left of it.
    /// Returns false when the message must go back to SQS whole.
    async fn settle(
        &self,
        job: &FanoutJob,
        result: &JobResult,
        report: &mut InvocationReport,
    ) -> bool {
        report.add(job, result);
        log_refusals(&job.broadcast_id, result);
        if result.forbidden > 0 {
            return false;
        }
        let mut pieces: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        if self.policy.may_requeue(job.attempt) {
            for (id, part) in &result.retry_later {
                pieces.entry(*part).or_default().push(id.clone());
            }
        } else if !result.retry_later.is_empty() {
            self.give_up(job, &result.retry_later, report).await;
        }
        // Counted before the pieces are sent, so that a piece finishing first cannot end the
        // round early; a piece sent twice keeps its key and counts once.
        if !self.count_done(job, pieces.len() as u64, report).await {
            return false;
        }
        self.requeue(job, pieces, report).await
    }

    async fn give_up(
        &self,
        job: &FanoutJob,
        retry_later: &[(String, usize)],
        report: &mut InvocationReport,
    ) {
        let ids: Vec<String> = retry_later.iter().map(|(id, _)| id.clone()).collect();
        report.failed += ids.len() as u64;
        let connections = self.with_subjects(&ids).await;
        tracing::error!(broadcast_id = %job.broadcast_id, attempt = job.attempt, ?connections, "delivery given up after the last attempt");
    }

    /// Counts a round's job done, replaced by `pieces` requeued jobs, and ends the round when
    /// it was the last. False when the count failed: the message goes back to SQS, so the
    /// round is not left waiting for its lease.
    async fn count_done(
        &self,
        job: &FanoutJob,
        pieces: u64,
        report: &mut InvocationReport,
    ) -> bool {
        let Some(round) = &job.round else {
            return true;
        };
        let Some(rounds) = &self.rounds else {
            tracing::error!(broadcast_id = %job.broadcast_id, round_id = %round.id, "a job of a broadcast round, but STATE_TABLE_NAME and TICK_QUEUE_URL are not set; the round ends by its lease");
            return true;
        };
        match rounds
            .job_done(&round.id, &round.job, pieces, now_ms())
            .await
        {
            Ok(ended) => {
                report.rounds_ended.extend(ended);
                true
            }
            Err(error) => {
                tracing::error!(broadcast_id = %job.broadcast_id, round_id = %round.id, %error, "could not count the job done in its round; the message goes back to the queue");
                false
            }
        }
    }

    /// Sends the still-failing connections back to the queue, one delayed job per part they
    /// failed at (each continues from there). Returns false when a send failed: returning the
    /// whole message re-posts its delivered connections (clients drop the duplicate by
    /// id/part) but loses nobody.
    async fn requeue(
        &self,
        job: &FanoutJob,
        pieces: BTreeMap<usize, Vec<String>>,
        report: &mut InvocationReport,
    ) -> bool {
        let broadcast_id = job.broadcast_id.as_str();
        let delay = self.policy.requeue_delay(job.attempt + 1);
        for (part, ids) in pieces {
            let count = ids.len() as u64;
            let retry = job.retry(part, ids);
            if let Err(error) = self.queue.send_delayed(&retry, delay).await {
                tracing::error!(broadcast_id, %error, "requeue failed; returning the whole message");
                return false;
            }
            report.requeued += count;
            tracing::warn!(
                broadcast_id,
                attempt = retry.attempt,
                count,
                delay_s = delay.as_secs(),
                "requeued still-failing connections"
            );
        }
        true
    }
}

/// Logs what retrying cannot fix: 413s, other 4xx, and 403s (which fail the job).
fn log_refusals(broadcast_id: &str, result: &JobResult) {
    for (connection_id, size) in &result.too_large {
        tracing::error!(
            broadcast_id,
            connection_id,
            size,
            "part refused as too large (413); the processor bounds parts, so this is a bug"
        );
    }
    if !result.rejected.is_empty() {
        tracing::error!(broadcast_id, rejected = ?result.rejected, "posts rejected; not retried");
    }
    if result.forbidden > 0 {
        tracing::error!(
            broadcast_id,
            forbidden = result.forbidden,
            "403 Forbidden from the management API: check the function's execute-api:ManageConnections permission and WEBSOCKET_API_ENDPOINT; the job is failed"
        );
    }
}

impl InvocationReport {
    /// Adds one job's tally.
    fn add(&mut self, job: &FanoutJob, result: &JobResult) {
        self.delivered += result.delivered_posts;
        self.gone += result.gone.len() as u64;
        self.throttled += result.throttled;
        self.retried += result.retried;
        self.payload_too_large += result.too_large.len() as u64;
        self.failed += result.rejected.len() as u64;
        self.forbidden += result.forbidden;
        if let Some(at) = result.last_delivery_ms {
            self.latencies_ms.push(at - job.enqueued_at);
        }
    }

    pub fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("fanout");
        metrics
            .add_counts(&[
                ("Delivered", self.delivered),
                ("Gone", self.gone),
                ("Throttled", self.throttled),
                ("Retried", self.retried),
                ("Requeued", self.requeued),
                ("Failed", self.failed),
                ("Forbidden", self.forbidden),
                ("PayloadTooLarge", self.payload_too_large),
                ("MalformedJobs", self.malformed),
                ("Posts", self.posts),
                ("BudgetWait", self.budget_wait_ms),
            ])
            .expect("catalogued fanout metrics");
        if !self.latencies_ms.is_empty() {
            // EMF takes at most 100 values per metric.
            let sample: Vec<i64> = self.latencies_ms.iter().copied().take(100).collect();
            metrics
                .add("DeliveryLatency", json!(sample))
                .expect("catalogued fanout metric");
        }
        metrics.property("broadcastIds", json!(self.broadcast_ids));
        metrics
    }

    /// The one structured log line of the invocation.
    pub fn log(&self) {
        tracing::info!(
            broadcast_ids = ?self.broadcast_ids,
            jobs = self.jobs,
            delivered = self.delivered,
            gone = self.gone,
            throttled = self.throttled,
            retried = self.retried,
            requeued = self.requeued,
            failed = self.failed,
            forbidden = self.forbidden,
            payload_too_large = self.payload_too_large,
            malformed = self.malformed,
            posts = self.posts,
            budget_wait_ms = self.budget_wait_ms,
            budget_missed = self.budget_missed,
            budget_claims = self.budget_claims,
            rounds_ended = ?self.rounds_ended.iter().map(|e| &e.round.round_id).collect::<Vec<_>>(),
            failed_messages = self.failed_messages.len(),
            "fanout invocation"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_reserve_that_fits_short_invocations() {
        let within = |left: Duration, expected: Duration| {
            let before = Instant::now();
            let end = budget(left);
            end >= before + expected && end <= Instant::now() + expected
        };
        assert!(within(Duration::from_secs(60), Duration::from_secs(57)));
        assert!(within(Duration::from_secs(3), Duration::from_secs(2)));
        assert!(within(Duration::ZERO, Duration::ZERO));
    }

    #[test]
    fn every_metric_is_catalogued_and_every_catalogued_metric_is_emitted() {
        let report = InvocationReport {
            latencies_ms: vec![5],
            ..InvocationReport::default()
        };
        let metrics = report.metrics();
        for name in platform::telemetry::catalogued("fanout") {
            assert!(
                metrics.value(&name).is_some(),
                "{name} is catalogued but never emitted"
            );
        }
    }
}
