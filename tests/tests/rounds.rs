//! Conflated broadcast rounds (`BROADCAST_MODE=rounds`) end to end: one round at a time
//! however many processors race, every client ending with the latest values on a stack that
//! cannot post as fast as the writer writes, never more posts than the budget, and a round
//! whose fanout died replaced by its lease.

use std::sync::Arc;
use std::time::Duration;

use apigw::Throttle;
use e2e::fixtures::{sdk_config, unique_name};
use e2e::{Client, connect_many, eventually, put_metric, start_stack, update_metric, updates_for};
use futures::future::join_all;
use platform::clock::now_ms;
use rounds::{Change, RoundStore, Start};
use serde_json::Value;
use stack::{Stack, StackConfig};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(30);

async fn fresh_store() -> RoundStore {
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name("state");
    stack::bootstrap::ensure_state_table(&dynamo, &table)
        .await
        .expect("create the state table");
    RoundStore::new(dynamo, table)
}

fn change(entity: &str, sequence: u64) -> Change {
    Change {
        entity: format!(r#"{{"entity_id":"{entity}"}}"#),
        order: Change::order_of(&sequence.to_string()),
        changed_at: now_ms(),
        update: format!(
            r#"{{"eventType":"MODIFY","timestamp":0,"sequence":"{sequence}","data":{{}}}}"#
        ),
        stream: None,
    }
}

#[tokio::test]
async fn of_racing_processors_exactly_one_starts_a_round() {
    let store = Arc::new(fresh_store().await);
    let now = now_ms();
    let racers = (0..12).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.try_start(&format!("r-{i}"), now, now + 60_000).await })
    });
    let results: Vec<Start> = join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let started = results
        .iter()
        .filter(|r| matches!(r, Start::Started { .. }))
        .count();
    assert_eq!(started, 1, "{results:?}");
    // Within its lease the round holds; past it, the next one replaces it and says so.
    assert_eq!(
        store
            .try_start("r-late", now + 1, now + 60_000)
            .await
            .unwrap(),
        Start::Busy
    );
    let Start::Started { expired } = store
        .try_start("r-next", now + 60_001, now + 120_000)
        .await
        .unwrap()
    else {
        panic!("the lease ran out");
    };
    assert!(expired.is_some_and(|r| r.in_flight));
}

#[tokio::test]
async fn an_older_record_never_replaces_a_newer_one_and_a_newer_change_outlives_its_round() {
    let store = fresh_store().await;
    let recorded = store
        .record(&[change("a", 5), change("b", 1)])
        .await
        .unwrap();
    assert_eq!((recorded.pending, recorded.stale), (2, 0));
    // A replayed older record of `a` is refused; the same record again is harmless.
    let recorded = store
        .record(&[change("a", 4), change("b", 1)])
        .await
        .unwrap();
    assert_eq!((recorded.pending, recorded.stale), (1, 1));
    let carried = store.pending().await.unwrap();
    assert_eq!(carried.len(), 2);
    // `b` changes again while the round that carries it is out: it stays pending.
    store.record(&[change("b", 9)]).await.unwrap();
    store.clear(&carried).await.unwrap();
    let left = store.pending().await.unwrap();
    assert_eq!(left, vec![change_at(&left, "b", 9)]);
    assert_eq!(store.entities().await.unwrap().len(), 2);
}

/// `left`'s change of `entity` checked to be at `sequence` (changed_at varies).
fn change_at(left: &[Change], entity: &str, sequence: u64) -> Change {
    let found = left
        .iter()
        .find(|c| c.entity.contains(entity))
        .expect("present")
        .clone();
    assert_eq!(found.order, Change::order_of(&sequence.to_string()));
    found
}

/// The value of `entity_id` in an update's data.
fn value_of(update: &Value) -> f64 {
    update["data"]["metric_value"].as_f64().expect("a number")
}

/// Posts the gateway received in the busiest second of the run (sampled every 50 ms).
struct PostRate {
    samples: Vec<(Instant, u64)>,
}

impl PostRate {
    fn busiest_second(&self) -> u64 {
        self.samples
            .iter()
            .map(|(t, n)| {
                let end = self
                    .samples
                    .iter()
                    .filter(|(u, _)| *u <= *t + Duration::from_secs(1))
                    .map(|(_, m)| *m)
                    .max()
                    .unwrap_or(*n);
                end - n
            })
            .max()
            .unwrap_or(0)
    }
}

async fn sample_posts(stack: &Stack, until: Instant) -> PostRate {
    let mut samples = Vec::new();
    while Instant::now() < until {
        samples.push((Instant::now(), stack.gateway.counters().posts_received));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    PostRate { samples }
}

const ENTITIES: usize = 10;
const CLIENTS: usize = 300;
const BUDGET: u32 = 300;

#[tokio::test]
async fn under_a_writer_faster_than_the_budget_every_client_ends_with_the_latest_values() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let mut config = StackConfig::for_tests();
    config.post_budget = BUDGET;
    // The account throttle above the budget, as in AWS: the budget keeps posts under it.
    config.gateway.throttle = Some(Throttle::new(400.0, 200));
    config.function_timeout = Duration::from_secs(10);
    let stack = start_stack(config).await;
    let clients = connect_many(&stack.ws_url(), CLIENTS).await;
    let entity = |i| format!("conflated-{i:02}");
    for i in 0..ENTITIES {
        put_metric(&stack, &entity(i), 0.0).await;
    }

    // 10 entities x 10 writes a second for 6 s: a broadcast per write would need 600 x 300
    // posts, 600 s at the budget; rounds carry only the latest of each.
    let writes = 60;
    let run = Instant::now() + Duration::from_secs(6);
    let sampler = sample_posts(&stack, run + WAIT);
    let writer = async {
        for round in 1..=writes {
            for i in 0..ENTITIES {
                update_metric(&stack, &entity(i), f64::from(round)).await;
            }
            tokio::time::sleep_until(Instant::now() + Duration::from_millis(100)).await;
        }
    };
    let latest = f64::from(writes);
    let check = async {
        let started = Instant::now();
        writer.await;
        eprintln!("writer done after {:?}", started.elapsed());
        let written = Instant::now();
        let reached = eventually(WAIT, || {
            clients.iter().all(|c| {
                (0..ENTITIES).all(|i| {
                    updates_for(c, &entity(i))
                        .last()
                        .is_some_and(|u| value_of(u) == latest)
                })
            })
        })
        .await;
        eprintln!("latest everywhere {:?} after the writer", written.elapsed());
        reached
    };
    let (all_latest, rate) = tokio::join!(check, sampler);
    let behind: Vec<(usize, String, Option<f64>)> = clients
        .iter()
        .enumerate()
        .flat_map(|(n, c)| {
            (0..ENTITIES).filter_map(move |i| {
                let last = updates_for(c, &entity(i)).last().map(value_of);
                (last != Some(latest)).then(|| (n, entity(i), last))
            })
        })
        .take(10)
        .collect();
    assert!(
        all_latest,
        "clients behind the latest value {latest}: {behind:?}; gateway {:?}",
        stack.gateway.counters()
    );

    for client in &clients {
        for i in 0..ENTITIES {
            let values: Vec<f64> = updates_for(client, &entity(i))
                .iter()
                .map(value_of)
                .collect();
            assert!(
                values.windows(2).all(|w| w[0] <= w[1]),
                "{} went backwards: {values:?}",
                entity(i)
            );
        }
    }
    let counters = stack.gateway.counters();
    let busiest = rate.busiest_second();
    assert!(
        busiest <= u64::from(BUDGET) * 105 / 100,
        "{busiest} posts in one second against a budget of {BUDGET}"
    );
    assert_eq!(
        counters.rejected_throttled, 0,
        "the budget kept posts under the throttle"
    );
    // Conflation: far fewer posts than one per write and client.
    let per_write = (writes as u64) * ENTITIES as u64 * CLIENTS as u64;
    assert!(
        counters.posts_received < per_write / 10,
        "{} posts for {per_write} (write, client) pairs",
        counters.posts_received
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_round_whose_fanout_died_is_replaced_when_its_lease_runs_out() {
    let mut config = StackConfig::for_tests();
    config.round_lease = Duration::from_secs(2);
    config.schedule = Duration::from_secs(1);
    let names = config.names.clone();
    let first = start_stack(config.clone()).await;
    // A connection, so that the round has a job to lose.
    let _watcher = connect_many(&first.ws_url(), 1).await;
    first.stop_fanout();
    put_metric(&first, "lost", 1.0).await;
    let store = RoundStore::new(first.dynamo.clone(), &names.state_table);
    let deadline = Instant::now() + WAIT;
    let lost_round = loop {
        match store.round().await.unwrap() {
            Some(round) if round.in_flight && round.enqueued => break round.round_id,
            _ => assert!(Instant::now() < deadline, "no round started"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The round's jobs are lost with its fanout.
    first
        .sqs
        .purge_queue()
        .queue_url(&first.resources.fanout_queue_url)
        .send()
        .await
        .unwrap();
    first.shutdown().await;

    let second = start_stack(config).await;
    let clients: Vec<Client> = connect_many(&second.ws_url(), 5).await;
    put_metric(&second, "after", 2.0).await;
    let delivered = eventually(WAIT, || {
        clients.iter().all(|c| !updates_for(c, "after").is_empty())
    })
    .await;
    assert!(
        delivered,
        "a change after the lost round never reached the clients"
    );
    let round = store.round().await.unwrap().unwrap();
    assert_ne!(round.round_id, lost_round);
    second.shutdown().await;
}

#[tokio::test]
async fn budget_lanes_in_dynamodb_grant_each_slot_once() {
    use fanout::budget::dynamo::DynamoLanes;
    use fanout::budget::{Claim, Run};
    let store = fresh_store().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let lanes = DynamoLanes::new(dynamo, store.table());
    // Slots 10 µs apart; runs of 6 from the floor, starting no later than 100 µs after it.
    let claim = |lane, floor: i64| Claim {
        lane,
        taken: 0,
        wanted: 6,
        floor,
        ceiling: floor + 100,
        spacing: 10,
    };
    let run = |start, count| Run {
        start,
        count,
        spacing: 10,
    };
    let first = lanes.claim(claim(0, 1_000)).await.unwrap();
    assert_eq!(first.run, run(1_000, 6));
    // Taken past the floor: the next run goes after it.
    assert_eq!(
        lanes.claim(claim(0, 1_000)).await.unwrap().run,
        run(1_060, 6)
    );
    // Taken beyond reach (1,120 > 1,010 + 100): nothing yet.
    let ahead = lanes.claim(claim(0, 1_010)).await.unwrap();
    assert_eq!(ahead.run.count, 0, "{ahead:?}");
    // Free before the floor (time went by): the run starts at the floor, not in the past.
    assert_eq!(
        lanes.claim(claim(0, 5_000)).await.unwrap().run,
        run(5_000, 6)
    );
    // Each lane is taken on its own, and every answer tells all of them.
    let other = lanes.claim(claim(3, 5_000)).await.unwrap();
    assert_eq!(other.run, run(5_000, 6));
    assert_eq!(other.taken, [(0, 5_060), (3, 5_060)].into());
}

#[tokio::test]
async fn a_pacer_over_dynamodb_posts_at_the_budget() {
    use fanout::budget::dynamo::DynamoLanes;
    use fanout::budget::{Lanes, Pacer, PostBudget};
    let store = fresh_store().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let budget = PostBudget {
        lanes: Lanes::Dynamo(DynamoLanes::new(dynamo, store.table())),
        per_second: 300,
    };
    let started = Instant::now();
    let pacer = Pacer::new(&budget, 600, 64, started + Duration::from_secs(30));
    let acquired = join_all((0..600).map(|_| pacer.acquire())).await;
    assert!(acquired.iter().all(|a| *a));
    let took = started.elapsed();
    eprintln!("600 posts at 300/s took {took:?}");
    assert!(
        took >= Duration::from_millis(1_800) && took <= Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_round_that_renews_its_lease_while_paging_is_not_replaced() {
    let store = fresh_store().await;
    let now = now_ms();
    store.try_start("r-paging", now, now + 1_000).await.unwrap();
    assert!(store.renew("r-paging", now + 60_000).await.unwrap());
    // Past the first lease, the renewed one holds.
    assert_eq!(
        store
            .try_start("r-next", now + 2_000, now + 62_000)
            .await
            .unwrap(),
        Start::Busy
    );
    // Once replaced (past the renewed lease), renewing says so.
    store
        .try_start("r-next", now + 60_001, now + 120_000)
        .await
        .unwrap();
    assert!(!store.renew("r-paging", now + 180_000).await.unwrap());
}
