//! One invocation's deliveries: every part of every job to every connection of the job, with
//! bounded concurrency and per-post retries. Pure over the [`Poster`] port.

use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use jobs::FanoutJob;
use platform::clock::now_ms;
use tokio::time::Instant;

use crate::policy::RetryPolicy;
use crate::post::{PostOutcome, Poster};

/// What became of one connection of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Every part was posted (or refused as too large, which retrying cannot change).
    Delivered,
    Gone,
    /// Still failing when tries or time ran out, from this part (0-based) on.
    RetryLater {
        from_part: usize,
    },
    Forbidden,
    Rejected(u16),
}

/// The tally of one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobResult {
    /// Posts that reached a connection (one per connection and part).
    pub delivered_posts: u64,
    pub delivered: Vec<String>,
    pub gone: Vec<String>,
    pub retry_later: Vec<(String, usize)>,
    pub rejected: Vec<(String, u16)>,
    pub forbidden: u64,
    /// Parts refused with 413, as (connection id, part size).
    pub too_large: Vec<(String, usize)>,
    /// 429 answers, retried or not.
    pub throttled: u64,
    /// Posts that were retries.
    pub retried: u64,
    /// Epoch ms of the job's last successful post.
    pub last_delivery_ms: Option<i64>,
}

struct ConnectionResult {
    /// Which of the invocation's jobs the connection belongs to.
    job_index: usize,
    connection_id: String,
    fate: Fate,
    delivered_posts: u64,
    too_large: Vec<usize>,
    throttled: u64,
    retried: u64,
}

/// Delivers `jobs`, at most `concurrency` connections in progress at once across all of them
/// (a connection backing off holds its place: under throttling that slows the whole
/// invocation down, which is what the throttle asks for). At `deadline` retries stop and no
/// further connection is started; both are left for a requeue.
pub async fn deliver<P: Poster>(
    poster: &P,
    jobs: &[FanoutJob],
    policy: &RetryPolicy,
    concurrency: usize,
    deadline: Instant,
) -> Vec<JobResult> {
    // A plain loop over FuturesUnordered rather than `stream::iter(..).map(closure)`: closures
    // over borrowed jobs would make this future's Send bound higher-ranked, which spawning
    // callers cannot satisfy.
    let mut work = jobs
        .iter()
        .enumerate()
        .flat_map(|(index, job)| {
            job.connections
                .iter()
                .map(move |id| (index, job, id.as_str()))
        })
        .collect::<Vec<_>>()
        .into_iter();
    let mut results = vec![JobResult::default(); jobs.len()];
    let mut in_progress = FuturesUnordered::new();
    loop {
        while in_progress.len() < concurrency.max(1) {
            let Some((index, job, id)) = work.next() else {
                break;
            };
            // Past the budget nothing new starts: the rest goes back to the queue whole, and the
            // invocation keeps its reserve for deletes and requeues.
            if Instant::now() >= deadline {
                results[index].retry_later.push((id.to_owned(), 0));
                continue;
            }
            in_progress.push(deliver_connection(poster, index, job, id, policy, deadline));
        }
        let Some(connection) = in_progress.next().await else {
            break;
        };
        let result = &mut results[connection.job_index];
        result.delivered_posts += connection.delivered_posts;
        result.throttled += connection.throttled;
        result.retried += connection.retried;
        result.too_large.extend(
            connection
                .too_large
                .into_iter()
                .map(|size| (connection.connection_id.clone(), size)),
        );
        if connection.delivered_posts > 0 {
            result.last_delivery_ms = Some(now_ms());
        }
        let id = connection.connection_id;
        match connection.fate {
            Fate::Delivered => result.delivered.push(id),
            Fate::Gone => result.gone.push(id),
            Fate::RetryLater { from_part } => result.retry_later.push((id, from_part)),
            Fate::Forbidden => result.forbidden += 1,
            Fate::Rejected(status) => result.rejected.push((id, status)),
        }
    }
    results
}

async fn deliver_connection<P: Poster>(
    poster: &P,
    job_index: usize,
    job: &FanoutJob,
    connection_id: &str,
    policy: &RetryPolicy,
    deadline: Instant,
) -> ConnectionResult {
    let mut result = ConnectionResult {
        job_index,
        connection_id: connection_id.to_owned(),
        fate: Fate::Delivered,
        delivered_posts: 0,
        too_large: Vec::new(),
        throttled: 0,
        retried: 0,
    };
    for (index, part) in job.parts.iter().enumerate() {
        let data = part.get().as_bytes();
        result.fate =
            match post_with_retries(poster, connection_id, data, policy, deadline, &mut result)
                .await
            {
                PostOutcome::Delivered => {
                    result.delivered_posts += 1;
                    continue;
                }
                // Retrying cannot shrink the part; the connection still gets the others.
                PostOutcome::PayloadTooLarge => {
                    result.too_large.push(data.len());
                    continue;
                }
                PostOutcome::Gone => Fate::Gone,
                PostOutcome::Forbidden => Fate::Forbidden,
                PostOutcome::Rejected(status) => Fate::Rejected(status),
                PostOutcome::Throttled | PostOutcome::Unavailable(_) | PostOutcome::OutOfBudget => {
                    Fate::RetryLater { from_part: index }
                }
            };
        break;
    }
    result
}

/// Posts one part, trying again what may succeed later while tries and time last; returns the
/// last answer.
async fn post_with_retries<P: Poster>(
    poster: &P,
    connection_id: &str,
    data: &[u8],
    policy: &RetryPolicy,
    deadline: Instant,
    tally: &mut ConnectionResult,
) -> PostOutcome {
    let mut tries = 1;
    loop {
        let outcome = poster.post(connection_id, data).await;
        if outcome == PostOutcome::Throttled {
            tally.throttled += 1;
        }
        if !outcome.is_retryable() {
            return outcome;
        }
        let Some(delay) = policy.next_delay(tries, Instant::now(), deadline) else {
            tracing::debug!(
                connection_id,
                ?outcome,
                tries,
                "giving up for this invocation"
            );
            return outcome;
        };
        sleep(delay).await;
        tries += 1;
        tally.retried += 1;
    }
}

async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::Backoff;
    use serde_json::value::RawValue;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// Answers from a script per connection (then Delivered), and records every post.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<HashMap<String, Vec<PostOutcome>>>,
        posts: Mutex<Vec<(String, String)>>,
    }

    impl Scripted {
        fn answer(self, id: &str, outcomes: Vec<PostOutcome>) -> Self {
            self.script.lock().unwrap().insert(id.to_owned(), outcomes);
            self
        }
        fn posts_to(&self, id: &str) -> Vec<String> {
            let posts = self.posts.lock().unwrap();
            posts
                .iter()
                .filter(|(i, _)| i == id)
                .map(|(_, d)| d.clone())
                .collect()
        }
    }

    impl Poster for Scripted {
        async fn post(&self, id: &str, data: &[u8]) -> PostOutcome {
            self.posts
                .lock()
                .unwrap()
                .push((id.to_owned(), String::from_utf8_lossy(data).into_owned()));
            let mut script = self.script.lock().unwrap();
            match script.get_mut(id) {
                Some(outcomes) if !outcomes.is_empty() => outcomes.remove(0),
                _ => PostOutcome::Delivered,
            }
        }
    }

    fn job(parts: &[&str], ids: &[&str]) -> FanoutJob {
        FanoutJob::new(
            "b",
            0,
            parts
                .iter()
                .map(|p| RawValue::from_string((*p).to_owned()).unwrap())
                .collect(),
            ids.iter().map(|i| (*i).to_owned()).collect(),
        )
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            post_backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
            ..RetryPolicy::default()
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test(start_paused = true)]
    async fn every_part_reaches_every_connection_in_order() {
        let fake = Scripted::default();
        let results = deliver(
            &fake,
            &[job(&["1", "2"], &["a", "b", "c"])],
            &quick(),
            2,
            later(),
        )
        .await;
        assert_eq!(results[0].delivered_posts, 6);
        for id in ["a", "b", "c"] {
            assert_eq!(fake.posts_to(id), ["1", "2"]);
        }
        assert!(results[0].last_delivery_ms.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_and_errors_are_retried_until_delivered() {
        let fake = Scripted::default().answer(
            "a",
            vec![
                PostOutcome::Throttled,
                PostOutcome::Unavailable("503".into()),
                PostOutcome::Throttled,
            ],
        );
        let results = deliver(&fake, &[job(&["1"], &["a", "b"])], &quick(), 4, later()).await;
        let r = &results[0];
        assert_eq!(r.delivered.len(), 2);
        assert_eq!((r.throttled, r.retried), (2, 3));
        assert_eq!(fake.posts_to("a").len(), 4);
        assert_eq!(
            fake.posts_to("b").len(),
            1,
            "a success is never posted again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_retries_are_left_for_later_from_the_failed_part() {
        let fake = Scripted::default().answer(
            "a",
            std::iter::once(PostOutcome::Delivered)
                .chain(std::iter::repeat_n(PostOutcome::Throttled, 10))
                .collect(),
        );
        let results = deliver(
            &fake,
            &[job(&["1", "2", "3"], &["a"])],
            &quick(),
            4,
            later(),
        )
        .await;
        assert_eq!(results[0].retry_later, [("a".to_owned(), 1)]);
        assert_eq!(
            fake.posts_to("a").len(),
            1 + 6,
            "part 1, then six tries at part 2"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_retries() {
        let fake = Scripted::default().answer("a", vec![PostOutcome::Throttled; 10]);
        let slow = RetryPolicy {
            post_backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(5)),
            ..quick()
        };
        let deadline = Instant::now() + Duration::from_millis(50);
        let results = deliver(&fake, &[job(&["1"], &["a"])], &slow, 1, deadline).await;
        // Full jitter may pick a tiny delay a few times, never one that ends past the deadline
        // (the clock is paused: time moves only by the sleeps taken).
        assert_eq!(results[0].retry_later, [("a".to_owned(), 0)]);
        assert!(Instant::now() < deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_new_starts_after_the_deadline() {
        let fake = Scripted::default();
        let passed = Instant::now();
        let results = deliver(&fake, &[job(&["1", "2"], &["a", "b"])], &quick(), 4, passed).await;
        assert_eq!(
            results[0].retry_later,
            [("a".to_owned(), 0), ("b".to_owned(), 0)]
        );
        assert!(fake.posts.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn gone_forbidden_rejected_and_too_large_are_sorted_out() {
        let fake = Scripted::default()
            .answer("gone", vec![PostOutcome::Gone])
            .answer("forbidden", vec![PostOutcome::Forbidden])
            .answer("bad", vec![PostOutcome::Rejected(400)])
            .answer("big", vec![PostOutcome::PayloadTooLarge]);
        let results = deliver(
            &fake,
            &[job(&["1", "2"], &["gone", "forbidden", "bad", "big", "ok"])],
            &quick(),
            8,
            later(),
        )
        .await;
        let r = &results[0];
        assert_eq!(r.gone, ["gone"]);
        assert_eq!(r.forbidden, 1);
        assert_eq!(r.rejected, [("bad".to_owned(), 400)]);
        assert_eq!(r.too_large, [("big".to_owned(), 1)]);
        let mut delivered = r.delivered.clone();
        delivered.sort();
        assert_eq!(delivered, ["big", "ok"], "big still got part 2");
        assert_eq!(
            fake.posts_to("gone"),
            ["1"],
            "nothing more is posted to a gone connection"
        );
        assert_eq!(r.retried, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn results_stay_with_their_jobs() {
        let fake = Scripted::default().answer("x", vec![PostOutcome::Gone]);
        let results = deliver(
            &fake,
            &[job(&["1"], &["a", "x"]), job(&["2"], &["b"])],
            &quick(),
            3,
            later(),
        )
        .await;
        assert_eq!(results[0].gone, ["x"]);
        assert_eq!(results[0].delivered, ["a"]);
        assert_eq!(results[1].delivered, ["b"]);
    }
}
