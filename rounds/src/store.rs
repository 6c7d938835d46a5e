//! The DynamoDB adapter for the state table (`pk`, `sk`, both strings; TTL on `expiresAt`).
//!
//! | pk | sk | what |
//! | --- | --- | --- |
//! | `entity` | the entity's keys | its latest change (the guard against older records; the snapshots' source, kept in batch mode too) |
//! | `pending` | the entity's keys | its latest change not yet broadcast |
//! | `round` | `current` | the round in flight (or the last one) |
//! | `done#<round>` | a job key | a finished job, so that a job delivered twice counts once |
//!
//! `pending` is one partition, read with a consistent Query when a round starts: a few hundred
//! writes a second sit well within one partition's 1,000 WCU/s.

use std::collections::HashMap;
use std::error::Error as StdError;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::change::Change;
use crate::round::RoundState;

/// Conditional writes in flight when changes are recorded or cleared.
const WRITE_CONCURRENCY: usize = 16;
/// How long a done marker is kept: well past any lease.
const DONE_TTL_SECONDS: i64 = 24 * 3600;

const ENTITY: &str = "entity";
const PENDING: &str = "pending";
const ROUND_PK: &str = "round";
const ROUND_SK: &str = "current";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} on {table} failed: {detail}")]
    Dynamo {
        operation: &'static str,
        table: String,
        detail: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("state item {pk}/{sk} is missing {attribute}")]
    Item {
        pk: String,
        sk: String,
        attribute: &'static str,
    },
}

/// What [`RoundStore::try_start`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The round is ours; `expired` is the round whose lease ran out, if one was replaced.
    Started { expired: Option<RoundState> },
    /// Another round is in flight and within its lease.
    Busy,
}

/// What recording changes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Changes now pending.
    pub pending: u64,
    /// Changes older than what the table already holds for their entity (a replayed record).
    pub stale: u64,
}

#[derive(Debug, Clone)]
pub struct RoundStore {
    client: Client,
    table: String,
}

impl RoundStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Records each change as its entity's latest and as pending, unless the table holds a
    /// newer change of the entity already. `changes` hold one change per entity ([`crate::latest`]).
    pub async fn record(&self, changes: &[Change]) -> Result<Recorded, StoreError> {
        // Futures collected first: a `map` closure over borrowed changes would make the
        // future's Send bound higher-ranked, which spawning callers cannot satisfy.
        let writes: Vec<_> = changes.iter().map(|c| self.record_one(c)).collect();
        let results: Vec<bool> = stream::iter(writes)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        let pending = results.iter().filter(|r| **r).count() as u64;
        Ok(Recorded {
            pending,
            stale: results.len() as u64 - pending,
        })
    }

    /// Keeps each change as its entity's latest only, unless the table holds a newer change
    /// of the entity already: batch mode (`BROADCAST_MODE=batch`) broadcasts every batch at
    /// once and has nothing pending, but snapshots still read the entities. Returns how many
    /// changes were older than what the table held (replayed records).
    pub async fn keep(&self, changes: &[Change]) -> Result<u64, StoreError> {
        let writes: Vec<_> = changes.iter().map(|c| self.put_newer(ENTITY, c)).collect();
        let results: Vec<bool> = stream::iter(writes)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(results.iter().filter(|written| !**written).count() as u64)
    }

    /// The entity first (the guard: a replayed older record stops there), then pending.
    async fn record_one(&self, change: &Change) -> Result<bool, StoreError> {
        for pk in [ENTITY, PENDING] {
            if !self.put_newer(pk, change).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes `change` under `pk` unless the item there holds a newer one; whether it did.
    async fn put_newer(&self, pk: &str, change: &Change) -> Result<bool, StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(change_item(pk, change)))
            .condition_expression("attribute_not_exists(#ord) OR #ord <= :ord")
            .expression_attribute_names("#ord", "ord")
            .expression_attribute_values(":ord", s(&change.order))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.dynamo("PutItem", e)),
        }
    }

    /// Whether any change is pending (one consistent read of one item).
    pub async fn any_pending(&self) -> Result<bool, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(PENDING))
            .consistent_read(true)
            .limit(1)
            .send()
            .await
            .map_err(|e| self.dynamo("Query", e))?;
        Ok(page.count() > 0)
    }

    /// Every pending change, in stream order (consistent reads, page by page).
    pub async fn pending(&self) -> Result<Vec<Change>, StoreError> {
        self.changes(PENDING).await
    }

    /// Every entity's latest change, in stream order.
    pub async fn entities(&self) -> Result<Vec<Change>, StoreError> {
        self.changes(ENTITY).await
    }

    async fn changes(&self, pk: &str) -> Result<Vec<Change>, StoreError> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.dynamo("Query", e))?;
        let mut changes = items
            .iter()
            .map(change_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        changes.sort_by(|a, b| a.order.cmp(&b.order));
        Ok(changes)
    }

    /// Removes the pending changes a round carried, each only if no newer change of its entity
    /// arrived meanwhile (that one stays for the next round).
    pub async fn clear(&self, carried: &[Change]) -> Result<(), StoreError> {
        let deletes: Vec<_> = carried.iter().map(|c| self.clear_one(c)).collect();
        stream::iter(deletes)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn clear_one(&self, change: &Change) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(PENDING))
            .key("sk", s(&change.entity))
            .condition_expression("#ord = :ord")
            .expression_attribute_names("#ord", "ord")
            .expression_attribute_values(":ord", s(&change.order))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(self.dynamo("DeleteItem", e)),
        }
    }

    /// Takes the round slot for `round_id` unless a round is in flight within its lease.
    pub async fn try_start(
        &self,
        round_id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Start, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(ROUND_PK))
            .item("sk", s(ROUND_SK))
            .item("roundId", s(round_id))
            .item("inFlight", AttributeValue::Bool(true))
            .item("startedAt", n(now))
            .item("leaseUntil", n(lease_until))
            .item("enqueued", AttributeValue::Bool(false))
            .item("outstanding", n(0))
            .item("entities", n(0))
            .condition_expression(
                "attribute_not_exists(pk) OR inFlight = :false OR leaseUntil < :now",
            )
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let old = output
                    .attributes
                    .map(|item| round_from_item(&item))
                    .transpose()?;
                Ok(Start::Started {
                    expired: old.filter(|r| r.in_flight),
                })
            }
            Err(e) if is_condition_failure(&e) => Ok(Start::Busy),
            Err(e) => Err(self.dynamo("PutItem", e)),
        }
    }

    /// Extends `round_id`'s lease to `lease_until` while it is still in flight (a round
    /// paging a large registry renews it as it goes). Returns false when the round is no
    /// longer the one in flight.
    pub async fn renew(&self, round_id: &str, lease_until: i64) -> Result<bool, StoreError> {
        let result = self
            .update_round()
            .update_expression("SET leaseUntil = :lease")
            .condition_expression("roundId = :id AND inFlight = :true")
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":id", s(round_id))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.dynamo("UpdateItem", e)),
        }
    }

    /// Notes what the round carries, before its jobs go out.
    pub async fn describe(
        &self,
        round_id: &str,
        entities: u64,
        oldest_change: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut update = self
            .update_round()
            .update_expression(match oldest_change {
                Some(_) => "SET entities = :entities, oldestChange = :oldest",
                None => "SET entities = :entities",
            })
            .condition_expression("roundId = :id")
            .expression_attribute_values(":entities", n(entities as i64))
            .expression_attribute_values(":id", s(round_id));
        if let Some(oldest) = oldest_change {
            update = update.expression_attribute_values(":oldest", n(oldest));
        }
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(self.dynamo("UpdateItem", e)),
        }
    }

    /// The processor has sent all `jobs` of the round, which is leased until `lease_until`.
    /// Returns the round's state when that leaves nothing outstanding (the caller ends it).
    pub async fn enqueued(
        &self,
        round_id: &str,
        jobs: u64,
        lease_until: i64,
    ) -> Result<Option<RoundState>, StoreError> {
        let result = self
            .update_round()
            .update_expression("ADD outstanding :jobs SET enqueued = :true, leaseUntil = :lease")
            .condition_expression("roundId = :id AND inFlight = :true")
            .expression_attribute_values(":jobs", n(jobs as i64))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":id", s(round_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.complete_if_done(result)
    }

    /// A job of the round is done, replaced by `pieces` requeued jobs (0 when it finished).
    /// A job seen twice counts once. Returns the round's state when nothing is left
    /// outstanding (the caller ends it).
    pub async fn job_done(
        &self,
        round_id: &str,
        job_key: &str,
        pieces: u64,
        now: i64,
    ) -> Result<Option<RoundState>, StoreError> {
        let marked = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&format!("done#{round_id}")))
            .item("sk", s(job_key))
            .item("expiresAt", n(now / 1000 + DONE_TTL_SECONDS))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match marked {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => return Ok(None),
            Err(e) => return Err(self.dynamo("PutItem", e)),
        }
        let result = self
            .update_round()
            .update_expression("ADD outstanding :delta")
            .condition_expression("roundId = :id AND inFlight = :true")
            .expression_attribute_values(":delta", n(pieces as i64 - 1))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":id", s(round_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.complete_if_done(result)
    }

    /// The round after an update, when that left it complete (the caller ends it).
    fn complete_if_done(
        &self,
        result: Result<UpdateItemOutput, SdkError<UpdateItemError, HttpResponse>>,
    ) -> Result<Option<RoundState>, StoreError> {
        match result {
            Ok(output) => {
                let round = output
                    .attributes
                    .map(|item| round_from_item(&item))
                    .transpose()?;
                Ok(round.filter(RoundState::is_complete))
            }
            // The round ended meanwhile (its lease ran out): nothing to count any more.
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(self.dynamo("UpdateItem", e)),
        }
    }

    /// Ends `round_id`. Returns its final state if this call ended it (only one caller does).
    pub async fn finish(&self, round_id: &str, now: i64) -> Result<Option<RoundState>, StoreError> {
        let result = self
            .update_round()
            .update_expression("SET inFlight = :false, endedAt = :now")
            .condition_expression("roundId = :id AND inFlight = :true")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":id", s(round_id))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .map(|item| round_from_item(&item))
                .transpose(),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(self.dynamo("UpdateItem", e)),
        }
    }

    /// The round in flight or the last one; `None` before the first.
    pub async fn round(&self) -> Result<Option<RoundState>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(ROUND_PK))
            .key("sk", s(ROUND_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.dynamo("GetItem", e))?;
        output.item.map(|item| round_from_item(&item)).transpose()
    }

    /// An UpdateItem of the round's control item.
    fn update_round(&self) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ROUND_PK))
            .key("sk", s(ROUND_SK))
    }

    fn dynamo<E, R>(&self, operation: &'static str, error: SdkError<E, R>) -> StoreError
    where
        E: StdError + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        StoreError::Dynamo {
            operation,
            table: self.table.clone(),
            detail: DisplayErrorContext(&error).to_string(),
            source: Box::new(error),
        }
    }
}

fn is_condition_failure<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn change_item(pk: &str, change: &Change) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(&change.entity)),
        ("ord".to_owned(), s(&change.order)),
        ("changedAt".to_owned(), n(change.changed_at)),
        ("update".to_owned(), s(&change.update)),
    ]);
    if let Some(stream) = &change.stream {
        item.insert("stream".to_owned(), s(stream));
    }
    item
}

fn change_from_item(item: &HashMap<String, AttributeValue>) -> Result<Change, StoreError> {
    let text = |name: &'static str| string(item, name);
    Ok(Change {
        entity: text("sk")?,
        order: text("ord")?,
        changed_at: number(item, "changedAt")?,
        update: text("update")?,
        stream: string(item, "stream").ok(),
    })
}

fn round_from_item(item: &HashMap<String, AttributeValue>) -> Result<RoundState, StoreError> {
    let flag = |name| matches!(item.get(name), Some(AttributeValue::Bool(true)));
    Ok(RoundState {
        round_id: string(item, "roundId")?,
        in_flight: flag("inFlight"),
        started_at: number(item, "startedAt")?,
        lease_until: number(item, "leaseUntil")?,
        enqueued: flag("enqueued"),
        outstanding: number(item, "outstanding").unwrap_or(0),
        oldest_change: number(item, "oldestChange").ok(),
        entities: number(item, "entities").unwrap_or(0).max(0) as u64,
    })
}

fn missing(item: &HashMap<String, AttributeValue>, attribute: &'static str) -> StoreError {
    let key = |name| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    StoreError::Item {
        pk: key("pk"),
        sk: key("sk"),
        attribute,
    }
}

fn string(
    item: &HashMap<String, AttributeValue>,
    name: &'static str,
) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| missing(item, name))
}

fn number(item: &HashMap<String, AttributeValue>, name: &'static str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| missing(item, name))
}
