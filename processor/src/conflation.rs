//! `BROADCAST_MODE=rounds`: a stream batch's changes are recorded as pending, merged per
//! entity, and a round broadcasts what is pending when none is in flight.
//!
//! A stream batch records its [`changes`] as pending; [`advance`] is what a batch, a tick (a round ended,
//! a lease ran out) and the schedule do: start the next round if one may start and anything is
//! pending, and keep starting rounds while they end at once (no connections).

use std::time::Duration;

use jobs::JobQueue;
use platform::clock::now_ms;
use registry::Registry;
use rounds::round::{lease_until, new_round_id};
use rounds::{Change, Coordinator, Ended, RoundError, RoundSettings, Start, Tick, latest};
use serde_json::value::RawValue;

use crate::broadcast::{BroadcastError, BroadcastSettings, BroadcastStats, broadcast};
use crate::editions::Editions;
use crate::update::Update;

/// Rounds one invocation starts at most (a round with no connections ends at once, and the
/// next may start): a bound, not a limit anyone should meet.
const MAX_ROUNDS_PER_CALL: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ConflationError {
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("round {round_id}: {source}")]
    Broadcast {
        round_id: String,
        #[source]
        source: BroadcastError,
    },
    #[error("round {round_id}: pending change of {entity} is not an update: {detail}")]
    Stored {
        round_id: String,
        entity: String,
        detail: String,
    },
}

impl From<rounds::StoreError> for ConflationError {
    fn from(error: rounds::StoreError) -> Self {
        Self::Round(error.into())
    }
}

/// What [`advance`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Rounds started, with what they carried.
    pub started: Vec<Started>,
    /// Rounds whose lease ran out and that were replaced.
    pub expired: Vec<String>,
    /// Rounds that ended here (nothing to post, or every job already done).
    pub ended: Vec<Ended>,
    /// A round was in flight within its lease: nothing started.
    pub busy: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Started {
    pub round_id: String,
    pub entities: u64,
    pub parts: u64,
    pub truncated: u64,
    pub stats: BroadcastStats,
}

/// The changes of a batch, one per entity, each as clients will receive it: `max_bytes`
/// bounds an update's text as a METRICS_UPDATE part bounds it (a larger one is sent as its
/// keys, marked truncated).
pub fn changes(
    updates: &[(Update, Box<RawValue>)],
    stream: Option<&str>,
    max_bytes: usize,
) -> Vec<Change> {
    let all = updates.iter().map(|(update, keys)| {
        let mut text = serde_json::to_string(update).expect("updates serialize");
        if text.len() > max_bytes {
            tracing::warn!(keys = %keys, size = text.len(), limit = max_bytes, "update too large for one message; sending its keys only");
            text = serde_json::to_string(&update.truncated(keys)).expect("updates serialize");
        }
        Change {
            entity: keys.get().to_owned(),
            order: Change::order_of(update.sequence.as_deref().unwrap_or_default()),
            changed_at: update.timestamp,
            update: text,
            stream: stream.map(str::to_owned),
        }
    });
    latest(all)
}

/// Everything a round needs to go out.
pub struct RoundContext<'a> {
    pub rounds: &'a Coordinator,
    pub settings: &'a RoundSettings,
    pub registry: &'a Registry,
    pub queue: &'a JobQueue,
    pub broadcast: BroadcastSettings,
    pub max_message_bytes: usize,
}

/// Starts rounds while one may start and anything is pending.
pub async fn advance(context: &RoundContext<'_>) -> Result<Advanced, ConflationError> {
    let store = &context.rounds.store;
    let mut advanced = Advanced::default();
    for _ in 0..MAX_ROUNDS_PER_CALL {
        if !store.any_pending().await? {
            break;
        }
        let round_id = new_round_id();
        let now = now_ms();
        let lease = lease_until(
            now,
            context.settings.lease,
            0,
            context.settings.budget_per_second,
        );
        match store.try_start(&round_id, now, lease).await? {
            Start::Busy => {
                advanced.busy = true;
                break;
            }
            Start::Started { expired } => {
                if let Some(expired) = expired {
                    tracing::warn!(round_id = %expired.round_id, started_at = expired.started_at, lease_until = expired.lease_until, "round ended by its lease: its completion was lost (a crashed fanout or processor, a job in the DLQ?)");
                    advanced.expired.push(expired.round_id);
                }
            }
        }
        // Whatever happens next, a tick at the lease's end replaces a round that never ends.
        send_tick(context.rounds, &round_id, "lease", lease - now).await?;
        let (started, ended) = run_round(context, &round_id).await?;
        advanced.started.push(started);
        match ended {
            Some(ended) => advanced.ended.push(ended),
            None => break,
        }
    }
    Ok(advanced)
}

/// Broadcasts what is pending as round `round_id`, then clears it. Returns the round as it
/// ended when it ended here (nothing to post, or its jobs all done already).
async fn run_round(
    context: &RoundContext<'_>,
    round_id: &str,
) -> Result<(Started, Option<Ended>), ConflationError> {
    let store = &context.rounds.store;
    let carried = store.pending().await?;
    let oldest = carried.iter().map(|c| c.changed_at).min();
    store
        .describe(round_id, carried.len() as u64, oldest)
        .await?;
    let mut started = Started {
        round_id: round_id.to_owned(),
        entities: carried.len() as u64,
        ..Started::default()
    };
    let mut jobs = 0;
    if !carried.is_empty() {
        let mut editions = round_editions(round_id, &carried, context.max_message_bytes)?;
        started.parts = editions.everything.messages.len() as u64;
        started.truncated = editions.everything.truncated.len() as u64;
        let paging = broadcast(
            context.registry,
            context.queue,
            &mut editions,
            now_ms(),
            context.broadcast,
        );
        // A large registry may take longer to page than the base lease: the lease is renewed
        // while the round pages, so that only a round nobody works on runs out.
        let stats = tokio::select! {
            stats = paging => stats,
            () = renew_lease(context, round_id) => unreachable!("renews until paging ends"),
        };
        started.stats = stats.map_err(|source| ConflationError::Broadcast {
            round_id: round_id.to_owned(),
            source,
        })?;
        store.clear(&carried).await?;
        jobs = started.stats.jobs_sent;
    }
    let now = now_ms();
    let posts = started.stats.connections * started.parts;
    let lease = lease_until(
        now,
        context.settings.lease,
        posts,
        context.settings.budget_per_second,
    );
    if store.enqueued(round_id, jobs, lease).await?.is_some() {
        return Ok((started, context.rounds.end(round_id, now).await?));
    }
    if lease - now > context.settings.lease.as_millis() as i64 {
        send_tick(context.rounds, round_id, "lease", lease - now).await?;
    }
    tracing::info!(
        round_id,
        entities = started.entities,
        parts = started.parts,
        connections = started.stats.connections,
        jobs,
        lease_until = lease,
        "round started"
    );
    Ok((started, None))
}

/// The round's METRICS_UPDATE editions: the pending updates in stream order, under the
/// round's id.
fn round_editions(
    round_id: &str,
    carried: &[Change],
    max_bytes: usize,
) -> Result<Editions, ConflationError> {
    let updates = carried
        .iter()
        .map(|change| {
            let update: Update =
                serde_json::from_str(&change.update).map_err(|e| ConflationError::Stored {
                    round_id: round_id.to_owned(),
                    entity: change.entity.clone(),
                    detail: e.to_string(),
                })?;
            let keys = RawValue::from_string(change.entity.clone()).map_err(|e| {
                ConflationError::Stored {
                    round_id: round_id.to_owned(),
                    entity: change.entity.clone(),
                    detail: e.to_string(),
                }
            })?;
            Ok((update, keys))
        })
        .collect::<Result<Vec<_>, ConflationError>>()?;
    // The newest change's stream: clients reset what they remember when it changes.
    let stream = carried.iter().rev().find_map(|c| c.stream.as_deref());
    Ok(Editions::new(round_id, stream, updates, max_bytes, true))
}

/// Renews `round_id`'s lease every third of it, for as long as it is polled.
async fn renew_lease(context: &RoundContext<'_>, round_id: &str) {
    let lease = context.settings.lease;
    loop {
        tokio::time::sleep(lease / 3).await;
        let until = lease_until(now_ms(), lease, 0, context.settings.budget_per_second);
        match context.rounds.store.renew(round_id, until).await {
            Ok(true) => tracing::info!(
                round_id,
                lease_until = until,
                "round lease renewed while paging"
            ),
            Ok(false) => tracing::warn!(round_id, "round replaced while it was paging"),
            Err(error) => tracing::warn!(round_id, %error, "could not renew the round's lease"),
        }
    }
}

async fn send_tick(
    rounds: &Coordinator,
    round_id: &str,
    reason: &str,
    after_ms: i64,
) -> Result<(), ConflationError> {
    let tick = Tick {
        reason: reason.to_owned(),
        round_id: round_id.to_owned(),
    };
    let delay = Duration::from_millis(u64::try_from(after_ms).unwrap_or(0));
    rounds
        .ticks
        .send(&tick, delay)
        .await
        .map_err(|e| ConflationError::Round(e.into()))
}
