//! The merge, as the rounds use it: whatever the interleaving of INSERT / MODIFY / REMOVE
//! records over several entities (per-entity order kept, as a stream shard keeps it), however
//! the records are cut into batches and wherever rounds start and end meanwhile, a client that
//! applies every round in order ends with each entity's latest state, and never applies an
//! older change of an entity after a newer one.
//!
//! The state table is modelled by the conditions `RoundStore` writes with (a change is
//! recorded when no newer one of its entity is held; a carried change is cleared only if it
//! is still the pending one); the merge itself is the crate's `latest` and `supersedes`.

use std::collections::BTreeMap;

use platform::properties::check;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rounds::{Change, latest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Modify,
    Remove,
}

/// One stream record: entity, kind, value; its sequence is its place in the stream.
type Record = (u8, Kind, u8);

/// What happens next: a batch of the next `n` records of one shard, a round starting (its
/// pending set claimed), or the round in flight ending (its changes cleared, sent).
#[derive(Debug, Clone, Copy)]
enum Step {
    Batch { shard: u8, n: u8 },
    Start,
    End,
}

fn record() -> impl Strategy<Value = Record> {
    (
        0u8..5,
        prop_oneof![Just(Kind::Insert), Just(Kind::Modify), Just(Kind::Remove)],
        any::<u8>(),
    )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..2, 1u8..5).prop_map(|(shard, n)| Step::Batch { shard, n }),
        1 => Just(Step::Start),
        1 => Just(Step::End),
    ]
}

fn change(sequence: usize, (entity, kind, value): Record) -> Change {
    Change {
        entity: entity.to_string(),
        order: Change::order_of(&sequence.to_string()),
        changed_at: 0,
        update: format!("{kind:?}:{value}"),
        stream: None,
    }
}

/// The state table's entity and pending items, written under `RoundStore`'s conditions.
#[derive(Default)]
struct Table {
    entities: BTreeMap<String, Change>,
    pending: BTreeMap<String, Change>,
}

impl Table {
    fn record(&mut self, change: &Change) {
        for items in [&mut self.entities, &mut self.pending] {
            if items
                .get(&change.entity)
                .is_some_and(|held| !change.supersedes(held))
            {
                return;
            }
            items.insert(change.entity.clone(), change.clone());
        }
    }

    fn clear(&mut self, carried: &[Change]) {
        for change in carried {
            if self.pending.get(&change.entity) == Some(change) {
                self.pending.remove(&change.entity);
            }
        }
    }
}

/// A dashboard applying updates in arrival order, as the seed's client does.
#[derive(Default)]
struct Client {
    state: BTreeMap<String, String>,
    applied: BTreeMap<String, String>,
}

impl Client {
    fn apply(&mut self, round: &[Change]) -> Result<(), TestCaseError> {
        for change in round {
            if let Some(last) = self.applied.get(&change.entity) {
                prop_assert!(*last <= change.order, "{} went backwards", change.entity);
            }
            self.applied
                .insert(change.entity.clone(), change.order.clone());
            if change.update.starts_with("Remove") {
                self.state.remove(&change.entity);
            } else {
                self.state
                    .insert(change.entity.clone(), change.update.clone());
            }
        }
        Ok(())
    }
}

#[test]
fn any_interleaving_of_changes_and_rounds_ends_with_the_latest_state() {
    let input = (
        prop::collection::vec(record(), 0..40),
        prop::collection::vec(step(), 0..60),
    );
    check("rounds_merge", input, |(records, steps)| {
        // Entities live on shards by key; each shard is read in order, batch by batch.
        let mut shards: [Vec<Change>; 2] = Default::default();
        for (sequence, record) in records.iter().enumerate() {
            shards[usize::from(record.0 % 2)].push(change(sequence + 1, *record));
        }
        let mut read = [0usize; 2];
        let mut table = Table::default();
        let mut client = Client::default();
        let mut in_flight: Option<Vec<Change>> = None;
        let finish = |table: &mut Table, client: &mut Client, round: Vec<Change>| {
            table.clear(&round);
            client.apply(&round)
        };
        for step in steps {
            match step {
                Step::Batch { shard, n } => {
                    let shard = usize::from(shard);
                    let end = (read[shard] + usize::from(n)).min(shards[shard].len());
                    for change in latest(shards[shard][read[shard]..end].iter().cloned()) {
                        table.record(&change);
                    }
                    read[shard] = end;
                }
                Step::Start if in_flight.is_none() => {
                    in_flight = Some(latest(table.pending.values().cloned()));
                }
                Step::End => {
                    if let Some(round) = in_flight.take() {
                        finish(&mut table, &mut client, round)?;
                    }
                }
                Step::Start => {}
            }
        }
        // The rest of the stream, then rounds until nothing is pending.
        for (shard, changes) in shards.iter().enumerate() {
            for change in latest(changes[read[shard]..].iter().cloned()) {
                table.record(&change);
            }
        }
        if let Some(round) = in_flight.take() {
            finish(&mut table, &mut client, round)?;
        }
        while !table.pending.is_empty() {
            let round = latest(table.pending.values().cloned());
            finish(&mut table, &mut client, round)?;
        }

        let mut expected = BTreeMap::new();
        for (sequence, record) in records.iter().enumerate() {
            let change = change(sequence + 1, *record);
            match record.1 {
                Kind::Remove => expected.remove(&change.entity),
                _ => expected.insert(change.entity.clone(), change.update),
            };
        }
        prop_assert_eq!(client.state, expected);
        Ok(())
    });
}

#[test]
fn latest_keeps_exactly_the_newest_change_of_each_entity_in_stream_order() {
    let input = prop::collection::vec(record(), 0..40).prop_shuffle();
    check("rounds_latest", input, |records| {
        let changes: Vec<Change> = records
            .iter()
            .enumerate()
            .map(|(i, r)| change(i + 1, *r))
            .collect();
        let mut shuffled = changes.clone();
        shuffled.reverse();
        let merged = latest(shuffled);
        let mut newest: BTreeMap<String, Change> = BTreeMap::new();
        for change in changes {
            newest.insert(change.entity.clone(), change);
        }
        let mut expected: Vec<Change> = newest.into_values().collect();
        expected.sort_by(|a, b| a.order.cmp(&b.order));
        prop_assert_eq!(merged, expected);
        Ok(())
    });
}
